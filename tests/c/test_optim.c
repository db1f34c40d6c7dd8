/* The fused optimizer steps and gradient clipping on one-step examples computed by hand, and their
 * refusals. Every example uses the parameter p = (1, -2) with gradient g = (0.5, 1) unless it says
 * otherwise. */
#include <string.h>

#include "cnn.h"
#include "harness.h"

static cnn_tensor *vector2(float a, float b) {
    int64_t shape[1] = {2};
    float data[2] = {a, b};
    return cnn_from_data(1, shape, data);
}

static cnn_tensor *zeros2(void) {
    int64_t shape[1] = {2};
    return cnn_zeros(1, shape);
}

/* The parameter (1, -2) with the gradient (0.5, 1). */
static cnn_tensor *example_param(void) {
    cnn_tensor *p = vector2(1, -2);
    cnn_tensor *g = vector2(0.5f, 1);
    cnn_set_requires_grad(p, 1);
    cnn_set_grad(p, g);
    cnn_release(g);
    return p;
}

#define CHECK_VEC2(t, a, b, tol)                     \
    do {                                             \
        CHECK_NEAR(cnn_data(t)[0], (a), (tol));      \
        CHECK_NEAR(cnn_data(t)[1], (b), (tol));      \
    } while (0)

static int error_mentions(const char *text) { return strstr(cnn_last_error(), text) != NULL; }

/* ---- SGD ------------------------------------------------------------------------------------- */

TEST(optim_sgd_plain_step) {
    cnn_tensor *p = example_param();
    cnn_sgd_options o = {.lr = 0.1f};
    REQUIRE(cnn_sgd_step(1, &p, NULL, &o, 1) == CNN_OK);
    CHECK_VEC2(p, 0.95, -2.1, 1e-6);
    cnn_release(p);
}

TEST(optim_sgd_maximize_ascends) {
    cnn_tensor *p = example_param();
    cnn_sgd_options o = {.lr = 0.1f, .maximize = 1};
    REQUIRE(cnn_sgd_step(1, &p, NULL, &o, 1) == CNN_OK);
    CHECK_VEC2(p, 1.05, -1.9, 1e-6);
    cnn_release(p);
}

TEST(optim_sgd_momentum_buffer_starts_as_gradient) {
    // weight decay 0.1: g' = (0.6, 0.8); first step: b = g', p = (0.94, -2.08).
    // second step: g' = (0.594, 0.792); b = 0.9 b + 0.5 g' = (0.837, 1.116); p = (0.8563, -2.1916).
    cnn_tensor *p = example_param(), *buf = zeros2();
    cnn_sgd_options o = {.lr = 0.1f, .momentum = 0.9f, .dampening = 0.5f, .weight_decay = 0.1f};
    REQUIRE(cnn_sgd_step(1, &p, &buf, &o, 1) == CNN_OK);
    CHECK_VEC2(buf, 0.6, 0.8, 1e-6);
    CHECK_VEC2(p, 0.94, -2.08, 1e-6);
    REQUIRE(cnn_sgd_step(1, &p, &buf, &o, 0) == CNN_OK);
    CHECK_VEC2(buf, 0.837, 1.116, 1e-6);
    CHECK_VEC2(p, 0.8563, -2.1916, 1e-6);
    cnn_release(p);
    cnn_release(buf);
}

TEST(optim_sgd_nesterov) {
    // b = g; the step uses g + 0.9 b = (0.95, 1.9).
    cnn_tensor *p = example_param(), *buf = zeros2();
    cnn_sgd_options o = {.lr = 0.1f, .momentum = 0.9f, .nesterov = 1};
    REQUIRE(cnn_sgd_step(1, &p, &buf, &o, 1) == CNN_OK);
    CHECK_VEC2(p, 0.905, -2.19, 1e-6);
    CHECK_VEC2(buf, 0.5, 1.0, 1e-6);
    cnn_release(p);
    cnn_release(buf);
}

