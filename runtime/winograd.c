/* F(4x4, 3x3) Winograd convolution (see winograd.h). Dimension legend: N batch, C input channels,
 * O output channels, Cp = C rounded up to 16, Op = O rounded up to 32, th x tw tiles per image
 * (4x4 outputs each), T tiles in a block, xi one of the 36 points of the transform domain.
 *
 * Layouts. Transforms keep 16 channels in one AVX-512 register, so everything between the NCHW
 * ends is channel-interleaved:
 *   rows  (Cp/16, 6, Wp, 16)        the 6 input rows under one row of tiles, 16 channels per pixel
 *                                   (Wp = 4 tw + 2; zeros where the patch leaves the image)
 *   V     (36, T/8, Cp/16, 8, 16)   transformed input: for each xi, groups of 8 tiles in the
 *                                   k-blocked layout of gemm_kernel.h (k = input channel)
 *   UT    (36, Op/32, Cp, 32)       transformed weights, packed as the kernel's b panels
 *   M     (36, T, OC)               products for one chunk of OC output channels
 * For each xi, M[xi] (T x O) = V[xi] (T x C) UT[xi] (C x O): 8x32 register blocks with the weight
 * panel in L1 while the tiles stream by. The output transform then turns each tile's 36 values of 16
 * channels into its 4x4 outputs, transposed back to 16 channel planes on the way out.
 *
 * Work is spread over threads by blocks of tiles; when there are too few blocks for the threads
 * (small images) the output channels are split as well, each share transforming the input again.
 *
 * Measured on one Zen 4 core against the other paths (forward; forward + both gradients):
 * 32->32 channels on 32x32 images, batch 128: 14.9 ms (direct product 27.9, im2col 32.1); 60 ms
 * (87, 99). 16->16 on 28x28: 5.3 ms (6.7, 7.3). 128->128 on 4x4 images, batch 32 (one tile
 * per image): 0.74 ms (direct product 1.16). */
#include "winograd.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "blas_threads.h"
#include "gemm_kernel.h"

#ifdef __AVX512F__
#include "simd16.h"

enum { POINTS = 36, CHUNK_PANELS = 2 };

/* Sizes of one call. */
typedef struct wg_plan {
    const cnn_winograd_conv *p;
    int64_t Cp, Cb, Op, panels;   /* Cb = Cp / 16, panels = Op / 32 */
    int64_t th, tw, tiles, Wp;    /* tiles = N th tw */
    int64_t T, blocks;            /* tiles per block (a multiple of 8) and the number of blocks */
    int64_t splits, items;        /* output-channel shares per block, items = blocks * splits */
    int64_t OC;                   /* width of M: CHUNK_PANELS * 32, or less */
    int threads;
    bool own_weights;             /* items are splits, each transforming its own weights */
    bool UT_ready;                /* UT holds the transform already (kept from an earlier call) */
    float *UT;                    /* (36, panels, Cp, 32) */
} wg_plan;

typedef struct wg_scratch {
    float *rows; /* (Cb, 6, Wp, 16) */
    float *V;    /* (36, T/8, Cb, 8, 16) */
    float *M;    /* (36, T, OC) */
    int64_t rows_n, rows_ty; /* the tile row held in rows, or -1 */
} wg_scratch;

/* ---- weights ------------------------------------------------------------------------------------ */
/* One axis of G g G^T on vectors of 16 output channels: out[0..5] = G in[0..2], with
 *   G = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
 * written out, so that the 36 points cost about 130 vector operations and no table look-ups. */
static inline void apply_g(const __m512 in[3], __m512 out[6]) {
    const __m512 sixth = _mm512_set1_ps(1.0f / 6), twelfth = _mm512_set1_ps(1.0f / 12);
    const __m512 quarter = _mm512_set1_ps(1.0f / 4), twenty_fourth = _mm512_set1_ps(1.0f / 24);
    const __m512 ends = _mm512_add_ps(in[0], in[2]);
    out[0] = _mm512_mul_ps(in[0], quarter);
    out[1] = _mm512_mul_ps(_mm512_add_ps(ends, in[1]), _mm512_set1_ps(-1.0f / 6));
    out[2] = _mm512_mul_ps(_mm512_sub_ps(in[1], ends), sixth);
    const __m512 even = _mm512_fmadd_ps(in[0], twenty_fourth, _mm512_mul_ps(in[2], sixth));
    const __m512 odd = _mm512_mul_ps(in[1], twelfth);
    out[3] = _mm512_add_ps(even, odd);
    out[4] = _mm512_sub_ps(even, odd);
    out[5] = in[2];
}

