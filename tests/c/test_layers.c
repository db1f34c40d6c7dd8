/* Tests of softmax, batch norm, dropout and the losses through the public C API: hand-computed
 * values, stability at extreme inputs, batch-norm statistics, dropout statistics and masks,
 * gradients through cnn_backward, and the error messages. Finite-difference checks of every op
 * live in tests/spec/layers_spec.lua and loss_spec.lua. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "harness.h"

static cnn_tensor *tensor_of(int ndim, const int64_t *shape, const float *data) {
    return cnn_from_data(ndim, shape, data);
}

static float at(cnn_tensor *t, int64_t i) { return cnn_data(t)[i]; }

static int error_mentions(const char *a, const char *b) {
    const char *msg = cnn_last_error();
    return msg && strstr(msg, a) && (!b || strstr(msg, b));
}

/* ---- softmax -------------------------------------------------------------------------------------- */

TEST(softmax_rows_hand_computed) {
    int64_t shape[2] = {2, 3};
    float data[6] = {1, 2, 3, 0, 0, 0};
    cnn_tensor *x = tensor_of(2, shape, data);
    cnn_tensor *y = cnn_softmax(x, -1);
    REQUIRE(y);
    double e = exp(1.0) + exp(2.0) + exp(3.0);
    CHECK_NEAR(at(y, 0), exp(1.0) / e, 1e-6);
    CHECK_NEAR(at(y, 1), exp(2.0) / e, 1e-6);
    CHECK_NEAR(at(y, 2), exp(3.0) / e, 1e-6);
    for (int i = 3; i < 6; i++) CHECK_NEAR(at(y, i), 1.0 / 3.0, 1e-6);
    cnn_tensor *ly = cnn_log_softmax(x, 1);
    REQUIRE(ly);
    CHECK_NEAR(at(ly, 0), 1.0 - log(e), 1e-5);
    CHECK_NEAR(at(ly, 4), -log(3.0), 1e-6);
    cnn_release(ly);
    cnn_release(y);
    cnn_release(x);
}

TEST(softmax_outer_dim_matches_transposed_rows) {
    /* softmax along dim 0 of a 3x4 equals softmax along the rows of its transpose */
    int64_t shape[2] = {3, 4};
    float data[12];
    for (int i = 0; i < 12; i++) data[i] = sinf(0.7f * i) * 3.0f;
    cnn_tensor *x = tensor_of(2, shape, data);
    cnn_tensor *y = cnn_softmax(x, 0);
    cnn_tensor *xt = cnn_transpose(x, 0, 1);
    cnn_tensor *yt = cnn_softmax(xt, 1);
    REQUIRE(y && yt);
    for (int r = 0; r < 3; r++)
        for (int c = 0; c < 4; c++) CHECK_NEAR(at(y, r * 4 + c), at(yt, c * 3 + r), 1e-6);
    cnn_release(yt);
    cnn_release(xt);
    cnn_release(y);
    cnn_release(x);
}

TEST(softmax_large_inner_dim_sums_to_one) {
    /* (2, 5, 300): the normalised dim is in the middle and inner spans more than one block */
    int64_t shape[3] = {2, 5, 300};
    cnn_tensor *x = cnn_randn(3, shape);
    cnn_tensor *y = cnn_softmax(x, 1);
    REQUIRE(y);
    double worst = 0;
    for (int n = 0; n < 2; n++)
        for (int i = 0; i < 300; i++) {
            double s = 0;
            for (int d = 0; d < 5; d++) s += at(y, (n * 5 + d) * 300 + i);
            worst = fmax(worst, fabs(s - 1.0));
        }
    CHECK(worst < 1e-5);
    cnn_release(y);
    cnn_release(x);
}

