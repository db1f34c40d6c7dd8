/* test_augment.c - augmentation pipelines: exact pixels for deterministic settings (flips, quarter
 * turns, shifts, every fill mode on a tiny image, zoom, crops), statistics for the random ones (flip
 * rate, brightness range, noise level, erased area), reproducibility across thread counts, and the
 * error messages of bad stages and inputs. */
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "harness.h"

/* ---- scaffolding -------------------------------------------------------------------------------- */

static cnn_tensor *from(int ndim, const int64_t *shape, const float *data) {
    return cnn_from_data(ndim, shape, data);
}

/* A (1, C, H, W) tensor holding 0, 1, 2, ... */
static cnn_tensor *counting(int64_t C, int64_t H, int64_t W) {
    int64_t shape[4] = {1, C, H, W};
    cnn_tensor *t = cnn_empty(4, shape);
    float *d = cnn_data(t);
    for (int64_t i = 0; i < C * H * W; i++) d[i] = (float)i;
    return t;
}

static int same_values(cnn_tensor *t, const float *expected, int64_t n, float tol) {
    if (!t || cnn_numel(t) != n) return 0;
    float *buf = malloc((size_t)n * sizeof(float));
    cnn_read(t, buf);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) {
        if (!(fabsf(buf[i] - expected[i]) <= tol)) {
            fprintf(stderr, "    value %lld: got %g, expected %g\n", (long long)i, buf[i], expected[i]);
            ok = 0;
            break;
        }
    }
    free(buf);
    return ok;
}

static int same_tensors(cnn_tensor *a, cnn_tensor *b) {
    if (!a || !b || cnn_numel(a) != cnn_numel(b)) return 0;
    int64_t n = cnn_numel(a);
    float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
    cnn_read(a, x);
    cnn_read(b, y);
    int ok = memcmp(x, y, (size_t)n * sizeof(float)) == 0;
    free(x);
    free(y);
    return ok;
}

/* A pipeline of one affine stage. */
static cnn_aug_pipeline *affine_pipeline(cnn_aug_affine a) {
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    if (cnn_aug_add_affine(p, &a, 1.0f) != CNN_OK) {
        cnn_aug_pipeline_free(p);
        return NULL;
    }
    return p;
}

static cnn_tensor *warp(cnn_tensor *x, cnn_aug_affine a) {
    cnn_aug_pipeline *p = affine_pipeline(a);
    if (!p) return NULL;
    cnn_tensor *y = cnn_aug_apply(p, x, 7);
    cnn_aug_pipeline_free(p);
    return y;
}

static void fixed(float range[2], float v) { range[0] = range[1] = v; }

/* ---- exact geometry ------------------------------------------------------------------------------- */

TEST(aug_flip_twice_is_identity) {
    cnn_tensor *x = counting(3, 5, 7);
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    REQUIRE(cnn_aug_add_flip(p, 1.0f, 1.0f) == CNN_OK);
    cnn_tensor *once = cnn_aug_apply(p, x, 1);
    cnn_tensor *twice = cnn_aug_apply(p, once, 2);
    REQUIRE(once && twice);
    CHECK(!same_tensors(x, once));
    CHECK(same_tensors(x, twice));
    /* a horizontal flip reverses each row */
    float *d = cnn_data(once);
    CHECK(d[0] == (float)(4 * 7 + 6) && d[6] == (float)(4 * 7)); /* row 0 of the output is row 4 reversed */
    cnn_release(once);
    cnn_release(twice);
    cnn_release(x);
    cnn_aug_pipeline_free(p);
}