/* UT[xi][o / 32][c][o % 32] = (G g G^T)[xi] for the 3x3 kernel g of (o, c), xi = i*6 + l; zero for
 * padding. Sixteen output channels at a time: their 9 taps of each input channel, G applied along the
 * kernel's columns and rows, stored as 36 vectors. A weight in its own layout (each output channel's
 * C*9 values contiguous) is first transposed in 16 x 16 register blocks into `columns` (C*9, 16);
 * other layouts (an input gradient's flipped kernels) are gathered through their strides, which
 * costs 2-3x more (on 4x4 maps with one tile per image the transform was 20% of a forward pass). */
static void transform_weight_blocks(const wg_plan *w, int64_t ob_lo, int64_t ob_hi) {
    const cnn_winograd_conv *p = w->p;
    const int64_t point_stride = w->panels * w->Cp * 32, K = p->C * 9;
    const bool own_layout = p->w_j == 1 && p->w_i == 3 && p->w_c == 9 && p->w_o == K;
    const __m512i lanes = _mm512_mullo_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                             _mm512_set1_epi32((int32_t)p->w_o));
    {
        // a failed allocation falls back to the gathers
        float *columns = own_layout ? cnn_block_alloc((size_t)(K + 16) * 16 * sizeof(float), false) : NULL;
        for (int64_t ob = ob_lo; ob < ob_hi; ob++) {
            const int64_t o0 = ob * 16;
            const __mmask16 live = cnn_lanes16(p->O - o0);
            if (columns)
                for (int64_t k0 = 0; k0 < K; k0 += 16) {
                    __m512 r[16];
                    const __mmask16 cols = cnn_lanes16(K - k0);
                    for (int64_t l = 0; l < 16; l++)
                        r[l] = o0 + l < p->O ? _mm512_maskz_loadu_ps(cols, p->weight + (o0 + l) * K + k0)
                                             : _mm512_setzero_ps();
                    cnn_transpose16(r); // r[m]: element k0 + m of the 16 output channels
                    for (int64_t m = 0; m < 16; m++) _mm512_storeu_ps(columns + (k0 + m) * 16, r[m]);
                }
            for (int64_t c = 0; c < w->Cp; c++) {
                float *dst = w->UT + ((o0 / 32) * w->Cp + c) * 32 + o0 % 32;
                if (c >= p->C) {
                    for (int xi = 0; xi < POINTS; xi++) _mm512_storeu_ps(dst + xi * point_stride, _mm512_setzero_ps());
                    continue;
                }
                __m512 g[3][3], gg[6][3]; // g[a][b] = tap (a, b); gg = G g
                for (int a = 0; a < 3; a++)
                    for (int b = 0; b < 3; b++)
                        g[a][b] = columns ? _mm512_loadu_ps(columns + (c * 9 + a * 3 + b) * 16)
                                          : _mm512_mask_i32gather_ps(_mm512_setzero_ps(), live, lanes,
                                                                     p->weight + o0 * p->w_o + c * p->w_c +
                                                                         a * p->w_i + b * p->w_j,
                                                                     4);
                for (int b = 0; b < 3; b++) {
                    const __m512 column[3] = {g[0][b], g[1][b], g[2][b]};
                    __m512 out[6];
                    apply_g(column, out);
                    for (int i = 0; i < 6; i++) gg[i][b] = out[i];
                }
                for (int i = 0; i < 6; i++) {
                    __m512 out[6];
                    apply_g(gg[i], out);
                    for (int l = 0; l < 6; l++) _mm512_storeu_ps(dst + (i * 6 + l) * point_stride, out[l]);
                }
            }
        }
        cnn_block_free(columns, false);
    }
}