TEST(softmax_is_stable_for_huge_logits) {
    int64_t shape[1] = {2};
    float data[2] = {1000, 0};
    cnn_tensor *x = tensor_of(1, shape, data);
    cnn_tensor *y = cnn_softmax(x, 0), *ly = cnn_log_softmax(x, 0);
    REQUIRE(y && ly);
    CHECK_NEAR(at(y, 0), 1.0, 1e-7);
    CHECK_NEAR(at(y, 1), 0.0, 1e-7);
    CHECK_NEAR(at(ly, 0), 0.0, 1e-6);
    CHECK_NEAR(at(ly, 1), -1000.0, 1e-3);
    cnn_release(ly);
    cnn_release(y);
    cnn_release(x);
}

TEST(softmax_backward_rows_sum_to_zero) {
    int64_t shape[2] = {2, 4};
    float data[8] = {0.1f, -2, 3, 0.5f, 1, 1, 1, 1};
    cnn_tensor *x = tensor_of(2, shape, data);
    cnn_set_requires_grad(x, 1);
    cnn_tensor *y = cnn_softmax(x, 1);
    float wdata[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    cnn_tensor *w = tensor_of(2, shape, wdata);
    cnn_tensor *yw = cnn_mul(y, w);
    cnn_tensor *loss = cnn_sum(yw, CNN_ALL_DIMS, 0);
    REQUIRE(loss);
    REQUIRE(cnn_backward(loss, NULL, 0) == CNN_OK);
    cnn_tensor *g = cnn_grad(x);
    REQUIRE(g);
    for (int r = 0; r < 2; r++) {
        double s = 0;
        for (int c = 0; c < 4; c++) s += at(g, r * 4 + c);
        CHECK_NEAR(s, 0.0, 1e-6);
    }
    /* a constant row has p = 1/4: dx = p * (w - mean(w)) */
    CHECK_NEAR(at(g, 4), 0.25 * (5 - 6.5), 1e-6);
    CHECK_NEAR(at(g, 7), 0.25 * (8 - 6.5), 1e-6);
    cnn_release(g);
    cnn_release(loss);
    cnn_release(yw);
    cnn_release(w);
    cnn_release(y);
    cnn_release(x);
}

TEST(softmax_rejects_bad_dim) {
    int64_t shape[2] = {2, 3};
    cnn_tensor *x = cnn_zeros(2, shape);
    CHECK(cnn_softmax(x, 2) == NULL);
    CHECK(error_mentions("softmax", NULL));
    CHECK(cnn_log_softmax(x, -3) == NULL);
    CHECK(error_mentions("log_softmax", NULL));
    cnn_release(x);
}

/* ---- batch norm ----------------------------------------------------------------------------------- */

TEST(batch_norm_training_statistics_and_running_update) {
    /* (4, 2): channel 0 = 1,2,3,4 (mean 2.5, biased var 1.25, unbiased 5/3); channel 1 = 10 x4 */
    int64_t shape[2] = {4, 2}, cshape[1] = {2};
    float data[8] = {1, 10, 2, 10, 3, 10, 4, 10};
    cnn_tensor *x = tensor_of(2, shape, data);
    cnn_tensor *rm = cnn_zeros(1, cshape), *rv = cnn_ones(1, cshape);
    cnn_tensor *y = cnn_batch_norm(x, rm, rv, NULL, NULL, 1, 0.1f, 1e-5f);
    REQUIRE(y);
    double invstd = 1.0 / sqrt(1.25 + 1e-5);
    CHECK_NEAR(at(y, 0), -1.5 * invstd, 1e-5);
    CHECK_NEAR(at(y, 6), 1.5 * invstd, 1e-5);
    CHECK_NEAR(at(y, 1), 0.0, 1e-6);
    CHECK_NEAR(at(rm, 0), 0.25, 1e-6);
    CHECK_NEAR(at(rm, 1), 1.0, 1e-6);
    CHECK_NEAR(at(rv, 0), 0.9 + 0.1 * 5.0 / 3.0, 1e-6);
    CHECK_NEAR(at(rv, 1), 0.9, 1e-6);
    /* a second step moves the running estimates again */
    cnn_tensor *y2 = cnn_batch_norm(x, rm, rv, NULL, NULL, 1, 0.1f, 1e-5f);
    REQUIRE(y2);
    CHECK_NEAR(at(rm, 0), 0.9 * 0.25 + 0.25, 1e-6);
    cnn_release(y2);
    cnn_release(y);
    cnn_release(rv);
    cnn_release(rm);
    cnn_release(x);
}

TEST(batch_norm_eval_uses_running_statistics) {
    int64_t shape[4] = {1, 2, 1, 2}, cshape[1] = {2};
    float data[4] = {1, 3, -1, 5};
    float mean[2] = {2, 1}, var[2] = {4, 0.25f}, w[2] = {2, 1}, b[2] = {0.5f, -1};
    cnn_tensor *x = tensor_of(4, shape, data);
    cnn_tensor *rm = tensor_of(1, cshape, mean), *rv = tensor_of(1, cshape, var);
    cnn_tensor *wt = tensor_of(1, cshape, w), *bt = tensor_of(1, cshape, b);
    cnn_tensor *y = cnn_batch_norm(x, rm, rv, wt, bt, 0, 0.1f, 0.0f);
    REQUIRE(y);
    CHECK_NEAR(at(y, 0), (1 - 2) / 2.0 * 2 + 0.5, 1e-6);
    CHECK_NEAR(at(y, 1), (3 - 2) / 2.0 * 2 + 0.5, 1e-6);
    CHECK_NEAR(at(y, 2), (-1 - 1) / 0.5 * 1 - 1, 1e-6);
    CHECK_NEAR(at(y, 3), (5 - 1) / 0.5 * 1 - 1, 1e-6);
    CHECK_NEAR(at(rm, 0), 2.0, 0); /* eval leaves the running statistics alone */
    CHECK_NEAR(at(rv, 1), 0.25, 0);
    cnn_release(y);
    cnn_release(bt);
    cnn_release(wt);
    cnn_release(rv);
    cnn_release(rm);
    cnn_release(x);
}

TEST(batch_norm_training_backward_of_sum_is_zero) {
    /* sum(y) does not depend on x in training (the mean is subtracted): dx = 0, dbias = M */
    int64_t shape[4] = {2, 3, 2, 2}, cshape[1] = {3};
    cnn_tensor *x = cnn_randn(4, shape), *w = cnn_ones(1, cshape), *b = cnn_zeros(1, cshape);
    cnn_set_requires_grad(x, 1);
    cnn_set_requires_grad(w, 1);
    cnn_set_requires_grad(b, 1);
    cnn_tensor *y = cnn_batch_norm(x, NULL, NULL, w, b, 1, 0.1f, 1e-5f);
    REQUIRE(y);
    cnn_tensor *s = cnn_sum(y, CNN_ALL_DIMS, 0);
    REQUIRE(cnn_backward(s, NULL, 0) == CNN_OK);
    cnn_tensor *gx = cnn_grad(x), *gw = cnn_grad(w), *gb = cnn_grad(b);
    REQUIRE(gx && gw && gb);
    double worst = 0;
    for (int i = 0; i < 24; i++) worst = fmax(worst, fabs(at(gx, i)));
    CHECK(worst < 1e-5);
    for (int c = 0; c < 3; c++) {
        CHECK_NEAR(at(gb, c), 8.0, 1e-5);
        CHECK_NEAR(at(gw, c), 0.0, 1e-4); /* sum of xhat is 0 */
    }
    cnn_release(gb);
    cnn_release(gw);
    cnn_release(gx);
    cnn_release(s);
    cnn_release(y);
    cnn_release(b);
    cnn_release(w);
    cnn_release(x);
}

/* Training-mode y, dx, dweight and dbias against the formulas in double, for channels of one value
 * ((N, C) inputs), of 4 (2x2 maps) and of 144, with enough channels that the short ones span several
 * accumulator groups and enough values for the passes to run on threads; the result must not depend
 * on the thread count. */
static void batch_norm_reference(const float *x, const float *w, const float *b, const float *gy, int64_t N,
                                 int64_t C, int64_t S, double *y, double *dx, double *dw, double *db) {
    const double M = (double)(N * S), eps = 1e-5;
    for (int64_t c = 0; c < C; c++) {
        double mean = 0, var = 0, sum_gy = 0, sum_gy_xhat = 0;
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) mean += x[(n * C + c) * S + s] / M;
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) var += pow(x[(n * C + c) * S + s] - mean, 2) / M;
        const double invstd = 1 / sqrt(var + eps);
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) {
                const int64_t i = (n * C + c) * S + s;
                const double xhat = (x[i] - mean) * invstd;
                y[i] = xhat * w[c] + b[c];
                sum_gy += gy[i], sum_gy_xhat += gy[i] * xhat;
            }
        db[c] = sum_gy, dw[c] = sum_gy_xhat;
        for (int64_t n = 0; n < N; n++)
            for (int64_t s = 0; s < S; s++) {
                const int64_t i = (n * C + c) * S + s;
                const double xhat = (x[i] - mean) * invstd;
                dx[i] = w[c] * invstd * (gy[i] - sum_gy / M - xhat * sum_gy_xhat / M);
            }
    }
}

