/* Stride-1 convolutions with few output channels, lanes along image rows (see conv_rows.h).
 * Dimension legend: N batch, C input channels, O output channels, K = C*kh*kw (channel, tap) pairs,
 * P = out_h * out_w output positions per image. An image is done in bands of R output rows (all of
 * them on small images; on large ones as many as keep the shifted copy within BAND_FLOATS), which
 * read Hb = R + (kh-1)*dh rows.
 *
 * Buffers of one band:
 *   shifted  (C, kw, Hb, out_w)   for every channel and kernel column j, the pixels that the band's
 *                                 outputs read through column j, zero in the padding: what its output
 *                                 p = y*out_w + x reads through tap (i, j) is shifted[c][j][p + i*dh*out_w]
 *   acc      (O, K, 16)           weight gradient: 16 partial sums of every weight, per share of
 *                                 the images
 * With the kernel columns laid out apart, the positions of every row of taps are one contiguous run:
 * the products read them 16 or 32 at a time and write (or read) the NCHW planes of the output (or
 * its gradient) directly, and no lane is spent on positions beyond an output row. */
#include "conv_rows.h"

#include <stdlib.h>
#include <string.h>

#include "blas_threads.h"
#include "gemm_kernel.h"

#ifdef __AVX512F__
#include "simd16.h"

/* Floats of a band's shifted copy worth aiming for: it stays in a core's cache (1 MB L2). */
enum { BAND_FLOATS = 1 << 16 };

typedef struct rows_plan {
    const cnn_direct_conv *g;
    int64_t R, Hb, P, plane, image, K; /* plane = Hb * out_w; image = C * kw * plane, rounded up to 16 */
    int64_t chunks;                 /* 16-lane pieces of an output row */
    int64_t *a_steps, *b_steps;     /* (K + 1) offsets of (channel, tap) in the packed kernels and the shifted
                                       copy, then of the bias and of a row of ones */
    uint16_t *inside;               /* (kw, chunks) the lanes of each piece that read the image through column j */
    int64_t *alloc;
} rows_plan;

static float *floats(int64_t n) { return cnn_block_alloc((size_t)(n > 0 ? n : 1) * sizeof(float), false); }

static cnn_status plan_make(rows_plan *r, const cnn_direct_conv *g, const char *op) {
    *r = (rows_plan){.g = g};
    const int64_t reach = (g->kh - 1) * g->dh, per_row = g->C * g->kw * g->out_w;
    r->R = BAND_FLOATS / per_row - reach;
    if (r->R > g->out_h) r->R = g->out_h;
    if (r->R < 1) r->R = 1;
    r->Hb = r->R + reach, r->P = g->out_h * g->out_w, r->plane = r->Hb * g->out_w;
    r->image = (g->C * g->kw * r->plane + 15) / 16 * 16;
    r->K = g->C * g->kh * g->kw, r->chunks = (g->out_w + 15) / 16;
    r->alloc = malloc((size_t)(2 * (r->K + 1)) * sizeof(int64_t) + (size_t)(g->kw * r->chunks) * sizeof(uint16_t));
    if (!r->alloc) return cnn_fail(CNN_ERR_MEMORY, "%s: out of memory", op);
    r->a_steps = r->alloc, r->b_steps = r->a_steps + r->K + 1, r->inside = (uint16_t *)(r->b_steps + r->K + 1);
    r->a_steps[r->K] = r->K, r->b_steps[r->K] = r->image; // the bias, times the ones after the shifted copy
    for (int64_t c = 0, k = 0; c < g->C; c++)
        for (int64_t i = 0; i < g->kh; i++)
            for (int64_t j = 0; j < g->kw; j++, k++) {
                r->a_steps[k] = k;
                r->b_steps[k] = (c * g->kw + j) * r->plane + i * g->dh * g->out_w;
            }
    for (int64_t j = 0; j < g->kw; j++) {
        // output column x reads image column x + j*dw - pad_left
        const int64_t offset = j * g->dw - g->pad_left;
        for (int64_t q = 0; q < r->chunks; q++) {
            uint16_t m = 0;
            for (int64_t l = 0; l < 16 && q * 16 + l < g->out_w; l++)
                if (q * 16 + l + offset >= 0 && q * 16 + l + offset < g->W) m |= (uint16_t)(1u << l);
            r->inside[j * r->chunks + q] = m;
        }
    }
    return CNN_OK;
}

