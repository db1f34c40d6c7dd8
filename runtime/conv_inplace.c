/* Convolutions over few positions with the kernels read in place (see conv_inplace.h). Dimension
 * legend: N batch, C input channels, O output channels, P = out_h * out_w, Q = N * P positions,
 * T kept taps, K = C * T rows of the unfolded input.
 *
 * Buffers:
 *   unfolded  (K, Q)   row c*T + t: what the Q positions read through kept tap t of channel c
 *   staging   (O, Q)   the products, one output channel per row
 *
 * Measured on one Zen 4 core, ResNet-18's last stage at batch 32 (1x1 outputs) against the panels
 * of conv_direct.c: 512->512 3x3 0.41 -> 0.27 ms, 256->512 3x3 stride 2 0.65 -> 0.52 ms. Eight weight
 * rows read side by side keep more loads in flight than the packing's gathers of 16 strided rows
 * (a bare read of such a weight ran 2x faster that way than as one sequential stream), and nothing
 * is written back. */
#include "conv_inplace.h"

#include <stdlib.h>

#include "blas_threads.h"
#include "gemm_kernel.h"

/* At most MAX_POSITIONS positions, and a weight of MIN_WEIGHT_FLOATS or more (1 MB: a weight that
 * does not stay in a core's cache between calls, whose reading is what the time goes into). */
enum { MAX_POSITIONS = 64, MIN_WEIGHT_FLOATS = 1 << 18 };

/* How many of the out positions along one axis kernel index i reaches inside [0, size): 0 none,
 * 1 all of them, -1 some. */
static int reach_of(int64_t i, int64_t out, int64_t s, int64_t pad, int64_t d, int64_t size) {
    int64_t inside = 0;
    for (int64_t o = 0; o < out; o++) {
        const int64_t at = o * s - pad + i * d;
        inside += at >= 0 && at < size;
    }
    return inside == 0 ? 0 : inside == out ? 1 : -1;
}

bool cnn_inplace_suits(const cnn_direct_conv *g) {
    const int64_t Q = g->N * g->out_h * g->out_w;
    if (Q == 0 || Q > MAX_POSITIONS || g->C == 0 || g->O == 0 || g->O * g->C * g->kh * g->kw < MIN_WEIGHT_FLOATS)
        return false;
    bool rows = false, cols = false;
    for (int64_t i = 0; i < g->kh; i++) {
        const int r = reach_of(i, g->out_h, g->sh, g->pad_top, g->dh, g->H);
        if (r < 0) return false;
        rows |= r == 1;
    }
    for (int64_t j = 0; j < g->kw; j++) {
        const int r = reach_of(j, g->out_w, g->sw, g->pad_left, g->dw, g->W);
        if (r < 0) return false;
        cols |= r == 1;
    }
    return rows && cols;
}

typedef struct inplace_work {
    const cnn_direct_conv *g;
    const float *input;
    int64_t T, K, P, Q;
    int64_t *tap_i, *tap_j; /* (T) kernel row and column of each kept tap */
    int64_t *steps;         /* (K) offset of each row's weight from an output channel's first */
    const float *weights;   /* output channel o's kernel at weights + o * weight_row, read through steps */
    int64_t weight_row;
    float *unfolded, *staging;
} inplace_work;

/* Rows of the unfolded input for channels [16 * block, 16 * block + 16). */
static void unfold_item(void *ctx, int64_t block, int thread) {
    CNN_UNUSED(thread);
    const inplace_work *w = ctx;
    const cnn_direct_conv *g = w->g;
    const int64_t c_hi = 16 * block + 16 < g->C ? 16 * block + 16 : g->C;
    for (int64_t c = 16 * block; c < c_hi; c++)
        for (int64_t t = 0; t < w->T; t++) {
            float *row = w->unfolded + (c * w->T + t) * w->Q;
            for (int64_t n = 0, q = 0; n < g->N; n++)
                for (int64_t oy = 0; oy < g->out_h; oy++) {
                    const int64_t y = oy * g->sh - g->pad_top + w->tap_i[t] * g->dh;
                    const float *src = w->input + ((n * g->C + c) * g->H + y) * g->W;
                    for (int64_t ox = 0; ox < g->out_w; ox++, q++)
                        row[q] = src[ox * g->sw - g->pad_left + w->tap_j[t] * g->dw];
                }
        }
}

/* Output channels [8 * block, 8 * block + 8) for every position. */
static void product_item(void *ctx, int64_t block, int thread) {
    CNN_UNUSED(thread);
    const inplace_work *w = ctx;
    const cnn_direct_conv *g = w->g;
    const int64_t o0 = block * CNN_GEMM_MR;
    const int rows = g->O - o0 < CNN_GEMM_MR ? (int)(g->O - o0) : CNN_GEMM_MR;
    const float *a_rows[CNN_GEMM_MR];
    float *c_rows[CNN_GEMM_MR];
    for (int r = 0; r < CNN_GEMM_MR; r++) a_rows[r] = w->weights + (o0 + (r < rows ? r : 0)) * w->weight_row;
    for (int64_t q0 = 0; q0 < w->Q; q0 += CNN_GEMM_NR) {
        const int cols = w->Q - q0 < CNN_GEMM_NR ? (int)(w->Q - q0) : CNN_GEMM_NR;
        for (int r = 0; r < rows; r++) c_rows[r] = w->staging + (o0 + r) * w->Q + q0;
        cnn_gemm_kernel_gather(w->K, a_rows, w->steps, w->unfolded + q0, w->Q, c_rows, rows, cols, false);
    }
}