/* Runs batch norm forward and backward on `threads` threads; y and the gradients are copied out. */
static void batch_norm_run(int threads, const int64_t *shape, cnn_tensor *x0, cnn_tensor *w0,
                           cnn_tensor *b0, cnn_tensor *gy, float *y_out, float *dx_out, float *dw_out,
                           float *db_out) {
    const int saved = cnn_get_num_threads();
    cnn_set_num_threads(threads);
    cnn_tensor *x = cnn_clone(x0), *w = cnn_clone(w0), *b = cnn_clone(b0);
    cnn_set_requires_grad(x, 1);
    cnn_set_requires_grad(w, 1);
    cnn_set_requires_grad(b, 1);
    cnn_tensor *y = cnn_batch_norm(x, NULL, NULL, w, b, 1, 0.1f, 1e-5f);
    REQUIRE(y);
    REQUIRE(cnn_backward(y, gy, 0) == CNN_OK);
    const int64_t n = cnn_numel(y), C = shape[1];
    cnn_tensor *gx = cnn_grad(x), *gw = cnn_grad(w), *gb = cnn_grad(b);
    REQUIRE(gx && gw && gb);
    memcpy(y_out, cnn_data(y), (size_t)n * sizeof(float));
    memcpy(dx_out, cnn_data(gx), (size_t)n * sizeof(float));
    memcpy(dw_out, cnn_data(gw), (size_t)C * sizeof(float));
    memcpy(db_out, cnn_data(gb), (size_t)C * sizeof(float));
    cnn_tensor *all[] = {gb, gw, gx, y, b, w, x};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) cnn_release(all[i]);
    cnn_set_num_threads(saved);
}

