/* max_pool2d and avg_pool2d with PyTorch's semantics, on (C, H, W) or (N, C, H, W):
 *   oH = floor_or_ceil((H + 2*pad - dilation*(k - 1) - 1) / stride) + 1, and in ceil mode the last
 *   window is dropped when it would start in the bottom/right padding (it must start inside the
 *   input or the top/left padding).
 * Max pooling treats padding as -inf (it never wins) and propagates NaN; backward routes each output
 * gradient to the position that won, remembered in forward. Average pooling divides by the window
 * size clipped to the padded input (count_include_pad) or by the number of real pixels in it. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef __AVX512F__
#include <immintrin.h>
#endif

#include "spatial.h"

cnn_pool2d_options cnn_pool2d_defaults(int32_t kernel_h, int32_t kernel_w) {
    cnn_pool2d_options o = {.kernel = {kernel_h, kernel_w},
                            .stride = {0, 0},
                            .padding = {0, 0},
                            .dilation = {1, 1},
                            .ceil_mode = 0,
                            .count_include_pad = 1};
    return o;
}

typedef struct pool_plan {
    int64_t planes, H, W, oH, oW;
    int64_t kh, kw, sh, sw, ph, pw, dh, dw;
    bool include_pad;
} pool_plan;

static int64_t floor_div(int64_t a, int64_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }
static int64_t ceil_div(int64_t a, int64_t b) { return -floor_div(-a, b); }

static int64_t pool_out_size(int64_t size, int64_t k, int64_t pad, int64_t stride, int64_t dil,
                             bool ceil_mode) {
    int64_t out = floor_div(size + 2 * pad - dil * (k - 1) - 1 + (ceil_mode ? stride - 1 : 0), stride) + 1;
    if (ceil_mode && (out - 1) * stride >= size + pad) out--;
    return out;
}

/* Kernel taps [lo, hi) of a window starting at start whose source start + t*dil lies in [0, size). */
typedef struct tap_range {
    int64_t lo, hi;
} tap_range;

static tap_range taps_inside(int64_t start, int64_t k, int64_t dil, int64_t size) {
    tap_range r = {start < 0 ? ceil_div(-start, dil) : 0, ceil_div(size - start, dil)};
    if (r.hi > k) r.hi = k;
    if (r.hi < r.lo) r.hi = r.lo;
    return r;
}

static bool pool_plan_make(const char *op, const cnn_tensor *input, const cnn_pool2d_options *o,
                           pool_plan *p) {
    if (!cnn_spatial_planes(op, input, &p->planes)) return false;
    const int32_t *k = o->kernel, *s = o->stride, *pad = o->padding, *d = o->dilation;
    const char *what = k[0] < 1 || k[1] < 1       ? "kernel must be positive"
                       : s[0] < 0 || s[1] < 0     ? "stride must be positive"
                       : pad[0] < 0 || pad[1] < 0 ? "padding must be non-negative"
                       : d[0] < 1 || d[1] < 1     ? "dilation must be positive"
                                                  : NULL;
    if (what) {
        cnn_fail(CNN_ERR_ARGUMENT,
                 "%s: %s (kernel %dx%d, stride %dx%d, padding %dx%d, dilation %dx%d; input %s)", op, what,
                 k[0], k[1], s[0], s[1], pad[0], pad[1], d[0], d[1], cnn_shape_str(input));
        return false;
    }
    p->H = input->shape[input->ndim - 2];
    p->W = input->shape[input->ndim - 1];
    p->kh = k[0], p->kw = k[1];
    p->sh = s[0] ? s[0] : k[0], p->sw = s[1] ? s[1] : k[1];
    p->ph = pad[0], p->pw = pad[1];
    p->dh = d[0], p->dw = d[1];
    p->include_pad = o->count_include_pad != 0;
    const int64_t span_h = p->dh * (p->kh - 1) + 1, span_w = p->dw * (p->kw - 1) + 1;
    if (2 * p->ph > span_h || 2 * p->pw > span_w) {
        cnn_fail(CNN_ERR_ARGUMENT,
                 "%s: padding %dx%d must be at most half of the kernel extent %lldx%lld (input %s)", op,
                 pad[0], pad[1], (long long)span_h, (long long)span_w, cnn_shape_str(input));
        return false;
    }
    p->oH = pool_out_size(p->H, p->kh, p->ph, p->sh, p->dh, o->ceil_mode);
    p->oW = pool_out_size(p->W, p->kw, p->pw, p->sw, p->dw, o->ceil_mode);
    if (p->oH < 1 || p->oW < 1) {
        cnn_fail(CNN_ERR_SHAPE,
                 "%s: the output would be %lldx%lld; the %dx%d kernel (dilation %dx%d, padding %dx%d) does "
                 "not fit in the input %s",
                 op, (long long)p->oH, (long long)p->oW, k[0], k[1], d[0], d[1], pad[0], pad[1],
                 cnn_shape_str(input));
        return false;
    }
    if (p->H * p->W > INT32_MAX) {
        cnn_fail(CNN_ERR_SHAPE, "%s: planes of %s are too large", op, cnn_shape_str(input));
        return false;
    }
    return true;
}

