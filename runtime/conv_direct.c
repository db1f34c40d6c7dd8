/* Convolutions as in-place gathered products (see conv_direct.h). Dimension legend: N batch, C input
 * channels, O output channels (Op rounded up to the register block's width NRv: 16 or 32), P =
 * out_h * out_w positions per image, taps the kernel taps kept, B images per chunk, Q = B*P.
 *
 * Two orders of the same product, by the number of input channels:
 *   tap-major (C >= 16): one product per tap, over the positions where that tap lands inside the
 *     image and summing over the C channels. Nothing is computed for padding (on a 4x4 map with
 *     3x3 kernels that is 30% of the dense count); the images are copied channel-last first.
 *   dense (few channels): one product over (channel, tap) pairs, which keeps the sums long when C
 *     alone is too short for a register block to pay; the image is first copied with its zero border
 *     so that every tap can read at any position.
 *
 * Buffers of one chunk of images:
 *   padded   (B, C, Hp, Wp)          dense: the images with their zero border;
 *            (B, H, W, C)            tap-major: the images channel-last
 *   rows     (Q, Op)                 outputs, or output gradients, as rows of channels
 *   packed   (Op/NRv, taps, C, NRv)  the kernels as the product's b panels (forward)
 *   valid    (taps, Q)               tap-major: for each tap, the positions where it lands inside
 *   wt       (C, taps, Op)           a thread's share of the (transposed) weight gradient
 * Chunks of images are spread over threads; when there are fewer chunks than threads the positions
 * (forward) or channels (weight gradient) of a chunk are shared out as well.
 *
 * Measured against im2col + sgemm on one core (bench/ shapes): 1.1-1.4x on 3x3 convolutions of
 * 64-256 channels on 8x8-2x2 maps (tap-major), 2.2x on ResNet's 7x7 stride-2 first layer (dense);
 * tap-major beats dense from 16 channels (1.1-1.5x, nothing computed for padding); the channel-last
 * copy made tap-major 1.1-1.3x faster than reading NCHW planes in place. */
#include "conv_direct.h"

#include <stdlib.h>
#include <string.h>

#include "blas_threads.h"
#include "conv_inplace.h"
#include "conv_rows.h"
#include "gemm_kernel.h"

#ifdef __AVX512F__
#include "simd16.h"

/* Positions per chunk worth aiming for, the floats a chunk's buffers may take, and the channel count
 * from which one tap's sums are long enough to be products of their own. */
enum { TARGET_POSITIONS = 512, CHUNK_BUDGET_FLOATS = 1 << 20, TAP_MAJOR_MIN_CHANNELS = 16 };

typedef void (*gather_kernel)(int64_t, const float *const *, const int64_t *, const float *, int64_t, float *const *,
                              int, int, bool);

typedef struct direct_plan {
    const cnn_direct_conv *g;
    bool tap_major;
    int64_t P, taps, NRv, Op, panels;
    int64_t *tap_i, *tap_j;              /* (taps) kernel row and column of each kept tap */
    int64_t *y_lo, *y_hi, *x_lo, *x_hi;  /* (taps) output rows / columns where the tap lands inside */
    int64_t col, pitch, plane, image;    /* strides of what the product reads: padded copy or channel-last */
    int64_t Hp, Wp;                      /* dense: extents of the padded copy */
    int64_t shift;                       /* offset of output (0, 0)'s window in what the product reads */
    int64_t K;                           /* length of one sum: C (tap-major) or C * taps (dense) */
    int64_t *k_off;                      /* (K) offset of each summed element from a position's base */
    int64_t *tap_off;                    /* (taps) offset of each tap within a channel */
    int64_t B, chunks, parts, items;
    int threads;
    gather_kernel kernel;
    int64_t *alloc;
} direct_plan;

static float *floats(int64_t n) { return cnn_block_alloc((size_t)(n > 0 ? n : 1) * sizeof(float), false); }

/* Outputs o in [0, out) with 0 <= o*s - pad + i*d < size: [lo, hi). */
static void reach(int64_t i, int64_t out, int64_t s, int64_t pad, int64_t d, int64_t size, int64_t *lo, int64_t *hi) {
    *lo = out, *hi = 0;
    for (int64_t o = 0; o < out; o++) {
        const int64_t at = o * s - pad + i * d;
        if (at >= 0 && at < size) {
            if (o < *lo) *lo = o;
            *hi = o + 1;
        }
    }
    if (*hi < *lo) *hi = *lo;
}

/* for_weights: the plan of a weight gradient, whose chunks are shared out by rows of the gradient
 * rather than by positions. */