TEST(batch_norm_matches_the_formulas_for_every_channel_length) {
    const int64_t shapes[3][4] = {{64, 520, 1, 1}, {16, 600, 2, 2}, {8, 40, 12, 12}};
    for (int k = 0; k < 3; k++) {
        const int64_t *shape = shapes[k], N = shape[0], C = shape[1], S = shape[2] * shape[3];
        const int64_t n = N * C * S, cshape[1] = {C};
        cnn_manual_seed(7 + (uint64_t)k);
        cnn_tensor *x = cnn_randn(4, shape), *gy = cnn_randn(4, shape), *w = cnn_randn(1, cshape),
                   *b = cnn_randn(1, cshape);
        for (int64_t i = 0; i < n; i++) cnn_data(x)[i] = 3.0f + 2.0f * cnn_data(x)[i]; // mean far from 0
        double *ref = malloc((size_t)(2 * n + 2 * C) * sizeof(double));
        float *got = malloc((size_t)(2 * (2 * n + 2 * C)) * sizeof(float));
        REQUIRE(ref && got);
        batch_norm_reference(cnn_data(x), cnn_data(w), cnn_data(b), cnn_data(gy), N, C, S, ref, ref + n, ref + 2 * n,
                             ref + 2 * n + C);
        float *one = got, *two = got + 2 * n + 2 * C;
        batch_norm_run(1, shape, x, w, b, gy, one, one + n, one + 2 * n, one + 2 * n + C);
        batch_norm_run(2, shape, x, w, b, gy, two, two + n, two + 2 * n, two + 2 * n + C);
        double worst = 0;
        for (int64_t i = 0; i < 2 * n + 2 * C; i++) {
            const double scale = i >= 2 * n ? 1.0 + fabs(ref[i]) : 1.0; // sums over N*S values
            worst = fmax(worst, fabs(one[i] - ref[i]) / scale);
        }
        CHECK(worst < 2e-4);
        CHECK(memcmp(one, two, (size_t)(2 * n + 2 * C) * sizeof(float)) == 0);
        free(got);
        free(ref);
        cnn_release(b);
        cnn_release(w);
        cnn_release(gy);
        cnn_release(x);
    }
}

