/* softmax.c - softmax and log-softmax along any dim, forward and backward.
 *
 * The tensor is seen as (outer, D, inner): D is the size of the normalised dim and inner the
 * product of the sizes after it. When inner == 1 (the last dim, by far the common case) each of the
 * outer rows is D contiguous floats. Otherwise the D values of one position lie inner floats apart;
 * the work is then cut into blocks of up to BLOCK neighbouring positions whose running maxima and
 * sums sit in small arrays, so memory is still read front to back.
 *
 * The maximum is subtracted before exponentiating, so large logits never overflow; log-softmax is
 * computed as (x - max) - log(sum exp(x - max)) rather than as the log of a softmax, so it stays
 * finite where the probability underflows to zero. The loops are written to vectorise, with the
 * vectorisable exp of vec_math.h. */
#include <math.h>

#include "internal.h"
#include "vec_math.h"

enum { BLOCK = 256 };                  /* positions per block when inner > 1 */
enum { PARALLEL_MIN_ELEMENTS = 1 << 15 };

typedef struct softmax_geometry {
    int64_t outer, dim, inner;
} softmax_geometry;

static softmax_geometry geometry_of(const cnn_tensor *t, int dim) {
    softmax_geometry g = {1, 1, 1};
    if (t->ndim == 0) return g; /* a scalar is a single row of one value */
    for (int d = 0; d < dim; d++) g.outer *= t->shape[d];
    g.dim = t->shape[dim];
    for (int d = dim + 1; d < t->ndim; d++) g.inner *= t->shape[d];
    return g;
}

/* A 0-d tensor accepts dim 0 or -1, as if it had one dim of size 1. */
static int wrap_softmax_dim(const char *op, int dim, const cnn_tensor *t) {
    return cnn_wrap_dim(op, dim, t->ndim > 0 ? t->ndim : 1);
}

/* ---- forward kernels --------------------------------------------------------------------------- */

static void forward_row(float *restrict y, const float *restrict x, int64_t D, bool log_mode) {
    // y, x: (D)
    float max = -INFINITY;
#pragma omp simd reduction(max : max)
    for (int64_t d = 0; d < D; d++) max = x[d] > max ? x[d] : max;
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t d = 0; d < D; d++) {
        float e = cnn_vec_expf(x[d] - max);
        y[d] = e;
        sum += e;
    }
    if (log_mode) {
        float log_sum = (float)log(sum);
        for (int64_t d = 0; d < D; d++) y[d] = (x[d] - max) - log_sum;
    } else {
        float inv = (float)(1.0 / sum);
        for (int64_t d = 0; d < D; d++) y[d] *= inv;
    }
}

/* Positions [i0, i0 + n) of one (D, inner) slab; n <= BLOCK. */
static void forward_block(float *restrict y, const float *restrict x, int64_t D, int64_t inner,
                          int64_t i0, int n, bool log_mode) {
    float max[BLOCK];
    double sum[BLOCK];
    for (int i = 0; i < n; i++) {
        max[i] = -INFINITY;
        sum[i] = 0.0;
    }
    for (int64_t d = 0; d < D; d++) {
        const float *xd = x + d * inner + i0;
        for (int i = 0; i < n; i++) max[i] = xd[i] > max[i] ? xd[i] : max[i];
    }
    for (int64_t d = 0; d < D; d++) {
        const float *xd = x + d * inner + i0;
        float *yd = y + d * inner + i0;
        for (int i = 0; i < n; i++) {
            float e = cnn_vec_expf(xd[i] - max[i]);
            yd[i] = e;
            sum[i] += e;
        }
    }
    float scale[BLOCK]; /* 1/sum for softmax, log(sum) for log-softmax */
    for (int i = 0; i < n; i++) scale[i] = log_mode ? (float)log(sum[i]) : (float)(1.0 / sum[i]);
    for (int64_t d = 0; d < D; d++) {
        const float *xd = x + d * inner + i0;
        float *yd = y + d * inner + i0;
        if (log_mode)
            for (int i = 0; i < n; i++) yd[i] = (xd[i] - max[i]) - scale[i];
        else
            for (int i = 0; i < n; i++) yd[i] *= scale[i];
    }
}