/* ---- max pooling ------------------------------------------------------------------------------ */
/* The winner of one window, taps in row-major order: a larger value wins, ties go to the first, and a
 * NaN wins over everything (the last NaN over earlier ones), as PyTorch. */
static inline void max_take(float v, int32_t at, float *best, int32_t *best_at) {
    if (v > *best || isnan(v)) *best = v, *best_at = at;
}

/* Outputs whose window lies wholly inside the input and is not dilated: [lo, hi) per axis. */
typedef struct interior {
    int64_t y_lo, y_hi, x_lo, x_hi;
} interior;

static interior interior_of(const pool_plan *p) {
    interior r = {0, 0, 0, 0};
    if (p->dh != 1 || p->dw != 1) return r;
    r.y_lo = (p->ph + p->sh - 1) / p->sh;
    r.x_lo = (p->pw + p->sw - 1) / p->sw;
    // last output o with o*s - pad + k <= size
    r.y_hi = p->H + p->ph - p->kh < 0 ? 0 : (p->H + p->ph - p->kh) / p->sh + 1;
    r.x_hi = p->W + p->pw - p->kw < 0 ? 0 : (p->W + p->pw - p->kw) / p->sw + 1;
    if (r.y_hi > p->oH) r.y_hi = p->oH;
    if (r.x_hi > p->oW) r.x_hi = p->oW;
    if (r.y_hi < r.y_lo) r.y_hi = r.y_lo;
    if (r.x_hi < r.x_lo) r.x_hi = r.x_lo;
    return r;
}

/* One output whose window may reach into the padding. */
static void max_pool_edge(const pool_plan *p, const float *in, float *out, int32_t *argmax, int64_t oy,
                          int64_t ox) {
    const int64_t y0 = oy * p->sh - p->ph, x0 = ox * p->sw - p->pw;
    const tap_range ty = taps_inside(y0, p->kh, p->dh, p->H), tx = taps_inside(x0, p->kw, p->dw, p->W);
    float best = -INFINITY;
    int32_t best_at = -1;
    for (int64_t i = ty.lo; i < ty.hi; i++) {
        const int64_t row = (y0 + i * p->dh) * p->W;
        for (int64_t j = tx.lo; j < tx.hi; j++) max_take(in[row + x0 + j * p->dw], (int32_t)(row + x0 + j * p->dw), &best, &best_at);
    }
    out[oy * p->oW + ox] = best;
    if (argmax) argmax[oy * p->oW + ox] = best_at;
}

/* Output row oy over [x_lo, x_hi) for the 2x2 stride-2 window, the common case. With AVX-512, 16
 * outputs at a time: the even and odd columns of both source rows are separated with two-register
 * permutes and the four taps compared in order (a masked tail covers the last < 16). */