/* All of UT, blocks of 16 output channels shared out over the threads. */
static void transform_weights(const wg_plan *w) {
    const int64_t blocks = w->Op / 16;
#pragma omp parallel num_threads(w->threads)
    {
        const int64_t t = omp_get_thread_num(), n = omp_get_num_threads();
        transform_weight_blocks(w, blocks * t / n, blocks * (t + 1) / n);
    }
}

/* ---- input ---------------------------------------------------------------------------------------- */
/* rows <- the 6 input rows under tile row ty of image n, channel-interleaved, zero outside. */
static void gather_rows(const wg_plan *w, float *rows, int64_t n, int64_t ty) {
    const cnn_winograd_conv *p = w->p;
    const int64_t H = p->H, W = p->W, Wp = w->Wp;
    for (int64_t cb = 0; cb < w->Cb; cb++)
        for (int i = 0; i < 6; i++) {
            float *dst = rows + ((cb * 6 + i) * Wp) * 16; // (Wp, 16)
            const int64_t y = ty * 4 - p->pad_top + i;
            if (y < 0 || y >= H) {
                memset(dst, 0, (size_t)(Wp * 16) * sizeof(float));
                continue;
            }
            for (int64_t X = 0; X < Wp; X += 16) {
                const int64_t x0 = X - p->pad_left;
                const __mmask16 valid = cnn_lanes16(W - x0) & (__mmask16)~cnn_lanes16(-x0);
                __m512 r[16];
                for (int l = 0; l < 16; l++) {
                    const int64_t c = cb * 16 + l;
                    r[l] = c < p->C ? _mm512_maskz_loadu_ps(valid, p->input + ((n * p->C + c) * H + y) * W + x0)
                                    : _mm512_setzero_ps();
                }
                cnn_transpose16(r);
                const int64_t count = Wp - X < 16 ? Wp - X : 16;
                for (int64_t k = 0; k < count; k++) _mm512_storeu_ps(dst + (X + k) * 16, r[k]);
            }
        }
}

/* The 1-d input transform B^T d over six vectors, in place. */
static inline void input_transform6(__m512 d[6]) {
    const __m512 four = _mm512_set1_ps(4.0f), five = _mm512_set1_ps(5.0f), two = _mm512_set1_ps(2.0f);
    const __m512 a = _mm512_fnmadd_ps(four, d[2], d[4]);             // d4 - 4 d2
    const __m512 b = _mm512_fnmadd_ps(four, d[1], d[3]);             // d3 - 4 d1
    const __m512 c = _mm512_sub_ps(d[4], d[2]);                      // d4 - d2
    const __m512 e = _mm512_mul_ps(two, _mm512_sub_ps(d[3], d[1]));  // 2 (d3 - d1)
    const __m512 r0 = _mm512_fmadd_ps(four, d[0], _mm512_fnmadd_ps(five, d[2], d[4]));
    const __m512 r5 = _mm512_fmadd_ps(four, d[1], _mm512_fnmadd_ps(five, d[3], d[5]));
    d[0] = r0;
    d[1] = _mm512_add_ps(a, b);
    d[2] = _mm512_sub_ps(a, b);
    d[3] = _mm512_add_ps(c, e);
    d[4] = _mm512_sub_ps(c, e);
    d[5] = r5;
}

/* V <- the transformed patches of tiles [g0, g0 + count) (a block), zeros for the rest of the block. */
static void transform_input(const wg_plan *w, wg_scratch *s, int64_t g0, int64_t count) {
    const int64_t per_image = w->th * w->tw, group_floats = w->Cb * 8 * 16;
    for (int64_t t = 0; t < w->T; t++) {
        float *v = s->V + (t / 8) * group_floats + (t % 8) * 16; // + xi * (T/8) * group_floats + cb * 128
        if (t >= count) {
            for (int xi = 0; xi < POINTS; xi++)
                for (int64_t cb = 0; cb < w->Cb; cb++)
                    _mm512_storeu_ps(v + xi * (w->T / 8) * group_floats + cb * 128, _mm512_setzero_ps());
            continue;
        }
        const int64_t g = g0 + t, n = g / per_image, ty = g % per_image / w->tw, tx = g % w->tw;
        if (n != s->rows_n || ty != s->rows_ty) {
            gather_rows(w, s->rows, n, ty);
            s->rows_n = n, s->rows_ty = ty;
        }
        for (int64_t cb = 0; cb < w->Cb; cb++) {
            const float *patch = s->rows + (cb * 6 * w->Wp + tx * 4) * 16;
            __m512 d[6][6];
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++) d[i][j] = _mm512_loadu_ps(patch + (i * w->Wp + j) * 16);
            for (int j = 0; j < 6; j++) { // columns: B^T d
                __m512 col[6] = {d[0][j], d[1][j], d[2][j], d[3][j], d[4][j], d[5][j]};
                input_transform6(col);
                for (int i = 0; i < 6; i++) d[i][j] = col[i];
            }
            for (int i = 0; i < 6; i++) { // rows: (B^T d) B
                input_transform6(d[i]);
                for (int l = 0; l < 6; l++)
                    _mm512_storeu_ps(v + (i * 6 + l) * (w->T / 8) * group_floats + cb * 128, d[i][l]);
            }
        }
    }
}