/* shifted <- what output rows [y0, y0 + R) of image n read, as the kernel columns read it (see the top
 * of the file): 16 lanes at a time, the rows being short and many. */
static void shift_band(const rows_plan *r, const float *input, int64_t n, int64_t y0, float *shifted) {
    const cnn_direct_conv *g = r->g;
    const int64_t oW = g->out_w;
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t j = 0; j < g->kw; j++) {
            const float *image = input + (n * g->C + c) * g->H * g->W + j * g->dw - g->pad_left;
            const uint16_t *inside = r->inside + j * r->chunks;
            float *plane = shifted + (c * g->kw + j) * r->plane;
            for (int64_t yp = 0; yp < r->Hb; yp++) {
                const int64_t y = y0 + yp - g->pad_top;
                float *dst = plane + yp * oW;
                if (y < 0 || y >= g->H) {
                    for (int64_t q = 0; q < r->chunks; q++)
                        _mm512_mask_storeu_ps(dst + q * 16, cnn_lanes16(oW - q * 16), zero);
                    continue;
                }
                const float *src = image + y * g->W;
                for (int64_t q = 0; q < r->chunks; q++)
                    _mm512_mask_storeu_ps(dst + q * 16, cnn_lanes16(oW - q * 16),
                                          _mm512_maskz_loadu_ps(inside[q], src + q * 16));
            }
        }
}

/* ---- forward: one output channel per register-block row --------------------------------------------
 * The kernels are packed as rows of K (channel, tap) weights followed by the bias, and the bias
 * enters the product as one more tap that reads a row of ones: no pass of its own over the output. */

typedef struct forward_call {
    const rows_plan *r;
    const float *input, *packed; /* packed (O, K + 1) */
    bool with_bias;
    float *output;
    float **buf; /* per thread: a band's shifted copy, then R * out_w ones (rounded up to 16) */
} forward_call;

static void forward_item(void *ctx, int64_t n, int thread) {
    const forward_call *c = ctx;
    const rows_plan *r = c->r;
    const cnn_direct_conv *g = r->g;
    const int64_t steps = r->K + (c->with_bias ? 1 : 0);
    float *shifted = c->buf[thread];
    for (int64_t y0 = 0; y0 < g->out_h; y0 += r->R) {
        const int64_t band = (g->out_h - y0 < r->R ? g->out_h - y0 : r->R) * g->out_w; // positions
        shift_band(r, c->input, n, y0, shifted);
        for (int64_t o0 = 0; o0 < g->O; o0 += 8) {
            const int rows = g->O - o0 < 8 ? (int)(g->O - o0) : 8;
            const float *a_rows[8];
            float *c_rows[8];
            for (int k = 0; k < 8; k++) a_rows[k] = c->packed + (o0 + (k < rows ? k : 0)) * (r->K + 1);
            for (int64_t p0 = 0; p0 < band; p0 += 32) {
                const int cols = band - p0 < 32 ? (int)(band - p0) : 32;
                for (int k = 0; k < rows; k++) c_rows[k] = c->output + (n * g->O + o0 + k) * r->P + y0 * g->out_w + p0;
                cnn_gemm_kernel_gather_rows(steps, a_rows, r->a_steps, shifted + p0, r->b_steps, c_rows, rows, cols,
                                            false);
            }
        }
    }
}

bool cnn_rows_forward_suits(const cnn_direct_conv *g) {
    return g->sh == 1 && g->sw == 1 && g->O < CNN_DIRECT_FEW_OUTPUTS && g->out_h * g->out_w >= 32;
}