static void max_pool_row_2x2(const pool_plan *p, const float *in, float *out, int32_t *argmax, int64_t oy,
                             int64_t x_lo, int64_t x_hi) {
    const int64_t W = p->W, y0 = oy * 2 - p->ph;
    const float *r0 = in + y0 * W, *r1 = r0 + W;
    float *o = out + oy * p->oW;
    int32_t *a = argmax ? argmax + oy * p->oW : NULL;
    int64_t ox = x_lo;
#ifdef __AVX512F__
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512i lane2 = _mm512_add_epi32(even, _mm512_set1_epi32((int32_t)(y0 * W - p->pw)));
    for (; ox < x_hi; ox += 16) {
        const int64_t n = x_hi - ox < 16 ? x_hi - ox : 16, x0 = ox * 2 - p->pw;
        const __mmask16 out_mask = (__mmask16)((1u << n) - 1);
        const __mmask16 lo_mask = (__mmask16)(2 * n >= 16 ? 0xffffu : (1u << (2 * n)) - 1);
        const __mmask16 hi_mask = (__mmask16)(2 * n > 16 ? (1u << (2 * n - 16)) - 1 : 0);
        const __m512 a_lo = _mm512_maskz_loadu_ps(lo_mask, r0 + x0), a_hi = _mm512_maskz_loadu_ps(hi_mask, r0 + x0 + 16);
        const __m512 b_lo = _mm512_maskz_loadu_ps(lo_mask, r1 + x0), b_hi = _mm512_maskz_loadu_ps(hi_mask, r1 + x0 + 16);
        const __m512 taps[4] = {_mm512_permutex2var_ps(a_lo, even, a_hi), _mm512_permutex2var_ps(a_lo, odd, a_hi),
                                _mm512_permutex2var_ps(b_lo, even, b_hi), _mm512_permutex2var_ps(b_lo, odd, b_hi)};
        __m512 best = taps[0];
        __m512i at = _mm512_add_epi32(lane2, _mm512_set1_epi32((int32_t)(2 * ox)));
        __m512i best_at = at;
        const int32_t offsets[4] = {0, 1, (int32_t)W, (int32_t)W + 1};
        for (int t = 1; t < 4; t++) {
            const __mmask16 take = _mm512_cmp_ps_mask(taps[t], best, _CMP_GT_OQ) |
                                   _mm512_cmp_ps_mask(taps[t], taps[t], _CMP_UNORD_Q);
            best = _mm512_mask_mov_ps(best, take, taps[t]);
            best_at = _mm512_mask_mov_epi32(best_at, take, _mm512_add_epi32(at, _mm512_set1_epi32(offsets[t])));
        }
        _mm512_mask_storeu_ps(o + ox, out_mask, best);
        if (a) _mm512_mask_storeu_epi32(a + ox, out_mask, best_at);
    }
#endif
    for (; ox < x_hi; ox++) {
        const int64_t x0 = ox * 2 - p->pw;
        float best = r0[x0];
        int32_t at = (int32_t)(y0 * W + x0);
        max_take(r0[x0 + 1], (int32_t)(y0 * W + x0 + 1), &best, &at);
        max_take(r1[x0], (int32_t)((y0 + 1) * W + x0), &best, &at);
        max_take(r1[x0 + 1], (int32_t)((y0 + 1) * W + x0 + 1), &best, &at);
        o[ox] = best;
        if (a) a[ox] = at;
    }
}

/* Output row oy over [x_lo, x_hi), any undilated window wholly inside the input. */
static void max_pool_row_inside(const pool_plan *p, const float *in, float *out, int32_t *argmax, int64_t oy,
                                int64_t x_lo, int64_t x_hi) {
    const int64_t W = p->W, y0 = oy * p->sh - p->ph;
    for (int64_t ox = x_lo; ox < x_hi; ox++) {
        const int64_t x0 = ox * p->sw - p->pw;
        float best = -INFINITY;
        int32_t best_at = -1;
        for (int64_t i = 0; i < p->kh; i++) {
            const float *row = in + (y0 + i) * W + x0;
            for (int64_t j = 0; j < p->kw; j++) max_take(row[j], (int32_t)((y0 + i) * W + x0 + j), &best, &best_at);
        }
        out[oy * p->oW + ox] = best;
        if (argmax) argmax[oy * p->oW + ox] = best_at;
    }
}

