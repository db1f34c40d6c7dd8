/* test_conv.c - im2col/col2im, conv2d and conv_transpose2d against direct loops (forward and both
 * gradients, for strides, padding, dilation, groups and bias), pooling, padding and resampling
 * values, and the error messages of bad shapes. The direct loops accumulate in double and follow
 * the textbook definitions, so they share no code with the im2col + sgemm path they check. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "cnn.h"
#include "harness.h"
#include "im2col.h"

/* ---- scaffolding -------------------------------------------------------------------------------- */

static cnn_tensor *tensor4(int64_t a, int64_t b, int64_t c, int64_t d, const float *data) {
    const int64_t shape[4] = {a, b, c, d};
    return data ? cnn_from_data(4, shape, data) : cnn_randn(4, shape);
}

static cnn_tensor *vector_randn(int64_t n) { return cnn_randn(1, &n); }

static int error_contains(const char *needle) { return strstr(cnn_last_error(), needle) != NULL; }

/* ---- im2col / col2im -------------------------------------------------------------------------- */

static const cnn_conv_geometry kernel_2x2_on_3x3 = {.channels = 1, .height = 3, .width = 3, .kernel_h = 2,
                                                    .kernel_w = 2, .stride_h = 1, .stride_w = 1,
                                                    .dilation_h = 1, .dilation_w = 1, .out_h = 2, .out_w = 2};

