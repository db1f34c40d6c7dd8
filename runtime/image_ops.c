/* image_ops.c - whole-image operations for viewing and preparing data: resizing (nearest and bilinear
 * through upsample2d; area averaging here) and tiling a batch into one grid image. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- resize ---------------------------------------------------------------------------------------- */

/* Area resampling along one axis, as a sparse matrix in rows: output o averages the input span
 * [o * in/out, (o + 1) * in/out), each input pixel weighted by how much of it the span covers. */
typedef struct area_taps {
    int64_t *first; /* (out + 1) offsets into index/weight */
    int64_t *index;
    float *weight;
} area_taps;

static void area_taps_free(area_taps *t) {
    free(t->first);
    free(t->index);
    free(t->weight);
}

static bool area_taps_make(int64_t in, int64_t out, area_taps *t) {
    const double scale = (double)in / (double)out;
    const int64_t per_output = (int64_t)ceil(scale) + 2;
    t->first = malloc((size_t)(out + 1) * sizeof(int64_t));
    t->index = malloc((size_t)(out * per_output) * sizeof(int64_t));
    t->weight = malloc((size_t)(out * per_output) * sizeof(float));
    if (!t->first || !t->index || !t->weight) {
        area_taps_free(t);
        cnn_fail(CNN_ERR_MEMORY, "image.resize: out of memory");
        return false;
    }
    int64_t n = 0;
    for (int64_t o = 0; o < out; o++) {
        t->first[o] = n;
        const double lo = (double)o * scale, hi = (double)(o + 1) * scale;
        int64_t last = (int64_t)ceil(hi) - 1;
        if (last > in - 1) last = in - 1;
        for (int64_t i = (int64_t)floor(lo); i <= last; i++) {
            const double covered = fmin(hi, (double)(i + 1)) - fmax(lo, (double)i);
            if (covered <= 0.0) continue;
            t->index[n] = i;
            t->weight[n] = (float)(covered / scale);
            n++;
        }
    }
    t->first[out] = n;
    return true;
}

/* (planes, H, W) -> (planes, oH, oW): columns first, then rows. */
static cnn_tensor *resize_area(cnn_tensor *x, int64_t out_h, int64_t out_w) {
    const int64_t H = x->shape[x->ndim - 2], W = x->shape[x->ndim - 1];
    int64_t planes = 1;
    for (int d = 0; d < x->ndim - 2; d++) planes *= x->shape[d];
    int64_t shape[CNN_MAX_DIMS];
    memcpy(shape, x->shape, sizeof shape);
    shape[x->ndim - 2] = out_h;
    shape[x->ndim - 1] = out_w;
    area_taps rows = {0}, cols = {0};
    cnn_tensor *tmp = NULL, *out = NULL;
    float *across = NULL;
    const float *src = NULL;
    if (!area_taps_make(H, out_h, &rows) || !area_taps_make(W, out_w, &cols)) goto done;
    across = malloc((size_t)(planes * H * out_w) * sizeof(float)); /* (planes, H, oW) */
    if (!across) {
        cnn_fail(CNN_ERR_MEMORY, "image.resize: out of memory (input %s)", cnn_shape_str(x));
        goto done;
    }
    src = cnn_read_ptr(x, &tmp);
    if (!src || !(out = cnn_alloc(x->ndim, shape))) goto done;
    float *dst = cnn_ptr(out);
#pragma omp parallel for schedule(static) if (planes * H * W > (1 << 15))
    for (int64_t p = 0; p < planes; p++) {
        for (int64_t y = 0; y < H; y++) {
            const float *in_row = src + (p * H + y) * W;
            float *mid = across + (p * H + y) * out_w;
            for (int64_t o = 0; o < out_w; o++) {
                float sum = 0.0f;
                for (int64_t k = cols.first[o]; k < cols.first[o + 1]; k++) sum += cols.weight[k] * in_row[cols.index[k]];
                mid[o] = sum;
            }
        }
        for (int64_t o = 0; o < out_h; o++) {
            float *out_row = dst + (p * out_h + o) * out_w;
            for (int64_t q = 0; q < out_w; q++) out_row[q] = 0.0f;
            for (int64_t k = rows.first[o]; k < rows.first[o + 1]; k++) {
                const float *mid = across + (p * H + rows.index[k]) * out_w;
                const float w = rows.weight[k];
                for (int64_t q = 0; q < out_w; q++) out_row[q] += w * mid[q];
            }
        }
    }
done:
    area_taps_free(&rows);
    area_taps_free(&cols);
    free(across);
    cnn_release(tmp);
    return out;
}