#ifdef __AVX512F__
/* Outputs [x_lo, x_hi) of row oy for an undilated window with a column stride of 1 or 2 (ResNet's 3x3
 * stride-2 pooling), 16 at a time: each tap one (stride 1) or two (stride 2, evens picked by a
 * permute) unaligned loads, compared in the scalar code's order. The values come from `src`, a plane
 * of row pitch `pitch` whose (0, 0) is the input's (-pad_top, -pad_left) when `padded` (a copy with
 * -inf borders, so that windows may overlap the padding), else the input itself (windows inside
 * it); argmax positions are the input's either way. */
static void max_pool_row_vector(const pool_plan *p, const float *src, int64_t pitch, bool padded, float *out,
                                int32_t *argmax, int64_t oy, int64_t x_lo, int64_t x_hi) {
    const int64_t sw = p->sw, y0 = oy * p->sh - p->ph;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i even = _mm512_add_epi32(lane, lane);
    for (int64_t ox = x_lo; ox < x_hi; ox += 16) {
        const int64_t n = x_hi - ox < 16 ? x_hi - ox : 16, x0 = ox * sw - p->pw;
        const __mmask16 out_mask = (__mmask16)((1u << n) - 1);
        const __mmask16 lo_mask = sw == 1 ? out_mask : (__mmask16)(2 * n - 1 >= 16 ? 0xffff : (1u << (2 * n - 1)) - 1);
        const __mmask16 hi_mask = (__mmask16)(sw == 2 && 2 * n - 1 > 16 ? (1u << (2 * n - 1 - 16)) - 1 : 0);
        __m512 best = _mm512_set1_ps(-INFINITY);
        __m512i best_at = _mm512_set1_epi32(-1);
        for (int64_t i = 0; i < p->kh; i++)
            for (int64_t j = 0; j < p->kw; j++) {
                const int64_t first = (y0 + i) * p->W + x0 + j; // input position of lane 0's tap
                const float *at = padded ? src + (y0 + i + p->ph) * pitch + x0 + j + p->pw : src + first;
                __m512 v = _mm512_maskz_loadu_ps(lo_mask, at);
                if (sw == 2) v = _mm512_permutex2var_ps(v, even, _mm512_maskz_loadu_ps(hi_mask, at + 16));
                const __mmask16 take = _mm512_cmp_ps_mask(v, best, _CMP_GT_OQ) | _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
                best = _mm512_mask_mov_ps(best, take, v);
                if (argmax)
                    best_at = _mm512_mask_mov_epi32(best_at, take,
                                                    _mm512_add_epi32(_mm512_set1_epi32((int32_t)first), sw == 2 ? even : lane));
            }
        _mm512_mask_storeu_ps(out + oy * p->oW + ox, out_mask, best);
        if (argmax) _mm512_mask_storeu_epi32(argmax + oy * p->oW + ox, out_mask, best_at);
    }
}

/* Rows and columns of the -inf-bordered copy a padded plane needs: everything the windows reach. */
static int64_t padded_rows(const pool_plan *p) { return (p->oH - 1) * p->sh + p->kh; }
static int64_t padded_cols(const pool_plan *p) { return (p->oW - 1) * p->sw + p->kw + 16; }

static bool vector_pooling(const pool_plan *p) { return p->dh == 1 && p->dw == 1 && (p->sw == 1 || p->sw == 2); }