/* A quarter turn counter-clockwise is np.rot90: transpose, then flip vertically. */
TEST(aug_rotation_90_is_transpose_and_flip) {
    for (int64_t n = 4; n <= 5; n++) {
        cnn_tensor *x = counting(2, n, n);
        cnn_aug_affine a = cnn_aug_affine_defaults();
        fixed(a.rotation, 90.0f);
        a.fill_mode = CNN_FILL_CONSTANT;
        a.cval = -1.0f;
        cnn_tensor *y = warp(x, a);
        REQUIRE(y);
        float *in = cnn_data(x), *out = cnn_data(y);
        int ok = 1;
        for (int64_t c = 0; c < 2; c++)
            for (int64_t i = 0; i < n; i++)
                for (int64_t j = 0; j < n; j++)
                    ok &= out[(c * n + i) * n + j] == in[(c * n + j) * n + (n - 1 - i)];
        CHECK(ok);
        /* and 180 degrees is both flips */
        fixed(a.rotation, 180.0f);
        cnn_tensor *half = warp(x, a);
        cnn_aug_pipeline *flips = cnn_aug_pipeline_new();
        cnn_aug_add_flip(flips, 1.0f, 1.0f);
        cnn_tensor *flipped = cnn_aug_apply(flips, x, 3);
        CHECK(same_tensors(half, flipped));
        cnn_release(half);
        cnn_release(flipped);
        cnn_aug_pipeline_free(flips);
        cnn_release(y);
        cnn_release(x);
    }
}

TEST(aug_shift_by_whole_pixels_with_constant_fill) {
    cnn_tensor *x = counting(1, 4, 5);
    cnn_aug_affine a = cnn_aug_affine_defaults();
    fixed(a.shift_x, 2.0f);  /* right by 2 */
    fixed(a.shift_y, -1.0f); /* up by 1 */
    a.fill_mode = CNN_FILL_CONSTANT;
    a.cval = -9.0f;
    cnn_tensor *y = warp(x, a);
    REQUIRE(y);
    float *in = cnn_data(x), *out = cnn_data(y);
    int ok = 1;
    for (int r = 0; r < 4; r++)
        for (int c = 0; c < 5; c++) {
            int sr = r + 1, sc = c - 2;
            float expected = sr < 4 && sc >= 0 ? in[sr * 5 + sc] : -9.0f;
            ok &= out[r * 5 + c] == expected;
        }
    CHECK(ok);
    /* the same shift as a fraction of the width (0.4 x 5 pixels; 0.4f is not exact) */
    a.shift_x_units = CNN_SHIFT_FRACTION;
    fixed(a.shift_x, 0.4f);
    cnn_tensor *z = warp(x, a);
    CHECK(same_values(z, out, 20, 1e-5f));
    cnn_release(z);
    cnn_release(y);
    cnn_release(x);
}

/* The row [1 2 3 4] moved left by 2.5 pixels samples positions 2.5, 3.5, 4.5, 5.5; the values there
 * follow from each mode's picture of the row's extension:
 *   nearest  1 2 3 4 | 4 4 4 4      constant 1 2 3 4 | k k k k (no blending across the edge)
 *   reflect  1 2 3 4 | 4 3 2 1      wrap     1 2 3 4 | 1 2 3 4 */
TEST(aug_fill_modes_on_a_tiny_image) {
    const float row[4] = {1, 2, 3, 4};
    const float expected[4][4] = {
        {3.5f, 4.0f, 4.0f, 4.0f}, /* nearest */
        {3.5f, 0.0f, 0.0f, 0.0f}, /* constant, cval 0 */
        {3.5f, 4.0f, 3.5f, 2.5f}, /* reflect */
        {3.5f, 2.5f, 1.5f, 2.5f}, /* wrap */
    };
    int64_t shape_row[4] = {1, 1, 1, 4}, shape_column[4] = {1, 1, 4, 1};
    for (int mode = CNN_FILL_NEAREST; mode <= CNN_FILL_WRAP; mode++) {
        /* horizontally */
        cnn_tensor *x = from(4, shape_row, row);
        cnn_aug_affine a = cnn_aug_affine_defaults();
        fixed(a.shift_x, -2.5f);
        a.fill_mode = mode;
        cnn_tensor *y = warp(x, a);
        CHECK(same_values(y, expected[mode], 4, 1e-6f));
        cnn_release(y);
        cnn_release(x);
        /* and the same vertically */
        cnn_tensor *col = from(4, shape_column, row);
        a = cnn_aug_affine_defaults();
        fixed(a.shift_y, -2.5f);
        a.fill_mode = mode;
        y = warp(col, a);
        CHECK(same_values(y, expected[mode], 4, 1e-6f));
        cnn_release(y);
        cnn_release(col);
    }
    /* before the start: positions -1.5 .. 1.5 of a shift right by 1.5 */
    const float before[4][4] = {
        {1.0f, 1.0f, 1.5f, 2.5f}, /* nearest */
        {7.0f, 7.0f, 1.5f, 2.5f}, /* constant, cval 7 */
        {1.5f, 1.0f, 1.5f, 2.5f}, /* reflect: 2 1 | 1 2 3 4 */
        {3.5f, 2.5f, 1.5f, 2.5f}, /* wrap: 3 4 | 1 2 3 4 */
    };
    for (int mode = CNN_FILL_NEAREST; mode <= CNN_FILL_WRAP; mode++) {
        cnn_tensor *x = from(4, shape_row, row);
        cnn_aug_affine a = cnn_aug_affine_defaults();
        fixed(a.shift_x, 1.5f);
        a.fill_mode = mode;
        a.cval = 7.0f;
        cnn_tensor *y = warp(x, a);
        CHECK(same_values(y, before[mode], 4, 1e-6f));
        cnn_release(y);
        cnn_release(x);
    }
}

