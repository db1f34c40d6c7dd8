/* Convolution as im2col + sgemm, with its adjoints: the path for grouped convolutions, strided
 * input gradients and builds without AVX-512 (conv_algo.c chooses). Dimension legend: N batch, C input channels,
 * O output channels, G groups, Cg = C/G, Og = O/G, K = Cg*kH*kW (rows of the column matrix),
 * P = oH*oW (output positions per image), B images per chunk, T threads.
 *
 * The batch is cut into chunks of B images; one work item is one chunk of one group. An item
 * unfolds its images into a (K, B*P) column matrix and runs one sgemm. B is 1 once an image has a
 * few hundred output positions: the column matrix then stays in cache between im2col and sgemm and
 * the product lands in the NCHW output directly. Smaller images are laid side by side so that the
 * product is still wide enough to run at full speed, and go through a (Og, B*P) staging buffer.
 *
 * Items are independent, so with several items they are spread over OpenMP threads, each with its
 * own buffers and a single-threaded sgemm (blas_threads.h); each thread sums its share of the weight
 * gradient apart and the shares are added at the end. Work that cannot be shared (a single image of
 * a single group) or is too small to be worth it runs on the calling thread, leaving any threading
 * to the BLAS. */
#include "conv_gemm.h"

#include <stdlib.h>
#include <string.h>

#include "blas_threads.h"

/* Chunking: about TARGET_COLUMNS output positions per product, within COLUMN_BUDGET_FLOATS of
 * unfolded patches. */
enum { TARGET_COLUMNS = 256, COLUMN_BUDGET_FLOATS = 1 << 20 };

/* About 50 microseconds of work: below that, waking threads costs more than it saves. */
enum { PARALLEL_MIN_MACS = 1 << 21 };

typedef struct conv_scratch {
    float *col;         /* (K, B*P) */
    float *staging;     /* (Og, B*P): products or gathered output gradients of multi-image chunks */
    float *grad_weight; /* (O, K): this thread's share of the weight gradient, when T > 1 */
} conv_scratch;

typedef struct conv_work {
    const cnn_conv_plan *p;
    int64_t N, G, O, Og, Cg, C, HW, P, K;
    int64_t chunk, items;
    int threads;
    conv_scratch *scratch; /* one per thread */
} conv_work;

static int64_t images_per_chunk(int64_t N, int64_t K, int64_t P) {
    int64_t b = (TARGET_COLUMNS + P - 1) / P;
    if (b > COLUMN_BUDGET_FLOATS / (K * P)) b = COLUMN_BUDGET_FLOATS / (K * P);
    if (b > N) b = N;
    return b < 1 ? 1 : b;
}

static float *scratch_floats(int64_t n) { return cnn_block_alloc((size_t)(n > 0 ? n : 1) * sizeof(float), false); }

static void free_scratch(conv_scratch *scratch, int threads) {
    if (!scratch) return;
    for (int t = 0; t < threads; t++) {
        cnn_block_free(scratch[t].col, false);
        cnn_block_free(scratch[t].staging, false);
        cnn_block_free(scratch[t].grad_weight, false);
    }
    free(scratch);
}

static void work_end(conv_work *w) {
    free_scratch(w->scratch, w->threads);
    cnn_blas_end();
}

/* A product of one item: single-threaded when the items run in parallel, else cut over the threads. */
static void item_gemm(const conv_work *w, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const float *a,
                      int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (w->threads > 1)
        cnn_sgemm_serial(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
    else
        cnn_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, beta, c, ldc);
}

/* Sizes, thread count and per-thread buffers (zeroed weight-gradient shares when asked). Call only
 * with N, O, P and K all positive. */