static cnn_status plan_make(direct_plan *w, const cnn_direct_conv *g, bool for_weights, const char *op) {
    *w = (direct_plan){.g = g};
    w->P = g->out_h * g->out_w;
    w->NRv = g->O <= 16 ? 16 : 32;
    w->Op = (g->O + w->NRv - 1) / w->NRv * w->NRv, w->panels = w->Op / w->NRv;
    w->kernel = w->NRv == 16 ? cnn_gemm_kernel_gather16 : cnn_gemm_kernel_gather;
    w->tap_major = g->C >= TAP_MAJOR_MIN_CHANNELS;
    const int64_t all_taps = g->kh * g->kw;
    w->alloc = malloc((size_t)(7 * all_taps + g->C * all_taps) * sizeof(int64_t));
    if (!w->alloc) return cnn_fail(CNN_ERR_MEMORY, "%s: out of memory", op);
    w->tap_i = w->alloc, w->tap_j = w->tap_i + all_taps, w->y_lo = w->tap_j + all_taps, w->y_hi = w->y_lo + all_taps;
    w->x_lo = w->y_hi + all_taps, w->x_hi = w->x_lo + all_taps, w->tap_off = w->x_hi + all_taps;
    w->k_off = w->tap_off + all_taps;
    for (int64_t i = 0; i < g->kh; i++) {
        int64_t ylo, yhi;
        reach(i, g->out_h, g->sh, g->pad_top, g->dh, g->H, &ylo, &yhi);
        if (ylo >= yhi) continue;
        for (int64_t j = 0; j < g->kw; j++) {
            int64_t xlo, xhi;
            reach(j, g->out_w, g->sw, g->pad_left, g->dw, g->W, &xlo, &xhi);
            if (xlo >= xhi) continue;
            const int64_t t = w->taps++;
            w->tap_i[t] = i, w->tap_j[t] = j, w->y_lo[t] = ylo, w->y_hi[t] = yhi, w->x_lo[t] = xlo, w->x_hi[t] = xhi;
        }
    }
    if (w->tap_major) { // the images channel-last; a position's base is its window's corner
        w->col = g->C, w->pitch = g->W * g->C, w->plane = 1, w->image = g->H * g->W * g->C;
        w->shift = (-g->pad_top * g->W - g->pad_left) * g->C;
        w->K = g->C;
        for (int64_t c = 0; c < g->C; c++) w->k_off[c] = c;
    } else { // the padded copy: what outputs read, zero outside the image
        w->Hp = (g->out_h - 1) * g->sh + (g->kh - 1) * g->dh + 1;
        w->Wp = (g->out_w - 1) * g->sw + (g->kw - 1) * g->dw + 1;
        w->col = 1, w->pitch = w->Wp, w->plane = w->Hp * w->Wp, w->image = g->C * w->plane, w->shift = 0;
        w->K = g->C * w->taps;
    }
    for (int64_t t = 0; t < w->taps; t++)
        w->tap_off[t] = w->tap_i[t] * g->dh * w->pitch + w->tap_j[t] * g->dw * w->col;
    if (!w->tap_major)
        for (int64_t c = 0; c < g->C; c++)
            for (int64_t t = 0; t < w->taps; t++) w->k_off[c * w->taps + t] = c * w->plane + w->tap_off[t];
    // images per chunk: about TARGET_POSITIONS rows, within the budget
    int64_t B = (TARGET_POSITIONS + w->P - 1) / w->P;
    const int64_t per_image = w->image + (w->tap_major ? w->taps * w->P * 2 : 0) + 2 * w->P * w->Op;
    if (B > CHUNK_BUDGET_FLOATS / per_image) B = CHUNK_BUDGET_FLOATS / per_image;
    if (B > g->N) B = g->N;
    w->B = B < 1 ? 1 : B;
    w->chunks = (g->N + w->B - 1) / w->B;
    const int max_threads = cnn_threads_for(g->N * w->P * g->C * w->taps * w->Op, 1 << 20);
    // shares of a chunk: 8-row tiles of positions (forward) or of the weight gradient's rows
    const int64_t tiles = for_weights ? (w->tap_major ? (g->C + 7) / 8 : (w->K + 7) / 8) : (w->B * w->P + 7) / 8;
    w->parts = w->chunks >= 2 * max_threads ? 1 : (2 * max_threads + w->chunks - 1) / w->chunks;
    if (w->parts > tiles) w->parts = tiles;
    if (w->parts < 1) w->parts = 1;
    w->items = w->chunks * w->parts;
    w->threads = w->items < max_threads ? (int)w->items : max_threads;
    return CNN_OK;
}

static void plan_free(direct_plan *w) { free(w->alloc); }

/* Images [n0 + b_lo, n0 + b_hi) of a chunk as the product reads them, each at its place in `copy`: channel-last (tap-major: a position's
 * channels are then the contiguous run its sums walk, one cache line per 16 steps instead of one per
 * step; measured 1.1-1.3x on 128-256 channel layers), or padded planes (dense). */
static const float *chunk_images(const direct_plan *w, const float *input, int64_t n0, int64_t b_lo, int64_t b_hi,
                                 float *copy) {
    const cnn_direct_conv *g = w->g;
    float *padded = copy;
    if (w->tap_major) {
        const int64_t HW = g->H * g->W, C = g->C;
        for (int64_t b = b_lo; b < b_hi; b++) {
            const float *image = input + (n0 + b) * C * HW; // (C, HW)
            float *dst = copy + b * w->image;               // (HW, C)
            for (int64_t p0 = 0; p0 < HW; p0 += 16) {
                const __mmask16 positions = cnn_lanes16(HW - p0);
                for (int64_t c0 = 0; c0 < C; c0 += 16) {
                    __m512 r[16];
                    for (int64_t l = 0; l < 16; l++)
                        r[l] = c0 + l < C ? _mm512_maskz_loadu_ps(positions, image + (c0 + l) * HW + p0)
                                          : _mm512_setzero_ps();
                    cnn_transpose16(r); // r[k]: position p0 + k, channels c0..c0+15
                    const __mmask16 channels = cnn_lanes16(C - c0);
                    for (int64_t k = 0; k < 16 && p0 + k < HW; k++)
                        _mm512_mask_storeu_ps(dst + (p0 + k) * C + c0, channels, r[k]);
                }
            }
        }
        return copy;
    }
    // columns [x_lo, x_hi) of a padded row come from the image, starting at image column x_lo - pad_left
    int64_t x_lo = g->pad_left < 0 ? 0 : g->pad_left, x_hi = g->pad_left + g->W;
    if (x_hi > w->Wp) x_hi = w->Wp;
    if (x_hi < x_lo) x_hi = x_lo;
    const int64_t Wp = w->Wp;
    for (int64_t b = b_lo; b < b_hi; b++)
        for (int64_t c = 0; c < g->C; c++) {
            const float *src = input + ((n0 + b) * g->C + c) * g->H * g->W; // (H, W)
            float *dst = padded + b * w->image + c * w->plane;              // (Hp, Wp)
            for (int64_t yp = 0; yp < w->Hp; yp++) {
                float *row = dst + yp * Wp;
                const int64_t y = yp - g->pad_top;
                if (y < 0 || y >= g->H) {
                    for (int64_t x = 0; x < Wp; x++) row[x] = 0;
                    continue;
                }
                const float *from = src + y * g->W - g->pad_left;
                for (int64_t x = 0; x < x_lo; x++) row[x] = 0;
                for (int64_t x = x_lo; x < x_hi; x++) row[x] = from[x];
                for (int64_t x = x_hi; x < Wp; x++) row[x] = 0;
            }
        }
    return padded;
}