/* ---- output --------------------------------------------------------------------------------------- */
/* The 1-d output transform A^T m: six vectors to four. */
static inline void output_transform6(const __m512 m[6], __m512 s[4]) {
    const __m512 p = _mm512_add_ps(m[1], m[2]), q = _mm512_sub_ps(m[1], m[2]);
    const __m512 u = _mm512_add_ps(m[3], m[4]), v = _mm512_sub_ps(m[3], m[4]);
    s[0] = _mm512_add_ps(_mm512_add_ps(m[0], p), u);
    s[1] = _mm512_fmadd_ps(_mm512_set1_ps(2.0f), v, q);
    s[2] = _mm512_fmadd_ps(_mm512_set1_ps(4.0f), u, p);
    s[3] = _mm512_add_ps(_mm512_fmadd_ps(_mm512_set1_ps(8.0f), v, q), m[5]);
}

/* Outputs of tile g for channels [o0, o0 + 16) from M (row t of the block, column oc of the chunk). */
static void transform_output(const wg_plan *w, const float *M, int64_t t, int64_t oc, int64_t g, int64_t o0) {
    const cnn_winograd_conv *p = w->p;
    const int64_t per_image = w->th * w->tw, n = g / per_image, ty = g % per_image / w->tw, tx = g % w->tw;
    __m512 m[6][6];
    for (int i = 0; i < 6; i++)
        for (int l = 0; l < 6; l++) m[i][l] = _mm512_loadu_ps(M + ((i * 6 + l) * w->T + t) * w->OC + oc);
    __m512 s[4][6], y[16];
    for (int l = 0; l < 6; l++) { // columns: A^T m
        const __m512 col[6] = {m[0][l], m[1][l], m[2][l], m[3][l], m[4][l], m[5][l]};
        __m512 out[4];
        output_transform6(col, out);
        for (int i = 0; i < 4; i++) s[i][l] = out[i];
    }
    const __m512 bias = p->bias ? _mm512_maskz_loadu_ps(cnn_lanes16(p->O - o0), p->bias + o0) : _mm512_setzero_ps();
    for (int i = 0; i < 4; i++) { // rows: (A^T m) A
        __m512 out[4];
        output_transform6(s[i], out);
        for (int j = 0; j < 4; j++) y[i * 4 + j] = _mm512_add_ps(out[j], bias);
    }
    cnn_transpose16(y); // y[channel], lane 4 i + j = output (4 ty + i, 4 tx + j)
    const int64_t oH = p->out_h, oW = p->out_w, rows = oH - ty * 4 < 4 ? oH - ty * 4 : 4;
    const __mmask16 cols = cnn_lanes16(oW - tx * 4 < 4 ? oW - tx * 4 : 4);
    const int64_t channels = p->O - o0 < 16 ? p->O - o0 : 16;
    for (int64_t k = 0; k < channels; k++) {
        float *plane = p->output + ((n * p->O + o0 + k) * oH + ty * 4) * oW + tx * 4;
        for (int i = 0; i < rows; i++) // lanes 4i..4i+3 land on row i
            _mm512_mask_storeu_ps(plane + i * oW - 4 * i, (__mmask16)(cols << (4 * i)), y[k]);
    }
}

/* ---- one item: a block of tiles, a share of the output channels ------------------------------------- */
static void run_block(const wg_plan *w, wg_scratch *s, int64_t block, int64_t split);