/* The whole plane through the vector rows, from a copy with -inf where the windows overlap padding. */
static void max_pool_plane_padded(const pool_plan *p, const float *in, float *out, int32_t *argmax, float *copy) {
    const int64_t rows = padded_rows(p), cols = padded_cols(p);
    const int64_t x_hi = p->pw + p->W < cols ? p->pw + p->W : cols; // columns [pw, x_hi) come from the input
    for (int64_t r = 0; r < rows; r++) {
        const int64_t y = r - p->ph;
        float *row = copy + r * cols;
        if (y < 0 || y >= p->H) {
            for (int64_t c = 0; c < cols; c++) row[c] = -INFINITY;
            continue;
        }
        for (int64_t c = 0; c < p->pw; c++) row[c] = -INFINITY;
        memcpy(row + p->pw, in + y * p->W, (size_t)(x_hi - p->pw) * sizeof(float));
        for (int64_t c = x_hi; c < cols; c++) row[c] = -INFINITY;
    }
    for (int64_t oy = 0; oy < p->oH; oy++) max_pool_row_vector(p, copy, cols, true, out, argmax, oy, 0, p->oW);
}
#endif

static void max_pool_plane(const pool_plan *p, const float *in, float *out, int32_t *argmax) {
    const interior r = interior_of(p);
    const bool two_by_two = p->kh == 2 && p->kw == 2 && p->sh == 2 && p->sw == 2;
#ifdef __AVX512F__
    const bool vector = vector_pooling(p);
#endif
    for (int64_t oy = 0; oy < p->oH; oy++) {
        const bool inside = oy >= r.y_lo && oy < r.y_hi;
        const int64_t x_lo = inside ? r.x_lo : p->oW, x_hi = inside ? r.x_hi : p->oW;
        for (int64_t ox = 0; ox < x_lo; ox++) max_pool_edge(p, in, out, argmax, oy, ox);
        if (two_by_two)
            max_pool_row_2x2(p, in, out, argmax, oy, x_lo, x_hi);
#ifdef __AVX512F__
        else if (vector)
            max_pool_row_vector(p, in, p->W, false, out, argmax, oy, x_lo, x_hi);
#endif
        else
            max_pool_row_inside(p, in, out, argmax, oy, x_lo, x_hi);
        for (int64_t ox = x_hi; ox < p->oW; ox++) max_pool_edge(p, in, out, argmax, oy, ox);
    }
}

enum { MAX_KH, MAX_KW, MAX_SH, MAX_SW, MAX_PH, MAX_PW, MAX_DH, MAX_DW, MAX_N_PARAMS };

/* A 2x2 stride-2 pooling whose windows tile the plane exactly (even sizes, no padding): its input
 * gradient is written once, pixel by pixel, without the zeroing and scattered adds of the general
 * backward (which reads and writes the whole gradient twice). */
static bool tiles_2x2(const int64_t *v, int64_t H, int64_t W, int64_t oH, int64_t oW) {
    return v[MAX_KH] == 2 && v[MAX_KW] == 2 && v[MAX_SH] == 2 && v[MAX_SW] == 2 && v[MAX_PH] == 0 &&
           v[MAX_PW] == 0 && v[MAX_DH] == 1 && v[MAX_DW] == 1 && H == 2 * oH && W == 2 * oW;
}