/* base[q - q0] <- offset of the window of chunk position q (image q / P, position q % P) in what the
 * product reads, for q in [q0, q1). */
static void position_bases(const direct_plan *w, int64_t q0, int64_t q1, int64_t *base) {
    const int64_t oW = w->g->out_w, row_step = w->g->sh * w->pitch, col_step = w->g->sw * w->col;
    int64_t b = q0 / w->P, p = q0 % w->P, oy = p / oW, ox = p % oW;
    for (int64_t q = q0; q < q1; q++) {
        base[q - q0] = b * w->image + oy * row_step + ox * col_step + w->shift;
        if (++ox == oW) {
            ox = 0;
            if (++oy == w->g->out_h) oy = 0, b++;
        }
    }
}

/* valid <- the chunk positions in [q0, q1) where tap t lands inside the image (a rectangle of each
 * image's outputs); returns their count. */
static int64_t valid_positions(const direct_plan *w, int64_t t, int64_t q0, int64_t q1, int64_t *valid) {
    const int64_t oW = w->g->out_w, P = w->P;
    int64_t n = 0;
    for (int64_t b = q0 / P; b * P < q1; b++)
        for (int64_t oy = w->y_lo[t]; oy < w->y_hi[t]; oy++) {
            const int64_t row = b * P + oy * oW;
            int64_t lo = row + w->x_lo[t], hi = row + w->x_hi[t];
            if (lo < q0) lo = q0;
            if (hi > q1) hi = q1;
            for (int64_t q = lo; q < hi; q++) valid[n++] = q;
        }
    return n;
}

/* ---- forward ------------------------------------------------------------------------------------ */
typedef struct forward_buffers {
    float *padded, *rows;
    int64_t *base;  /* (Q) window offsets of the chunk's positions */
    int64_t *valid; /* tap-major: (taps, Q) positions where each tap lands inside, then (taps) counts */
} forward_buffers;

/* base + offset[k] (16 floats) <- column k of rows [o0, o0 + 16) of a row-major (O, K) matrix, for
 * every k < K with offset[k] >= 0 (zeros for rows past O): 16 x 16 blocks transposed in registers. */
static void transpose_rows16(const float *src, int64_t O, int64_t K, int64_t o0, float *base, const int64_t *offset) {
    for (int64_t k0 = 0; k0 < K; k0 += 16) {
        int64_t wanted = 0; // blocks of columns nobody wants (taps left out) are skipped
        for (int64_t m = 0; m < 16 && k0 + m < K; m++) wanted |= offset[k0 + m] >= 0;
        if (!wanted) continue;
        __m512 r[16];
        const __mmask16 cols = cnn_lanes16(K - k0);
        for (int64_t l = 0; l < 16; l++)
            r[l] = o0 + l < O ? _mm512_maskz_loadu_ps(cols, src + (o0 + l) * K + k0) : _mm512_setzero_ps();
        cnn_transpose16(r); // r[m]: the 16 values of column k0 + m
        for (int64_t m = 0; m < 16 && k0 + m < K; m++)
            if (offset[k0 + m] >= 0) _mm512_storeu_ps(base + offset[k0 + m], r[m]);
    }
}

/* Packed row of input channel c and kept tap t. */
static inline int64_t pack_row(const direct_plan *w, int64_t c, int64_t t) {
    return w->tap_major ? t * w->g->C + c : c * w->taps + t;
}

/* packed (panels, taps, C, NRv) <- the kernels, zero beyond O. Dense products read (C, taps) pairs in
 * the order c * taps + t, tap-major ones a tap's C channels: each is one layout of the K rows.
 * A weight in its own layout (each output channel's C*kh*kw values contiguous) is read in 16 x 16
 * blocks transposed in registers, unless most taps are left out (then the kept ones are gathered:
 * 5x faster for the centre tap alone). An input gradient's kernels (flipped, input and output channels
 * swapped: g->weight points at the last tap of a (C, O, kh, kw) weight) take two such passes,
 * through a (taps, O, C) copy; a strided gather of the same values ran 4x slower. Only output
 * channels [o_lo, o_hi) (whole panels; all of them for the flipped kernels) are packed, each at its
 * place counted from `packed`. Returns false when out of memory. */