static cnn_status work_begin(conv_work *w, const cnn_conv_plan *p, bool weight_shares, const char *op) {
    const cnn_conv_geometry *g = &p->geo;
    *w = (conv_work){.p = p,
                     .N = p->batch,
                     .G = p->groups,
                     .O = p->out_channels,
                     .Cg = g->channels,
                     .HW = g->height * g->width,
                     .P = g->out_h * g->out_w,
                     .K = cnn_geometry_col_rows(g)};
    w->Og = w->O / w->G;
    w->C = w->Cg * w->G;
    w->chunk = images_per_chunk(w->N, w->K, w->P);
    w->items = (w->N + w->chunk - 1) / w->chunk * w->G;
    // threads only pay off when each gets at least PARALLEL_MIN_MACS multiply-adds
    const int64_t macs = w->N * w->O * w->P * w->K, by_work = macs / PARALLEL_MIN_MACS;
    w->threads = cnn_threads_for(by_work < w->items ? by_work : w->items, 1);
    w->scratch = calloc((size_t)w->threads, sizeof *w->scratch);
    const int64_t col_floats = w->K * w->chunk * w->P, staging_floats = w->Og * w->chunk * w->P;
    bool ok = w->scratch != NULL;
    for (int t = 0; ok && t < w->threads; t++) {
        conv_scratch *s = &w->scratch[t];
        s->col = scratch_floats(col_floats);
        s->staging = w->chunk > 1 ? scratch_floats(staging_floats) : NULL;
        s->grad_weight = weight_shares && w->threads > 1 ? scratch_floats(w->O * w->K) : NULL;
        ok = s->col && (w->chunk == 1 || s->staging) && (!weight_shares || w->threads == 1 || s->grad_weight);
        if (ok && s->grad_weight) memset(s->grad_weight, 0, (size_t)(w->O * w->K) * sizeof(float));
    }
    if (!ok) {
        free_scratch(w->scratch, w->threads);
        return cnn_fail(CNN_ERR_MEMORY, "%s: out of memory for %d work buffers of %lld floats", op,
                        w->threads, (long long)(col_floats + staging_floats));
    }
    cnn_blas_begin();
    return CNN_OK;
}

/* The chunk and group of an item: images [n0, n0 + B) of group grp. */
typedef struct item_span {
    int64_t n0, B, grp;
} item_span;

static item_span span_of(const conv_work *w, int64_t item) {
    item_span s = {.n0 = item / w->G * w->chunk, .grp = item % w->G};
    s.B = w->N - s.n0 < w->chunk ? w->N - s.n0 : w->chunk;
    return s;
}

/* col (K, B*P) <- the span's images of its group. */
static void unfold_span(const conv_work *w, const item_span *s, const float *input, float *col) {
    const float *first = input + (s->n0 * w->C + s->grp * w->Cg) * w->HW;
    for (int64_t b = 0; b < s->B; b++)
        cnn_im2col(first + b * w->C * w->HW, &w->p->geo, col + b * w->P, s->B * w->P);
}

typedef void (*item_fn)(const conv_work *w, int64_t item, conv_scratch *s, const void *args);

typedef struct item_call {
    const conv_work *w;
    item_fn fn;
    const void *args;
} item_call;

static void call_item(void *ctx, int64_t item, int thread) {
    const item_call *c = ctx;
    c->fn(c->w, item, &c->w->scratch[thread], c->args);
}

/* Runs fn on every item, spread over the work's threads; false when interrupted. */
static bool run_items(const conv_work *w, item_fn fn, const void *args) {
    item_call c = {w, fn, args};
    return cnn_run_items(w->threads, w->items, call_item, &c);
}

/* ---- forward ---------------------------------------------------------------------------------- */
typedef struct forward_args {
    const float *input, *weight, *bias;
    float *output;
} forward_args;