/* ---- backward kernels --------------------------------------------------------------------------
 * softmax:      dx = y * (dy - sum_d dy*y)
 * log-softmax:  dx = dy - exp(y) * sum_d dy */

static void backward_row(float *restrict dx, const float *restrict dy, const float *restrict y,
                         int64_t D, bool log_mode) {
    double dot = 0.0;
    if (log_mode) {
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < D; d++) dot += dy[d];
        float s = (float)dot;
        for (int64_t d = 0; d < D; d++) dx[d] = dy[d] - cnn_vec_expf(y[d]) * s;
    } else {
#pragma omp simd reduction(+ : dot)
        for (int64_t d = 0; d < D; d++) dot += (double)dy[d] * y[d];
        float s = (float)dot;
        for (int64_t d = 0; d < D; d++) dx[d] = y[d] * (dy[d] - s);
    }
}

static void backward_block(float *restrict dx, const float *restrict dy, const float *restrict y,
                           int64_t D, int64_t inner, int64_t i0, int n, bool log_mode) {
    double acc[BLOCK];
    for (int i = 0; i < n; i++) acc[i] = 0.0;
    for (int64_t d = 0; d < D; d++) {
        const float *dyd = dy + d * inner + i0, *yd = y + d * inner + i0;
        if (log_mode)
            for (int i = 0; i < n; i++) acc[i] += dyd[i];
        else
            for (int i = 0; i < n; i++) acc[i] += (double)dyd[i] * yd[i];
    }
    float s[BLOCK];
    for (int i = 0; i < n; i++) s[i] = (float)acc[i];
    for (int64_t d = 0; d < D; d++) {
        const float *dyd = dy + d * inner + i0, *yd = y + d * inner + i0;
        float *dxd = dx + d * inner + i0;
        if (log_mode)
            for (int i = 0; i < n; i++) dxd[i] = dyd[i] - cnn_vec_expf(yd[i]) * s[i];
        else
            for (int i = 0; i < n; i++) dxd[i] = yd[i] * (dyd[i] - s[i]);
    }
}

/* ---- driver: one loop for both directions -------------------------------------------------------
 * A work item is one row (inner == 1) or one block of one slab. All items run in one parallel
 * region (a region per batch would make every thread wait at a barrier per batch); each item first
 * looks at the interrupt flag, so an interrupt skips the rest of the work. */

typedef struct softmax_job {
    softmax_geometry g;
    bool log_mode, backward;
    float *out;      /* y (forward) or dx (backward) */
    const float *in; /* x (forward) or dy (backward) */
    const float *y;  /* backward only */
} softmax_job;

static void run_item(const softmax_job *job, int64_t item) {
    const softmax_geometry *g = &job->g;
    if (g->inner == 1) {
        int64_t off = item * g->dim;
        if (job->backward)
            backward_row(job->out + off, job->in + off, job->y + off, g->dim, job->log_mode);
        else
            forward_row(job->out + off, job->in + off, g->dim, job->log_mode);
        return;
    }
    int64_t blocks_per_slab = (g->inner + BLOCK - 1) / BLOCK;
    int64_t o = item / blocks_per_slab;
    int64_t i0 = (item % blocks_per_slab) * BLOCK;
    int n = (int)(g->inner - i0 < BLOCK ? g->inner - i0 : BLOCK);
    int64_t off = o * g->dim * g->inner;
    if (job->backward)
        backward_block(job->out + off, job->in + off, job->y + off, g->dim, g->inner, i0, n,
                       job->log_mode);
    else
        forward_block(job->out + off, job->in + off, g->dim, g->inner, i0, n, job->log_mode);
}

