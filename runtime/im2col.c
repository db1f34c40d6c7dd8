/* im2col / col2im for one image. Each kernel tap (c, ki, kj) gives one row of the column matrix; for
 * that row the output positions whose source pixel lies inside the image form one range [lo, hi)
 * per axis, computed once, so the inner loops copy (or add) without bounds tests.
 *
 * Rows of a few pixels make short inner loops that vectorise badly, so the most common geometry,
 * stride 1 with output rows as wide as the input rows (3x3 "same" and the like), is done in one run
 * per tap: there the source of column entry p is at the constant distance shift = row_offset*W +
 * col_offset from p, all valid positions lie in one contiguous span of the row, and the only
 * entries in that span without a source are those that wrap around a row edge. */
#include "im2col.h"

#include <stdbool.h>
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

static bool rows_align(const cnn_conv_geometry *g) {
    return g->stride_h == 1 && g->stride_w == 1 && g->out_w == g->width;
}

/* One kernel tap of an aligned geometry: its valid output rows/columns and the span they cover. */
typedef struct aligned_tap {
    valid_range ry, rx;
    int64_t begin, end; /* [begin, end): first to last valid position of the row, 0 = 0 when none */
    int64_t shift;      /* source index - column index */
} aligned_tap;

static aligned_tap aligned_tap_at(const cnn_conv_geometry *g, int64_t ki, int64_t kj) {
    const int64_t W = g->width;
    const int64_t row_offset = ki * g->dilation_h - g->pad_top;
    const int64_t col_offset = kj * g->dilation_w - g->pad_left;
    aligned_tap t = {.ry = source_range(row_offset, 1, g->height, g->out_h),
                     .rx = source_range(col_offset, 1, W, W),
                     .shift = row_offset * W + col_offset};
    if (t.ry.lo < t.ry.hi && t.rx.lo < t.rx.hi) {
        t.begin = t.ry.lo * W + t.rx.lo;
        t.end = (t.ry.hi - 1) * W + t.rx.hi;
    }
    return t;
}

/* Zeroes the entries of row inside [begin, end) that wrap around a row edge. Column by column:
 * these are a few columns at the edges, and short row-wise loops would become memset calls. */
static void clear_wrapped(float *row, const aligned_tap *t, int64_t W) {
    for (int64_t ox = 0; ox < t->rx.lo; ox++)
        for (int64_t oy = t->ry.lo + 1; oy < t->ry.hi; oy++) row[oy * W + ox] = 0;
    for (int64_t ox = t->rx.hi; ox < W; ox++)
        for (int64_t oy = t->ry.lo; oy < t->ry.hi - 1; oy++) row[oy * W + ox] = 0;
}

/* Taps outermost: a tap's geometry is shared by all channels. Row of (c, ki, kj): (c*kH + ki)*kW + kj. */
static void im2col_aligned(const float *image, const cnn_conv_geometry *g, float *col, int64_t ld) {
    const int64_t HW = g->height * g->width, P = g->out_h * g->out_w, taps = g->kernel_h * g->kernel_w;
    for (int64_t ki = 0; ki < g->kernel_h; ki++)
        for (int64_t kj = 0; kj < g->kernel_w; kj++) {
            const aligned_tap t = aligned_tap_at(g, ki, kj);
            for (int64_t c = 0; c < g->channels; c++) {
                const float *plane = image + c * HW;                        // (H, W)
                float *row = col + (c * taps + ki * g->kernel_w + kj) * ld; // (oH, oW)
                for (int64_t p = 0; p < t.begin; p++) row[p] = 0;
                for (int64_t p = t.begin; p < t.end; p++) row[p] = plane[p + t.shift];
                for (int64_t p = t.end; p < P; p++) row[p] = 0;
                clear_wrapped(row, &t, g->width);
            }
        }
}

