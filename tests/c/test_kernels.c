/* test_kernels.c - the fast paths of the kernels against textbook loops: the register-blocked
 * product (gemm_kernel), Winograd F(4x4, 3x3) convolutions (forward and input gradient, through
 * cnn_conv2d and cnn_conv_transpose2d), and the shapes each convolution path is chosen for. The
 * references accumulate in double and share no code with what they check. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "conv_fold.h"
#include "conv_rows.h"
#include "gemm_kernel.h"
#include "harness.h"

/* ---- scaffolding -------------------------------------------------------------------------------- */

/* ---- the register block ------------------------------------------------------------------------- */

TEST(gemm_kernel_matches_loops_for_partial_blocks_and_accumulation) {
    enum { MR = CNN_GEMM_MR, NR = CNN_GEMM_NR, KB = CNN_GEMM_KB, KBLOCKS = 3, K = KBLOCKS * KB, LDC = NR + 5 };
    float *a = malloc(sizeof(float) * MR * K), *b = malloc(sizeof(float) * K * NR);
    float *c = malloc(sizeof(float) * MR * LDC);
    REQUIRE(a && b && c);
    srand(3);
    for (int i = 0; i < MR * K; i++) a[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < K * NR; i++) b[i] = (float)rand() / RAND_MAX - 0.5f;
    const int shapes[][2] = {{MR, NR}, {3, NR}, {MR, 17}, {1, 1}, {5, 9}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
        for (int accumulate = 0; accumulate < 2; accumulate++) {
            const int rows = shapes[s][0], cols = shapes[s][1];
            for (int i = 0; i < MR * LDC; i++) c[i] = 7.0f;
            cnn_gemm_kernel(KBLOCKS, a, b, c, LDC, rows, cols, accumulate);
            for (int r = 0; r < MR; r++)
                for (int j = 0; j < LDC; j++) {
                    if (r >= rows || j >= cols) { // outside the block: untouched
                        CHECK(c[r * LDC + j] == 7.0f);
                        continue;
                    }
                    double ref = accumulate ? 7.0 : 0.0;
                    for (int k = 0; k < K; k++) // a is k-blocked: (K/16, MR, 16)
                        ref += (double)a[(k / KB) * MR * KB + r * KB + k % KB] * b[k * NR + j];
                    CHECK_NEAR(c[r * LDC + j], ref, 1e-5);
                }
        }
    free(a), free(b), free(c);
}

/* The gathered blocks with every row count (blocks of 4, 6 or 8 rows of multiply-adds run behind
 * them), partial column counts, b rows by stride and by offsets, and accumulation. */
TEST(gather_kernels_match_loops_for_every_row_count) {
    enum { MR = CNN_GEMM_MR, NR = CNN_GEMM_NR, STEPS = 13, LDA = 40, LDB = NR + 3 };
    float *a = malloc(sizeof(float) * MR * LDA), *b = malloc(sizeof(float) * STEPS * LDB * 2);
    float *c = malloc(sizeof(float) * MR * NR);
    REQUIRE(a && b && c);
    srand(5);
    for (int i = 0; i < MR * LDA; i++) a[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < STEPS * LDB * 2; i++) b[i] = (float)rand() / RAND_MAX - 0.5f;
    int64_t a_steps[STEPS], b_steps[STEPS];
    for (int k = 0; k < STEPS; k++) a_steps[k] = (k * 7) % LDA / 2, b_steps[k] = ((k * 5) % STEPS) * 2 * LDB + 1;
    const int col_counts[] = {NR, 17, 5};
    for (int by_offsets = 0; by_offsets < 2; by_offsets++)
        for (int rows = 1; rows <= MR; rows++)
            for (size_t ci = 0; ci < sizeof col_counts / sizeof col_counts[0]; ci++)
                for (int accumulate = 0; accumulate < 2; accumulate++) {
                    const int cols = col_counts[ci];
                    const float *a_rows[MR];
                    float *c_rows[MR];
                    for (int r = 0; r < MR; r++) a_rows[r] = a + r * LDA, c_rows[r] = c + r * NR;
                    for (int i = 0; i < MR * NR; i++) c[i] = 3.0f;
                    if (by_offsets)
                        cnn_gemm_kernel_gather_rows(STEPS, a_rows, a_steps, b, b_steps, c_rows, rows, cols, accumulate);
                    else
                        cnn_gemm_kernel_gather(STEPS, a_rows, a_steps, b, LDB, c_rows, rows, cols, accumulate);
                    for (int r = 0; r < MR; r++)
                        for (int j = 0; j < NR; j++) {
                            if (r >= rows || j >= cols) { // outside the block: untouched
                                CHECK(c[r * NR + j] == 3.0f);
                                continue;
                            }
                            double ref = accumulate ? 3.0 : 0.0;
                            for (int k = 0; k < STEPS; k++)
                                ref += (double)a[r * LDA + a_steps[k]] * b[(by_offsets ? b_steps[k] : k * LDB) + j];
                            CHECK_NEAR(c[r * NR + j], ref, 1e-5);
                        }
                }
    free(a), free(b), free(c);
}

/* ---- convolutions against direct loops ------------------------------------------------------------ */

typedef struct conv_shape {
    int64_t N, C, H, W, O, k, stride, pad, groups;
    int with_bias;
    int64_t dilation; /* 0 means 1 */
} conv_shape;

/* y = conv2d(x, w) + b and the gradients of sum(y * gy) by the definition, in double. */
static void reference_conv(const conv_shape *s, int64_t oH, int64_t oW, const float *x, const float *w,
                           const float *b, const float *gy, double *y, double *gx, double *gw, double *gb) {
    const int64_t Cg = s->C / s->groups, Og = s->O / s->groups, d = s->dilation ? s->dilation : 1;
    for (int64_t n = 0; n < s->N; n++)
        for (int64_t o = 0; o < s->O; o++)
            for (int64_t oy = 0; oy < oH; oy++)
                for (int64_t ox = 0; ox < oW; ox++) {
                    const int64_t yi = ((n * s->O + o) * oH + oy) * oW + ox;
                    y[yi] = b ? b[o] : 0;
                    gb[o] += gy[yi];
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t i = 0; i < s->k; i++)
                            for (int64_t j = 0; j < s->k; j++) {
                                const int64_t iy = oy * s->stride - s->pad + i * d;
                                const int64_t ix = ox * s->stride - s->pad + j * d;
                                if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                                const int64_t xi = ((n * s->C + o / Og * Cg + c) * s->H + iy) * s->W + ix;
                                const int64_t wi = ((o * Cg + c) * s->k + i) * s->k + j;
                                y[yi] += (double)x[xi] * w[wi];
                                gx[xi] += (double)gy[yi] * w[wi];
                                gw[wi] += (double)gy[yi] * x[xi];
                            }
                }
}