TEST(batch_norm_errors_name_the_shapes) {
    int64_t shape[4] = {8, 3, 4, 4}, cshape[1] = {2}, one[2] = {1, 3};
    cnn_tensor *x = cnn_zeros(4, shape), *rm = cnn_zeros(1, cshape), *rv = cnn_ones(1, cshape);
    CHECK(cnn_batch_norm(x, rm, rv, NULL, NULL, 1, 0.1f, 1e-5f) == NULL);
    CHECK(error_mentions("batch_norm: running_mean has shape 2", "8x3x4x4"));
    CHECK(cnn_batch_norm(x, NULL, NULL, NULL, NULL, 0, 0.1f, 1e-5f) == NULL);
    CHECK(error_mentions("batch_norm", "running"));
    cnn_tensor *single = cnn_zeros(2, one);
    CHECK(cnn_batch_norm(single, NULL, NULL, NULL, NULL, 1, 0.1f, 1e-5f) == NULL);
    CHECK(error_mentions("batch_norm", "more than one value per channel"));
    int64_t vshape[1] = {5};
    cnn_tensor *v = cnn_zeros(1, vshape);
    CHECK(cnn_batch_norm(v, NULL, NULL, NULL, NULL, 1, 0.1f, 1e-5f) == NULL);
    CHECK(error_mentions("batch_norm: input must be", "5"));
    cnn_release(v);
    cnn_release(single);
    cnn_release(rv);
    cnn_release(rm);
    cnn_release(x);
}

/* ---- dropout -------------------------------------------------------------------------------------- */

TEST(dropout_statistics_on_100k_elements) {
    int64_t shape[1] = {100000};
    cnn_tensor *x = cnn_ones(1, shape);
    float p = 0.3f;
    cnn_tensor *y = cnn_dropout(x, p, 1, 0);
    REQUIRE(y);
    int64_t zeros = 0, bad = 0;
    double sum = 0;
    for (int64_t i = 0; i < shape[0]; i++) {
        float v = at(y, i);
        if (v == 0.0f) zeros++;
        else if (fabsf(v - 1.0f / 0.7f) > 1e-6f) bad++;
        sum += v;
    }
    /* the zeroed count is Binomial(1e5, 0.3): sd ~ 145; 5 sd gives a test that essentially never
     * fails by chance */
    CHECK(fabs((double)zeros - 30000.0) < 725.0);
    CHECK(bad == 0);
    CHECK_NEAR(sum / 1e5, 1.0, 0.015);
    cnn_release(y);
    cnn_release(x);
}