static void col2im_aligned(float *col, const cnn_conv_geometry *g, float *image, int64_t ld) {
    const int64_t HW = g->height * g->width, taps = g->kernel_h * g->kernel_w;
    for (int64_t ki = 0; ki < g->kernel_h; ki++)
        for (int64_t kj = 0; kj < g->kernel_w; kj++) {
            const aligned_tap t = aligned_tap_at(g, ki, kj);
            for (int64_t c = 0; c < g->channels; c++) {
                float *plane = image + c * HW;                              // (H, W)
                float *row = col + (c * taps + ki * g->kernel_w + kj) * ld; // (oH, oW)
                clear_wrapped(row, &t, g->width);
                for (int64_t p = t.begin; p < t.end; p++) plane[p + t.shift] += row[p];
            }
        }
}

/* dst (oW) <- one output row's sources in src_row (W), zero outside the valid span. */
static void copy_span(float *dst, const float *src_row, valid_range rx, int64_t sw, int64_t offset,
                      int64_t oW) {
    for (int64_t ox = 0; ox < rx.lo; ox++) dst[ox] = 0;
    if (sw == 1) {
        for (int64_t ox = rx.lo; ox < rx.hi; ox++) dst[ox] = src_row[ox + offset];
    } else {
        for (int64_t ox = rx.lo; ox < rx.hi; ox++) dst[ox] = src_row[ox * sw + offset];
    }
    for (int64_t ox = rx.hi; ox < oW; ox++) dst[ox] = 0;
}

/* dst_row (W) += one output row src (oW) at its sources. */
static void add_span(float *dst_row, const float *src, valid_range rx, int64_t sw, int64_t offset) {
    if (sw == 1) {
        for (int64_t ox = rx.lo; ox < rx.hi; ox++) dst_row[ox + offset] += src[ox];
    } else {
        for (int64_t ox = rx.lo; ox < rx.hi; ox++) dst_row[ox * sw + offset] += src[ox];
    }
}

/* Any geometry, one output row at a time: unfolds image_in into col when image_in is given,
 * otherwise folds col back onto image_out. */
static void walk_general(const float *image_in, float *image_out, float *col, const cnn_conv_geometry *g,
                         int64_t ld) {
    const int64_t H = g->height, W = g->width, oH = g->out_h, oW = g->out_w;
    const int64_t sh = g->stride_h, sw = g->stride_w;
    int64_t r = 0;
    for (int64_t c = 0; c < g->channels; c++)
        for (int64_t ki = 0; ki < g->kernel_h; ki++) {
            const int64_t row_offset = ki * g->dilation_h - g->pad_top;
            const valid_range ry = source_range(row_offset, sh, H, oH);
            for (int64_t kj = 0; kj < g->kernel_w; kj++, r++) {
                const int64_t col_offset = kj * g->dilation_w - g->pad_left;
                const valid_range rx = source_range(col_offset, sw, W, oW);
                float *row = col + r * ld; // (oH, oW)
                if (image_in) {
                    memset(row, 0, (size_t)(ry.lo * oW) * sizeof(float));
                    memset(row + ry.hi * oW, 0, (size_t)((oH - ry.hi) * oW) * sizeof(float));
                }
                for (int64_t oy = ry.lo; oy < ry.hi; oy++) {
                    const int64_t image_row = (c * H + oy * sh + row_offset) * W;
                    if (image_in)
                        copy_span(row + oy * oW, image_in + image_row, rx, sw, col_offset, oW);
                    else
                        add_span(image_out + image_row, row + oy * oW, rx, sw, col_offset);
                }
            }
        }
}

void cnn_im2col(const float *image, const cnn_conv_geometry *g, float *col, int64_t col_row_stride) {
    if (rows_align(g))
        im2col_aligned(image, g, col, col_row_stride);
    else
        walk_general(image, NULL, col, g, col_row_stride);
}

void cnn_col2im(float *col, const cnn_conv_geometry *g, float *image, int64_t col_row_stride) {
    if (rows_align(g))
        col2im_aligned(col, g, image, col_row_stride);
    else
        walk_general(NULL, image, col, g, col_row_stride);
}