static bool pack_weights(const direct_plan *w, float *packed, int64_t o_lo, int64_t o_hi) {
    const cnn_direct_conv *g = w->g;
    const int64_t T = g->kh * g->kw, K_all = g->C * T, panel_floats = w->taps * g->C * w->NRv;
    // taps kept sparsely (1 of 9 on 1x1 maps) are cheaper gathered than transposed with the rest
    const bool own_layout = g->w_j == 1 && g->w_i == g->kw && g->w_c == T && g->w_o == K_all && 2 * w->taps > T;
    const bool flipped = g->w_j == -1 && g->w_i == -g->kw && g->w_o == T && g->w_c == g->O * T;
    const int64_t longest = g->C > g->O ? g->C * T : g->O * T;
    int64_t *kept = malloc((size_t)(T + longest + 16) * sizeof(int64_t)); // kept index of each tap, or -1
    if (!kept) return false;
    int64_t *offset = kept + T;
    for (int64_t a = 0; a < T; a++) kept[a] = -1;
    for (int64_t t = 0; t < w->taps; t++) kept[w->tap_i[t] * g->kw + w->tap_j[t]] = t;
    const int threads = cnn_threads_for(g->O * K_all, 1 << 15);
    bool ok = true;
    if (own_layout) {
        for (int64_t c = 0; c < g->C; c++)
            for (int64_t a = 0; a < T; a++) offset[c * T + a] = kept[a] < 0 ? -1 : pack_row(w, c, kept[a]) * w->NRv;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t o0 = o_lo; o0 < o_hi; o0 += 16)
            transpose_rows16(g->weight, g->O, K_all, o0, packed + (o0 / w->NRv) * panel_floats + o0 % w->NRv, offset);
    } else if (flipped) {
        // source (C, O, kh, kw): kernel element (o, c, i, j) is source (c, o, kh-1-i, kw-1-j)
        const float *source = g->weight - (T - 1);
        const int64_t Cp = (g->C + 15) / 16 * 16;
        float *copy = cnn_block_alloc((size_t)(T * g->O * Cp) * sizeof(float), false); // (T, O, Cp)
        ok = copy != NULL;
        // pass 1: source rows are input channels c, each O*T long; column o*T + a goes to copy[a][o]
        // when its (flipped) tap is kept
        for (int64_t o = 0; o < g->O; o++)
            for (int64_t a = 0; a < T; a++) offset[o * T + a] = kept[T - 1 - a] < 0 ? -1 : (a * g->O + o) * Cp;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t c0 = 0; c0 < (ok ? Cp : 0); c0 += 16) transpose_rows16(source, g->C, g->O * T, c0, copy + c0, offset);
        // pass 2: for each kept tap, copy[source tap] (O x Cp) transposed into the panels
        for (int64_t t = 0; t < (ok ? w->taps : 0); t++) {
            const int64_t a = T - 1 - (w->tap_i[t] * g->kw + w->tap_j[t]);
            for (int64_t c = 0; c < Cp; c++) offset[c] = c < g->C ? pack_row(w, c, t) * w->NRv : -1;
#pragma omp parallel for num_threads(threads) schedule(static)
            for (int64_t o0 = 0; o0 < w->Op; o0 += 16)
                transpose_rows16(copy + a * g->O * Cp, g->O, Cp, o0, packed + (o0 / w->NRv) * panel_floats + o0 % w->NRv,
                                 offset);
        }
        cnn_block_free(copy, false);
    } else {
        const __m512i lanes = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                                 _mm512_set1_epi32((int32_t)g->w_o));
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t o0 = o_lo; o0 < o_hi; o0 += 16) {
            const __mmask16 live = cnn_lanes16(g->O - o0);
            float *dst = packed + (o0 / w->NRv) * panel_floats + o0 % w->NRv;
            for (int64_t c = 0; c < g->C; c++)
                for (int64_t t = 0; t < w->taps; t++) {
                    const float *first = g->weight + o0 * g->w_o + c * g->w_c + w->tap_i[t] * g->w_i + w->tap_j[t] * g->w_j;
                    _mm512_storeu_ps(dst + pack_row(w, c, t) * w->NRv,
                                     _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, lanes, first, 4));
                }
        }
    }
    free(kept);
    return ok;
}

/* out (n0 + q / P, o, q % P) = rows[q][o] + bias[o] for q in [q0, q1), o < O: 16 x 16 blocks
 * transposed in registers. */
static void store_rows(const direct_plan *w, const float *rows, int64_t n0, int64_t q0, int64_t q1, const float *bias,
                       float *out) {
    const int64_t O = w->g->O, P = w->P;
    for (int64_t q = q0; q < q1;) {
        // a run of positions within one image, at most 16
        const int64_t b = q / P, p = q % P;
        int64_t count = P - p < 16 ? P - p : 16;
        if (count > q1 - q) count = q1 - q;
        const __mmask16 lanes = cnn_lanes16(count);
        for (int64_t o0 = 0; o0 < O; o0 += 16) {
            __m512 r[16];
            for (int64_t k = 0; k < 16; k++)
                r[k] = k < count ? _mm512_loadu_ps(rows + (q + k) * w->Op + o0) : _mm512_setzero_ps();
            cnn_transpose16(r); // r[o], lane k = position q + k
            const int64_t channels = O - o0 < 16 ? O - o0 : 16;
            for (int64_t k = 0; k < channels; k++) {
                const __m512 v = bias ? _mm512_add_ps(r[k], _mm512_set1_ps(bias[o0 + k])) : r[k];
                _mm512_mask_storeu_ps(out + ((n0 + b) * O + o0 + k) * P + p, lanes, v);
            }
        }
        q += count;
    }
}