static void forward_item(const conv_work *w, int64_t item, conv_scratch *s, const void *args) {
    const forward_args *a = args;
    const item_span sp = span_of(w, item);
    const int64_t P = w->P, BP = sp.B * P, Og = w->Og, K = w->K;
    unfold_span(w, &sp, a->input, s->col);
    const float *weight = a->weight + sp.grp * Og * K; // (Og, K)
    const float *bias = a->bias ? a->bias + sp.grp * Og : NULL;
    if (sp.B == 1) {
        // the bias is written first and the product added to it: one pass over the output
        float *dst = a->output + (sp.n0 * w->O + sp.grp * Og) * P; // (Og, P)
        if (bias)
            for (int64_t o = 0; o < Og; o++)
                for (int64_t i = 0; i < P; i++) dst[o * P + i] = bias[o];
        item_gemm(w, false, false, Og, P, K, weight, K, s->col, P, bias ? 1.0f : 0.0f, dst, P);
        return;
    }
    item_gemm(w, false, false, Og, BP, K, weight, K, s->col, BP, 0.0f, s->staging, BP);
    for (int64_t b = 0; b < sp.B; b++)
        for (int64_t o = 0; o < Og; o++) {
            float *dst = a->output + ((sp.n0 + b) * w->O + sp.grp * Og + o) * P; // (P)
            const float *src = s->staging + o * BP + b * P;                      // (P)
            const float v = bias ? bias[o] : 0.0f;
            for (int64_t i = 0; i < P; i++) dst[i] = src[i] + v;
        }
}

/* Fills (N, O, P) with the bias of each channel, or zeros. */
static void fill_with_bias(float *output, const float *bias, int64_t N, int64_t O, int64_t P) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++) {
            float *dst = output + (n * O + o) * P;
            const float v = bias ? bias[o] : 0.0f;
            for (int64_t i = 0; i < P; i++) dst[i] = v;
        }
}

cnn_status cnn_conv_im2col_forward(const cnn_conv_plan *p, const float *input, const float *weight,
                                   const float *bias, float *output, const char *op) {
    const int64_t P = p->geo.out_h * p->geo.out_w, K = cnn_geometry_col_rows(&p->geo);
    if (p->batch == 0 || p->out_channels == 0 || P == 0) return CNN_OK;
    if (K == 0) {
        fill_with_bias(output, bias, p->batch, p->out_channels, P);
        return CNN_OK;
    }
    conv_work w;
    cnn_status st = work_begin(&w, p, false, op);
    if (st != CNN_OK) return st;
    const forward_args args = {input, weight, bias, output};
    if (!run_items(&w, forward_item, &args)) st = cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
    work_end(&w);
    return st;
}

/* ---- backward --------------------------------------------------------------------------------- */
typedef struct backward_args {
    const float *input, *weight, *grad_output;
    float *grad_input, *grad_weight;
} backward_args;

static void backward_item(const conv_work *w, int64_t item, conv_scratch *s, const void *args) {
    const backward_args *a = args;
    const item_span sp = span_of(w, item);
    const int64_t P = w->P, BP = sp.B * P, Og = w->Og, K = w->K;
    // go: this item's output gradient as one (Og, B*P) matrix
    const float *go = a->grad_output + (sp.n0 * w->O + sp.grp * Og) * P;
    if (sp.B > 1) {
        for (int64_t b = 0; b < sp.B; b++)
            for (int64_t o = 0; o < Og; o++)
                memcpy(s->staging + o * BP + b * P,
                       a->grad_output + ((sp.n0 + b) * w->O + sp.grp * Og + o) * P,
                       (size_t)P * sizeof(float));
        go = s->staging;
    }
    if (a->grad_weight) {
        unfold_span(w, &sp, a->input, s->col);
        // grad_weight_g (Og, K) += go (Og, B*P) x col^T (B*P, K), into this thread's share
        float *gw = (s->grad_weight ? s->grad_weight : a->grad_weight) + sp.grp * Og * K;
        item_gemm(w, false, true, Og, K, BP, go, BP, s->col, BP, 1.0f, gw, K);
    }
    if (a->grad_input) {
        // col (K, B*P) = weight_g^T (K, Og) x go (Og, B*P), folded back onto the images
        item_gemm(w, true, false, K, BP, Og, a->weight + sp.grp * Og * K, K, go, BP, 0.0f, s->col, BP);
        float *first = a->grad_input + (sp.n0 * w->C + sp.grp * w->Cg) * w->HW;
        for (int64_t b = 0; b < sp.B; b++)
            cnn_col2im(s->col + b * P, &w->p->geo, first + b * w->C * w->HW, BP);
    }
}