cnn_status cnn_rows_forward(const cnn_direct_conv *g, const float *input, const float *bias, float *output,
                            const char *op) {
    rows_plan r;
    cnn_status st = plan_make(&r, g, op);
    if (st != CNN_OK) return st;
    int threads = cnn_threads_for(g->N * r.P * r.K * g->O, 1 << 18);
    if (threads > g->N) threads = (int)g->N;
    const int64_t ones = (r.R * g->out_w + 15) / 16 * 16;
    float *packed = floats(g->O * (r.K + 1));
    float **buf = calloc((size_t)threads, sizeof *buf);
    bool ok = packed && buf;
    for (int t = 0; ok && t < threads; t++) {
        ok = (buf[t] = floats(r.image + ones)) != NULL;
        for (int64_t i = 0; ok && i < ones; i++) buf[t][r.image + i] = 1.0f;
    }
    if (!ok) {
        st = cnn_fail(CNN_ERR_MEMORY, "%s: out of memory for the convolution buffers", op);
    } else {
        for (int64_t o = 0; o < g->O; o++) {
            for (int64_t c = 0, k = 0; c < g->C; c++)
                for (int64_t i = 0; i < g->kh; i++)
                    for (int64_t j = 0; j < g->kw; j++, k++)
                        packed[o * (r.K + 1) + k] = g->weight[o * g->w_o + c * g->w_c + i * g->w_i + j * g->w_j];
            packed[o * (r.K + 1) + r.K] = bias ? bias[o] : 0.0f;
        }
        forward_call c = {&r, input, packed, bias != NULL, output, buf};
        if (!cnn_run_items(threads, g->N, forward_item, &c)) st = cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
    }
    for (int t = 0; buf && t < threads; t++) cnn_block_free(buf[t], false);
    free(buf);
    cnn_block_free(packed, false);
    free(r.alloc);
    return st;
}

/* ---- weight gradient: 16 positions per lane vector, summed across lanes at the end -----------------
 * dW[o][k] = sum over images and positions p of grad_output[o][p] * shifted[p + b_steps[k]]. A block
 * of DOT_O output channels by DOT_K (channel, tap) pairs keeps its 24 sums in registers over all the
 * positions of an image: per 16 positions DOT_O + DOT_K loads feed 24 multiply-adds. The last block
 * of taps runs only as many of them as are left. */
enum { DOT_O = 6, DOT_K = 4, WEIGHT_SHARES = 8 };

/* The sums of output channel o through tap k: from acc for the live rows, zero for the others (never
 * stored). */
#define DOT_LOAD(o, k) (o < rows && k < taps ? _mm512_loadu_ps(acc[o] + 16 * k) : _mm512_setzero_ps())
#define DOT_DECLARE(o) __m512 s##o##0 = DOT_LOAD(o, 0), s##o##1 = DOT_LOAD(o, 1), s##o##2 = DOT_LOAD(o, 2), \
                              s##o##3 = DOT_LOAD(o, 3)