TEST(aug_nearest_sampling_rounds_half_up) {
    const float row[4] = {1, 2, 3, 4};
    int64_t shape[3] = {1, 1, 4};
    cnn_tensor *x = from(3, shape, row);
    cnn_aug_affine a = cnn_aug_affine_defaults();
    fixed(a.shift_x, -0.5f); /* positions 0.5, 1.5, 2.5, 3.5 */
    a.sampling = CNN_SAMPLE_NEAREST;
    cnn_tensor *y = warp(x, a);
    const float expected[4] = {2, 3, 4, 4};
    CHECK(same_values(y, expected, 4, 0));
    CHECK(y && cnn_ndim(y) == 3);
    cnn_release(y);
    cnn_release(x);
}

/* Keras' zoom 2 samples every other pixel around the centre: the content shrinks to half. */
TEST(aug_zoom_about_the_centre) {
    const float row[5] = {10, 11, 12, 13, 14};
    int64_t shape[4] = {1, 1, 1, 5};
    cnn_tensor *x = from(4, shape, row);
    cnn_aug_affine a = cnn_aug_affine_defaults();
    fixed(a.zoom_x, 2.0f);
    a.fill_mode = CNN_FILL_CONSTANT;
    cnn_tensor *y = warp(x, a);
    const float expected[5] = {0, 10, 12, 14, 0};
    CHECK(same_values(y, expected, 5, 0));
    cnn_release(y);
    fixed(a.zoom_x, 0.5f); /* zoom in: positions 1, 1.5, 2, 2.5, 3 */
    y = warp(x, a);
    const float closer[5] = {11, 11.5f, 12, 12.5f, 13};
    CHECK(same_values(y, closer, 5, 1e-6f));
    cnn_release(y);
    cnn_release(x);
}

TEST(aug_identity_warp_copies_and_noncontiguous_input_works) {
    cnn_tensor *x = counting(2, 3, 4);
    cnn_tensor *t = cnn_transpose(x, 2, 3); /* (1, 2, 4, 3), not contiguous */
    cnn_aug_affine a = cnn_aug_affine_defaults();
    cnn_tensor *y = warp(t, a);
    cnn_tensor *expected = cnn_contiguous(t);
    CHECK(same_tensors(y, expected));
    cnn_release(expected);
    cnn_release(y);
    cnn_release(t);
    cnn_release(x);
}

/* ---- crops ------------------------------------------------------------------------------------------ */