/* tol bounds the forward and input-gradient errors (relative to max(1, |reference|)); the weight
 * gradient always comes from the im2col products and is held to 5e-4, as in test_conv.c. */
static void check_conv(const conv_shape *s, double tol) {
    const int64_t xs[4] = {s->N, s->C, s->H, s->W}, ws[4] = {s->O, s->C / s->groups, s->k, s->k};
    cnn_tensor *x = cnn_randn(4, xs), *w = cnn_randn(4, ws), *b = s->with_bias ? cnn_randn(1, &s->O) : NULL;
    REQUIRE(x && w && (b || !s->with_bias));
    cnn_set_requires_grad(x, 1), cnn_set_requires_grad(w, 1);
    if (b) cnn_set_requires_grad(b, 1);
    cnn_conv2d_options o = cnn_conv2d_defaults();
    o.stride[0] = o.stride[1] = (int32_t)s->stride;
    o.padding[0] = o.padding[1] = (int32_t)s->pad;
    o.groups = (int32_t)s->groups;
    o.dilation[0] = o.dilation[1] = (int32_t)(s->dilation ? s->dilation : 1);
    cnn_tensor *y = cnn_conv2d(x, w, b, &o);
    REQUIRE(y);
    const int64_t oH = cnn_size(y, 2), oW = cnn_size(y, 3);
    const int64_t ys[4] = {s->N, s->O, oH, oW};
    cnn_tensor *gy = cnn_randn(4, ys);
    REQUIRE(gy && cnn_backward(y, gy, 0) == CNN_OK);
    const int64_t ny = cnn_numel(y), nx = cnn_numel(x), nw = cnn_numel(w);
    float *xv = read_all(x), *wv = read_all(w), *bv = b ? read_all(b) : NULL, *yv = read_all(y), *gyv = read_all(gy);
    float *gxv = read_all(cnn_grad(x)), *gwv = read_all(cnn_grad(w)), *gbv = b ? read_all(cnn_grad(b)) : NULL;
    double *ry = calloc(ny, sizeof *ry), *rgx = calloc(nx, sizeof *rgx), *rgw = calloc(nw, sizeof *rgw);
    double *rgb = calloc(s->O, sizeof *rgb);
    REQUIRE(xv && wv && yv && gyv && gxv && gwv && ry && rgx && rgw && rgb);
    reference_conv(s, oH, oW, xv, wv, bv, gyv, ry, rgx, rgw, rgb);
    const double ey = max_rel_diff(yv, ry, ny), ex = max_rel_diff(gxv, rgx, nx), ew = max_rel_diff(gwv, rgw, nw);
    if (ey >= tol || ex >= tol || ew >= 5e-4)
        fprintf(stderr, "  conv N%lld C%lld %lldx%lld O%lld k%lld s%lld p%lld g%lld: errors y %.2g, gx %.2g, gw %.2g\n",
                (long long)s->N, (long long)s->C, (long long)s->H, (long long)s->W, (long long)s->O, (long long)s->k,
                (long long)s->stride, (long long)s->pad, (long long)s->groups, ey, ex, ew);
    CHECK(ey < tol);
    CHECK(ex < tol);
    CHECK(ew < 5e-4);
    if (b) CHECK(max_rel_diff(gbv, rgb, s->O) < 1e-4);
    free(xv), free(wv), free(bv), free(yv), free(gyv), free(gxv), free(gwv), free(gbv);
    free(ry), free(rgx), free(rgw), free(rgb);
    cnn_release(gy), cnn_release(y), cnn_release(x), cnn_release(w), cnn_release(b);
}