#define DOT_FMA(k)                                                                                                     \
    do {                                                                                                               \
        if (k < taps) {                                                                                                \
            const __m512 x = _mm512_maskz_loadu_ps(m, x##k + p);                                                       \
            s0##k = _mm512_fmadd_ps(g0, x, s0##k), s1##k = _mm512_fmadd_ps(g1, x, s1##k);                              \
            s2##k = _mm512_fmadd_ps(g2, x, s2##k), s3##k = _mm512_fmadd_ps(g3, x, s3##k);                              \
            s4##k = _mm512_fmadd_ps(g4, x, s4##k), s5##k = _mm512_fmadd_ps(g5, x, s5##k);                              \
        }                                                                                                              \
    } while (0)
#define DOT_STORE(o)                                                                                                   \
    do {                                                                                                               \
        if (o < rows) {                                                                                                \
            _mm512_storeu_ps(acc[o], s##o##0);                                                                         \
            if (taps > 1) _mm512_storeu_ps(acc[o] + 16, s##o##1);                                                      \
            if (taps > 2) _mm512_storeu_ps(acc[o] + 32, s##o##2);                                                      \
            if (taps > 3) _mm512_storeu_ps(acc[o] + 48, s##o##3);                                                      \
        }                                                                                                              \
    } while (0)

/* acc[o] (taps x 16 lanes) += the sums of gy[o] (P positions) with the shifted image through the
 * taps at `steps`, for o < rows <= DOT_O and taps <= DOT_K (a constant where inlined). gy holds
 * DOT_O readable rows. */
static inline __attribute__((always_inline)) void dot_block(const int taps, int64_t P, const float *const gy[DOT_O],
                                                            const float *shifted, const int64_t steps[DOT_K],
                                                            float *const acc[DOT_O], int rows) {
    DOT_DECLARE(0);
    DOT_DECLARE(1);
    DOT_DECLARE(2);
    DOT_DECLARE(3);
    DOT_DECLARE(4);
    DOT_DECLARE(5);
    const float *x0 = shifted + steps[0], *x1 = shifted + steps[taps > 1 ? 1 : 0];
    const float *x2 = shifted + steps[taps > 2 ? 2 : 0], *x3 = shifted + steps[taps > 3 ? 3 : 0];
    const float *y0 = gy[0], *y1 = gy[1], *y2 = gy[2], *y3 = gy[3], *y4 = gy[4], *y5 = gy[5];
    for (int64_t p = 0; p < P; p += 16) {
        const __mmask16 m = cnn_lanes16(P - p);
        const __m512 g0 = _mm512_maskz_loadu_ps(m, y0 + p), g1 = _mm512_maskz_loadu_ps(m, y1 + p);
        const __m512 g2 = _mm512_maskz_loadu_ps(m, y2 + p), g3 = _mm512_maskz_loadu_ps(m, y3 + p);
        const __m512 g4 = _mm512_maskz_loadu_ps(m, y4 + p), g5 = _mm512_maskz_loadu_ps(m, y5 + p);
        DOT_FMA(0);
        DOT_FMA(1);
        DOT_FMA(2);
        DOT_FMA(3);
    }
    DOT_STORE(0);
    DOT_STORE(1);
    DOT_STORE(2);
    DOT_STORE(3);
    DOT_STORE(4);
    DOT_STORE(5);
}

static void dot_block_taps(int taps, int64_t P, const float *const gy[DOT_O], const float *shifted,
                           const int64_t steps[DOT_K], float *const acc[DOT_O], int rows) {
    switch (taps) {
    case 1: dot_block(1, P, gy, shifted, steps, acc, rows); break;
    case 2: dot_block(2, P, gy, shifted, steps, acc, rows); break;
    case 3: dot_block(3, P, gy, shifted, steps, acc, rows); break;
    default: dot_block(4, P, gy, shifted, steps, acc, rows); break;
    }
}

typedef struct weight_call {
    const rows_plan *r;
    const float *input, *grad_output;
    int64_t shares;
    float **acc;     /* per share: (O, K, 16) */
    float **shifted; /* per thread: a band's shifted copy */
} weight_call;

/* One share of the images: a contiguous range, so that the sums do not depend on the scheduling. */
static void weight_share(void *ctx, int64_t share, int thread) {
    const weight_call *c = ctx;
    const rows_plan *r = c->r;
    const cnn_direct_conv *g = r->g;
    const int64_t O = g->O, K = r->K, n_lo = g->N * share / c->shares, n_hi = g->N * (share + 1) / c->shares;
    float *acc = c->acc[share], *shifted = c->shifted[thread];
    memset(acc, 0, (size_t)(O * K * 16) * sizeof(float));
    for (int64_t n = n_lo; n < n_hi; n++)
        for (int64_t y0 = 0; y0 < g->out_h; y0 += r->R) {
            const int64_t band = (g->out_h - y0 < r->R ? g->out_h - y0 : r->R) * g->out_w; // positions
            shift_band(r, c->input, n, y0, shifted);
            for (int64_t o0 = 0; o0 < O; o0 += DOT_O) {
                const int rows = O - o0 < DOT_O ? (int)(O - o0) : DOT_O;
                const float *gy[DOT_O];
                for (int o = 0; o < DOT_O; o++)
                    gy[o] = c->grad_output + (n * O + o0 + (o < rows ? o : 0)) * r->P + y0 * g->out_w;
                for (int64_t k0 = 0; k0 < K; k0 += DOT_K) {
                    const int taps = K - k0 < DOT_K ? (int)(K - k0) : DOT_K;
                    float *acc_rows[DOT_O];
                    for (int o = 0; o < DOT_O; o++) acc_rows[o] = acc + ((o0 + (o < rows ? o : 0)) * K + k0) * 16;
                    dot_block_taps(taps, band, gy, shifted, r->b_steps + k0, acc_rows, rows);
                }
            }
        }
}

/* Measured against the product over output channels (one core, batch 32-64): 2.2x on LeNet's
 * 1->6 5x5 first layer, 2.1x for 3->6 3x3 on 32x32, 1.6x on 8x8 maps, 1.5-1.9x for 32->6 3x3 on
 * 12x12-16x16; 0.9x for 64->6 on 8x8 and 0.6x for 8->6 on 4x4 (the padding, computed here, and
 * the shifted copies dominate), 0.7x with 8 output channels (a second, mostly idle, block of sums). */
bool cnn_rows_weight_grad_suits(const cnn_direct_conv *g) {
    return g->sh == 1 && g->sw == 1 && g->O > 0 && g->O <= DOT_O && g->out_w >= 8 && (g->C < 16 || g->out_w >= 12);
}

cnn_status cnn_rows_weight_grad(const cnn_direct_conv *g, const float *input, const float *grad_output,
                                float *grad_weight, const char *op) {
    rows_plan r;
    cnn_status st = plan_make(&r, g, op);
    if (st != CNN_OK) return st;
    const int64_t O = g->O, K = r.K;
    // a fixed number of shares, whatever the threads: the sums come out the same on any count, and
    // a thread that starts late leaves shares to the others
    const int shares = g->N < WEIGHT_SHARES ? (int)g->N : WEIGHT_SHARES;
    int threads = cnn_threads_for(g->N * r.P * K * O, 1 << 18);
    if (threads > shares) threads = shares;
    float **acc = calloc((size_t)(shares + threads), sizeof *acc), **shifted = acc ? acc + shares : NULL;
    bool ok = acc != NULL;
    for (int s = 0; ok && s < shares; s++) ok = (acc[s] = floats(O * K * 16)) != NULL;
    for (int t = 0; ok && t < threads; t++) ok = (shifted[t] = floats(r.image)) != NULL;
    if (!ok) {
        st = cnn_fail(CNN_ERR_MEMORY, "%s: out of memory for the weight-gradient buffers", op);
    } else {
        weight_call c = {&r, input, grad_output, shares, acc, shifted};
        if (!cnn_run_items(threads, shares, weight_share, &c)) {
            st = cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
        } else {
            // the shares in order, then the 16 lanes of each weight
            float *sum = acc[0];
            for (int s = 1; s < shares; s++)
                for (int64_t i = 0; i < O * K * 16; i += 16)
                    _mm512_storeu_ps(sum + i, _mm512_add_ps(_mm512_loadu_ps(sum + i), _mm512_loadu_ps(acc[s] + i)));
            for (int64_t i = 0; i < O * K; i++) grad_weight[i] = _mm512_reduce_add_ps(_mm512_loadu_ps(sum + i * 16));
        }
    }
    for (int s = 0; acc && s < shares + threads; s++) cnn_block_free(acc[s], false);
    free(acc);
    free(r.alloc);
    return st;
}

#else /* the direct convolutions need AVX-512 (conv_direct.h) */

bool cnn_rows_forward_suits(const cnn_direct_conv *g) {
    CNN_UNUSED(g);
    return false;
}

bool cnn_rows_weight_grad_suits(const cnn_direct_conv *g) {
    CNN_UNUSED(g);
    return false;
}

/* These fail as the direct convolution does without AVX-512. */
cnn_status cnn_rows_forward(const cnn_direct_conv *g, const float *input, const float *bias, float *output,
                            const char *op) {
    return cnn_direct_forward(g, input, bias, output, op);
}

cnn_status cnn_rows_weight_grad(const cnn_direct_conv *g, const float *input, const float *grad_output,
                                float *grad_weight, const char *op) {
    return cnn_direct_weight_grad(g, input, grad_output, grad_weight, op);
}

#endif