cnn_tensor *cnn_image_resize(cnn_tensor *image, int64_t out_h, int64_t out_w, cnn_resize_mode mode) {
    const char *op = "image.resize";
    if (!image) return cnn_fail_null(CNN_ERR_ARGUMENT, "%s: the image is NULL", op);
    if (image->ndim < 2 || image->ndim > 4)
        return cnn_fail_null(CNN_ERR_SHAPE, "%s: expected (H, W), (C, H, W) or (N, C, H, W), got shape %s", op,
                             cnn_shape_str(image));
    if (out_h < 1 || out_w < 1 || out_h > 65536 || out_w > 65536)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "%s: the size must be 1..65536 on each side, got %lldx%lld (input %s)",
                             op, (long long)out_h, (long long)out_w, cnn_shape_str(image));
    if (image->shape[image->ndim - 2] < 1 || image->shape[image->ndim - 1] < 1)
        return cnn_fail_null(CNN_ERR_SHAPE, "%s: the input %s has no pixels", op, cnn_shape_str(image));
    switch (mode) {
    case CNN_RESIZE_AREA:
        return resize_area(image, out_h, out_w);
    case CNN_RESIZE_NEAREST:
    case CNN_RESIZE_BILINEAR: {
        const cnn_upsample_mode how = mode == CNN_RESIZE_NEAREST ? CNN_UPSAMPLE_NEAREST : CNN_UPSAMPLE_BILINEAR;
        if (image->ndim > 2) return cnn_upsample2d(image, out_h, out_w, how);
        cnn_tensor *planar = cnn_unsqueeze(image, 0);
        if (!planar) return NULL;
        cnn_tensor *resized = cnn_upsample2d(planar, out_h, out_w, how);
        cnn_release(planar);
        if (!resized) return NULL;
        cnn_tensor *flat = cnn_squeeze(resized, 0);
        cnn_release(resized);
        return flat;
    }
    }
    return cnn_fail_null(CNN_ERR_ARGUMENT, "%s: unknown mode %d (input %s)", op, (int)mode, cnn_shape_str(image));
}

/* ---- grid ------------------------------------------------------------------------------------------ */

cnn_grid_options cnn_grid_defaults(void) {
    cnn_grid_options o;
    memset(&o, 0, sizeof o);
    o.nrow = 8;
    o.padding = 2;
    return o;
}

static void value_bounds(const float *v, int64_t n, float *low, float *high) {
    float lo = INFINITY, hi = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (v[i] < lo) lo = v[i];
        if (v[i] > hi) hi = v[i];
    }
    *low = lo;
    *high = hi;
}

cnn_tensor *cnn_image_grid(cnn_tensor *batch, const cnn_grid_options *options) {
    const char *op = "image.grid";
    cnn_grid_options o = options ? *options : cnn_grid_defaults();
    if (!batch) return cnn_fail_null(CNN_ERR_ARGUMENT, "%s: the batch is NULL", op);
    if (batch->ndim != 3 && batch->ndim != 4)
        return cnn_fail_null(CNN_ERR_SHAPE, "%s: expected a batch (N, C, H, W) or one image (C, H, W), got shape %s",
                             op, cnn_shape_str(batch));
    const int first = batch->ndim - 3;
    const int64_t N = batch->ndim == 4 ? batch->shape[0] : 1;
    const int64_t C = batch->shape[first], H = batch->shape[first + 1], W = batch->shape[first + 2];
    if (N < 1 || C < 1 || H < 1 || W < 1)
        return cnn_fail_null(CNN_ERR_SHAPE, "%s: the batch %s has no images", op, cnn_shape_str(batch));
    if (o.nrow < 1 || o.padding < 0 || o.padding > 4096)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "%s: nrow must be >= 1 and padding in 0..4096, got nrow %d, padding %d",
                             op, (int)o.nrow, (int)o.padding);
    if (o.use_range && !(o.range[1] > o.range[0]))
        return cnn_fail_null(CNN_ERR_ARGUMENT, "%s: range must be {low, high} with low < high, got {%g, %g}", op,
                             (double)o.range[0], (double)o.range[1]);
    const int64_t columns = N < o.nrow ? N : o.nrow, rows = (N + columns - 1) / columns;
    const int64_t cell_h = H + o.padding, cell_w = W + o.padding;
    int64_t shape[3] = {C, rows * cell_h + o.padding, columns * cell_w + o.padding};
    cnn_tensor *grid = cnn_alloc(3, shape);
    if (!grid) return NULL;
    cnn_tensor *tmp = NULL;
    const float *src = cnn_read_ptr(batch, &tmp);
    if (!src) {
        cnn_release(grid);
        return NULL;
    }
    float *dst = cnn_ptr(grid);
    const int64_t grid_plane = shape[1] * shape[2], image_elems = C * H * W;
    for (int64_t i = 0; i < C * grid_plane; i++) dst[i] = o.pad_value;
    float low = o.range[0], high = o.range[1];
    if (o.normalize && !o.use_range && !o.scale_each) value_bounds(src, N * image_elems, &low, &high);
    for (int64_t k = 0; k < N; k++) {
        const float *image = src + k * image_elems;
        if (o.normalize && !o.use_range && o.scale_each) value_bounds(image, image_elems, &low, &high);
        /* torchvision: clamp to [low, high], then divide by max(high - low, 1e-5) */
        const float span = fmaxf(high - low, 1e-5f);
        const int64_t top = (k / columns) * cell_h + o.padding, left = (k % columns) * cell_w + o.padding;
        for (int64_t c = 0; c < C; c++) {
            for (int64_t y = 0; y < H; y++) {
                const float *in_row = image + (c * H + y) * W;
                float *out_row = dst + c * grid_plane + (top + y) * shape[2] + left;
                if (!o.normalize) {
                    memcpy(out_row, in_row, (size_t)W * sizeof(float));
                    continue;
                }
                for (int64_t x = 0; x < W; x++) {
                    const float v = fminf(fmaxf(in_row[x], low), high);
                    out_row[x] = (v - low) / span;
                }
            }
        }
    }
    cnn_release(tmp);
    return grid;
}