/* One plane of that gradient: each window's winner gets its output's gradient, the others zero. */
static void max_pool_2x2_plane_backward(const int32_t *argmax, const float *go, float *gi, int64_t oH, int64_t oW) {
    const int64_t W = 2 * oW;
    int64_t ox0 = 0;
    for (int64_t oy = 0; oy < oH; oy++) {
        float *row0 = gi + 2 * oy * W, *row1 = row0 + W;
#ifdef __AVX512F__
        // 16 windows at a time: the taps' gradients in four registers, interleaved into two rows
        const __m512i twice = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        const __m512i hi = _mm512_add_epi32(lo, _mm512_set1_epi32(8));
        for (ox0 = 0; ox0 < oW; ox0 += 16) {
            const int64_t n = oW - ox0 < 16 ? oW - ox0 : 16;
            const __mmask16 m = (__mmask16)((1u << n) - 1);
            const __m512i at = _mm512_maskz_loadu_epi32(m, argmax + oy * oW + ox0);
            const __m512 g = _mm512_maskz_loadu_ps(m, go + oy * oW + ox0);
            const __m512i tap0 = _mm512_add_epi32(_mm512_set1_epi32((int32_t)(2 * oy * W + 2 * ox0)), twice);
            const __m512i tap2 = _mm512_add_epi32(tap0, _mm512_set1_epi32((int32_t)W));
            const __m512i one = _mm512_set1_epi32(1);
            const __m512 v0 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, tap0), g);
            const __m512 v1 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_add_epi32(tap0, one)), g);
            const __m512 v2 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, tap2), g);
            const __m512 v3 = _mm512_maskz_mov_ps(_mm512_cmpeq_epi32_mask(at, _mm512_add_epi32(tap2, one)), g);
            const __mmask16 first = (__mmask16)(2 * n >= 16 ? 0xffffu : (1u << (2 * n)) - 1);
            const __mmask16 second = (__mmask16)(2 * n > 16 ? (1u << (2 * n - 16)) - 1 : 0);
            _mm512_mask_storeu_ps(row0 + 2 * ox0, first, _mm512_permutex2var_ps(v0, lo, v1));
            _mm512_mask_storeu_ps(row0 + 2 * ox0 + 16, second, _mm512_permutex2var_ps(v0, hi, v1));
            _mm512_mask_storeu_ps(row1 + 2 * ox0, first, _mm512_permutex2var_ps(v2, lo, v3));
            _mm512_mask_storeu_ps(row1 + 2 * ox0 + 16, second, _mm512_permutex2var_ps(v2, hi, v3));
        }
#endif
        for (int64_t ox = ox0; ox < oW; ox++) {
            const int32_t at = argmax[oy * oW + ox], tap0 = (int32_t)(2 * oy * W + 2 * ox);
            const float g = go[oy * oW + ox];
            row0[2 * ox] = at == tap0 ? g : 0.0f;
            row0[2 * ox + 1] = at == tap0 + 1 ? g : 0.0f;
            row1[2 * ox] = at == tap0 + (int32_t)W ? g : 0.0f;
            row1[2 * ox + 1] = at == tap0 + (int32_t)W + 1 ? g : 0.0f;
        }
    }
}

/* node->ctx holds the winning position within its plane for every output element. */
static cnn_status max_pool2d_backward(cnn_node *node, cnn_tensor *grad_output, cnn_tensor **grad_inputs) {
    const cnn_tensor *input = node->inputs[0];
    const int32_t *argmax = node->ctx;
    const int64_t H = input->shape[input->ndim - 2], W = input->shape[input->ndim - 1];
    const int64_t oH = grad_output->shape[grad_output->ndim - 2], oW = grad_output->shape[grad_output->ndim - 1];
    const int64_t plane_in = H * W, plane_out = oH * oW, planes = cnn_spatial_count(input);
    const bool tiled = tiles_2x2(node->ints, H, W, oH, oW);
    cnn_spatial_io io;
    if (!cnn_spatial_backward_begin_as(&io, grad_output, input, !tiled)) return cnn_last_status();
    if (tiled) {
#pragma omp parallel for if (planes * plane_in > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
        for (int64_t c = 0; c < planes; c++)
            max_pool_2x2_plane_backward(argmax + c * plane_out, io.src + c * plane_out, io.dst + c * plane_in, oH, oW);
        return cnn_spatial_backward_end(&io, grad_inputs);
    }
#pragma omp parallel for if (planes * plane_out > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < planes; c++)
        for (int64_t i = 0; i < plane_out; i++) {
            const int32_t at = argmax[c * plane_out + i];
            if (at >= 0) io.dst[c * plane_in + at] += io.src[c * plane_out + i];
        }
    return cnn_spatial_backward_end(&io, grad_inputs);
}