static void forward_item(const direct_plan *w, int64_t item, const float *input, const float *packed,
                         const float *bias, float *output, forward_buffers *buf) {
    const cnn_direct_conv *g = w->g;
    const int64_t chunk = item / w->parts, part = item % w->parts;
    const int64_t n0 = chunk * w->B, B = g->N - n0 < w->B ? g->N - n0 : w->B, Q = B * w->P;
    // this part's positions: a share of the chunk's 8-row tiles
    const int64_t tiles = (Q + 7) / 8, per_part = (tiles + w->parts - 1) / w->parts;
    const int64_t q0 = part * per_part * 8, q1 = (part + 1) * per_part * 8 < Q ? (part + 1) * per_part * 8 : Q;
    if (q0 >= q1) return;
    const float *images = chunk_images(w, input, n0, q0 / w->P, (q1 - 1) / w->P + 1, buf->padded);
    const float *a_rows[8];
    float *c_rows[8];
    int64_t *base = buf->base - q0; // base[q] for q in [q0, q1)
    position_bases(w, q0, q1, buf->base);
    if (!w->tap_major) {
        // panels outermost: one panel of the kernels (K x NRv) stays in cache while the positions pass
        for (int64_t panel = 0; panel < w->panels; panel++)
            for (int64_t q = q0; q < q1; q += 8) {
                const int rows = q1 - q < 8 ? (int)(q1 - q) : 8;
                for (int r = 0; r < 8; r++) {
                    a_rows[r] = images + base[r < rows ? q + r : q];
                    c_rows[r] = buf->rows + (q + r) * w->Op + panel * w->NRv;
                }
                w->kernel(w->K, a_rows, w->k_off, packed + panel * w->K * w->NRv, w->NRv, c_rows, rows, (int)w->NRv,
                          false);
            }
    } else {
        for (int64_t q = q0; q < q1; q++) memset(buf->rows + q * w->Op, 0, (size_t)w->Op * sizeof(float));
        int64_t *counts = buf->valid + w->taps * (q1 - q0); // (taps)
        for (int64_t t = 0; t < w->taps; t++) counts[t] = valid_positions(w, t, q0, q1, buf->valid + t * (q1 - q0));
        for (int64_t panel = 0; panel < w->panels; panel++)
            for (int64_t t = 0; t < w->taps; t++) {
                const int64_t *valid = buf->valid + t * (q1 - q0);
                const float *b = packed + (panel * w->taps + t) * g->C * w->NRv; // (C, NRv)
                for (int64_t v = 0; v < counts[t]; v += 8) {
                    const int rows = counts[t] - v < 8 ? (int)(counts[t] - v) : 8;
                    for (int r = 0; r < 8; r++) {
                        const int64_t q = valid[v + (r < rows ? r : 0)];
                        a_rows[r] = images + base[q] + w->tap_off[t];
                        c_rows[r] = buf->rows + q * w->Op + panel * w->NRv;
                    }
                    w->kernel(g->C, a_rows, w->k_off, b, w->NRv, c_rows, rows, (int)w->NRv, true);
                }
            }
    }
    store_rows(w, buf->rows, n0, q0, q1, bias, output);
}

/* Runs fn(w, item, ctx, thread) over the plan's items on its threads; false when interrupted. */
typedef void (*item_fn)(const direct_plan *w, int64_t item, void *ctx, int thread);

typedef struct item_call {
    const direct_plan *w;
    item_fn fn;
    void *ctx;
} item_call;

static void call_item(void *ctx, int64_t item, int thread) {
    item_call *c = ctx;
    c->fn(c->w, item, c->ctx, thread);
}

static bool run_items(const direct_plan *w, item_fn fn, void *ctx) {
    item_call c = {w, fn, ctx};
    return cnn_run_items(w->threads, w->items, call_item, &c);
}

typedef struct forward_ctx {
    const float *input, *packed, *bias;
    float *output;
    forward_buffers *buf;
} forward_ctx;

static void forward_item_fn(const direct_plan *w, int64_t item, void *ctx, int thread) {
    forward_ctx *f = ctx;
    forward_item(w, item, f->input, f->packed, f->bias, f->output, &f->buf[thread]);
}

/* ---- forward by panels of output channels ----------------------------------------------------------
 * With few positions (all the images fit one chunk: ResNet's 2x2 and 1x1 maps) the kernels outweigh
 * the images, and packing all of them first means writing and reading back megabytes. Instead each
 * thread takes whole panels of output channels, packs one panel into a buffer that stays in cache,
 * and runs every position through it: the kernels are read once, straight from the weight. */
typedef struct panel_call {
    const direct_plan *w;
    const float *images;
    const int64_t *base, *valid, *counts; /* (Q) window offsets; (taps, Q) valid positions; (taps) */
    float *rows;                          /* (Q, Op), shared: each panel writes its own columns */
    float **packed;                       /* per thread: one panel (without a kept packing) */
    float *kept;                          /* all panels, kept between inference calls, or NULL */
    bool kept_ready;                      /* kept holds the packing already */
    bool failed;
} panel_call;

static void panel_item(void *ctx, int64_t panel, int thread) {
    panel_call *c = ctx;
    const direct_plan *w = c->w;
    const int64_t panel_floats = w->taps * w->g->C * w->NRv, Q = w->B * w->P;
    float *base = c->kept ? c->kept : c->packed[thread] - panel * panel_floats; // where panel 0 would be
    const float *packed = base + panel * panel_floats;
    for (int64_t q = 0; q < Q; q++) memset(c->rows + q * w->Op + panel * w->NRv, 0, (size_t)w->NRv * sizeof(float));
    if (!c->kept_ready && !pack_weights(w, base, panel * w->NRv, (panel + 1) * w->NRv)) {
        c->failed = true;
        return;
    }
    const float *a_rows[8];
    float *c_rows[8];
    for (int64_t t = 0; t < w->taps; t++) {
        const int64_t *valid = c->valid + t * Q;
        for (int64_t v = 0; v < c->counts[t]; v += 8) {
            const int rows = c->counts[t] - v < 8 ? (int)(c->counts[t] - v) : 8;
            for (int r = 0; r < 8; r++) {
                const int64_t q = valid[v + (r < rows ? r : 0)];
                a_rows[r] = c->images + c->base[q] + w->tap_off[t];
                c_rows[r] = c->rows + q * w->Op + panel * w->NRv;
            }
            w->kernel(w->g->C, a_rows, w->k_off, packed + t * w->g->C * w->NRv, w->NRv, c_rows, rows, (int)w->NRv, true);
        }
    }
}

typedef struct store_call {
    const direct_plan *w;
    const float *rows, *bias;
    float *output;
} store_call;

static void store_item(void *ctx, int64_t item, int thread) {
    const store_call *c = ctx;
    const int64_t Q = c->w->B * c->w->P, q0 = item * 64, q1 = q0 + 64 < Q ? q0 + 64 : Q;
    store_rows(c->w, c->rows, 0, q0, q1, c->bias, c->output);
}