TEST(aug_random_crop_windows) {
    /* 200 images of 0..15 (4x4); crops of 2x2 with padding 1 (value -1): every output must be the
     * window at some (top, left) in 0..4 of the padded 6x6 image, and every window must occur. */
    const int N = 200;
    int64_t shape[4] = {N, 1, 4, 4};
    cnn_tensor *x = cnn_empty(4, shape);
    float *d = cnn_data(x);
    for (int i = 0; i < N * 16; i++) d[i] = (float)(i % 16);
    cnn_aug_crop o = {{2, 2}, {1, 1, 1, 1}, CNN_PAD_CONSTANT, -1.0f, 0};
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    REQUIRE(cnn_aug_add_crop(p, &o) == CNN_OK);
    cnn_tensor *y = cnn_aug_apply(p, x, 11);
    REQUIRE(y && cnn_size(y, 2) == 2 && cnn_size(y, 3) == 2);
    float *out = cnn_data(y);
    int seen[5][5] = {{0}};
    int all_windows = 1;
    for (int i = 0; i < N; i++) {
        int found = 0;
        for (int top = 0; top < 5 && !found; top++)
            for (int left = 0; left < 5 && !found; left++) {
                int match = 1;
                for (int r = 0; r < 2; r++)
                    for (int c = 0; c < 2; c++) {
                        int sr = top + r - 1, sc = left + c - 1;
                        float v = sr >= 0 && sr < 4 && sc >= 0 && sc < 4 ? (float)(sr * 4 + sc) : -1.0f;
                        match &= out[i * 4 + r * 2 + c] == v;
                    }
                if (match) {
                    found = 1;
                    seen[top][left]++;
                }
            }
        all_windows &= found;
    }
    CHECK(all_windows);
    int covered = 0;
    for (int top = 0; top < 5; top++)
        for (int left = 0; left < 5; left++) covered += seen[top][left] > 0;
    CHECK(covered == 25); /* 5 x 5 windows of the padded 6 x 6 image, each drawn ~8 times */
    cnn_release(y);
    cnn_release(x);
    cnn_aug_pipeline_free(p);
}

TEST(aug_random_crop_reflect_padding_and_errors) {
    cnn_tensor *x = counting(1, 3, 3);
    /* a 5x5 crop of a 3x3 image padded by 1 can only be the whole padded image */
    cnn_aug_crop o = {{5, 5}, {1, 1, 1, 1}, CNN_PAD_REFLECT, 0.0f, 0};
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    REQUIRE(cnn_aug_add_crop(p, &o) == CNN_OK);
    cnn_tensor *y = cnn_aug_apply(p, x, 1);
    const float expected[25] = {4, 3, 4, 5, 4, 1, 0, 1, 2, 1, 4, 3, 4, 5, 4, 7, 6, 7, 8, 7, 4, 3, 4, 5, 4};
    CHECK(same_values(y, expected, 25, 0));
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    /* too big without padding */
    cnn_aug_crop big = {{4, 4}, {0, 0, 0, 0}, CNN_PAD_CONSTANT, 0.0f, 0};
    p = cnn_aug_pipeline_new();
    cnn_aug_add_crop(p, &big);
    CHECK(cnn_aug_apply(p, x, 1) == NULL);
    CHECK(strstr(cnn_last_error(), "random_crop") && strstr(cnn_last_error(), "1x1x3x3"));
    cnn_aug_pipeline_free(p);
    /* pad_if_needed pads evenly */
    big.pad_if_needed = 1;
    big.pad_value = 9.0f;
    p = cnn_aug_pipeline_new();
    cnn_aug_add_crop(p, &big);
    y = cnn_aug_apply(p, x, 1);
    REQUIRE(y);
    /* short by one row and column: the padding goes after (bottom, right) */
    CHECK(cnn_data(y)[0] == 0.0f && cnn_data(y)[3] == 9.0f && cnn_data(y)[5] == 4.0f && cnn_data(y)[15] == 9.0f);
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    cnn_release(x);
}

TEST(aug_resized_crop_of_the_whole_image_is_a_resize) {
    int64_t shape[4] = {2, 3, 6, 6};
    cnn_manual_seed(3);
    cnn_tensor *x = cnn_rand(4, shape);
    cnn_aug_resized_crop o = {{12, 12}, {1.0f, 1.0f}, {1.0f, 1.0f}, CNN_SAMPLE_BILINEAR};
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    REQUIRE(cnn_aug_add_resized_crop(p, &o) == CNN_OK);
    cnn_tensor *y = cnn_aug_apply(p, x, 5);
    cnn_tensor *expected = cnn_upsample2d(x, 12, 12, CNN_UPSAMPLE_BILINEAR);
    REQUIRE(y && expected);
    float a[2 * 3 * 144], b[2 * 3 * 144];
    cnn_read(y, a);
    cnn_read(expected, b);
    double worst = 0;
    for (int i = 0; i < 2 * 3 * 144; i++) worst = fmax(worst, fabs(a[i] - b[i]));
    CHECK(worst < 1e-5);
    cnn_release(expected);
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    /* a small scale gives windows inside the image, resized to the requested size */
    cnn_aug_resized_crop small = {{4, 5}, {0.1f, 0.3f}, {0.75f, 1.33f}, CNN_SAMPLE_BILINEAR};
    p = cnn_aug_pipeline_new();
    cnn_aug_add_resized_crop(p, &small);
    y = cnn_aug_apply(p, x, 6);
    CHECK(y && cnn_size(y, 0) == 2 && cnn_size(y, 1) == 3 && cnn_size(y, 2) == 4 && cnn_size(y, 3) == 5);
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    cnn_release(x);
}