/* 3x3 stride-1 convolutions with 8+ channels take the Winograd path: channel counts that are not
 * multiples of the vector width, images that are not multiples of the 4x4 tiles, padding 0, 1 and
 * 2, blocks of tiles across images, and output channels split over threads when tiles are few.
 * F(4x4, 3x3) rounds more than the direct sum (see winograd.h): the worst errors seen on these
 * shapes are 2e-4 (outputs) and 4.5e-4 (input gradients, 96-channel sums); typical ones are 3e-6. */
TEST(winograd_convolutions_match_direct_loops) {
    const conv_shape shapes[] = {
        {.N = 2, .C = 16, .H = 8, .W = 8, .O = 32, .k = 3, .stride = 1, .pad = 1, .groups = 1, .with_bias = 1},
        {.N = 3, .C = 20, .H = 13, .W = 11, .O = 40, .k = 3, .stride = 1, .pad = 1, .groups = 1, .with_bias = 1},
        {.N = 2, .C = 9, .H = 10, .W = 7, .O = 8, .k = 3, .stride = 1, .pad = 0, .groups = 1},
        {.N = 1, .C = 12, .H = 6, .W = 9, .O = 17, .k = 3, .stride = 1, .pad = 2, .groups = 1, .with_bias = 1},
        {.N = 33, .C = 32, .H = 4, .W = 4, .O = 96, .k = 3, .stride = 1, .pad = 1, .groups = 1},
        {.N = 2, .C = 8, .H = 37, .W = 30, .O = 8, .k = 3, .stride = 1, .pad = 1, .groups = 1, .with_bias = 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_conv(&shapes[i], 2e-3);
}

/* conv_transpose2d's forward pass is conv2d's input gradient: with 3x3 kernels, stride 1 and 8+
 * channels it runs through the Winograd path too. */
TEST(conv_transpose2d_winograd_matches_direct_sum) {
    const int64_t N = 2, C = 16, H = 9, W = 7, O = 24;
    cnn_tensor *x = cnn_randn(4, (int64_t[]){N, C, H, W}), *w = cnn_randn(4, (int64_t[]){C, O, 3, 3});
    REQUIRE(x && w);
    cnn_conv2d_options o = cnn_conv2d_defaults();
    o.padding[0] = o.padding[1] = 1;
    cnn_tensor *y = cnn_conv_transpose2d(x, w, NULL, &o);
    REQUIRE(y && cnn_size(y, 2) == H && cnn_size(y, 3) == W);
    float *xv = read_all(x), *wv = read_all(w), *yv = read_all(y);
    double *ref = calloc(N * O * H * W, sizeof *ref);
    REQUIRE(xv && wv && yv && ref);
    // y[n][o][iy*1 - 1 + i][...] += x[n][c][iy][ix] w[c][o][i][j]
    for (int64_t n = 0; n < N; n++)
        for (int64_t c = 0; c < C; c++)
            for (int64_t iy = 0; iy < H; iy++)
                for (int64_t ix = 0; ix < W; ix++)
                    for (int64_t oc = 0; oc < O; oc++)
                        for (int64_t i = 0; i < 3; i++)
                            for (int64_t j = 0; j < 3; j++) {
                                const int64_t oy = iy - 1 + i, ox = ix - 1 + j;
                                if (oy < 0 || oy >= H || ox < 0 || ox >= W) continue;
                                ref[((n * O + oc) * H + oy) * W + ox] +=
                                    (double)xv[((n * C + c) * H + iy) * W + ix] * wv[((c * O + oc) * 3 + i) * 3 + j];
                            }
    CHECK(max_rel_diff(yv, ref, N * O * H * W) < 2e-3);
    free(xv), free(wv), free(yv), free(ref);
    cnn_release(y), cnn_release(x), cnn_release(w);
}

/* Ungrouped convolutions with 12+ output channels and sums of 32+ terms take the direct product:
 * tap by tap with 16+ input channels (strides, dilation, padding beyond the kernel's reach, maps of
 * 4x4, 2x2 and 1x1 where taps fall wholly in the padding), densely with fewer (a 7x7 stride-2 first
 * layer, LeNet's 6->16). Its weight gradient is used for every ungrouped convolution, and input
 * gradients of stride 1 are direct products with the flipped kernels. 16- and 32-wide register
 * blocks, partial ones, several chunks of images and one image alone are all covered. */
TEST(direct_convolutions_match_direct_loops) {
    setenv("CNN_CONV_ALGO", "direct", 1); // the 3x3 stride-1 shapes too, not Winograd
    const conv_shape shapes[] = {
        {.N = 3, .C = 16, .H = 9, .W = 7, .O = 20, .k = 3, .stride = 1, .pad = 1, .groups = 1, .with_bias = 1},
        {.N = 2, .C = 24, .H = 8, .W = 8, .O = 40, .k = 3, .stride = 2, .pad = 1, .groups = 1},
        {.N = 2, .C = 17, .H = 11, .W = 10, .O = 12, .k = 3, .stride = 1, .pad = 2, .groups = 1, .dilation = 2},
        {.N = 5, .C = 32, .H = 4, .W = 4, .O = 33, .k = 3, .stride = 1, .pad = 1, .groups = 1, .with_bias = 1},
        {.N = 4, .C = 32, .H = 2, .W = 2, .O = 16, .k = 3, .stride = 1, .pad = 1, .groups = 1},
        {.N = 6, .C = 48, .H = 1, .W = 1, .O = 32, .k = 3, .stride = 1, .pad = 1, .groups = 1, .with_bias = 1},
        {.N = 3, .C = 16, .H = 8, .W = 8, .O = 24, .k = 1, .stride = 2, .pad = 0, .groups = 1},
        {.N = 2, .C = 16, .H = 5, .W = 6, .O = 16, .k = 3, .stride = 1, .pad = 3, .groups = 1},
        {.N = 2, .C = 3, .H = 20, .W = 18, .O = 64, .k = 7, .stride = 2, .pad = 3, .groups = 1, .with_bias = 1},
        {.N = 3, .C = 6, .H = 14, .W = 14, .O = 16, .k = 5, .stride = 1, .pad = 0, .groups = 1, .with_bias = 1},
        {.N = 1, .C = 20, .H = 13, .W = 9, .O = 70, .k = 3, .stride = 1, .pad = 1, .groups = 1},
        {.N = 40, .C = 16, .H = 6, .W = 5, .O = 16, .k = 3, .stride = 1, .pad = 1, .groups = 1},
        // fewer than 12 outputs at stride 1: lanes along image rows (forward, on maps of 32+
        // positions; the last one's 3x2 map stays with the product over channels), and input
        // gradients with 6 to 11 channels the same way
        {.N = 3, .C = 1, .H = 12, .W = 11, .O = 6, .k = 5, .stride = 1, .pad = 2, .groups = 1, .with_bias = 1},
        {.N = 2, .C = 7, .H = 9, .W = 13, .O = 5, .k = 3, .stride = 1, .pad = 1, .groups = 1, .dilation = 2},
        {.N = 2, .C = 11, .H = 7, .W = 6, .O = 9, .k = 5, .stride = 1, .pad = 0, .groups = 1, .with_bias = 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_conv(&shapes[i], 1e-4);
    unsetenv("CNN_CONV_ALGO");
}

/* Input gradients of stride 1 with few input channels and 8+ output channels are a product
 * and a fold (conv_fold.h): unpadded (LeNet's 6->16 5x5, 4->8 3x3, sizes that leave partial blocks of
 * (channel, tap) rows and of positions, several chunks of images), and 3x3 with padding where
 * Winograd would otherwise take it. Weight gradients of stride 1 with at most 6 output channels on
 * rows of 8+ outputs run along image rows (conv_rows.h): 1, 3 and 6 output channels, taps not a
 * multiple of the block's 4, rows wider than 16, dilation, 16 input channels on 12-wide rows. */
TEST(fold_and_rows_paths_match_direct_loops) {
    const conv_shape shapes[] = {
        {.N = 5, .C = 6, .H = 14, .W = 14, .O = 16, .k = 5, .stride = 1, .pad = 0, .groups = 1, .with_bias = 1},
        {.N = 2, .C = 3, .H = 11, .W = 21, .O = 17, .k = 3, .stride = 1, .pad = 0, .groups = 1},
        {.N = 3, .C = 4, .H = 9, .W = 12, .O = 8, .k = 3, .stride = 1, .pad = 0, .groups = 1, .with_bias = 1},
        {.N = 3, .C = 1, .H = 28, .W = 28, .O = 6, .k = 5, .stride = 1, .pad = 2, .groups = 1, .with_bias = 1},
        {.N = 2, .C = 2, .H = 10, .W = 23, .O = 3, .k = 3, .stride = 1, .pad = 2, .groups = 1, .dilation = 2},
        {.N = 3, .C = 16, .H = 12, .W = 13, .O = 5, .k = 3, .stride = 1, .pad = 1, .groups = 1},
        {.N = 2, .C = 7, .H = 9, .W = 9, .O = 1, .k = 2, .stride = 1, .pad = 0, .groups = 1, .with_bias = 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_conv(&shapes[i], 1e-4);
    // 8+ channels both ways: the forward pass is Winograd's, held to its tolerance (see above)
    const conv_shape winograd_forward[] = {
        {.N = 40, .C = 11, .H = 6, .W = 7, .O = 24, .k = 3, .stride = 1, .pad = 0, .groups = 1},
        {.N = 2, .C = 8, .H = 9, .W = 10, .O = 32, .k = 3, .stride = 1, .pad = 1, .groups = 1, .with_bias = 1},
    };
    for (size_t i = 0; i < sizeof winograd_forward / sizeof winograd_forward[0]; i++)
        check_conv(&winograd_forward[i], 2e-3);
}

/* The two routines called directly, also on geometries the choice of algorithm leaves to others
 * (padding with dilation, a fold of an input wider than one vector register, odd sizes), and an
 * image large enough for the lanes-along-rows paths to take it in two bands of rows. */
TEST(fold_and_rows_routines_match_direct_loops) {
    if (!cnn_direct_available()) return; // both are AVX-512 paths (the fold's own portable loops aside)
    const conv_shape shapes[] = {
        {.N = 3, .C = 4, .H = 9, .W = 19, .O = 16, .k = 3, .stride = 1, .pad = 1, .groups = 1, .dilation = 2},
        {.N = 2, .C = 6, .H = 13, .W = 35, .O = 5, .k = 5, .stride = 1, .pad = 2, .groups = 1},
        {.N = 7, .C = 2, .H = 8, .W = 11, .O = 6, .k = 4, .stride = 1, .pad = 3, .groups = 1},
        {.N = 2, .C = 2, .H = 120, .W = 100, .O = 6, .k = 3, .stride = 1, .pad = 1, .groups = 1},
    };
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const conv_shape *s = &shapes[si];
        const int64_t d = s->dilation ? s->dilation : 1;
        const int64_t oH = s->H + 2 * s->pad - d * (s->k - 1), oW = s->W + 2 * s->pad - d * (s->k - 1);
        const int64_t nx = s->N * s->C * s->H * s->W, nw = s->O * s->C * s->k * s->k, ny = s->N * s->O * oH * oW;
        float *x = malloc(sizeof(float) * nx), *w = malloc(sizeof(float) * nw), *gy = malloc(sizeof(float) * ny);
        float *gx = malloc(sizeof(float) * nx), *gw = malloc(sizeof(float) * nw), *y = malloc(sizeof(float) * ny);
        double *ry = calloc(ny, sizeof *ry), *rgx = calloc(nx, sizeof *rgx), *rgw = calloc(nw, sizeof *rgw);
        double *rgb = calloc(s->O, sizeof *rgb);
        REQUIRE(x && w && gy && gx && gw && y && ry && rgx && rgw && rgb);
        srand(7 + (unsigned)si);
        for (int64_t i = 0; i < nx; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
        for (int64_t i = 0; i < nw; i++) w[i] = (float)rand() / RAND_MAX - 0.5f;
        for (int64_t i = 0; i < ny; i++) gy[i] = (float)rand() / RAND_MAX - 0.5f;
        reference_conv(s, oH, oW, x, w, NULL, gy, ry, rgx, rgw, rgb);
        const cnn_conv_plan plan = {.geo = {.channels = s->C, .height = s->H, .width = s->W, .kernel_h = s->k,
                                            .kernel_w = s->k, .stride_h = 1, .stride_w = 1, .pad_top = s->pad,
                                            .pad_left = s->pad, .dilation_h = d, .dilation_w = d, .out_h = oH,
                                            .out_w = oW},
                                    .batch = s->N, .groups = 1, .out_channels = s->O};
        CHECK(cnn_fold_input_grad(&plan, w, gy, gx, "fold") == CNN_OK);
        CHECK(max_rel_diff(gx, rgx, nx) < 1e-4);
        const cnn_direct_conv g = {.N = s->N, .C = s->C, .H = s->H, .W = s->W, .O = s->O, .out_h = oH, .out_w = oW,
                                   .kh = s->k, .kw = s->k, .sh = 1, .sw = 1, .dh = d, .dw = d, .pad_top = s->pad,
                                   .pad_left = s->pad, .weight = w, .w_o = s->C * s->k * s->k, .w_c = s->k * s->k,
                                   .w_i = s->k, .w_j = 1};
        CHECK(cnn_rows_weight_grad(&g, x, gy, gw, "rows") == CNN_OK);
        CHECK(max_rel_diff(gw, rgw, nw) < 5e-4);
        CHECK(cnn_rows_forward(&g, x, NULL, y, "rows") == CNN_OK);
        CHECK(max_rel_diff(y, ry, ny) < 1e-4);
        free(x), free(w), free(gy), free(gx), free(gw), free(y), free(ry), free(rgx), free(rgw), free(rgb);
    }
}

/* A pixel that a tap never reaches stays out of that tap's weight gradient: an infinite one must not
 * turn it into NaN (0 * inf) through padding or positions computed in bulk. With padding 2 and a 5x5
 * kernel, column W-1 is out of reach of taps j = 0, 1. */
TEST(rows_weight_grad_keeps_unreached_pixels_out_of_the_sums) {
    if (!cnn_direct_available()) return;
    enum { N = 2, C = 1, H = 9, W = 12, O = 6, K = 5, PAD = 2 };
    float x[N * C * H * W], gy[N * O * H * W], gw[O * C * K * K];
    srand(9);
    for (int i = 0; i < N * C * H * W; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
    for (int i = 0; i < N * O * H * W; i++) gy[i] = (float)rand() / RAND_MAX - 0.5f;
    x[4 * W + W - 1] = INFINITY;
    const cnn_direct_conv g = {.N = N, .C = C, .H = H, .W = W, .O = O, .out_h = H, .out_w = W, .kh = K, .kw = K,
                               .sh = 1, .sw = 1, .dh = 1, .dw = 1, .pad_top = PAD, .pad_left = PAD};
    REQUIRE(cnn_rows_weight_grad_suits(&g));
    REQUIRE(cnn_rows_weight_grad(&g, x, gy, gw, "rows") == CNN_OK);
    for (int o = 0; o < O; o++)
        for (int i = 0; i < K; i++)
            for (int j = 0; j < 2; j++) {
                double ref = 0;
                for (int n = 0; n < N; n++)
                    for (int y = 0; y < H; y++)
                        for (int xo = 0; xo < W; xo++) {
                            const int iy = y - PAD + i, ix = xo - PAD + j;
                            if (iy >= 0 && iy < H && ix >= 0 && ix < W)
                                ref += (double)gy[((n * O + o) * H + y) * W + xo] * x[(n * H + iy) * W + ix];
                        }
                CHECK(isfinite(gw[(o * K + i) * K + j]));
                CHECK_NEAR(gw[(o * K + i) * K + j], ref, 1e-4 * (1 + fabs(ref)));
            }
}

/* Convolutions over a few positions with a weight of 1 MB or more read the kernels in place
 * (conv_inplace.h), forward and, with the kernels flipped, the input gradient: 1x1 outputs with
 * padding (the centre tap only), stride 2 (four taps), and 3x3 outputs of a 5x5 kernel without padding. Convolutions
 * with few output channels on maps too small for lanes along rows (conv_rows.h) take the product
 * over output channels instead. */
TEST(inplace_kernels_and_small_maps_match_direct_loops) {
    const conv_shape shapes[] = {
        {.N = 3, .C = 128, .H = 1, .W = 1, .O = 256, .k = 3, .stride = 1, .pad = 1, .groups = 1, .with_bias = 1},
        {.N = 5, .C = 128, .H = 2, .W = 2, .O = 260, .k = 3, .stride = 2, .pad = 1, .groups = 1},
        {.N = 2, .C = 64, .H = 7, .W = 7, .O = 260, .k = 5, .stride = 1, .pad = 0, .groups = 1, .with_bias = 1},
        {.N = 9, .C = 64, .H = 1, .W = 1, .O = 10, .k = 1, .stride = 1, .pad = 0, .groups = 1, .with_bias = 1},
        {.N = 4, .C = 24, .H = 4, .W = 5, .O = 7, .k = 3, .stride = 1, .pad = 1, .groups = 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_conv(&shapes[i], 1e-4);
}

/* The same shapes through im2col + sgemm, which the environment can force. */
TEST(im2col_path_forced_matches_direct_loops) {
    setenv("CNN_CONV_ALGO", "im2col", 1);
    const conv_shape shapes[] = {
        {.N = 2, .C = 16, .H = 8, .W = 8, .O = 32, .k = 3, .stride = 1, .pad = 1, .groups = 1, .with_bias = 1},
        {.N = 2, .C = 24, .H = 8, .W = 8, .O = 40, .k = 3, .stride = 2, .pad = 1, .groups = 1},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_conv(&shapes[i], 1e-4);
    unsetenv("CNN_CONV_ALGO");
}

/* ---- max pooling against the definition ---------------------------------------------------------- */

typedef struct pool_shape {
    int64_t N, C, H, W;
    int32_t k, stride, pad;
} pool_shape;

/* Max pooling by the definition: taps in row-major order, a larger value wins, ties keep the first,
 * a NaN wins over everything (the last NaN over earlier ones). The gradient goes to the winner. */
static void check_max_pool(const pool_shape *s, bool with_nan) {
    const int64_t shape[4] = {s->N, s->C, s->H, s->W};
    cnn_tensor *x = cnn_randn(4, shape);
    REQUIRE(x);
    float *xv = read_all(x);
    REQUIRE(xv);
    const int64_t n_in = cnn_numel(x);
    for (int64_t i = 0; i < n_in; i += 7) xv[i] = xv[(i * 13) % n_in]; // ties
    if (with_nan)
        for (int64_t i = 3; i < n_in; i += 41) xv[i] = NAN;
    cnn_release(x);
    x = cnn_from_data(4, shape, xv);
    cnn_set_requires_grad(x, 1);
    cnn_pool2d_options o = cnn_pool2d_defaults(s->k, s->k);
    o.stride[0] = o.stride[1] = s->stride;
    o.padding[0] = o.padding[1] = s->pad;
    cnn_tensor *y = cnn_max_pool2d(x, &o);
    REQUIRE(y);
    const int64_t oH = cnn_size(y, 2), oW = cnn_size(y, 3);
    cnn_tensor *gy = cnn_randn(4, (int64_t[]){s->N, s->C, oH, oW});
    REQUIRE(gy && cnn_backward(y, gy, 0) == CNN_OK);
    float *yv = read_all(y), *gyv = read_all(gy), *gxv = read_all(cnn_grad(x));
    double *gx = calloc(n_in, sizeof *gx);
    REQUIRE(yv && gyv && gxv && gx);
    int bad = 0;
    for (int64_t plane = 0; plane < s->N * s->C; plane++)
        for (int64_t oy = 0; oy < oH; oy++)
            for (int64_t ox = 0; ox < oW; ox++) {
                float best = -INFINITY;
                int64_t at = -1;
                for (int64_t i = 0; i < s->k; i++)
                    for (int64_t j = 0; j < s->k; j++) {
                        const int64_t iy = oy * s->stride - s->pad + i, ix = ox * s->stride - s->pad + j;
                        if (iy < 0 || iy >= s->H || ix < 0 || ix >= s->W) continue;
                        const int64_t idx = (plane * s->H + iy) * s->W + ix;
                        if (xv[idx] > best || isnan(xv[idx])) best = xv[idx], at = idx;
                    }
                const int64_t yi = (plane * oH + oy) * oW + ox;
                if (!(yv[yi] == best || (isnan(yv[yi]) && isnan(best)))) bad++;
                if (at >= 0) gx[at] += gyv[yi];
            }
    CHECK(bad == 0);
    CHECK(max_rel_diff(gxv, gx, n_in) < 1e-6);
    free(xv), free(yv), free(gyv), free(gxv), free(gx);
    cnn_release(gy), cnn_release(y), cnn_release(x);
}

/* The vector paths (2x2 stride 2; any window with column stride 1 or 2) and the scalar edges; the
 * gradient of 2x2 stride-2 windows that tile the plane is written pixel by pixel. */
TEST(max_pool_vector_paths_match_definition) {
    const pool_shape shapes[] = {
        {.N = 2, .C = 3, .H = 28, .W = 28, .k = 2, .stride = 2, .pad = 0},
        {.N = 1, .C = 2, .H = 6, .W = 70, .k = 2, .stride = 2, .pad = 0}, // gradient written once, 3 chunks
        {.N = 1, .C = 2, .H = 8, .W = 9, .k = 2, .stride = 2, .pad = 0},  // odd width: zeroed and scattered
        {.N = 1, .C = 2, .H = 37, .W = 41, .k = 2, .stride = 2, .pad = 1},
        {.N = 2, .C = 4, .H = 16, .W = 16, .k = 3, .stride = 2, .pad = 1},
        {.N = 1, .C = 3, .H = 45, .W = 39, .k = 3, .stride = 2, .pad = 1},
        {.N = 2, .C = 2, .H = 9, .W = 40, .k = 3, .stride = 1, .pad = 1},
        {.N = 1, .C = 2, .H = 11, .W = 35, .k = 5, .stride = 2, .pad = 2},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) {
        check_max_pool(&shapes[i], false);
        check_max_pool(&shapes[i], true);
    }
}

/* Depthwise convolutions (one channel per group) run as per-plane stencils: stride 1 and 2, padding
 * or none, 3x3 and 5x5 kernels, rows wider than one vector register; the input gradient of stride
 * 2 goes through im2col. */
TEST(depthwise_convolutions_match_direct_loops) {
    const conv_shape shapes[] = {
        {.N = 2, .C = 8, .H = 9, .W = 20, .O = 8, .k = 3, .stride = 1, .pad = 1, .groups = 8, .with_bias = 1},
        {.N = 3, .C = 5, .H = 12, .W = 11, .O = 5, .k = 3, .stride = 2, .pad = 1, .groups = 5},
        {.N = 2, .C = 4, .H = 7, .W = 35, .O = 4, .k = 5, .stride = 1, .pad = 2, .groups = 4, .with_bias = 1},
        {.N = 1, .C = 6, .H = 10, .W = 10, .O = 6, .k = 5, .stride = 2, .pad = 0, .groups = 6},
    };
    for (size_t i = 0; i < sizeof shapes / sizeof shapes[0]; i++) check_conv(&shapes[i], 1e-4);
}