/* Whether the kernels can be packed one panel at a time (not the flipped two-pass layout). */
static bool panels_apply(const direct_plan *w) {
    const cnn_direct_conv *g = w->g;
    const bool flipped = g->w_j == -1 && g->w_i == -g->kw && g->w_o == g->kh * g->kw && g->w_c == g->O * g->kh * g->kw;
    return w->tap_major && w->chunks == 1 && w->panels >= 2 && !flipped;
}

typedef struct images_call {
    const direct_plan *w;
    const float *input;
    float *images;
} images_call;

static void images_item(void *ctx, int64_t b, int thread) {
    const images_call *c = ctx;
    chunk_images(c->w, c->input, 0, b, b + 1, c->images);
}

/* Which packing of which weight layout a kept copy of the panels holds, as one number. */
static uint64_t packing_layout(const direct_plan *w) {
    const cnn_direct_conv *g = w->g;
    const int64_t values[] = {g->O, g->C, g->kh, g->kw, g->w_o, g->w_c, g->w_i, g->w_j, w->NRv, w->tap_major, w->taps};
    uint64_t h = cnn_layout_hash(CNN_LAYOUT_START, values, sizeof values / sizeof *values);
    h = cnn_layout_hash(h, w->tap_i, w->taps);
    return cnn_layout_hash(h, w->tap_j, w->taps);
}

static cnn_status panel_forward(const direct_plan *w, const float *input, const float *bias, float *output,
                                const char *op) {
    const cnn_direct_conv *g = w->g;
    const int64_t Q = w->B * w->P, threads = cnn_threads_for(w->panels * Q * g->C * w->taps * w->NRv, 1 << 18);
    const int team = (int)(threads < w->panels ? threads : w->panels);
    float *images = floats(w->B * w->image), *rows = floats(Q * w->Op);
    int64_t *offsets = malloc((size_t)(Q + w->taps * (Q + 1)) * sizeof(int64_t));
    float **packed = calloc((size_t)team, sizeof *packed);
    bool fill = false;
    float *kept = cnn_weight_cache_acquire(&g->key, packing_layout(w), w->panels * w->taps * g->C * w->NRv, &fill);
    bool ok = images && rows && offsets && packed;
    for (int t = 0; ok && !kept && t < team; t++) ok = (packed[t] = floats(w->taps * g->C * w->NRv)) != NULL;
    cnn_status st = CNN_OK;
    if (!ok) {
        st = cnn_fail(CNN_ERR_MEMORY, "%s: out of memory for the convolution buffers", op);
    } else {
        // the images channel-last, one per item; each panel clears its own columns of rows
        int64_t *base = offsets, *valid = offsets + Q, *counts = valid + w->taps * Q;
        images_call ic = {w, input, images};
        position_bases(w, 0, Q, base);
        for (int64_t t = 0; t < w->taps; t++) counts[t] = valid_positions(w, t, 0, Q, valid + t * Q);
        panel_call c = {w, images, base, valid, counts, rows, packed, kept, kept && !fill, false};
        store_call sc = {w, rows, bias, output};
        if (!cnn_run_items(cnn_threads_for(w->B * w->image, 1 << 15), w->B, images_item, &ic) ||
            !cnn_run_items(team, w->panels, panel_item, &c) ||
            !cnn_run_items(cnn_threads_for(Q * w->Op, 1 << 14), (Q + 63) / 64, store_item, &sc))
            st = cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
        else if (c.failed)
            st = cnn_fail(CNN_ERR_MEMORY, "%s: out of memory packing the kernels", op);
    }
    cnn_weight_cache_release(kept, fill && st == CNN_OK);
    for (int t = 0; packed && t < team; t++) cnn_block_free(packed[t], false);
    free(packed);
    free(offsets);
    cnn_block_free(images, false);
    cnn_block_free(rows, false);
    return st;
}

cnn_status cnn_direct_forward(const cnn_direct_conv *g, const float *input, const float *bias, float *output,
                              const char *op) {
    if (g->N == 0 || g->O == 0 || g->out_h * g->out_w == 0) return CNN_OK;
    if (cnn_rows_forward_suits(g)) return cnn_rows_forward(g, input, bias, output, op);
    if (cnn_inplace_suits(g)) return cnn_inplace_forward(g, input, bias, output, op);
    direct_plan w;
    cnn_status st = plan_make(&w, g, false, op);
    if (st != CNN_OK) {
        plan_free(&w);
        return st;
    }
    if (panels_apply(&w)) {
        st = panel_forward(&w, input, bias, output, op);
        plan_free(&w);
        return st;
    }
    cnn_derived packed; // kept between inference calls while the weight is unchanged
    const bool have_packed = cnn_derived_open(&packed, &g->key, packing_layout(&w), w.panels * w.taps * g->C * w.NRv);
    forward_buffers *buf = calloc((size_t)w.threads, sizeof *buf);
    bool ok = have_packed && buf;
    for (int t = 0; ok && t < w.threads; t++) {
        buf[t].padded = floats(w.B * w.image);
        buf[t].rows = floats(w.B * w.P * w.Op);
        buf[t].base = cnn_block_alloc((size_t)(w.B * w.P) * sizeof(int64_t), false);
        buf[t].valid =
            w.tap_major ? cnn_block_alloc((size_t)(w.taps * (w.B * w.P + 1)) * sizeof(int64_t), false) : NULL;
        ok = buf[t].padded && buf[t].rows && buf[t].base && (buf[t].valid || !w.tap_major);
    }
    if (!ok) {
        st = cnn_fail(CNN_ERR_MEMORY, "%s: out of memory for the convolution buffers", op);
    } else {
        if (!packed.ready && !pack_weights(&w, packed.data, 0, w.Op)) {
            st = cnn_fail(CNN_ERR_MEMORY, "%s: out of memory packing the kernels", op);
            goto done;
        }
        forward_ctx f = {input, packed.data, bias, output, buf};
        if (!run_items(&w, forward_item_fn, &f)) st = cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
    }
done:
    for (int t = 0; buf && t < w.threads; t++) {
        cnn_block_free(buf[t].padded, false);
        cnn_block_free(buf[t].rows, false);
        cnn_block_free(buf[t].base, false);
        cnn_block_free(buf[t].valid, false);
    }
    free(buf);
    cnn_derived_close(&packed, st == CNN_OK);
    plan_free(&w);
    return st;
}