cnn_tensor *cnn_max_pool2d(cnn_tensor *input, const cnn_pool2d_options *options) {
    if (!options)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "max_pool2d: options are required (the kernel size)");
    pool_plan p;
    cnn_spatial_io io;
    if (!pool_plan_make("max_pool2d", input, options, &p) ||
        !cnn_spatial_forward_begin(&io, input, p.oH, p.oW))
        return NULL;
    // the winners are only remembered when a graph will be recorded
    const bool track = cnn_is_grad_enabled() && input->requires_grad;
    int32_t *argmax = track ? malloc((size_t)(p.planes * p.oH * p.oW + 1) * sizeof(int32_t)) : NULL;
    if (track && !argmax) {
        cnn_spatial_io_abort(&io);
        return cnn_fail_null(CNN_ERR_MEMORY, "max_pool2d: out of memory (input %s)", cnn_shape_str(input));
    }
    const int64_t plane_in = p.H * p.W, plane_out = p.oH * p.oW;
    const int64_t params[MAX_N_PARAMS] = {p.kh, p.kw, p.sh, p.sw, p.ph, p.pw, p.dh, p.dw};
#ifdef __AVX512F__
    // with padding, every window is done by the vector rows on a -inf-bordered copy of its plane
    if ((p.ph > 0 || p.pw > 0) && vector_pooling(&p)) {
        const int64_t copy_floats = padded_rows(&p) * padded_cols(&p);
        bool failed = false;
#pragma omp parallel if (p.planes * plane_out * p.kh * p.kw > CNN_SPATIAL_PARALLEL_MIN)
        {
            float *copy = malloc((size_t)copy_floats * sizeof(float));
            if (!copy) failed = true;
#pragma omp for schedule(static)
            for (int64_t c = 0; c < p.planes; c++)
                if (copy)
                    max_pool_plane_padded(&p, io.src + c * plane_in, io.dst + c * plane_out,
                                          argmax ? argmax + c * plane_out : NULL, copy);
            free(copy);
        }
        if (failed) {
            free(argmax);
            cnn_spatial_io_abort(&io);
            return cnn_fail_null(CNN_ERR_MEMORY, "max_pool2d: out of memory (input %s)", cnn_shape_str(input));
        }
        return cnn_spatial_forward_end(&io, input, "max_pool2d", max_pool2d_backward, params, MAX_N_PARAMS, argmax);
    }
#endif
#pragma omp parallel for if (p.planes * plane_out * p.kh * p.kw > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < p.planes; c++)
        max_pool_plane(&p, io.src + c * plane_in, io.dst + c * plane_out,
                       argmax ? argmax + c * plane_out : NULL);
    return cnn_spatial_forward_end(&io, input, "max_pool2d", max_pool2d_backward, params, MAX_N_PARAMS, argmax);
}

/* ---- average pooling -------------------------------------------------------------------------- */
/* The window of output (oy, ox) clipped to the input, and the divisor PyTorch uses for it. */
typedef struct avg_window {
    int64_t y0, y1, x0, x1;
    float scale; /* 1 / divisor */
} avg_window;

static avg_window avg_window_at(const pool_plan *p, int64_t oy, int64_t ox) {
    avg_window w;
    w.y0 = oy * p->sh - p->ph;
    w.x0 = ox * p->sw - p->pw;
    w.y1 = w.y0 + p->kh < p->H + p->ph ? w.y0 + p->kh : p->H + p->ph;
    w.x1 = w.x0 + p->kw < p->W + p->pw ? w.x0 + p->kw : p->W + p->pw;
    const int64_t padded_count = (w.y1 - w.y0) * (w.x1 - w.x0);
    if (w.y0 < 0) w.y0 = 0;
    if (w.x0 < 0) w.x0 = 0;
    if (w.y1 > p->H) w.y1 = p->H;
    if (w.x1 > p->W) w.x1 = p->W;
    const int64_t count = p->include_pad ? padded_count : (w.y1 - w.y0) * (w.x1 - w.x0);
    w.scale = count > 0 ? 1.0f / (float)count : 0.0f;
    return w;
}