TEST(optim_sgd_skips_parameters_without_gradient) {
    cnn_tensor *params[2] = {vector2(1, 2), example_param()};
    cnn_tensor *bufs[2] = {NULL, zeros2()}; // no state is needed for the skipped one
    cnn_sgd_options o = {.lr = 0.1f, .momentum = 0.5f};
    REQUIRE(cnn_sgd_step(2, params, bufs, &o, 1) == CNN_OK);
    CHECK_VEC2(params[0], 1, 2, 0);
    CHECK_VEC2(params[1], 0.95, -2.1, 1e-6);
    for (int i = 0; i < 2; i++) {
        cnn_release(params[i]);
        cnn_release(bufs[i]);
    }
}

TEST(optim_sgd_reads_strided_gradient) {
    // The gradient of a 2x2 parameter given as the transpose of a contiguous tensor.
    int64_t shape[2] = {2, 2};
    float pd[4] = {0, 0, 0, 0}, gd[4] = {1, 2, 3, 4};
    cnn_tensor *p = cnn_from_data(2, shape, pd), *g = cnn_from_data(2, shape, gd);
    cnn_tensor *gt = cnn_transpose(g, 0, 1);
    REQUIRE(gt && !cnn_is_contiguous(gt));
    cnn_set_requires_grad(p, 1);
    REQUIRE(cnn_set_grad(p, gt) == CNN_OK);
    cnn_sgd_options o = {.lr = 1};
    REQUIRE(cnn_sgd_step(1, &p, NULL, &o, 1) == CNN_OK);
    float *d = cnn_data(p);
    CHECK_NEAR(d[0], -1, 0);
    CHECK_NEAR(d[1], -3, 0);
    CHECK_NEAR(d[2], -2, 0);
    CHECK_NEAR(d[3], -4, 0);
    cnn_release(gt);
    cnn_release(g);
    cnn_release(p);
}

TEST(optim_sgd_refuses_bad_options) {
    cnn_tensor *p = example_param(), *buf = zeros2();
    cnn_sgd_options o = {.lr = -0.1f};
    CHECK(cnn_sgd_step(1, &p, NULL, &o, 1) == CNN_ERR_ARGUMENT);
    CHECK(error_mentions("sgd: lr must be >= 0"));
    o = (cnn_sgd_options){.lr = 0.1f, .momentum = 0.9f, .dampening = 0.1f, .nesterov = 1};
    CHECK(cnn_sgd_step(1, &p, &buf, &o, 1) == CNN_ERR_ARGUMENT);
    CHECK(error_mentions("nesterov"));
    o = (cnn_sgd_options){.lr = 0.1f, .momentum = 0.9f};
    CHECK(cnn_sgd_step(1, &p, NULL, &o, 1) == CNN_ERR_ARGUMENT);
    CHECK(error_mentions("momentum_buffer"));
    CHECK(cnn_sgd_step(1, &p, NULL, NULL, 1) == CNN_ERR_ARGUMENT);
    CHECK(cnn_sgd_step(-1, &p, NULL, &o, 1) == CNN_ERR_ARGUMENT);
    CHECK_VEC2(p, 1, -2, 0); // untouched by every refused call
    cnn_release(p);
    cnn_release(buf);
}

TEST(optim_state_shape_mismatch_names_parameter_and_shapes) {
    cnn_tensor *params[2] = {example_param(), example_param()};
    int64_t shape[1] = {3};
    cnn_tensor *bufs[2] = {zeros2(), cnn_zeros(1, shape)};
    cnn_sgd_options o = {.lr = 0.1f, .momentum = 0.9f};
    CHECK(cnn_sgd_step(2, params, bufs, &o, 1) == CNN_ERR_SHAPE);
    CHECK(error_mentions("momentum_buffer of parameter 1 has shape 3 but the parameter has shape 2"));
    CHECK_VEC2(params[0], 1, -2, 0); // validation precedes every update
    for (int i = 0; i < 2; i++) {
        cnn_release(params[i]);
        cnn_release(bufs[i]);
    }
}