TEST(dropout_is_identity_in_eval_and_reproducible_with_seed) {
    int64_t shape[2] = {50, 40};
    cnn_tensor *x = cnn_randn(2, shape);
    cnn_tensor *e = cnn_dropout(x, 0.5f, 0, 0);
    REQUIRE(e);
    for (int i = 0; i < 2000; i++) CHECK(at(e, i) == at(x, i));
    cnn_manual_seed(7);
    cnn_tensor *a = cnn_dropout(x, 0.5f, 1, 0);
    cnn_manual_seed(7);
    cnn_tensor *b = cnn_dropout(x, 0.5f, 1, 0);
    cnn_tensor *c = cnn_dropout(x, 0.5f, 1, 0);
    REQUIRE(a && b && c);
    int same = 1, differs = 0;
    for (int i = 0; i < 2000; i++) {
        same &= at(a, i) == at(b, i);
        differs |= at(b, i) != at(c, i);
    }
    CHECK(same);
    CHECK(differs);
    cnn_release(c);
    cnn_release(b);
    cnn_release(a);
    cnn_release(e);
    cnn_release(x);
}

TEST(dropout_p_one_zeroes_everything_and_p_out_of_range_fails) {
    int64_t shape[1] = {100};
    cnn_tensor *x = cnn_ones(1, shape);
    cnn_tensor *y = cnn_dropout(x, 1.0f, 1, 0);
    REQUIRE(y);
    for (int i = 0; i < 100; i++) CHECK(at(y, i) == 0.0f);
    CHECK(cnn_dropout(x, 1.5f, 1, 0) == NULL);
    CHECK(error_mentions("dropout: p must be in [0, 1]", "1.5"));
    CHECK(cnn_dropout(x, -0.1f, 1, 0) == NULL);
    CHECK(cnn_dropout(x, 0.5f, 1, 1) == NULL);
    CHECK(error_mentions("dropout: channelwise", "100"));
    cnn_release(y);
    cnn_release(x);
}

TEST(dropout2d_zeroes_whole_maps) {
    int64_t shape[4] = {8, 16, 3, 3};
    cnn_tensor *x = cnn_ones(4, shape);
    cnn_tensor *y = cnn_dropout(x, 0.5f, 1, 1);
    REQUIRE(y);
    int dropped = 0, mixed = 0;
    for (int m = 0; m < 8 * 16; m++) {
        int zeros = 0;
        for (int s = 0; s < 9; s++) zeros += at(y, m * 9 + s) == 0.0f;
        if (zeros == 9) dropped++;
        else if (zeros != 0) mixed++;
        else CHECK_NEAR(at(y, m * 9), 2.0, 1e-6);
    }
    CHECK(mixed == 0);
    CHECK(dropped > 30 && dropped < 98); /* Binomial(128, 0.5): mean 64, sd ~ 5.7 */
    cnn_release(y);
    cnn_release(x);
}

TEST(dropout_backward_uses_the_mask) {
    int64_t shape[1] = {1000};
    cnn_tensor *x = cnn_randn(1, shape);
    cnn_set_requires_grad(x, 1);
    cnn_tensor *y = cnn_dropout(x, 0.4f, 1, 0);
    cnn_tensor *s = cnn_sum(y, CNN_ALL_DIMS, 0);
    REQUIRE(s);
    REQUIRE(cnn_backward(s, NULL, 0) == CNN_OK);
    cnn_tensor *g = cnn_grad(x);
    REQUIRE(g);
    for (int i = 0; i < 1000; i++) {
        if (at(y, i) == 0.0f) CHECK(at(g, i) == 0.0f);
        else CHECK_NEAR(at(g, i), 1.0 / 0.6, 1e-6);
    }
    cnn_release(g);
    cnn_release(s);
    cnn_release(y);
    cnn_release(x);
}

/* ---- losses --------------------------------------------------------------------------------------- */