static cnn_status run_job(const softmax_job *job, const char *op) {
    const softmax_geometry *g = &job->g;
    int64_t items = g->inner == 1 ? g->outer : g->outer * ((g->inner + BLOCK - 1) / BLOCK);
    int64_t item_elements = g->inner == 1 ? g->dim : g->dim * (g->inner < BLOCK ? g->inner : BLOCK);
    bool parallel = items > 1 && items * item_elements >= PARALLEL_MIN_ELEMENTS;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t item = 0; item < items; item++)
        if (!cnn_interrupted()) run_item(job, item);
    if (cnn_interrupted()) return cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
    return CNN_OK;
}

/* ---- autograd ---------------------------------------------------------------------------------- */

static cnn_status softmax_backward_common(cnn_node *node, cnn_tensor *grad_output,
                                          cnn_tensor **grad_inputs, bool log_mode) {
    if (!node->needs_grad[0]) return CNN_OK;
    cnn_tensor *y = node->saved[0];
    cnn_tensor *dy_tmp = NULL, *y_tmp = NULL, *dx = NULL;
    const float *dy = cnn_read_ptr(grad_output, &dy_tmp);
    const float *yp = dy ? cnn_read_ptr(y, &y_tmp) : NULL;
    if (yp) dx = cnn_alloc(y->ndim, y->shape);
    cnn_status status = dx ? CNN_OK : cnn_last_status();
    if (dx) {
        softmax_job job = {geometry_of(y, (int)node->ints[0]), log_mode, true, cnn_ptr(dx), dy, yp};
        status = run_job(&job, node->name);
    }
    cnn_release(dy_tmp);
    cnn_release(y_tmp);
    if (status != CNN_OK) {
        cnn_release(dx);
        return status;
    }
    grad_inputs[0] = dx;
    return CNN_OK;
}

static cnn_status softmax_backward(cnn_node *node, cnn_tensor *grad_output,
                                   cnn_tensor **grad_inputs) {
    return softmax_backward_common(node, grad_output, grad_inputs, false);
}

static cnn_status log_softmax_backward(cnn_node *node, cnn_tensor *grad_output,
                                       cnn_tensor **grad_inputs) {
    return softmax_backward_common(node, grad_output, grad_inputs, true);
}

/* ---- public entry points ------------------------------------------------------------------------ */

static cnn_tensor *softmax_forward(cnn_tensor *x, int dim, bool log_mode) {
    const char *op = log_mode ? "log_softmax" : "softmax";
    if (!x) return cnn_fail_null(CNN_ERR_ARGUMENT, "%s: input is NULL", op);
    int d = wrap_softmax_dim(op, dim, x);
    if (d < 0) return NULL;
    cnn_tensor *x_tmp = NULL;
    const float *xp = cnn_read_ptr(x, &x_tmp);
    if (!xp) return NULL;
    cnn_tensor *y = cnn_alloc(x->ndim, x->shape);
    if (!y) {
        cnn_release(x_tmp);
        return NULL;
    }
    softmax_job job = {geometry_of(x, d), log_mode, false, cnn_ptr(y), xp, NULL};
    cnn_status status = cnn_numel(x) > 0 ? run_job(&job, op) : CNN_OK;
    cnn_release(x_tmp);
    if (status != CNN_OK) {
        cnn_release(y);
        return NULL;
    }
    bool failed = false;
    cnn_node *node = cnn_record(y, op, log_mode ? log_softmax_backward : softmax_backward, 1, &x,
                                &failed);
    if (failed || (node && !cnn_node_save(node, y))) {
        cnn_release(y);
        return NULL;
    }
    if (node) node->ints[0] = d;
    return y;
}

cnn_tensor *cnn_softmax(cnn_tensor *x, int dim) { return softmax_forward(x, dim, false); }

cnn_tensor *cnn_log_softmax(cnn_tensor *x, int dim) { return softmax_forward(x, dim, true); }