/* The panels [*lo, *hi) of output channels that share `split` takes. */
static void split_panels(const wg_plan *w, int64_t split, int64_t *lo, int64_t *hi) {
    const int64_t per_split = (w->panels + w->splits - 1) / w->splits;
    *lo = split * per_split;
    *hi = *lo + per_split < w->panels ? *lo + per_split : w->panels;
}

static void run_item(const wg_plan *w, wg_scratch *s, int64_t item) {
    if (!w->own_weights) {
        run_block(w, s, item / w->splits, item % w->splits);
        return;
    }
    // item = split: the weights of its output channels, then every block through them
    int64_t p_lo, p_hi;
    split_panels(w, item, &p_lo, &p_hi);
    if (p_lo >= p_hi) return;
    if (!w->UT_ready) transform_weight_blocks(w, p_lo * 2, p_hi * 2);
    for (int64_t block = 0; block < w->blocks; block++) run_block(w, s, block, item);
}

/* One block of tiles through the output channels of one split. */
static void run_block(const wg_plan *w, wg_scratch *s, int64_t block, int64_t split) {
    const int64_t g0 = block * w->T, count = w->tiles - g0 < w->T ? w->tiles - g0 : w->T;
    int64_t p_lo, p_hi;
    split_panels(w, split, &p_lo, &p_hi);
    if (p_lo >= p_hi) return;
    transform_input(w, s, g0, count);
    const int64_t group_floats = w->Cb * 8 * 16;
    for (int64_t c_lo = p_lo; c_lo < p_hi; c_lo += CHUNK_PANELS) {
        const int64_t c_hi = c_lo + CHUNK_PANELS < p_hi ? c_lo + CHUNK_PANELS : p_hi;
        for (int xi = 0; xi < POINTS; xi++)
            for (int64_t panel = c_lo; panel < c_hi; panel++) {
                const float *b = w->UT + (xi * w->panels + panel) * w->Cp * 32;
                for (int64_t tg = 0; tg * 8 < count; tg++) {
                    const int rows = count - tg * 8 < 8 ? (int)(count - tg * 8) : 8;
                    cnn_gemm_kernel(w->Cb, s->V + (xi * (w->T / 8) + tg) * group_floats, b,
                                    s->M + (xi * w->T + tg * 8) * w->OC + (panel - c_lo) * 32, w->OC, rows, 32, false);
                }
            }
        for (int64_t t = 0; t < count; t++)
            for (int64_t o0 = c_lo * 32; o0 < c_hi * 32 && o0 < w->p->O; o0 += 16)
                transform_output(w, s->M, t, o0 - c_lo * 32, g0 + t, o0);
    }
}

typedef struct item_call {
    const wg_plan *w;
    wg_scratch *s; /* one per thread */
} item_call;

static void call_item(void *ctx, int64_t item, int thread) {
    const item_call *c = ctx;
    run_item(c->w, &c->s[thread], item);
}

/* The weight's layout as one number, for the kept transforms (the transform does not depend on the
 * images). */
static uint64_t layout_of(const cnn_winograd_conv *p) {
    const int64_t values[] = {p->C, p->O, p->w_o, p->w_c, p->w_i, p->w_j};
    return cnn_layout_hash(CNN_LAYOUT_START, values, sizeof values / sizeof *values);
}

bool cnn_winograd_suits(int64_t C, int64_t O, int64_t out_h, int64_t out_w) {
    return C >= 8 && O >= 8 && out_h >= 3 && out_w >= 3;
}

static float *scratch(int64_t floats) { return cnn_block_alloc((size_t)floats * sizeof(float), false); }