TEST(cross_entropy_hand_computed_and_gradient) {
    /* logits (2, 3); targets 2 and 0. loss_i = lse_i - x[target] */
    int64_t shape[2] = {2, 3}, tshape[1] = {2};
    float data[6] = {1, 2, 3, 0, 0, 0}, tdata[2] = {2, 0};
    cnn_tensor *x = tensor_of(2, shape, data), *t = tensor_of(1, tshape, tdata);
    cnn_set_requires_grad(x, 1);
    cnn_class_loss_options o = cnn_class_loss_defaults();
    cnn_tensor *loss = cnn_cross_entropy(x, t, &o);
    REQUIRE(loss);
    double lse0 = log(exp(1.0) + exp(2.0) + exp(3.0)), lse1 = log(3.0);
    CHECK_NEAR(cnn_item(loss), ((lse0 - 3) + lse1) / 2, 1e-6);
    REQUIRE(cnn_backward(loss, NULL, 0) == CNN_OK);
    cnn_tensor *g = cnn_grad(x);
    REQUIRE(g);
    /* (softmax - onehot) / N */
    CHECK_NEAR(at(g, 2), (exp(3.0 - lse0) - 1) / 2, 1e-6);
    CHECK_NEAR(at(g, 3), (1.0 / 3 - 1) / 2, 1e-6);
    CHECK_NEAR(at(g, 4), (1.0 / 3) / 2, 1e-6);
    cnn_release(g);
    cnn_release(loss);
    cnn_release(t);
    cnn_release(x);
}

TEST(cross_entropy_huge_logits_stay_finite) {
    int64_t shape[2] = {1, 3}, tshape[1] = {1};
    float data[3] = {1e30f, -1e30f, 0}, tdata[1] = {1};
    cnn_tensor *x = tensor_of(2, shape, data), *t = tensor_of(1, tshape, tdata);
    cnn_tensor *loss = cnn_cross_entropy(x, t, NULL);
    REQUIRE(loss);
    CHECK(isfinite(cnn_item(loss)));
    CHECK_NEAR(cnn_item(loss), 2e30, 1e24);
    cnn_release(loss);
    cnn_release(t);
    cnn_release(x);
}

TEST(cross_entropy_errors_name_value_and_classes) {
    int64_t shape[2] = {4, 10}, tshape[1] = {4}, bad_shape[1] = {3};
    float tdata[4] = {1, 10, 2, 3}, frac[4] = {1, 2.5f, 2, 3};
    cnn_tensor *x = cnn_zeros(2, shape);
    cnn_tensor *t = tensor_of(1, tshape, tdata), *tf = tensor_of(1, tshape, frac);
    cnn_tensor *tb = cnn_zeros(1, bad_shape);
    CHECK(cnn_cross_entropy(x, t, NULL) == NULL);
    CHECK(error_mentions("cross_entropy: target 10", "10 classes"));
    CHECK(cnn_nll_loss(x, tf, NULL) == NULL);
    CHECK(error_mentions("nll_loss: target 2.5", "10 classes"));
    CHECK(cnn_cross_entropy(x, tb, NULL) == NULL);
    CHECK(error_mentions("cross_entropy: targets of shape 3", "4x10"));
    cnn_class_loss_options o = cnn_class_loss_defaults();
    int64_t wshape[1] = {9};
    o.class_weight = cnn_ones(1, wshape);
    CHECK(cnn_cross_entropy(x, tf, &o) == NULL);
    CHECK(error_mentions("cross_entropy: class weight has shape 9", "10 classes"));
    cnn_release(o.class_weight);
    cnn_release(tb);
    cnn_release(tf);
    cnn_release(t);
    cnn_release(x);
}

TEST(regression_losses_hand_computed) {
    int64_t shape[1] = {3};
    float a[3] = {1, 2, 3}, b[3] = {2, 2, 5};
    cnn_tensor *x = tensor_of(1, shape, a), *t = tensor_of(1, shape, b);
    cnn_tensor *mse = cnn_mse_loss(x, t, CNN_REDUCE_MEAN), *l1 = cnn_l1_loss(x, t, CNN_REDUCE_SUM);
    REQUIRE(mse && l1);
    CHECK_NEAR(cnn_item(mse), 5.0 / 3.0, 1e-6);
    CHECK_NEAR(cnn_item(l1), 3.0, 1e-6);
    int64_t other[1] = {4};
    cnn_tensor *u = cnn_zeros(1, other);
    CHECK(cnn_mse_loss(x, u, CNN_REDUCE_MEAN) == NULL);
    CHECK(error_mentions("mse_loss: input 3 and target 4", NULL));
    cnn_release(u);
    cnn_release(l1);
    cnn_release(mse);
    cnn_release(t);
    cnn_release(x);
}