/* ---- values ------------------------------------------------------------------------------------------ */

TEST(aug_color_exact_cases) {
    /* pure red: saturation 0 gives its luma in every channel; hue + 0.5 gives cyan */
    const float red[3] = {1, 0, 0};
    int64_t shape[3] = {3, 1, 1};
    cnn_tensor *x = from(3, shape, red);
    cnn_aug_color o = {{1, 1}, {1, 1}, {0, 0}, {0, 0}};
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    REQUIRE(cnn_aug_add_color(p, &o, 1.0f) == CNN_OK);
    cnn_tensor *y = cnn_aug_apply(p, x, 1);
    const float gray[3] = {0.2989f, 0.2989f, 0.2989f};
    CHECK(same_values(y, gray, 3, 1e-6f));
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    cnn_aug_color hue = {{1, 1}, {1, 1}, {1, 1}, {0.5f, 0.5f}};
    p = cnn_aug_pipeline_new();
    cnn_aug_add_color(p, &hue, 1.0f);
    y = cnn_aug_apply(p, x, 1);
    const float cyan[3] = {0, 1, 1};
    CHECK(same_values(y, cyan, 3, 1e-6f));
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    /* brightness 2 doubles and clamps; contrast 0 gives the mean gray */
    const float values[4] = {0.1f, 0.2f, 0.3f, 0.6f};
    int64_t shape1[3] = {1, 2, 2};
    cnn_tensor *g = from(3, shape1, values);
    cnn_aug_color bright = {{2, 2}, {1, 1}, {1, 1}, {0, 0}};
    p = cnn_aug_pipeline_new();
    cnn_aug_add_color(p, &bright, 1.0f);
    y = cnn_aug_apply(p, g, 1);
    const float doubled[4] = {0.2f, 0.4f, 0.6f, 1.0f};
    CHECK(same_values(y, doubled, 4, 1e-6f));
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    cnn_aug_color flat = {{1, 1}, {0, 0}, {1, 1}, {0, 0}};
    p = cnn_aug_pipeline_new();
    cnn_aug_add_color(p, &flat, 1.0f);
    y = cnn_aug_apply(p, g, 1);
    const float mean[4] = {0.3f, 0.3f, 0.3f, 0.3f};
    CHECK(same_values(y, mean, 4, 1e-6f));
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    /* saturation needs RGB */
    p = cnn_aug_pipeline_new();
    cnn_aug_add_color(p, &hue, 1.0f);
    CHECK(cnn_aug_apply(p, g, 1) == NULL && strstr(cnn_last_error(), "3 channels") &&
          strstr(cnn_last_error(), "1x2x2"));
    cnn_aug_pipeline_free(p);
    cnn_release(g);
    cnn_release(x);
}

TEST(aug_normalize_standardize_channel_shift) {
    const float v[4] = {1, 2, 3, 5};
    int64_t shape[3] = {2, 1, 2};
    cnn_tensor *x = from(3, shape, v);
    const float mean[2] = {1, 3}, std[2] = {2, 4};
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    REQUIRE(cnn_aug_add_normalize(p, mean, std, 2) == CNN_OK);
    cnn_tensor *y = cnn_aug_apply(p, x, 1);
    const float expected[4] = {0, 0.5f, 0, 0.5f};
    CHECK(same_values(y, expected, 4, 1e-6f));
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    p = cnn_aug_pipeline_new();
    cnn_aug_add_standardize(p, 1, 1);
    y = cnn_aug_apply(p, x, 1);
    /* mean 2.75, population std sqrt(2.1875) */
    const double s = sqrt(2.1875) + 1e-6;
    const float standardized[4] = {(float)(-1.75 / s), (float)(-0.75 / s), (float)(0.25 / s), (float)(2.25 / s)};
    CHECK(same_values(y, standardized, 4, 1e-5f));
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    /* a channel shift stays within the image's own [min, max] */
    p = cnn_aug_pipeline_new();
    cnn_aug_add_channel_shift(p, 10.0f, 1.0f);
    y = cnn_aug_apply(p, x, 4);
    float out[4];
    cnn_read(y, out);
    int within = 1;
    for (int i = 0; i < 4; i++) within &= out[i] >= 1.0f && out[i] <= 5.0f;
    CHECK(within);
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    /* per-channel values must match the channel count */
    const float three[3] = {1, 1, 1};
    p = cnn_aug_pipeline_new();
    cnn_aug_add_normalize(p, three, three, 3);
    CHECK(cnn_aug_apply(p, x, 1) == NULL && strstr(cnn_last_error(), "normalize"));
    cnn_aug_pipeline_free(p);
    cnn_release(x);
}