/* ---- weight gradient ----------------------------------------------------------------------------- */
typedef struct weight_buffers {
    float *padded, *rows, *gathered, *wt; /* rows (Q, Op); gathered: one tap's rows; wt (C, taps, Op) */
    bool used;                            /* wt zeroed by its thread, holding a share */
    int64_t *base;                        /* (Q) window offsets of the chunk's positions */
    int64_t *steps;                       /* (Q) offsets of the positions summed over */
} weight_buffers;

/* rows (q, o) <- grad_output (n0 + q / P, o, q % P) for the chunk's Q positions, zero for o >= O. */
static void load_rows(const direct_plan *w, const float *grad_output, int64_t n0, int64_t Q, float *rows) {
    const int64_t O = w->g->O, P = w->P;
    for (int64_t q = 0; q < Q;) {
        const int64_t b = q / P, p = q % P;
        int64_t count = P - p < 16 ? P - p : 16;
        if (count > Q - q) count = Q - q;
        const __mmask16 lanes = cnn_lanes16(count);
        for (int64_t o0 = 0; o0 < w->Op; o0 += 16) {
            __m512 r[16];
            for (int64_t k = 0; k < 16; k++)
                r[k] = o0 + k < O ? _mm512_maskz_loadu_ps(lanes, grad_output + ((n0 + b) * O + o0 + k) * P + p)
                                  : _mm512_setzero_ps();
            cnn_transpose16(r); // r[k] = position q + k, lanes = channels o0..o0+15
            for (int64_t k = 0; k < count; k++) _mm512_storeu_ps(rows + (q + k) * w->Op + o0, r[k]);
        }
        q += count;
    }
}

static void weight_item(const direct_plan *w, int64_t item, const float *input, const float *grad_output,
                        weight_buffers *buf) {
    const cnn_direct_conv *g = w->g;
    const int64_t chunk = item / w->parts, part = item % w->parts;
    const int64_t n0 = chunk * w->B, B = g->N - n0 < w->B ? g->N - n0 : w->B, Q = B * w->P;
    // this part's rows of the gradient: a share of its 8-row tiles (channels, or (channel, tap) pairs)
    const int64_t R = w->tap_major ? g->C : w->K, tiles = (R + 7) / 8, per_part = (tiles + w->parts - 1) / w->parts;
    const int64_t r0 = part * per_part * 8, r1 = (part + 1) * per_part * 8 < R ? (part + 1) * per_part * 8 : R;
    if (r0 >= r1) return;
    const float *images = chunk_images(w, input, n0, 0, B, buf->padded);
    load_rows(w, grad_output, n0, Q, buf->rows);
    const float *a_rows[8];
    float *c_rows[8];
    if (!w->tap_major) {
        // rows (c, tap) = k: sum over all positions
        position_bases(w, 0, Q, buf->steps);
        for (int64_t k = r0; k < r1; k += 8) {
            const int rows = r1 - k < 8 ? (int)(r1 - k) : 8;
            for (int64_t panel = 0; panel < w->panels; panel++) {
                for (int r = 0; r < 8; r++) {
                    a_rows[r] = images + w->k_off[r < rows ? k + r : k];
                    c_rows[r] = buf->wt + (k + r) * w->Op + panel * w->NRv;
                }
                w->kernel(Q, a_rows, buf->steps, buf->rows + panel * w->NRv, w->Op, c_rows, rows, (int)w->NRv, true);
            }
        }
        return;
    }
    // tap by tap: rows are channels, summed over the positions where the tap lands inside
    int64_t *valid = buf->steps; // first the positions, then their offsets
    position_bases(w, 0, Q, buf->base);
    for (int64_t t = 0; t < w->taps; t++) {
        const int64_t count = valid_positions(w, t, 0, Q, valid);
        for (int64_t v = 0; v < count; v++) {
            memcpy(buf->gathered + v * w->Op, buf->rows + valid[v] * w->Op, (size_t)w->Op * sizeof(float));
            valid[v] = buf->base[valid[v]] + w->tap_off[t];
        }
        for (int64_t c = r0; c < r1; c += 8) {
            const int rows = r1 - c < 8 ? (int)(r1 - c) : 8;
            for (int64_t panel = 0; panel < w->panels; panel++) {
                for (int r = 0; r < 8; r++) {
                    a_rows[r] = images + w->k_off[r < rows ? c + r : c];
                    c_rows[r] = buf->wt + ((c + r) * w->taps + t) * w->Op + panel * w->NRv;
                }
                w->kernel(count, a_rows, valid, buf->gathered + panel * w->NRv, w->Op, c_rows, rows, (int)w->NRv,
                          true);
            }
        }
    }
}

/* grad_weight (O, C, kh, kw) <- wt (C * taps, Op) transposed; taps left out stay zero. With every tap
 * kept the two are transposes of each other, done in 16 x 16 register blocks. */