TEST(optim_refuses_non_contiguous_parameter) {
    int64_t shape[2] = {2, 3};
    cnn_tensor *base = cnn_zeros(2, shape);
    cnn_tensor *view = cnn_transpose(base, 0, 1);
    cnn_sgd_options o = {.lr = 0.1f};
    CHECK(cnn_sgd_step(1, &view, NULL, &o, 1) == CNN_ERR_ARGUMENT);
    CHECK(error_mentions("parameter 0 (shape 3x2) is not contiguous"));
    cnn_release(view);
    cnn_release(base);
}

/* ---- Adam ------------------------------------------------------------------------------------ */

static cnn_adam_options adam_defaults(float lr) {
    return (cnn_adam_options){.lr = lr, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
}

TEST(optim_adam_first_step_moves_by_lr) {
    // m = 0.1 g, v = 0.001 g^2: after bias correction the step is lr * sign(g).
    cnn_tensor *p = example_param(), *m = zeros2(), *v = zeros2();
    cnn_adam_options o = adam_defaults(0.1f);
    REQUIRE(cnn_adam_step(1, &p, &m, &v, NULL, 1, &o) == CNN_OK);
    CHECK_VEC2(p, 0.9, -2.1, 1e-6);
    CHECK_VEC2(m, 0.05, 0.1, 1e-7);
    // 1 - beta2 is computed from the float 0.999f = 0.99900001..., about 1.3e-5 relative from 0.001.
    CHECK_VEC2(v, 0.00025, 0.001, 2e-8);
    cnn_release(p);
    cnn_release(m);
    cnn_release(v);
}

TEST(optim_adam_l2_versus_decoupled_weight_decay) {
    // Adam, weight decay 0.5: g' = g + 0.5 p = (1, 0); the second coordinate does not move.
    cnn_tensor *p = example_param(), *m = zeros2(), *v = zeros2();
    cnn_adam_options o = adam_defaults(0.1f);
    o.weight_decay = 0.5f;
    REQUIRE(cnn_adam_step(1, &p, &m, &v, NULL, 1, &o) == CNN_OK);
    CHECK_VEC2(p, 0.9, -2.0, 1e-6);
    cnn_release(p);
    cnn_release(m);
    cnn_release(v);
    // AdamW: p = p * (1 - 0.1 * 0.5) = (0.95, -1.9), then the usual lr * sign(g).
    p = example_param(), m = zeros2(), v = zeros2();
    o.decoupled_weight_decay = 1;
    REQUIRE(cnn_adam_step(1, &p, &m, &v, NULL, 1, &o) == CNN_OK);
    CHECK_VEC2(p, 0.85, -2.0, 1e-6);
    cnn_release(p);
    cnn_release(m);
    cnn_release(v);
}

TEST(optim_adam_amsgrad_uses_running_maximum) {
    // With max_exp_avg_sq already (1, 1), the denominator is 1 / sqrt(0.001) + eps.
    cnn_tensor *p = example_param(), *m = zeros2(), *v = zeros2(), *vmax = vector2(1, 1);
    cnn_adam_options o = adam_defaults(0.1f);
    o.amsgrad = 1;
    REQUIRE(cnn_adam_step(1, &p, &m, &v, &vmax, 1, &o) == CNN_OK);
    double denom = 1 / sqrt(0.001);
    CHECK_VEC2(p, 1 - 0.05 / denom, -2 - 0.1 / denom, 1e-6);
    CHECK_VEC2(vmax, 1, 1, 0);
    CHECK(cnn_adam_step(1, &p, &m, &v, NULL, 2, &o) == CNN_ERR_ARGUMENT);
    CHECK(error_mentions("max_exp_avg_sq"));
    cnn_release(p);
    cnn_release(m);
    cnn_release(v);
    cnn_release(vmax);
}

TEST(optim_adam_bias_correction_uses_step) {
    // At step 2 with m = 0.1 g and v = 0.001 g^2 already stored: m = 0.19 g, v = 0.001999 g^2,
    // corrections 1 - 0.81 = 0.19 and 1 - 0.998001 = 0.001999, so the step is again lr * sign(g).
    cnn_tensor *p = example_param(), *m = vector2(0.05f, 0.1f), *v = vector2(0.00025f, 0.001f);
    cnn_adam_options o = adam_defaults(0.1f);
    REQUIRE(cnn_adam_step(1, &p, &m, &v, NULL, 2, &o) == CNN_OK);
    CHECK_VEC2(p, 0.9, -2.1, 1e-5);
    CHECK(cnn_adam_step(1, &p, &m, &v, NULL, 0, &o) == CNN_ERR_ARGUMENT);
    CHECK(error_mentions("step must be >= 1"));
    cnn_release(p);
    cnn_release(m);
    cnn_release(v);
}

TEST(optim_adam_refuses_bad_betas) {
    cnn_tensor *p = example_param(), *m = zeros2(), *v = zeros2();
    cnn_adam_options o = adam_defaults(0.1f);
    o.beta1 = 1.0f;
    CHECK(cnn_adam_step(1, &p, &m, &v, NULL, 1, &o) == CNN_ERR_ARGUMENT);
    CHECK(error_mentions("adam: betas must be in [0, 1)"));
    o = adam_defaults(0.1f);
    o.eps = -1;
    CHECK(cnn_adam_step(1, &p, &m, &v, NULL, 1, &o) == CNN_ERR_ARGUMENT);
    CHECK(error_mentions("eps"));
    CHECK_VEC2(p, 1, -2, 0);
    cnn_release(p);
    cnn_release(m);
    cnn_release(v);
}

/* ---- RMSprop --------------------------------------------------------------------------------- */

static cnn_rmsprop_options rmsprop_defaults(void) {
    return (cnn_rmsprop_options){.lr = 0.01f, .alpha = 0.99f, .eps = 1e-8f};
}

TEST(optim_rmsprop_plain_and_momentum) {
    // s = 0.01 g^2, so g / sqrt(s) = 10 for both coordinates; with momentum the buffer holds it.
    cnn_tensor *p = example_param(), *s = zeros2(), *b = zeros2();
    cnn_rmsprop_options o = rmsprop_defaults();
    REQUIRE(cnn_rmsprop_step(1, &p, &s, NULL, NULL, &o) == CNN_OK);
    CHECK_VEC2(p, 0.9, -2.1, 1e-6);
    CHECK_VEC2(s, 0.0025, 0.01, 1e-8);
    cnn_release(p);
    cnn_release(s);
    p = example_param(), s = zeros2();
    o.momentum = 0.9f;
    REQUIRE(cnn_rmsprop_step(1, &p, &s, &b, NULL, &o) == CNN_OK);
    CHECK_VEC2(b, 10, 10, 1e-4);
    CHECK_VEC2(p, 0.9, -2.1, 1e-6);
    cnn_release(p);
    cnn_release(s);
    cnn_release(b);
}

TEST(optim_rmsprop_centered) {
    // a = 0.01 g; the denominator is sqrt(0.01 g^2 - 0.0001 g^2) = |g| sqrt(0.0099).
    cnn_tensor *p = example_param(), *s = zeros2(), *a = zeros2();
    cnn_rmsprop_options o = rmsprop_defaults();
    o.centered = 1;
    REQUIRE(cnn_rmsprop_step(1, &p, &s, NULL, &a, &o) == CNN_OK);
    double move = 0.01 / sqrt(0.0099);
    CHECK_VEC2(p, 1 - move, -2 - move, 1e-6);
    CHECK_VEC2(a, 0.005, 0.01, 1e-8);
    CHECK(cnn_rmsprop_step(1, &p, &s, NULL, NULL, &o) == CNN_ERR_ARGUMENT);
    CHECK(error_mentions("grad_avg"));
    o.alpha = -1;
    CHECK(cnn_rmsprop_step(1, &p, &s, NULL, &a, &o) == CNN_ERR_ARGUMENT);
    CHECK(error_mentions("rmsprop: alpha must be >= 0"));
    cnn_release(p);
    cnn_release(s);
    cnn_release(a);
}

/* ---- clip_grad_norm -------------------------------------------------------------------------- */

/* Gradients (3, 4) and (12), whose joint 2-norm is 13, plus a parameter without gradient. */
static void clip_example(cnn_tensor *params[3]) {
    int64_t one[1] = {1};
    float twelve = 12;
    params[0] = vector2(0, 0);
    params[1] = cnn_from_data(1, one, &twelve); // reused as its own gradient's values
    params[2] = vector2(5, 5);
    cnn_tensor *g0 = vector2(3, 4), *g1 = cnn_from_data(1, one, &twelve);
    cnn_set_grad(params[0], g0);
    cnn_set_grad(params[1], g1);
    cnn_release(g0);
    cnn_release(g1);
}

static float grad_value(cnn_tensor *p, int i) {
    cnn_tensor *g = cnn_grad(p);
    float v = cnn_data(g)[i];
    cnn_release(g);
    return v;
}

TEST(optim_clip_grad_norm_scales_when_above) {
    cnn_tensor *params[3];
    clip_example(params);
    double total = cnn_clip_grad_norm(3, params, 6.5, 2, 0);
    CHECK_NEAR(total, 13, 1e-9);
    CHECK_NEAR(grad_value(params[0], 0), 1.5, 1e-6);
    CHECK_NEAR(grad_value(params[0], 1), 2.0, 1e-6);
    CHECK_NEAR(grad_value(params[1], 0), 6.0, 1e-6);
    CHECK(cnn_grad(params[2]) == NULL);
    for (int i = 0; i < 3; i++) cnn_release(params[i]);
}

TEST(optim_clip_grad_norm_other_norms_and_no_clip) {
    cnn_tensor *params[3];
    clip_example(params);
    CHECK_NEAR(cnn_clip_grad_norm(3, params, 100, INFINITY, 0), 12, 0);
    CHECK_NEAR(cnn_clip_grad_norm(3, params, 100, 1, 0), 19, 1e-9);
    CHECK_NEAR(cnn_clip_grad_norm(3, params, 100, 3, 0), cbrt(27 + 64 + 1728), 1e-9);
    CHECK_NEAR(grad_value(params[1], 0), 12, 0); // never clipped: max_norm was above every norm
    CHECK_NEAR(cnn_clip_grad_norm(3, params, 1.2, INFINITY, 0), 12, 0);
    CHECK_NEAR(grad_value(params[1], 0), 1.2, 1e-6);
    CHECK_NEAR(cnn_clip_grad_norm(0, NULL, 1, 2, 0), 0, 0);
    for (int i = 0; i < 3; i++) cnn_release(params[i]);
}

TEST(optim_clip_grad_norm_errors) {
    cnn_tensor *params[3];
    clip_example(params);
    CHECK(isnan(cnn_clip_grad_norm(3, params, 1, 0, 0)));
    CHECK(error_mentions("clip_grad_norm: norm_type must be > 0 or inf"));
    CHECK(isnan(cnn_clip_grad_norm(3, params, -1, 2, 0)));
    CHECK(error_mentions("max_norm must be >= 0"));
    cnn_tensor *bad = vector2(INFINITY, 1);
    cnn_set_grad(params[0], bad);
    cnn_clear_error();
    CHECK(isnan(cnn_clip_grad_norm(3, params, 1, 2, 1)));
    CHECK(cnn_last_status() == CNN_ERR_NUMERIC);
    CHECK(error_mentions("non") || error_mentions("inf"));
    CHECK_NEAR(grad_value(params[1], 0), 12, 0); // refused: nothing scaled
    cnn_clear_error();
    CHECK(isinf(cnn_clip_grad_norm(3, params, 1, 2, 0))); // allowed: the norm is returned
    cnn_release(bad);
    for (int i = 0; i < 3; i++) cnn_release(params[i]);
}