/* ---- statistics -------------------------------------------------------------------------------------- */

TEST(aug_flip_rate_follows_p) {
    const int N = 4000;
    int64_t shape[4] = {N, 1, 1, 2};
    cnn_tensor *x = cnn_empty(4, shape);
    float *d = cnn_data(x);
    for (int i = 0; i < N; i++) {
        d[2 * i] = 0;
        d[2 * i + 1] = 1;
    }
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    cnn_aug_add_flip(p, 0.3f, 0.0f);
    cnn_tensor *y = cnn_aug_apply(p, x, 99);
    REQUIRE(y);
    int flipped = 0;
    for (int i = 0; i < N; i++) flipped += cnn_data(y)[2 * i] == 1.0f;
    double rate = (double)flipped / N; /* binomial std of the rate: sqrt(0.21 / 4000) = 0.0072 */
    CHECK(rate > 0.3 - 0.03 && rate < 0.3 + 0.03);
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    cnn_release(x);
}

TEST(aug_brightness_range_is_respected) {
    const int N = 2000;
    int64_t shape[4] = {N, 1, 1, 1};
    cnn_tensor *x = cnn_full(4, shape, 0.5f);
    cnn_aug_color o = {{0.6f, 1.4f}, {1, 1}, {1, 1}, {0, 0}};
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    cnn_aug_add_color(p, &o, 1.0f);
    cnn_tensor *y = cnn_aug_apply(p, x, 5);
    REQUIRE(y);
    float low = 1, high = 0;
    double sum = 0;
    for (int i = 0; i < N; i++) {
        float v = cnn_data(y)[i];
        low = fminf(low, v);
        high = fmaxf(high, v);
        sum += v;
    }
    CHECK(low >= 0.3f - 1e-6f && high <= 0.7f + 1e-6f); /* 0.5 x [0.6, 1.4] */
    CHECK(low < 0.31f && high > 0.69f);                 /* and the whole range is used */
    CHECK(fabs(sum / N - 0.5) < 0.01);
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    cnn_release(x);
}

TEST(aug_gaussian_noise_has_the_requested_std) {
    int64_t shape[4] = {4, 1, 64, 64};
    cnn_tensor *x = cnn_zeros(4, shape);
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    cnn_aug_add_noise(p, 0.0f, 0.1f, 0, 1.0f);
    cnn_tensor *y = cnn_aug_apply(p, x, 8);
    REQUIRE(y);
    double sum = 0, squares = 0;
    const int n = 4 * 64 * 64;
    for (int i = 0; i < n; i++) {
        sum += cnn_data(y)[i];
        squares += (double)cnn_data(y)[i] * cnn_data(y)[i];
    }
    double mean = sum / n, std = sqrt(squares / n - mean * mean);
    CHECK(fabs(mean) < 0.005);
    CHECK(fabs(std - 0.1) < 0.003);
    cnn_release(y);
    /* clip keeps [0, 1] */
    cnn_aug_pipeline_free(p);
    p = cnn_aug_pipeline_new();
    cnn_aug_add_noise(p, 0.0f, 1.0f, 1, 1.0f);
    y = cnn_aug_apply(p, x, 8);
    float low = 1, high = 0;
    for (int i = 0; i < n; i++) {
        low = fminf(low, cnn_data(y)[i]);
        high = fmaxf(high, cnn_data(y)[i]);
    }
    CHECK(low == 0.0f && high == 1.0f);
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    cnn_release(x);
}