static void unpack_weight_grad(const direct_plan *w, const float *wt, float *grad_weight) {
    const cnn_direct_conv *g = w->g;
    const int64_t taps_all = g->kh * g->kw, K = g->C * taps_all;
    if (w->taps != taps_all) {
        for (int64_t o = 0; o < g->O; o++)
            for (int64_t c = 0; c < g->C; c++)
                for (int64_t t = 0; t < w->taps; t++)
                    grad_weight[(o * g->C + c) * taps_all + w->tap_i[t] * g->kw + w->tap_j[t]] =
                        wt[(c * w->taps + t) * w->Op + o];
        return;
    }
#pragma omp parallel for num_threads(cnn_threads_for(K * g->O, 1 << 15)) schedule(static)
    for (int64_t k0 = 0; k0 < K; k0 += 16)
        for (int64_t o0 = 0; o0 < g->O; o0 += 16) {
            __m512 r[16];
            for (int64_t m = 0; m < 16; m++)
                r[m] = k0 + m < K ? _mm512_loadu_ps(wt + (k0 + m) * w->Op + o0) : _mm512_setzero_ps();
            cnn_transpose16(r); // r[l]: output channel o0 + l over elements k0..k0+15
            const __mmask16 cols = cnn_lanes16(K - k0);
            for (int64_t l = 0; l < 16 && o0 + l < g->O; l++)
                _mm512_mask_storeu_ps(grad_weight + (o0 + l) * K + k0, cols, r[l]);
        }
}

typedef struct weight_ctx {
    const float *input, *grad_output;
    weight_buffers *buf;
} weight_ctx;

static void weight_item_fn(const direct_plan *w, int64_t item, void *ctx, int thread) {
    weight_ctx *f = ctx;
    weight_buffers *b = &f->buf[thread];
    if (!b->used) { // each thread clears its own share, in parallel
        memset(b->wt, 0, (size_t)(w->g->C * w->taps * w->Op) * sizeof(float));
        b->used = true;
    }
    weight_item(w, item, f->input, f->grad_output, b);
}

cnn_status cnn_direct_weight_grad(const cnn_direct_conv *g, const float *input, const float *grad_output,
                                  float *grad_weight, const char *op) {
    const int64_t taps_all = g->kh * g->kw;
    if (g->N > 0 && g->C > 0 && g->out_h > 0 && cnn_rows_weight_grad_suits(g))
        return cnn_rows_weight_grad(g, input, grad_output, grad_weight, op);
    direct_plan w;
    cnn_status st = CNN_OK;
    if (g->N == 0 || g->O == 0 || g->out_h * g->out_w == 0 || g->C == 0 ||
        (st = plan_make(&w, g, true, op)) != CNN_OK || w.taps < taps_all) // some weights get no gradient
        memset(grad_weight, 0, (size_t)(g->O * g->C * taps_all) * sizeof(float));
    if (g->N == 0 || g->O == 0 || g->out_h * g->out_w == 0 || g->C == 0) return CNN_OK;
    if (st != CNN_OK || w.taps == 0) {
        plan_free(&w);
        return st;
    }
    const int64_t Q = w.B * w.P, wt_floats = g->C * w.taps * w.Op;
    weight_buffers *buf = calloc((size_t)w.threads, sizeof *buf);
    bool ok = buf != NULL;
    for (int t = 0; ok && t < w.threads; t++) {
        buf[t].padded = floats(w.B * w.image);
        buf[t].rows = floats(Q * w.Op);
        buf[t].gathered = w.tap_major ? floats(Q * w.Op) : NULL;
        buf[t].wt = floats(wt_floats);
        buf[t].steps = cnn_block_alloc((size_t)Q * sizeof(int64_t), false);
        buf[t].base = cnn_block_alloc((size_t)Q * sizeof(int64_t), false);
        ok = buf[t].padded && buf[t].rows && (buf[t].gathered || !w.tap_major) && buf[t].wt &&
             buf[t].steps && buf[t].base;
    }
    if (!ok) {
        st = cnn_fail(CNN_ERR_MEMORY, "%s: out of memory for the weight-gradient buffers", op);
    } else {
        weight_ctx f = {input, grad_output, buf};
        if (!run_items(&w, weight_item_fn, &f)) {
            st = cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
        } else {
            // grad_weight (o, c, i, j) = sum over the threads' shares of wt[c][t][o]
            int first = 0;
            while (!buf[first].used) first++; // some thread ran an item: there is at least one
            float *sum = buf[first].wt;
            for (int t = first + 1; t < w.threads; t++) {
                if (!buf[t].used) continue;
                const float *share = buf[t].wt;
#pragma omp parallel for num_threads(cnn_threads_for(wt_floats, 1 << 15)) schedule(static)
                for (int64_t i = 0; i < wt_floats; i++) sum[i] += share[i];
            }
            unpack_weight_grad(&w, sum, grad_weight);
        }
    }
    for (int t = 0; buf && t < w.threads; t++) {
        cnn_block_free(buf[t].padded, false);
        cnn_block_free(buf[t].rows, false);
        cnn_block_free(buf[t].gathered, false);
        cnn_block_free(buf[t].wt, false);
        cnn_block_free(buf[t].steps, false);
        cnn_block_free(buf[t].base, false);
    }
    free(buf);
    plan_free(&w);
    return st;
}

bool cnn_direct_available(void) { return true; }

#else /* without AVX-512 the convolutions keep their im2col path */

bool cnn_direct_available(void) { return false; }

cnn_status cnn_direct_forward(const cnn_direct_conv *g, const float *input, const float *bias, float *output,
                              const char *op) {
    CNN_UNUSED(g), CNN_UNUSED(input), CNN_UNUSED(bias), CNN_UNUSED(output);
    return cnn_fail(CNN_ERR_STATE, "%s: the direct convolution needs an AVX-512 build", op);
}

cnn_status cnn_direct_weight_grad(const cnn_direct_conv *g, const float *input, const float *grad_output,
                                  float *grad_weight, const char *op) {
    CNN_UNUSED(g), CNN_UNUSED(input), CNN_UNUSED(grad_output), CNN_UNUSED(grad_weight);
    return cnn_fail(CNN_ERR_STATE, "%s: the direct convolution needs an AVX-512 build", op);
}

#endif