TEST(im2col_known_2x2_kernel_on_3x3) {
    const float image[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const cnn_conv_geometry g = kernel_2x2_on_3x3;
    float col[16];
    cnn_im2col(image, &g, col, 4);
    const float expect[16] = {1, 2, 4, 5, 2, 3, 5, 6, 4, 5, 7, 8, 5, 6, 8, 9};
    for (int i = 0; i < 16; i++) CHECK(col[i] == expect[i]);
}

TEST(im2col_padding_and_stride) {
    const float image[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    cnn_conv_geometry g = {.channels = 1, .height = 3, .width = 3, .kernel_h = 3, .kernel_w = 3,
                           .stride_h = 2, .stride_w = 2, .pad_top = 1, .pad_left = 1,
                           .dilation_h = 1, .dilation_w = 1, .out_h = 2, .out_w = 2};
    float col[9 * 4];
    memset(col, 0x7f, sizeof col); // garbage that im2col must overwrite
    cnn_im2col(image, &g, col, 4);
    const float top_left[4] = {0, 0, 0, 5}, centre[4] = {1, 3, 7, 9}, bottom_right[4] = {5, 0, 0, 0};
    for (int i = 0; i < 4; i++) {
        CHECK(col[0 * 4 + i] == top_left[i]);
        CHECK(col[4 * 4 + i] == centre[i]);
        CHECK(col[8 * 4 + i] == bottom_right[i]);
    }
}

TEST(im2col_writes_at_the_row_stride_only) {
    const float image[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const cnn_conv_geometry g = kernel_2x2_on_3x3;
    float col[4 * 10];
    for (int i = 0; i < 40; i++) col[i] = -1;
    cnn_im2col(image, &g, col + 3, 10); // as the second image of a wide matrix
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < 10; i++)
            if (i < 3 || i >= 7) CHECK(col[r * 10 + i] == -1);
    CHECK(col[3] == 1 && col[13] == 2 && col[23] == 4 && col[36] == 9);
}

TEST(col2im_counts_overlaps) {
    const cnn_conv_geometry g = kernel_2x2_on_3x3;
    float col[16], image[9] = {0};
    for (int i = 0; i < 16; i++) col[i] = 1;
    cnn_col2im(col, &g, image, 4);
    const float expect[9] = {1, 2, 1, 2, 4, 2, 1, 2, 1};
    for (int i = 0; i < 9; i++) CHECK(image[i] == expect[i]);
}

/* col2im is the adjoint of im2col: <im2col(x), c> == <x, col2im(c)> for any x and c. */
TEST(col2im_is_the_adjoint_of_im2col) {
    const cnn_conv_geometry cases[] = {
        {.channels = 2, .height = 5, .width = 6, .kernel_h = 3, .kernel_w = 2, .stride_h = 1, .stride_w = 1,
         .pad_top = 1, .pad_left = 0, .dilation_h = 1, .dilation_w = 1, .out_h = 5, .out_w = 5},
        {.channels = 3, .height = 7, .width = 7, .kernel_h = 3, .kernel_w = 3, .stride_h = 2, .stride_w = 3,
         .pad_top = 2, .pad_left = 1, .dilation_h = 2, .dilation_w = 1, .out_h = 4, .out_w = 3},
        {.channels = 1, .height = 4, .width = 9, .kernel_h = 2, .kernel_w = 4, .stride_h = 3, .stride_w = 2,
         .pad_top = 0, .pad_left = 3, .dilation_h = 1, .dilation_w = 3, .out_h = 1, .out_w = 4},
        // stride 1 and output rows as wide as the input: the single-run path, wrapping at row edges
        {.channels = 2, .height = 5, .width = 4, .kernel_h = 3, .kernel_w = 3, .stride_h = 1, .stride_w = 1,
         .pad_top = 1, .pad_left = 1, .dilation_h = 1, .dilation_w = 1, .out_h = 5, .out_w = 4},
        {.channels = 1, .height = 6, .width = 5, .kernel_h = 4, .kernel_w = 2, .stride_h = 1, .stride_w = 1,
         .pad_top = 3, .pad_left = 1, .dilation_h = 2, .dilation_w = 2, .out_h = 3, .out_w = 5},
        {.channels = 1, .height = 2, .width = 3, .kernel_h = 5, .kernel_w = 7, .stride_h = 1, .stride_w = 1,
         .pad_top = 2, .pad_left = 3, .dilation_h = 1, .dilation_w = 1, .out_h = 2, .out_w = 3},
    };
    srand(7);
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        const cnn_conv_geometry *g = &cases[k];
        const int64_t n_image = g->channels * g->height * g->width;
        const int64_t n_col = cnn_geometry_col_rows(g) * g->out_h * g->out_w;
        float *x = malloc(n_image * sizeof *x), *back = calloc(n_image, sizeof *back);
        float *c = malloc(n_col * sizeof *c), *col = malloc(n_col * sizeof *col);
        REQUIRE(x && back && c && col);
        for (int64_t i = 0; i < n_image; i++) x[i] = (float)rand() / RAND_MAX - 0.5f;
        for (int64_t i = 0; i < n_col; i++) c[i] = (float)rand() / RAND_MAX - 0.5f;
        cnn_im2col(x, g, col, g->out_h * g->out_w);
        double lhs = 0, rhs = 0;
        for (int64_t i = 0; i < n_col; i++) lhs += (double)col[i] * c[i];
        cnn_col2im(c, g, back, g->out_h * g->out_w);
        for (int64_t i = 0; i < n_image; i++) rhs += (double)x[i] * back[i];
        CHECK_NEAR(lhs, rhs, 1e-4);
        free(x), free(back), free(c), free(col);
    }
}

/* ---- direct convolution ----------------------------------------------------------------------- */

typedef struct conv_case {
    int64_t N, C, H, W, O, kh, kw;
    int sh, sw, ph, pw, dh, dw, groups;
    int with_bias;
    int same;        /* padding "same" (stride 1) */
    int oph, opw;    /* output padding, transposed only */
} conv_case;

/* Calls visit(xi, wi, yi) for every product x[xi] * w[wi] that contributes to y[yi] in the
 * textbook definition of the convolution (pad_top/left given). */
typedef void (*tap_visitor)(int64_t xi, int64_t wi, int64_t yi, void *ctx);

static void for_each_product(const conv_case *k, int64_t pt, int64_t pl, int64_t oH, int64_t oW, tap_visitor visit,
                             void *ctx) {
    const int64_t Cg = k->C / k->groups, Og = k->O / k->groups;
    for (int64_t n = 0; n < k->N; n++)
        for (int64_t o = 0; o < k->O; o++)
            for (int64_t oy = 0; oy < oH; oy++)
                for (int64_t ox = 0; ox < oW; ox++)
                    for (int64_t c = 0; c < Cg; c++)
                        for (int64_t i = 0; i < k->kh; i++)
                            for (int64_t j = 0; j < k->kw; j++) {
                                const int64_t iy = oy * k->sh - pt + i * k->dh;
                                const int64_t ix = ox * k->sw - pl + j * k->dw;
                                if (iy < 0 || iy >= k->H || ix < 0 || ix >= k->W) continue;
                                const int64_t grp = o / Og;
                                visit(((n * k->C + grp * Cg + c) * k->H + iy) * k->W + ix,
                                      ((o * Cg + c) * k->kh + i) * k->kw + j, ((n * k->O + o) * oH + oy) * oW + ox,
                                      ctx);
                            }
}

typedef struct direct_values {
    const float *x, *w, *gy; /* inputs */
    double *y, *gx, *gw;     /* outputs (accumulated) */
} direct_values;

static void accumulate_output(int64_t xi, int64_t wi, int64_t yi, void *ctx) {
    direct_values *v = ctx;
    v->y[yi] += (double)v->x[xi] * v->w[wi];
}

static void accumulate_gradients(int64_t xi, int64_t wi, int64_t yi, void *ctx) {
    direct_values *v = ctx;
    v->gx[xi] += (double)v->gy[yi] * v->w[wi];
    v->gw[wi] += (double)v->gy[yi] * v->x[xi];
}

static void set_options(const conv_case *k, cnn_conv2d_options *o) {
    *o = cnn_conv2d_defaults();
    o->stride[0] = k->sh, o->stride[1] = k->sw;
    o->padding[0] = k->ph, o->padding[1] = k->pw;
    o->dilation[0] = k->dh, o->dilation[1] = k->dw;
    o->groups = k->groups;
    o->output_padding[0] = k->oph, o->output_padding[1] = k->opw;
    if (k->same) o->padding_mode = CNN_PAD_SAME;
}

/* Forward and both gradients of cnn_conv2d against the direct loops. */
static void check_conv2d_case(const conv_case *k) {
    cnn_tensor *x = tensor4(k->N, k->C, k->H, k->W, NULL);
    cnn_tensor *w = tensor4(k->O, k->C / k->groups, k->kh, k->kw, NULL);
    cnn_tensor *b = k->with_bias ? vector_randn(k->O) : NULL;
    REQUIRE(x && w && (b || !k->with_bias));
    cnn_set_requires_grad(x, 1);
    cnn_set_requires_grad(w, 1);
    if (b) cnn_set_requires_grad(b, 1);
    cnn_conv2d_options o;
    set_options(k, &o);
    int64_t pt = k->ph, pl = k->pw;
    if (k->same) pt = k->dh * (k->kh - 1) / 2, pl = k->dw * (k->kw - 1) / 2;
    cnn_tensor *y = cnn_conv2d(x, w, b, &o);
    if (!y) fprintf(stderr, "  %s\n", cnn_last_error());
    REQUIRE(y);
    const int64_t oH = cnn_size(y, 2), oW = cnn_size(y, 3);
    if (k->same) CHECK(oH == k->H && oW == k->W);
    else {
        CHECK(oH == (k->H + 2 * k->ph - k->dh * (k->kh - 1) - 1) / k->sh + 1);
        CHECK(oW == (k->W + 2 * k->pw - k->dw * (k->kw - 1) - 1) / k->sw + 1);
    }
    const int64_t ny = cnn_numel(y), nx = cnn_numel(x), nw = cnn_numel(w);
    float *xv = read_all(x), *wv = read_all(w), *bv = b ? read_all(b) : NULL, *yv = read_all(y);
    double *ref = malloc(ny * sizeof *ref);
    for (int64_t i = 0; i < ny; i++) ref[i] = bv ? bv[i / (oH * oW) % k->O] : 0;
    direct_values v = {.x = xv, .w = wv, .y = ref};
    for_each_product(k, pt, pl, oH, oW, accumulate_output, &v);
    CHECK(max_rel_diff(yv, ref, ny) < 1e-4);

    cnn_tensor *gy = cnn_randn(4, (int64_t[]){k->N, k->O, oH, oW});
    REQUIRE(cnn_backward(y, gy, 0) == CNN_OK);
    float *gyv = read_all(gy);
    double *gx = calloc(nx, sizeof *gx), *gw = calloc(nw, sizeof *gw), *gb = calloc(k->O, sizeof *gb);
    v = (direct_values){.x = xv, .w = wv, .gy = gyv, .gx = gx, .gw = gw};
    for_each_product(k, pt, pl, oH, oW, accumulate_gradients, &v);
    for (int64_t i = 0; i < ny; i++) gb[i / (oH * oW) % k->O] += gyv[i];
    cnn_tensor *gxt = cnn_grad(x), *gwt = cnn_grad(w), *gbt = b ? cnn_grad(b) : NULL;
    REQUIRE(gxt && gwt && (gbt || !b));
    float *gxv = read_all(gxt), *gwv = read_all(gwt), *gbv = gbt ? read_all(gbt) : NULL;
    CHECK(max_rel_diff(gxv, gx, nx) < 1e-4);
    // each weight gradient sums N*oH*oW float products (20000 in the largest case)
    CHECK(max_rel_diff(gwv, gw, nw) < 5e-4);
    if (b) CHECK(max_rel_diff(gbv, gb, k->O) < 1e-4);

    free(xv), free(wv), free(bv), free(yv), free(gyv), free(gxv), free(gwv), free(gbv);
    free(ref), free(gx), free(gw), free(gb);
    cnn_release(gxt), cnn_release(gwt), cnn_release(gbt);
    cnn_release(gy), cnn_release(y), cnn_release(x), cnn_release(w), cnn_release(b);
}

TEST(conv2d_seed_example) {
    const float image[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, kernel[4] = {1, 0, 0, -1};
    cnn_tensor *x = tensor4(1, 1, 3, 3, image), *w = tensor4(1, 1, 2, 2, kernel);
    cnn_conv2d_options o = cnn_conv2d_defaults();
    cnn_tensor *y = cnn_conv2d(x, w, NULL, &o);
    REQUIRE(y);
    CHECK(cnn_ndim(y) == 4 && cnn_size(y, 2) == 2 && cnn_size(y, 3) == 2);
    float v[4];
    cnn_read(y, v);
    for (int i = 0; i < 4; i++) CHECK(v[i] == -4.0f);
    cnn_release(y), cnn_release(x), cnn_release(w);
}

TEST(conv2d_matches_direct_loops) {
    const conv_case cases[] = {
        {.N = 2, .C = 3, .H = 7, .W = 6, .O = 4, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1, .with_bias = 1},
        {.N = 3, .C = 2, .H = 9, .W = 8, .O = 5, .kh = 3, .kw = 2, .sh = 2, .sw = 3, .ph = 1, .pw = 2, .dh = 1, .dw = 1, .groups = 1},
        {.N = 2, .C = 4, .H = 11, .W = 10, .O = 6, .kh = 3, .kw = 3, .sh = 1, .sw = 2, .ph = 2, .pw = 1, .dh = 2, .dw = 3, .groups = 2, .with_bias = 1},
        {.N = 2, .C = 3, .H = 8, .W = 8, .O = 3, .kh = 5, .kw = 5, .sh = 1, .sw = 1, .ph = 2, .pw = 2, .dh = 1, .dw = 1, .groups = 3, .with_bias = 1}, // depthwise
        {.N = 1, .C = 2, .H = 5, .W = 5, .O = 6, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .dh = 1, .dw = 1, .groups = 2}, // channel multiplier 3
        {.N = 2, .C = 3, .H = 6, .W = 7, .O = 2, .kh = 4, .kw = 2, .sh = 1, .sw = 1, .dh = 1, .dw = 2, .groups = 1, .same = 1, .with_bias = 1}, // asymmetric "same"
        {.N = 2, .C = 5, .H = 4, .W = 4, .O = 3, .kh = 1, .kw = 1, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1, .with_bias = 1}, // pointwise
        {.N = 1, .C = 1, .H = 3, .W = 3, .O = 1, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .ph = 0, .pw = 0, .dh = 1, .dw = 1, .groups = 1}, // 1x1 output
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_conv2d_case(&cases[i]);
}

/* Images are unfolded a few at a time: small ones side by side (here 8x8 images in chunks of 4 + 1),
 * large ones one by one (100x100). Both kinds of product and the chunk remainder are checked. */
TEST(conv2d_chunked_batches_match_direct_loops) {
    const conv_case small = {.N = 5, .C = 4, .H = 8, .W = 8, .O = 6, .kh = 3, .kw = 3, .sh = 1, .sw = 1,
                             .ph = 1, .pw = 1, .dh = 1, .dw = 1, .groups = 2, .with_bias = 1};
    const conv_case large = {.N = 2, .C = 16, .H = 100, .W = 100, .O = 2, .kh = 3, .kw = 3, .sh = 1,
                             .sw = 1, .ph = 1, .pw = 1, .dh = 1, .dw = 1, .groups = 1, .with_bias = 1};
    check_conv2d_case(&small);
    check_conv2d_case(&large);
}

TEST(conv2d_non_contiguous_input) {
    cnn_tensor *base = tensor4(3, 2, 5, 5, NULL), *w = tensor4(4, 3, 3, 3, NULL);
    cnn_tensor *x = cnn_transpose(base, 0, 1); // (2, 3, 5, 5), not contiguous
    cnn_tensor *xc = cnn_contiguous(x);
    cnn_conv2d_options o = cnn_conv2d_defaults();
    o.padding[0] = o.padding[1] = 1;
    cnn_tensor *y1 = cnn_conv2d(x, w, NULL, &o), *y2 = cnn_conv2d(xc, w, NULL, &o);
    REQUIRE(y1 && y2);
    float *a = read_all(y1), *b = read_all(y2);
    for (int64_t i = 0; i < cnn_numel(y1); i++) CHECK(a[i] == b[i]);
    free(a), free(b);
    cnn_release(y1), cnn_release(y2), cnn_release(xc), cnn_release(x), cnn_release(base), cnn_release(w);
}

TEST(conv2d_valid_padding_and_output_sizes) {
    cnn_tensor *x = tensor4(1, 3, 32, 32, NULL), *w = tensor4(1, 3, 5, 5, NULL);
    cnn_conv2d_options o = cnn_conv2d_defaults();
    o.padding_mode = CNN_PAD_VALID;
    o.padding[0] = o.padding[1] = 7; // ignored with "valid"
    cnn_tensor *y = cnn_conv2d(x, w, NULL, &o);
    REQUIRE(y);
    CHECK(cnn_size(y, 1) == 1 && cnn_size(y, 2) == 28 && cnn_size(y, 3) == 28);
    cnn_release(y), cnn_release(x), cnn_release(w);
}

/* ---- transposed convolution ------------------------------------------------------------------- */

/* y (N, O, oH, oW) += x[n, c, iy, ix] * w[c, o', ki, kj] at (iy*s - p + ki*d, ix*s - p + kj*d). */
static void direct_conv_transpose2d(const conv_case *k, int64_t oH, int64_t oW, const float *x,
                                    const float *w, const float *b, double *y) {
    const int64_t Cg = k->C / k->groups, Og = k->O / k->groups;
    for (int64_t n = 0; n < k->N; n++)
        for (int64_t o = 0; o < k->O; o++)
            for (int64_t i = 0; i < oH * oW; i++) y[(n * k->O + o) * oH * oW + i] = b ? b[o] : 0;
    for (int64_t n = 0; n < k->N; n++)
        for (int64_t c = 0; c < k->C; c++)
            for (int64_t iy = 0; iy < k->H; iy++)
                for (int64_t ix = 0; ix < k->W; ix++) {
                    const double v = x[((n * k->C + c) * k->H + iy) * k->W + ix];
                    const int64_t grp = c / Cg;
                    for (int64_t o = 0; o < Og; o++)
                        for (int64_t i = 0; i < k->kh; i++)
                            for (int64_t j = 0; j < k->kw; j++) {
                                const int64_t oy = iy * k->sh - k->ph + i * k->dh;
                                const int64_t ox = ix * k->sw - k->pw + j * k->dw;
                                if (oy < 0 || oy >= oH || ox < 0 || ox >= oW) continue;
                                y[((n * k->O + grp * Og + o) * oH + oy) * oW + ox] +=
                                    v * w[((c * Og + o) * k->kh + i) * k->kw + j];
                            }
                }
}

static void check_conv_transpose2d_case(const conv_case *k) {
    const int64_t Og = k->O / k->groups;
    cnn_tensor *x = tensor4(k->N, k->C, k->H, k->W, NULL), *w = tensor4(k->C, Og, k->kh, k->kw, NULL);
    cnn_tensor *b = k->with_bias ? vector_randn(k->O) : NULL;
    REQUIRE(x && w);
    cnn_set_requires_grad(x, 1);
    cnn_set_requires_grad(w, 1);
    if (b) cnn_set_requires_grad(b, 1);
    cnn_conv2d_options o;
    set_options(k, &o);
    cnn_tensor *y = cnn_conv_transpose2d(x, w, b, &o);
    if (!y) fprintf(stderr, "  %s\n", cnn_last_error());
    REQUIRE(y);
    const int64_t oH = (k->H - 1) * k->sh - 2 * k->ph + k->dh * (k->kh - 1) + k->oph + 1;
    const int64_t oW = (k->W - 1) * k->sw - 2 * k->pw + k->dw * (k->kw - 1) + k->opw + 1;
    REQUIRE(cnn_size(y, 1) == k->O && cnn_size(y, 2) == oH && cnn_size(y, 3) == oW);
    const int64_t ny = cnn_numel(y), nx = cnn_numel(x), nw = cnn_numel(w);
    float *xv = read_all(x), *wv = read_all(w), *bv = b ? read_all(b) : NULL, *yv = read_all(y);
    double *ref = malloc(ny * sizeof *ref);
    direct_conv_transpose2d(k, oH, oW, xv, wv, bv, ref);
    CHECK(max_rel_diff(yv, ref, ny) < 1e-4);

    // The op is linear in x and in w, so d sum(y * gy) / dx[i] = <transpose(e_i, w), gy>: checked
    // with the direct loops on a spread of coordinates.
    cnn_tensor *gy = cnn_randn(4, (int64_t[]){k->N, k->O, oH, oW});
    REQUIRE(cnn_backward(y, gy, 0) == CNN_OK);
    float *gyv = read_all(gy);
    cnn_tensor *gxt = cnn_grad(x), *gwt = cnn_grad(w), *gbt = b ? cnn_grad(b) : NULL;
    REQUIRE(gxt && gwt);
    float *gxv = read_all(gxt), *gwv = read_all(gwt);
    double *probe = malloc(ny * sizeof *probe);
    for (int which = 0; which < 2; which++) {
        const float *grad = which == 0 ? gxv : gwv;
        const int64_t count = which == 0 ? nx : nw;
        for (int64_t idx = 0; idx < count; idx += 1 + count / 23) {
            // the unit vector e_idx in place of x (or w)
            float *unit = calloc(count, sizeof *unit);
            unit[idx] = 1;
            direct_conv_transpose2d(k, oH, oW, which == 0 ? unit : xv, which == 0 ? wv : unit, NULL, probe);
            double expect = 0;
            for (int64_t i = 0; i < ny; i++) expect += probe[i] * gyv[i];
            CHECK_NEAR(grad[idx], expect, 1e-3 * (fabs(expect) > 1 ? fabs(expect) : 1));
            free(unit);
        }
    }
    if (b) {
        float *gbv = read_all(gbt);
        for (int64_t o = 0; o < k->O; o++) {
            double s = 0;
            for (int64_t n = 0; n < k->N; n++)
                for (int64_t i = 0; i < oH * oW; i++) s += gyv[(n * k->O + o) * oH * oW + i];
            CHECK_NEAR(gbv[o], s, 1e-3 * (fabs(s) > 1 ? fabs(s) : 1));
        }
        free(gbv);
    }
    free(probe), free(xv), free(wv), free(bv), free(yv), free(gyv), free(gxv), free(gwv), free(ref);
    cnn_release(gxt), cnn_release(gwt), cnn_release(gbt);
    cnn_release(gy), cnn_release(y), cnn_release(x), cnn_release(w), cnn_release(b);
}

TEST(conv_transpose2d_matches_direct_loops) {
    const conv_case cases[] = {
        {.N = 2, .C = 3, .H = 4, .W = 5, .O = 2, .kh = 3, .kw = 3, .sh = 1, .sw = 1, .dh = 1, .dw = 1, .groups = 1, .with_bias = 1},
        {.N = 2, .C = 2, .H = 3, .W = 3, .O = 3, .kh = 4, .kw = 4, .sh = 2, .sw = 2, .ph = 1, .pw = 1, .dh = 1, .dw = 1, .groups = 1, .with_bias = 1},
        {.N = 1, .C = 4, .H = 3, .W = 4, .O = 6, .kh = 3, .kw = 2, .sh = 3, .sw = 2, .ph = 1, .pw = 0, .dh = 1, .dw = 2, .groups = 2, .oph = 2, .opw = 1},
        {.N = 2, .C = 2, .H = 3, .W = 3, .O = 2, .kh = 2, .kw = 2, .sh = 1, .sw = 1, .dh = 2, .dw = 2, .groups = 1, .oph = 1, .opw = 1}, // output padding < dilation
        {.N = 1, .C = 3, .H = 5, .W = 5, .O = 3, .kh = 3, .kw = 3, .sh = 2, .sw = 2, .ph = 1, .pw = 1, .dh = 1, .dw = 1, .groups = 3, .oph = 1, .opw = 1, .with_bias = 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) check_conv_transpose2d_case(&cases[i]);
}

/* The images of a batch run on several threads with a single-threaded BLAS each; the BLAS's own
 * thread count is restored afterwards. */
TEST(conv2d_threads_agree_and_restore_blas_threads) {
    const int saved = cnn_get_num_threads();
    // 8 images of 8*16*16*16*9 multiply-adds: enough work for two threads
    cnn_tensor *x = tensor4(8, 16, 16, 16, NULL), *w = tensor4(16, 16, 3, 3, NULL);
    cnn_conv2d_options o = cnn_conv2d_defaults();
    o.padding[0] = o.padding[1] = 1;
    cnn_set_num_threads(1);
    cnn_tensor *serial = cnn_conv2d(x, w, NULL, &o);
    cnn_set_num_threads(3);
    cnn_tensor *threaded = cnn_conv2d(x, w, NULL, &o);
    CHECK(openblas_get_num_threads() == 3);
    REQUIRE(serial && threaded);
    float *a = read_all(serial), *b = read_all(threaded);
    for (int64_t i = 0; i < cnn_numel(serial); i++) CHECK(a[i] == b[i]);
    free(a), free(b);
    cnn_set_num_threads(saved);
    cnn_release(serial), cnn_release(threaded), cnn_release(x), cnn_release(w);
}

TEST(conv2d_stops_when_interrupted) {
    cnn_tensor *x = tensor4(4, 2, 8, 8, NULL), *w = tensor4(3, 2, 3, 3, NULL);
    cnn_conv2d_options o = cnn_conv2d_defaults();
    cnn_interrupt();
    CHECK(cnn_conv2d(x, w, NULL, &o) == NULL);
    CHECK(cnn_last_status() == CNN_ERR_INTERRUPTED && error_contains("conv2d: interrupted"));
    cnn_clear_interrupt();
    cnn_tensor *y = cnn_conv2d(x, w, NULL, &o);
    CHECK(y != NULL);
    cnn_release(y), cnn_release(x), cnn_release(w);
}

/* ---- conv errors ------------------------------------------------------------------------------ */

TEST(conv2d_error_messages) {
    cnn_conv2d_options o = cnn_conv2d_defaults();
    cnn_tensor *x = tensor4(8, 3, 28, 28, NULL), *w = tensor4(6, 1, 5, 5, NULL);
    CHECK(cnn_conv2d(x, w, NULL, &o) == NULL);
    CHECK(strcmp(cnn_last_error(),
                 "conv2d: input has 3 channels but weight expects 1 (input 8x3x28x28, weight 6x1x5x5)") == 0);
    CHECK(cnn_last_status() == CNN_ERR_SHAPE);

    o.groups = 2;
    CHECK(cnn_conv2d(x, w, NULL, &o) == NULL);
    CHECK(error_contains("groups=2 does not divide the 3 input channels"));
    o = cnn_conv2d_defaults();

    cnn_tensor *w3 = tensor4(6, 3, 5, 5, NULL), *small = tensor4(1, 3, 4, 4, NULL);
    CHECK(cnn_conv2d(small, w3, NULL, &o) == NULL);
    CHECK(error_contains("conv2d: the 5x5 kernel") && error_contains("padded input 4x4") &&
          error_contains("1x3x4x4"));
    o.stride[0] = 0;
    CHECK(cnn_conv2d(x, w3, NULL, &o) == NULL);
    CHECK(error_contains("conv2d: stride must be positive, got 0x1"));
    o = cnn_conv2d_defaults();
    o.padding_mode = CNN_PAD_SAME;
    o.stride[1] = 2;
    CHECK(cnn_conv2d(x, w3, NULL, &o) == NULL);
    CHECK(error_contains("padding 'same' needs stride 1"));
    o = cnn_conv2d_defaults();

    cnn_tensor *bias = vector_randn(5);
    CHECK(cnn_conv2d(x, w3, bias, &o) == NULL);
    CHECK(error_contains("conv2d: bias has shape 5 but there are 6 output channels"));

    cnn_tensor *x3 = cnn_randn(3, (int64_t[]){3, 28, 28});
    CHECK(cnn_conv2d(x3, w3, NULL, &o) == NULL);
    CHECK(error_contains("conv2d: expected a 4-d input (N, C, H, W) but got shape 3x28x28"));

    cnn_tensor *wt = tensor4(4, 2, 3, 3, NULL);
    CHECK(cnn_conv_transpose2d(x, wt, NULL, &o) == NULL);
    CHECK(strcmp(cnn_last_error(), "conv_transpose2d: input has 3 channels but weight expects 4 (input "
                                   "8x3x28x28, weight 4x2x3x3)") == 0);
    cnn_tensor *wt3 = tensor4(3, 2, 3, 3, NULL);
    o.stride[0] = o.stride[1] = 2;
    o.output_padding[0] = 2;
    CHECK(cnn_conv_transpose2d(x, wt3, NULL, &o) == NULL);
    CHECK(error_contains("output_padding 2x0 must be non-negative and smaller than either stride 2x2"));

    cnn_release(x), cnn_release(w), cnn_release(w3), cnn_release(small), cnn_release(bias);
    cnn_release(x3), cnn_release(wt), cnn_release(wt3);
}

/* ---- pooling ---------------------------------------------------------------------------------- */

static const float pool_image[16] = {2, 3, 1, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};

TEST(pooling_seed_example) {
    cnn_tensor *x = tensor4(1, 1, 4, 4, pool_image);
    cnn_pool2d_options o = cnn_pool2d_defaults(2, 2);
    cnn_tensor *avg = cnn_avg_pool2d(x, &o), *max = cnn_max_pool2d(x, &o);
    REQUIRE(avg && max);
    float a[4], m[4];
    cnn_read(avg, a);
    cnn_read(max, m);
    const float ea[4] = {4, 5, 11.5f, 13.5f}, em[4] = {6, 8, 14, 16};
    for (int i = 0; i < 4; i++) CHECK(a[i] == ea[i] && m[i] == em[i]);
    cnn_release(avg), cnn_release(max), cnn_release(x);
}

TEST(max_pool2d_gradient_goes_to_the_winner) {
    cnn_tensor *x = tensor4(1, 1, 4, 4, pool_image);
    cnn_set_requires_grad(x, 1);
    cnn_pool2d_options o = cnn_pool2d_defaults(2, 2);
    cnn_tensor *y = cnn_max_pool2d(x, &o);
    REQUIRE(y);
    const float gv[4] = {1, 2, 3, 4};
    cnn_tensor *g = tensor4(1, 1, 2, 2, gv);
    REQUIRE(cnn_backward(y, g, 0) == CNN_OK);
    cnn_tensor *gx = cnn_grad(x);
    float v[16];
    cnn_read(gx, v);
    const float expect[16] = {0, 0, 0, 0, 0, 1, 0, 2, 0, 0, 0, 0, 0, 3, 0, 4};
    for (int i = 0; i < 16; i++) CHECK(v[i] == expect[i]);
    cnn_release(gx), cnn_release(g), cnn_release(y), cnn_release(x);
}

TEST(pool_output_sizes_follow_pytorch) {
    cnn_tensor *x = cnn_zeros(4, (int64_t[]){1, 1, 5, 5});
    struct { int k, s, p, d, ceil; int64_t expect; } cases[] = {
        {2, 2, 0, 1, 0, 2}, {2, 2, 0, 1, 1, 3}, {3, 3, 1, 1, 1, 2}, // the last window must start inside
        {3, 1, 1, 1, 0, 5}, {2, 1, 0, 2, 0, 3}, {3, 2, 1, 1, 1, 3},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cnn_pool2d_options o = cnn_pool2d_defaults(cases[i].k, cases[i].k);
        o.stride[0] = o.stride[1] = cases[i].s;
        o.padding[0] = o.padding[1] = cases[i].p;
        o.dilation[0] = o.dilation[1] = cases[i].d;
        o.ceil_mode = cases[i].ceil;
        cnn_tensor *y = cnn_max_pool2d(x, &o);
        REQUIRE(y);
        CHECK(cnn_size(y, 2) == cases[i].expect && cnn_size(y, 3) == cases[i].expect);
        cnn_release(y);
    }
    cnn_release(x);
}

TEST(avg_pool2d_padding_divisors) {
    const float ones[9] = {1, 1, 1, 1, 1, 1, 1, 1, 1};
    cnn_tensor *x = tensor4(1, 1, 3, 3, ones);
    cnn_pool2d_options o = cnn_pool2d_defaults(2, 2);
    o.padding[0] = o.padding[1] = 1;
    cnn_tensor *incl = cnn_avg_pool2d(x, &o);
    o.count_include_pad = 0;
    cnn_tensor *excl = cnn_avg_pool2d(x, &o);
    REQUIRE(incl && excl);
    float a[4], b[4];
    cnn_read(incl, a);
    cnn_read(excl, b);
    const float ea[4] = {0.25f, 0.5f, 0.5f, 1.0f};
    for (int i = 0; i < 4; i++) CHECK(a[i] == ea[i] && b[i] == 1.0f);
    cnn_release(incl), cnn_release(excl), cnn_release(x);
}

TEST(max_pool2d_propagates_nan_and_ignores_padding) {
    const float v[4] = {-5, -6, NAN, -7};
    cnn_tensor *x = tensor4(1, 1, 2, 2, v);
    cnn_pool2d_options o = cnn_pool2d_defaults(2, 2);
    o.stride[0] = o.stride[1] = 1;
    o.padding[0] = o.padding[1] = 1;
    cnn_tensor *y = cnn_max_pool2d(x, &o);
    REQUIRE(y && cnn_size(y, 2) == 3);
    float r[9];
    cnn_read(y, r);
    CHECK(r[0] == -5 && r[2] == -6 && isnan(r[4]) && isnan(r[6]) && r[8] == -7);
    cnn_release(y), cnn_release(x);
}

TEST(pool_error_messages) {
    cnn_tensor *x = cnn_zeros(4, (int64_t[]){2, 3, 4, 4}), *flat = cnn_zeros(2, (int64_t[]){4, 4});
    cnn_pool2d_options o = cnn_pool2d_defaults(5, 5);
    CHECK(cnn_max_pool2d(x, &o) == NULL);
    CHECK(error_contains("max_pool2d: the output would be 0x0") && error_contains("2x3x4x4"));
    o = cnn_pool2d_defaults(2, 2);
    o.padding[0] = 2;
    CHECK(cnn_avg_pool2d(x, &o) == NULL);
    CHECK(error_contains("avg_pool2d: padding 2x0 must be at most half of the kernel"));
    o = cnn_pool2d_defaults(2, 2);
    CHECK(cnn_max_pool2d(flat, &o) == NULL);
    CHECK(error_contains("max_pool2d: expected a 3-d (C, H, W) or 4-d (N, C, H, W) input but got shape 4x4"));
    CHECK(cnn_adaptive_avg_pool2d(x, 0, 2) == NULL);
    CHECK(error_contains("adaptive_avg_pool2d: output size must be positive, got 0x2"));
    cnn_release(x), cnn_release(flat);
}

/* ---- adaptive pooling, padding, resampling ---------------------------------------------------- */

TEST(adaptive_avg_pool2d_overlapping_windows) {
    const float v[5] = {1, 2, 3, 4, 5};
    cnn_tensor *x = tensor4(1, 1, 1, 5, v);
    cnn_tensor *y = cnn_adaptive_avg_pool2d(x, 1, 3); // windows [0,2) [1,4) [3,5)
    REQUIRE(y);
    float r[3];
    cnn_read(y, r);
    CHECK_NEAR(r[0], 1.5, 1e-6);
    CHECK_NEAR(r[1], 3.0, 1e-6);
    CHECK_NEAR(r[2], 4.5, 1e-6);
    cnn_release(y), cnn_release(x);
}

TEST(pad2d_modes) {
    const float v[6] = {1, 2, 3, 4, 5, 6}; // 2x3
    cnn_tensor *x = tensor4(1, 1, 2, 3, v);
    const int32_t pads[4] = {2, 1, 1, 0};
    const float expect[4][12] = {
        {9, 9, 9, 9, 9, 9, 9, 9, 1, 2, 3, 9},
        {6, 5, 4, 5, 6, 5, 3, 2, 1, 2, 3, 2},
        {1, 1, 1, 2, 3, 3, 1, 1, 1, 2, 3, 3},
        {5, 6, 4, 5, 6, 4, 2, 3, 1, 2, 3, 1},
    };
    for (int mode = 0; mode < 4; mode++) {
        cnn_tensor *y = cnn_pad2d(x, pads, (cnn_pad_mode)mode, 9);
        REQUIRE(y && cnn_size(y, 2) == 3 && cnn_size(y, 3) == 6);
        float r[18];
        cnn_read(y, r);
        for (int i = 0; i < 12; i++) CHECK(r[i] == expect[mode][i]);
        if (mode == 0) CHECK(r[12] == 9 && r[13] == 9 && r[14] == 4 && r[15] == 5 && r[16] == 6 && r[17] == 9);
        cnn_release(y);
    }
    const int32_t crop[4] = {-1, 0, 0, -1};
    cnn_tensor *c = cnn_pad2d(x, crop, CNN_PAD_CONSTANT, 0);
    REQUIRE(c && cnn_size(c, 2) == 1 && cnn_size(c, 3) == 2);
    float r[2];
    cnn_read(c, r);
    CHECK(r[0] == 2 && r[1] == 3);
    const int32_t too_much[4] = {3, 0, 0, 0};
    CHECK(cnn_pad2d(x, too_much, CNN_PAD_REFLECT, 0) == NULL);
    CHECK(error_contains("pad: reflect padding 3, 0 of the width must be smaller than the padded dimension"));
    cnn_release(c), cnn_release(x);
}

TEST(upsample2d_nearest_and_bilinear) {
    const float v[4] = {1, 2, 3, 4};
    cnn_tensor *x = tensor4(1, 1, 2, 2, v);
    cnn_tensor *n = cnn_upsample2d(x, 4, 4, CNN_UPSAMPLE_NEAREST);
    cnn_tensor *b = cnn_upsample2d(x, 4, 4, CNN_UPSAMPLE_BILINEAR);
    REQUIRE(n && b);
    float rn[16], rb[16];
    cnn_read(n, rn);
    cnn_read(b, rb);
    const float en[16] = {1, 1, 2, 2, 1, 1, 2, 2, 3, 3, 4, 4, 3, 3, 4, 4};
    // PyTorch: F.interpolate(x, size=(4, 4), mode="bilinear", align_corners=False)
    const float eb[16] = {1, 1.25f, 1.75f, 2, 1.5f, 1.75f, 2.25f, 2.5f,
                          2.5f, 2.75f, 3.25f, 3.5f, 3, 3.25f, 3.75f, 4};
    for (int i = 0; i < 16; i++) {
        CHECK(rn[i] == en[i]);
        CHECK_NEAR(rb[i], eb[i], 1e-6);
    }
    cnn_release(n), cnn_release(b), cnn_release(x);
}

/* A write through cnn_data (the FFI's way) reaches an inference conv whose kernels were kept in a
 * derived form (runtime/weight_cache.h): Winograd's transform here. */
TEST(conv_sees_writes_through_the_data_pointer_in_inference) {
    const int64_t xs[4] = {1, 8, 6, 6}, ws[4] = {8, 8, 3, 3};
    cnn_manual_seed(5);
    cnn_tensor *x = cnn_randn(4, xs), *w = cnn_randn(4, ws);
    cnn_conv2d_options o = cnn_conv2d_defaults();
    o.padding[0] = o.padding[1] = 1;
    cnn_set_grad_enabled(0);
    cnn_tensor *first = cnn_conv2d(x, w, NULL, &o);
    REQUIRE(first);
    float *data = cnn_data(w);
    for (int64_t i = 0; i < cnn_numel(w); i++) data[i] *= -2.0f;
    cnn_tensor *second = cnn_conv2d(x, w, NULL, &o);
    REQUIRE(second);
    double worst = 0;
    for (int64_t i = 0; i < cnn_numel(first); i++)
        worst = fmax(worst, fabs(cnn_data(second)[i] + 2.0f * cnn_data(first)[i]));
    CHECK(worst < 1e-4);
    cnn_set_grad_enabled(1);
    cnn_release(second);
    cnn_release(first);
    cnn_release(w);
    cnn_release(x);
}

/* More kernels than the inference copies have room for: every result stays the one computed without
 * copies (grad mode on), in a first pass and in a second that finds some copies kept. */
TEST(conv_inference_copies_stay_right_with_more_kernels_than_room) {
    enum { KERNELS = 80 };
    const int64_t xs[4] = {1, 8, 6, 6}, ws[4] = {8, 8, 3, 3};
    cnn_manual_seed(9);
    cnn_tensor *x = cnn_randn(4, xs), *w[KERNELS], *expected[KERNELS];
    cnn_conv2d_options o = cnn_conv2d_defaults();
    o.padding[0] = o.padding[1] = 1;
    for (int k = 0; k < KERNELS; k++) {
        w[k] = cnn_randn(4, ws);
        expected[k] = cnn_conv2d(x, w[k], NULL, &o); /* grad mode: nothing kept */
        REQUIRE(expected[k]);
    }
    cnn_set_grad_enabled(0);
    int wrong = 0;
    for (int pass = 0; pass < 2; pass++)
        for (int k = 0; k < KERNELS; k++) {
            cnn_tensor *y = cnn_conv2d(x, w[k], NULL, &o);
            REQUIRE(y);
            wrong += memcmp(cnn_data_read(y), cnn_data_read(expected[k]), (size_t)cnn_numel(y) * sizeof(float)) != 0;
            cnn_release(y);
        }
    cnn_set_grad_enabled(1);
    CHECK(wrong == 0);
    for (int k = 0; k < KERNELS; k++) {
        cnn_release(expected[k]);
        cnn_release(w[k]);
    }
    cnn_release(x);
}