TEST(aug_random_erasing_rectangles) {
    const int N = 300;
    int64_t shape[4] = {N, 2, 20, 20};
    cnn_tensor *x = cnn_zeros(4, shape);
    cnn_aug_erasing o = {{0.02f, 0.33f}, {0.3f, 3.3f}, 0};
    const float values[2] = {5, 6};
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    REQUIRE(cnn_aug_add_erasing(p, &o, values, 2, 0.5f) == CNN_OK);
    cnn_tensor *y = cnn_aug_apply(p, x, 21);
    REQUIRE(y);
    int erased_images = 0, areas_ok = 1, channels_ok = 1;
    for (int i = 0; i < N; i++) {
        const float *img = cnn_data(y) + i * 800;
        int area = 0, other = 0;
        for (int k = 0; k < 400; k++) {
            area += img[k] == 5.0f;
            other += img[400 + k] == 6.0f;
        }
        channels_ok &= area == other;
        if (area > 0) {
            erased_images++;
            areas_ok &= area >= 4 && area <= 0.4 * 400; /* rounding of the sides allows a little more */
        }
    }
    CHECK(channels_ok && areas_ok);
    CHECK(erased_images > 0.5 * N - 45 && erased_images < 0.5 * N + 45);
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    cnn_release(x);
}

/* ---- reproducibility ------------------------------------------------------------------------------------- */

static cnn_aug_pipeline *everything(void) {
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    cnn_aug_affine a = cnn_aug_affine_defaults();
    a.rotation[0] = -20, a.rotation[1] = 20;
    a.shift_x[0] = -0.2f, a.shift_x[1] = 0.2f, a.shift_x_units = CNN_SHIFT_FRACTION;
    a.shift_y[0] = -0.2f, a.shift_y[1] = 0.2f, a.shift_y_units = CNN_SHIFT_FRACTION;
    a.zoom_x[0] = a.zoom_y[0] = 0.8f, a.zoom_x[1] = a.zoom_y[1] = 1.2f;
    a.shear[0] = -10, a.shear[1] = 10;
    a.flip_horizontal = a.flip_vertical = 0.5f;
    cnn_aug_add_affine(p, &a, 1.0f);
    cnn_aug_crop c = {{30, 30}, {2, 2, 2, 2}, CNN_PAD_REFLECT, 0.0f, 0};
    cnn_aug_add_crop(p, &c);
    cnn_aug_add_noise(p, 0.0f, 0.05f, 1, 0.5f);
    cnn_aug_erasing e = {{0.02f, 0.2f}, {0.3f, 3.3f}, 1};
    cnn_aug_add_erasing(p, &e, NULL, 0, 0.5f);
    return p;
}

TEST(aug_same_seed_same_result_for_any_thread_count) {
    int64_t shape[4] = {64, 3, 32, 32}; /* enough work to run on several threads */
    cnn_manual_seed(12);
    cnn_tensor *x = cnn_rand(4, shape);
    cnn_aug_pipeline *p = everything();
    const int saved = cnn_get_num_threads();
    cnn_set_num_threads(1);
    cnn_tensor *one = cnn_aug_apply(p, x, 1234);
    cnn_set_num_threads(2);
    cnn_tensor *two = cnn_aug_apply(p, x, 1234);
    cnn_tensor *other_seed = cnn_aug_apply(p, x, 1235);
    cnn_set_num_threads(saved);
    REQUIRE(one && two && other_seed);
    CHECK(cnn_size(one, 2) == 30);
    CHECK(same_tensors(one, two));
    CHECK(!same_tensors(one, other_seed));
    /* an image's result depends on its position in the batch, not on its neighbours */
    cnn_tensor *first8 = cnn_narrow(x, 0, 0, 8);
    cnn_tensor *part = cnn_aug_apply(p, first8, 1234);
    cnn_tensor *expected = cnn_narrow(one, 0, 0, 8);
    CHECK(same_tensors(part, expected));
    cnn_release(expected);
    cnn_release(part);
    cnn_release(first8);
    cnn_release(other_seed);
    cnn_release(two);
    cnn_release(one);
    cnn_aug_pipeline_free(p);
    cnn_release(x);
}