static void avg_pool_plane(const pool_plan *p, const float *in, float *out) {
    for (int64_t oy = 0; oy < p->oH; oy++)
        for (int64_t ox = 0; ox < p->oW; ox++) {
            const avg_window w = avg_window_at(p, oy, ox);
            float sum = 0;
            for (int64_t y = w.y0; y < w.y1; y++)
                for (int64_t x = w.x0; x < w.x1; x++) sum += in[y * p->W + x];
            out[oy * p->oW + ox] = sum * w.scale;
        }
}

static void avg_pool_plane_backward(const pool_plan *p, const float *go, float *gi) {
    for (int64_t oy = 0; oy < p->oH; oy++)
        for (int64_t ox = 0; ox < p->oW; ox++) {
            const avg_window w = avg_window_at(p, oy, ox);
            const float g = go[oy * p->oW + ox] * w.scale;
            for (int64_t y = w.y0; y < w.y1; y++)
                for (int64_t x = w.x0; x < w.x1; x++) gi[y * p->W + x] += g;
        }
}

enum { AVG_KH, AVG_KW, AVG_SH, AVG_SW, AVG_PH, AVG_PW, AVG_INCLUDE_PAD, AVG_N_PARAMS };

static cnn_status avg_pool2d_backward(cnn_node *node, cnn_tensor *grad_output, cnn_tensor **grad_inputs) {
    const cnn_tensor *input = node->inputs[0];
    const int64_t *v = node->ints;
    const pool_plan p = {.planes = cnn_spatial_count(input),
                         .H = input->shape[input->ndim - 2],
                         .W = input->shape[input->ndim - 1],
                         .oH = grad_output->shape[grad_output->ndim - 2],
                         .oW = grad_output->shape[grad_output->ndim - 1],
                         .kh = v[AVG_KH],
                         .kw = v[AVG_KW],
                         .sh = v[AVG_SH],
                         .sw = v[AVG_SW],
                         .ph = v[AVG_PH],
                         .pw = v[AVG_PW],
                         .dh = 1,
                         .dw = 1,
                         .include_pad = v[AVG_INCLUDE_PAD] != 0};
    cnn_spatial_io io;
    if (!cnn_spatial_backward_begin(&io, grad_output, input)) return cnn_last_status();
#pragma omp parallel for if (p.planes * p.oH * p.oW * p.kh * p.kw > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < p.planes; c++)
        avg_pool_plane_backward(&p, io.src + c * p.oH * p.oW, io.dst + c * p.H * p.W);
    return cnn_spatial_backward_end(&io, grad_inputs);
}

cnn_tensor *cnn_avg_pool2d(cnn_tensor *input, const cnn_pool2d_options *options) {
    if (!options)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "avg_pool2d: options are required (the kernel size)");
    if (options->dilation[0] != 1 || options->dilation[1] != 1)
        return cnn_fail_null(CNN_ERR_ARGUMENT,
                             "avg_pool2d: dilation %dx%d is not supported, only 1x1 (input %s)",
                             options->dilation[0], options->dilation[1], cnn_shape_str(input));
    pool_plan p;
    cnn_spatial_io io;
    if (!pool_plan_make("avg_pool2d", input, options, &p) ||
        !cnn_spatial_forward_begin(&io, input, p.oH, p.oW))
        return NULL;
#pragma omp parallel for if (p.planes * p.oH * p.oW * p.kh * p.kw > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < p.planes; c++)
        avg_pool_plane(&p, io.src + c * p.H * p.W, io.dst + c * p.oH * p.oW);
    const int64_t params[AVG_N_PARAMS] = {p.kh, p.kw, p.sh, p.sw, p.ph, p.pw, p.include_pad};
    return cnn_spatial_forward_end(&io, input, "avg_pool2d", avg_pool2d_backward, params, AVG_N_PARAMS, NULL);
}
