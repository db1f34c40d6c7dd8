/* im2col / col2im for one image. Each kernel offset (c, ki, kj) gives one row of the column matrix;
 * for that row the output positions whose source pixel lies inside the image form one contiguous
 * range [lo, hi) per axis, computed once, so the inner loops copy (or add) without bounds tests and
 * the padding is written as whole zero runs. */
#include "im2col.h"

#include <string.h>

/* ceil(a / b) for b > 0 and any sign of a. */
static int64_t ceil_div(int64_t a, int64_t b) { return a >= 0 ? (a + b - 1) / b : -((-a) / b); }

static int64_t clamp64(int64_t v, int64_t lo, int64_t hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Output positions o in [0, out) whose source o*stride + offset lies in [0, size). */
typedef struct valid_range {
    int64_t lo, hi;
} valid_range;

static valid_range source_range(int64_t offset, int64_t stride, int64_t size, int64_t out) {
    valid_range r;
    r.lo = clamp64(ceil_div(-offset, stride), 0, out);
    r.hi = clamp64(ceil_div(size - offset, stride), r.lo, out);
    return r;
}

void cnn_im2col(const float *image, const cnn_conv_geometry *g, float *col, int64_t col_row_stride) {
    const int64_t H = g->height, W = g->width, oH = g->out_h, oW = g->out_w;
    const int64_t sh = g->stride_h, sw = g->stride_w;
    int64_t r = 0;
    for (int64_t c = 0; c < g->channels; c++) {
        const float *plane = image + c * H * W; // (H, W)
        for (int64_t ki = 0; ki < g->kernel_h; ki++) {
            const int64_t row_offset = ki * g->dilation_h - g->pad_top;
            const valid_range ry = source_range(row_offset, sh, H, oH);
            for (int64_t kj = 0; kj < g->kernel_w; kj++, r++) {
                const int64_t col_offset = kj * g->dilation_w - g->pad_left;
                const valid_range rx = source_range(col_offset, sw, W, oW);
                float *row = col + r * col_row_stride; // (oH, oW)
                memset(row, 0, (size_t)(ry.lo * oW) * sizeof(float));
                for (int64_t oy = ry.lo; oy < ry.hi; oy++) {
                    float *dst = row + oy * oW;
                    const float *src = plane + (oy * sh + row_offset) * W; // (W)
                    memset(dst, 0, (size_t)rx.lo * sizeof(float));
                    if (sw == 1) {
                        memcpy(dst + rx.lo, src + rx.lo + col_offset,
                               (size_t)(rx.hi - rx.lo) * sizeof(float));
                    } else {
                        for (int64_t ox = rx.lo; ox < rx.hi; ox++) dst[ox] = src[ox * sw + col_offset];
                    }
                    memset(dst + rx.hi, 0, (size_t)(oW - rx.hi) * sizeof(float));
                }
                memset(row + ry.hi * oW, 0, (size_t)((oH - ry.hi) * oW) * sizeof(float));
            }
        }
    }
}

void cnn_col2im(const float *col, const cnn_conv_geometry *g, float *image, int64_t col_row_stride) {
    const int64_t H = g->height, W = g->width, oH = g->out_h, oW = g->out_w;
    const int64_t sh = g->stride_h, sw = g->stride_w;
    int64_t r = 0;
    for (int64_t c = 0; c < g->channels; c++) {
        float *plane = image + c * H * W; // (H, W)
        for (int64_t ki = 0; ki < g->kernel_h; ki++) {
            const int64_t row_offset = ki * g->dilation_h - g->pad_top;
            const valid_range ry = source_range(row_offset, sh, H, oH);
            for (int64_t kj = 0; kj < g->kernel_w; kj++, r++) {
                const int64_t col_offset = kj * g->dilation_w - g->pad_left;
                const valid_range rx = source_range(col_offset, sw, W, oW);
                const float *row = col + r * col_row_stride; // (oH, oW)
                for (int64_t oy = ry.lo; oy < ry.hi; oy++) {
                    const float *src = row + oy * oW;
                    float *dst = plane + (oy * sh + row_offset) * W; // (W)
                    if (sw == 1) {
                        for (int64_t ox = rx.lo; ox < rx.hi; ox++) dst[ox + col_offset] += src[ox];
                    } else {
                        for (int64_t ox = rx.lo; ox < rx.hi; ox++) dst[ox * sw + col_offset] += src[ox];
                    }
                }
            }
        }
    }
}