TEST(aug_groups_run_together_or_not_at_all) {
    cnn_tensor *x = counting(1, 2, 3);
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    cnn_aug_add_gate(p, 0.0f, 1);
    cnn_aug_add_flip(p, 1.0f, 0.0f);
    cnn_tensor *y = cnn_aug_apply(p, x, 1);
    CHECK(same_tensors(x, y));
    cnn_release(y);
    cnn_aug_pipeline_free(p);
    /* a crop cannot sit in a group that may be skipped: the size would vary */
    p = cnn_aug_pipeline_new();
    cnn_aug_add_gate(p, 0.5f, 1);
    cnn_aug_crop c = {{1, 1}, {0, 0, 0, 0}, CNN_PAD_CONSTANT, 0.0f, 0};
    cnn_aug_add_crop(p, &c);
    CHECK(cnn_aug_apply(p, x, 1) == NULL && strstr(cnn_last_error(), "probability"));
    cnn_aug_pipeline_free(p);
    cnn_release(x);
}

/* ---- errors ---------------------------------------------------------------------------------------------- */

TEST(aug_bad_stages_and_inputs_are_reported) {
    cnn_aug_pipeline *p = cnn_aug_pipeline_new();
    cnn_aug_affine a = cnn_aug_affine_defaults();
    a.rotation[0] = 10, a.rotation[1] = -10;
    CHECK(cnn_aug_add_affine(p, &a, 1.0f) == CNN_ERR_ARGUMENT && strstr(cnn_last_error(), "rotation"));
    a = cnn_aug_affine_defaults();
    a.zoom_x[0] = 0;
    CHECK(cnn_aug_add_affine(p, &a, 1.0f) == CNN_ERR_ARGUMENT && strstr(cnn_last_error(), "zoom_x"));
    a = cnn_aug_affine_defaults();
    a.fill_mode = 9;
    CHECK(cnn_aug_add_affine(p, &a, 1.0f) == CNN_ERR_ARGUMENT && strstr(cnn_last_error(), "fill mode"));
    a = cnn_aug_affine_defaults();
    a.shear[1] = NAN;
    CHECK(cnn_aug_add_affine(p, &a, 1.0f) == CNN_ERR_ARGUMENT);
    CHECK(cnn_aug_add_affine(p, &a, 1.5f) == CNN_ERR_ARGUMENT);
    CHECK(cnn_aug_add_flip(p, -0.1f, 0) == CNN_ERR_ARGUMENT && strstr(cnn_last_error(), "random_flip"));
    const float zero = 0.0f, one = 1.0f;
    CHECK(cnn_aug_add_normalize(p, &one, &zero, 1) == CNN_ERR_ARGUMENT && strstr(cnn_last_error(), "std"));
    CHECK(cnn_aug_add_noise(p, 0, -1, 0, 1) == CNN_ERR_ARGUMENT);
    cnn_aug_color hue = {{1, 1}, {1, 1}, {1, 1}, {-0.6f, 0.1f}};
    CHECK(cnn_aug_add_color(p, &hue, 1) == CNN_ERR_ARGUMENT && strstr(cnn_last_error(), "hue"));
    cnn_aug_crop c = {{0, 3}, {0, 0, 0, 0}, 0, 0, 0};
    CHECK(cnn_aug_add_crop(p, &c) == CNN_ERR_ARGUMENT && strstr(cnn_last_error(), "size"));
    CHECK(cnn_aug_pipeline_length(p) == 0); /* nothing was added */
    int64_t shape2[2] = {3, 3};
    cnn_tensor *flat = cnn_zeros(2, shape2);
    CHECK(cnn_aug_apply(p, flat, 1) == NULL && strstr(cnn_last_error(), "3x3"));
    CHECK(cnn_aug_apply(NULL, flat, 1) == NULL);
    int64_t empty_shape[4] = {0, 1, 4, 4};
    cnn_tensor *empty = cnn_zeros(4, empty_shape);
    cnn_tensor *none = cnn_aug_apply(p, empty, 1);
    CHECK(none && cnn_size(none, 0) == 0);
    cnn_release(none);
    cnn_release(empty);
    cnn_release(flat);
    cnn_aug_pipeline_free(p);
}