TEST(binary_cross_entropy_is_stable) {
    int64_t shape[1] = {2};
    float logits[2] = {1000, -1000}, targets[2] = {0, 1}, probs[2] = {1, 0};
    cnn_tensor *x = tensor_of(1, shape, logits), *t = tensor_of(1, shape, targets);
    cnn_tensor *p = tensor_of(1, shape, probs);
    cnn_tensor *l = cnn_bce_with_logits(x, t, NULL, NULL, CNN_REDUCE_MEAN);
    cnn_tensor *b = cnn_bce_loss(p, t, NULL, CNN_REDUCE_MEAN);
    REQUIRE(l && b);
    CHECK_NEAR(cnn_item(l), 1000.0, 1e-3);
    CHECK_NEAR(cnn_item(b), 100.0, 1e-4); /* log clamped at -100 */
    CHECK(cnn_bce_loss(x, t, NULL, CNN_REDUCE_MEAN) == NULL);
    CHECK(error_mentions("bce_loss: input value 1000 is not a probability in [0, 1]", "(input 2)"));
    cnn_release(b);
    cnn_release(l);
    cnn_release(p);
    cnn_release(t);
    cnn_release(x);
}

TEST(interrupt_stops_the_long_loops) {
    int64_t shape[2] = {64, 1000}, tshape[1] = {64};
    cnn_tensor *x = cnn_randn(2, shape), *t = cnn_zeros(1, tshape);
    cnn_interrupt();
    CHECK(cnn_softmax(x, 1) == NULL);
    CHECK(cnn_last_status() == CNN_ERR_INTERRUPTED);
    CHECK(cnn_cross_entropy(x, t, NULL) == NULL);
    CHECK(cnn_last_status() == CNN_ERR_INTERRUPTED);
    CHECK(cnn_mse_loss(x, x, CNN_REDUCE_MEAN) == NULL);
    CHECK(cnn_last_status() == CNN_ERR_INTERRUPTED);
    CHECK(cnn_batch_norm(x, NULL, NULL, NULL, NULL, 1, 0.1f, 1e-5f) == NULL);
    CHECK(cnn_last_status() == CNN_ERR_INTERRUPTED);
    cnn_clear_interrupt();
    cnn_tensor *y = cnn_softmax(x, 1);
    CHECK(y != NULL);
    cnn_release(y);
    cnn_release(t);
    cnn_release(x);
}

TEST(batch_norm_variance_is_accurate_for_a_large_mean) {
    /* 10001..10004 and 1e6 + 0.5*k: a naive E[x^2] - E[x]^2 in float would lose the spread */
    int64_t shape[2] = {4, 2}, cshape[1] = {2};
    float data[8] = {10001, 1e6f, 10002, 1e6f + 0.5f, 10003, 1e6f + 1.0f, 10004, 1e6f + 1.5f};
    cnn_tensor *x = tensor_of(2, shape, data);
    cnn_tensor *rm = cnn_zeros(1, cshape), *rv = cnn_zeros(1, cshape);
    cnn_tensor *y = cnn_batch_norm(x, rm, rv, NULL, NULL, 1, 1.0f, 0.0f);
    REQUIRE(y);
    CHECK_NEAR(at(rv, 0), 5.0 / 3.0, 1e-5);
    CHECK_NEAR(at(rv, 1), 0.25 * 5.0 / 3.0, 1e-5);
    CHECK_NEAR(at(rm, 0), 10002.5, 1e-3);
    CHECK_NEAR(at(y, 0), -1.5 / sqrt(1.25), 1e-4);
    CHECK_NEAR(at(y, 7), 1.5 / sqrt(1.25), 1e-4);
    cnn_release(y);
    cnn_release(rv);
    cnn_release(rm);
    cnn_release(x);
}