/* Which kept taps of which weight layout a compact copy holds, as one number. */
static uint64_t layout_of(const inplace_work *w) {
    const cnn_direct_conv *g = w->g;
    const int64_t values[] = {g->O, g->C, g->kh, g->kw, g->w_o, g->w_c, g->w_i, g->w_j, w->T};
    uint64_t h = cnn_layout_hash(CNN_LAYOUT_START, values, sizeof values / sizeof *values);
    h = cnn_layout_hash(h, w->tap_i, w->T);
    return cnn_layout_hash(h, w->tap_j, w->T);
}

/* compact (O, K) <- the kept taps of every kernel, in the order of steps. */
static void compact_weights(const inplace_work *w, float *compact) {
    const cnn_direct_conv *g = w->g;
#pragma omp parallel for num_threads(cnn_threads_for(g->O * w->K, 1 << 16)) schedule(static)
    for (int64_t o = 0; o < g->O; o++)
        for (int64_t k = 0; k < w->K; k++) compact[o * w->K + k] = g->weight[o * g->w_o + w->steps[k]];
}

cnn_status cnn_inplace_forward(const cnn_direct_conv *g, const float *input, const float *bias, float *output,
                               const char *op) {
    inplace_work w = {.g = g, .input = input, .P = g->out_h * g->out_w};
    w.Q = g->N * w.P;
    const int64_t taps_all = g->kh * g->kw;
    int64_t *alloc = malloc((size_t)(2 * taps_all + 2 * g->C * taps_all) * sizeof(int64_t));
    if (!alloc) return cnn_fail(CNN_ERR_MEMORY, "%s: out of memory", op);
    w.tap_i = alloc, w.tap_j = alloc + taps_all, w.steps = alloc + 2 * taps_all;
    int64_t *in_order = w.steps + g->C * taps_all; // (K) 0, 1, ...: the steps through a compact copy
    for (int64_t i = 0; i < g->kh; i++)
        for (int64_t j = 0; j < g->kw; j++)
            if (reach_of(i, g->out_h, g->sh, g->pad_top, g->dh, g->H) == 1 &&
                reach_of(j, g->out_w, g->sw, g->pad_left, g->dw, g->W) == 1)
                w.tap_i[w.T] = i, w.tap_j[w.T] = j, w.T++;
    w.K = g->C * w.T;
    for (int64_t c = 0; c < g->C; c++)
        for (int64_t t = 0; t < w.T; t++) w.steps[c * w.T + t] = c * g->w_c + w.tap_i[t] * g->w_i + w.tap_j[t] * g->w_j;
    // In inference the kept taps are copied out once and read from the copy at every later call
    // while the weight is unchanged: on 1x1 maps a 3x3 kernel keeps 1 tap of 9, and the copy is a
    // ninth of the weight (ResNet-18's last stage reads 5 MB instead of 28 from memory per batch).
    w.weights = g->weight, w.weight_row = g->w_o;
    bool fill = false;
    float *compact = cnn_weight_cache_acquire(&g->key, layout_of(&w), g->O * w.K, &fill);
    if (compact) {
        if (fill) compact_weights(&w, compact);
        for (int64_t k = 0; k < w.K; k++) in_order[k] = k;
        w.weights = compact, w.weight_row = w.K, w.steps = in_order;
    }
    w.unfolded = cnn_block_alloc((size_t)(w.K * w.Q + g->O * w.Q) * sizeof(float), false);
    cnn_status st = CNN_OK;
    if (!w.unfolded) {
        st = cnn_fail(CNN_ERR_MEMORY, "%s: out of memory for the unfolded input", op);
    } else {
        w.staging = w.unfolded + w.K * w.Q;
        const int64_t blocks = (g->O + CNN_GEMM_MR - 1) / CNN_GEMM_MR;
        if (!cnn_run_items(cnn_threads_for(w.K * w.Q, 1 << 14), (g->C + 15) / 16, unfold_item, &w) ||
            !cnn_run_items(cnn_threads_for(g->O * w.K * w.Q, 1 << 18), blocks, product_item, &w)) {
            st = cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
        } else {
            // (O, N*P) -> (N, O, P), plus the bias
            for (int64_t n = 0; n < g->N; n++)
                for (int64_t o = 0; o < g->O; o++) {
                    const float b = bias ? bias[o] : 0.0f, *src = w.staging + o * w.Q + n * w.P;
                    float *dst = output + (n * g->O + o) * w.P;
                    for (int64_t p = 0; p < w.P; p++) dst[p] = src[p] + b;
                }
        }
    }
    cnn_weight_cache_release(compact, fill);
    cnn_block_free(w.unfolded, false);
    free(alloc);
    return st;
}