cnn_status cnn_conv_im2col_backward(const cnn_conv_plan *p, const float *input, const float *weight,
                                    const float *grad_output, float *grad_input, float *grad_weight,
                                    const char *op) {
    const cnn_conv_geometry *g = &p->geo;
    const int64_t P = g->out_h * g->out_w, K = cnn_geometry_col_rows(g);
    const int64_t C = g->channels * p->groups, HW = g->height * g->width;
    if (grad_input) memset(grad_input, 0, (size_t)(p->batch * C * HW) * sizeof(float));
    if (grad_weight) memset(grad_weight, 0, (size_t)(p->out_channels * K) * sizeof(float));
    if (p->batch == 0 || p->out_channels == 0 || P == 0 || K == 0 || (!grad_input && !grad_weight))
        return CNN_OK;
    conv_work w;
    cnn_status st = work_begin(&w, p, grad_weight != NULL, op);
    if (st != CNN_OK) return st;
    const backward_args args = {input, weight, grad_output, grad_input, grad_weight};
    if (!run_items(&w, backward_item, &args)) st = cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
    if (st == CNN_OK && grad_weight && w.threads > 1) {
        const int64_t n = w.O * K;
        for (int t = 0; t < w.threads; t++)
            for (int64_t i = 0; i < n; i++) grad_weight[i] += w.scratch[t].grad_weight[i];
    }
    work_end(&w);
    return st;
}

/* ---- bias ------------------------------------------------------------------------------------- */
/* Sum of n floats with independent partial sums, which the compiler keeps in vector lanes (a single
 * running float sum must stay sequential under strict floating-point rules). */
static float sum_floats(const float *x, int64_t n) {
    enum { LANES = 16 };
    float part[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) part[k] += x[i + k];
    float s = 0;
    for (; i < n; i++) s += x[i];
    for (int k = 0; k < LANES; k++) s += part[k];
    return s;
}

/* Images per share of the bias gradient: shares are summed in parallel and then in order, so that the
 * result does not depend on the number of threads. */
enum { BIAS_SHARE_IMAGES = 8 };

void cnn_conv_bias_grad(const float *grad, int64_t batch, int64_t channels, int64_t plane, float *grad_bias) {
    const int64_t shares = (batch + BIAS_SHARE_IMAGES - 1) / BIAS_SHARE_IMAGES;
    double *partial = shares > 1 ? malloc((size_t)(shares * channels) * sizeof(double)) : NULL;
    if (!partial) { // one share (or no memory for more): in order on this thread
        for (int64_t c = 0; c < channels; c++) {
            double total = 0;
            for (int64_t n = 0; n < batch; n++) total += sum_floats(grad + (n * channels + c) * plane, plane);
            grad_bias[c] = (float)total;
        }
        return;
    }
#pragma omp parallel for num_threads(cnn_threads_for(batch * channels * plane, 1 << 16)) schedule(static)
    for (int64_t s = 0; s < shares; s++) {
        const int64_t n_hi = (s + 1) * BIAS_SHARE_IMAGES < batch ? (s + 1) * BIAS_SHARE_IMAGES : batch;
        for (int64_t c = 0; c < channels; c++) {
            double total = 0;
            for (int64_t n = s * BIAS_SHARE_IMAGES; n < n_hi; n++)
                total += sum_floats(grad + (n * channels + c) * plane, plane);
            partial[s * channels + c] = total;
        }
    }
    for (int64_t c = 0; c < channels; c++) {
        double total = 0;
        for (int64_t s = 0; s < shares; s++) total += partial[s * channels + c];
        grad_bias[c] = (float)total;
    }
    free(partial);
}