cnn_status cnn_winograd_conv3x3(const cnn_winograd_conv *p, const char *op) {
    if (p->N == 0 || p->O == 0 || p->out_h == 0 || p->out_w == 0) return CNN_OK;
    wg_plan w = {.p = p};
    w.Cp = (p->C + 15) / 16 * 16, w.Cb = w.Cp / 16;
    w.Op = (p->O + 31) / 32 * 32, w.panels = w.Op / 32;
    w.th = (p->out_h + 3) / 4, w.tw = (p->out_w + 3) / 4, w.tiles = p->N * w.th * w.tw, w.Wp = w.tw * 4 + 2;
    w.OC = (w.panels < CHUNK_PANELS ? w.panels : CHUNK_PANELS) * 32;
    const int max_threads = cnn_threads_for(w.tiles * w.Cp * w.Op * POINTS, 1 << 21);
    // One thread: V and M of a block within about 3/4 of a 1 MB L2. Several: blocks of one 8-tile
    // group, which the threads share out evenly; on two cores with batch 32 that ran 1.05-1.25x
    // faster than the L2-sized blocks (64 channels on 8x8 and 16x16, 128 on 4x4 and 8x8, 256 on 8x8),
    // whose last block is often short and leaves a thread idle.
    int64_t T = (768 * 1024 / 4) / (POINTS * (w.Cp + w.OC)) / 8 * 8;
    T = max_threads > 1 || T < 8 ? 8 : T > 128 ? 128 : T;
    const int64_t needed = (w.tiles + 7) / 8 * 8;
    w.T = T < needed ? T : needed;
    w.blocks = (w.tiles + w.T - 1) / w.T;
    w.splits = 1;
    if (w.blocks < 2 * max_threads) {
        w.splits = (2 * max_threads + w.blocks - 1) / w.blocks;
        if (w.splits > w.panels) w.splits = w.panels;
    }
    w.items = w.blocks * w.splits;
    // Weights that outweigh the images (ResNet's 128 channels on 4x4 maps: 2.4 MB transformed against
    // 0.5 MB in and out): each thread transforms and uses the weights of its own output channels and
    // reads all the images, instead of reading the half of the weights the other thread transformed.
    // When the two cores share no cache, that read ran 0.35 ms of a 0.75 ms convolution.
    const int64_t image_floats = p->N * (p->C * p->H * p->W + p->O * p->out_h * p->out_w);
    if (max_threads > 1 && w.panels >= max_threads && POINTS * w.Cp * w.Op > 2 * image_floats) {
        w.own_weights = true;
        w.splits = w.items = max_threads;
    }
    w.threads = w.items < max_threads ? (int)w.items : max_threads;

    cnn_status st = CNN_OK;
    wg_scratch *s = calloc((size_t)w.threads, sizeof *s);
    // in inference the transformed weights are kept for the next call while the weight is unchanged
    cnn_derived UT;
    bool ok = cnn_derived_open(&UT, &p->key, layout_of(p), POINTS * w.Op * w.Cp) && s;
    w.UT = UT.data, w.UT_ready = UT.ready;
    for (int t = 0; ok && t < w.threads; t++) {
        s[t].rows = scratch(w.Cb * 6 * w.Wp * 16);
        s[t].V = scratch(POINTS * w.T * w.Cp);
        s[t].M = scratch(POINTS * w.T * w.OC);
        s[t].rows_n = s[t].rows_ty = -1;
        ok = s[t].rows && s[t].V && s[t].M;
    }
    if (!ok) {
        st = cnn_fail(CNN_ERR_MEMORY, "%s: out of memory for the Winograd buffers (%lld tiles, %lld x %lld channels)",
                      op, (long long)w.tiles, (long long)p->C, (long long)p->O);
    } else {
        if (!w.own_weights && !w.UT_ready) transform_weights(&w);
        item_call c = {&w, s};
        if (!cnn_run_items(w.threads, w.items, call_item, &c)) st = cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
    }
    for (int t = 0; s && t < w.threads; t++) {
        cnn_block_free(s[t].rows, false);
        cnn_block_free(s[t].V, false);
        cnn_block_free(s[t].M, false);
    }
    free(s);
    cnn_derived_close(&UT, st == CNN_OK);
    return st;
}

#else /* no AVX-512: the convolutions use their im2col path */

bool cnn_winograd_suits(int64_t C, int64_t O, int64_t out_h, int64_t out_w) {
    CNN_UNUSED(C), CNN_UNUSED(O), CNN_UNUSED(out_h), CNN_UNUSED(out_w);
    return false;
}

cnn_status cnn_winograd_conv3x3(const cnn_winograd_conv *p, const char *op) {
    CNN_UNUSED(p);
    return cnn_fail(CNN_ERR_STATE, "%s: Winograd convolution needs an AVX-512 build", op);
}

#endif
