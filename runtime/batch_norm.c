/* batch_norm.c - batch normalisation of (N, C, ...) inputs, forward and backward.
 *
 * Dimension legend: N batch, C channels, S the product of the dims after C (H*W for images, 1 for
 * (N, C) inputs), M = N*S values per channel. Channel c of sample n is the contiguous strip
 * x[(n*C + c)*S .. +S).
 *
 *   y = (x - mean) * invstd * weight + bias,      invstd = 1 / sqrt(var + eps)
 *
 * Training normalises with the batch mean and biased variance of each channel and moves the running
 * estimates towards them: running = (1 - momentum) * running + momentum * batch, where the variance
 * fed to running_var is the unbiased one (times M / (M - 1)), as PyTorch does. Eval normalises with
 * the running estimates.
 *
 * Backward, with xhat = (x - mean) * invstd:
 *   dbias   = sum(dy)           dweight = sum(dy * xhat)
 *   training: dx = weight * invstd * (dy - sum(dy)/M - xhat * sum(dy*xhat)/M)
 *             (the batch statistics depend on x, which gives the two subtracted terms)
 *   eval:     dx = weight * invstd * dy
 * Every pass is a loop per channel over its strips; channels run in parallel, in one parallel
 * region per call, and each channel first looks at the interrupt flag. */
#include <math.h>
#include <stdlib.h>

#include "internal.h"

enum { PARALLEL_MIN_ELEMENTS = 1 << 15 };

/* What backward needs besides the input: per-channel statistics and the weight as they were in
 * the forward pass (the running statistics or the weight may change in place before backward). */
typedef struct bn_ctx {
    int64_t channels;
    bool training;
    float *mean;   /* (C) */
    float *invstd; /* (C) */
    float *weight; /* (C), ones when the op had no weight */
    float storage[];
} bn_ctx;

typedef struct bn_geometry {
    int64_t N, C, S;
} bn_geometry;

static bn_ctx *bn_ctx_new(int64_t C, bool training) {
    bn_ctx *ctx = malloc(sizeof(bn_ctx) + (size_t)(3 * C) * sizeof(float));
    if (!ctx) return cnn_fail_null(CNN_ERR_MEMORY, "batch_norm: out of memory");
    ctx->channels = C;
    ctx->training = training;
    ctx->mean = ctx->storage;
    ctx->invstd = ctx->storage + C;
    ctx->weight = ctx->storage + 2 * C;
    return ctx;
}

/* Element c of a 1-d tensor of any stride. */
static inline float *channel_at(const cnn_tensor *t, int64_t c) { return cnn_ptr(t) + c * t->stride[0]; }

/* ---- per-channel kernels ----------------------------------------------------------------------- */

/* Batch mean and biased variance of channel c in one pass. The values are shifted by the channel's
 * first value before summing x and x^2, which keeps the subtraction in var = E[d^2] - E[d]^2 from
 * cancelling when the mean is large compared with the spread. Pieces of at most PIECE values
 * are summed in float vector lanes (a few hundred values per lane) and the pieces' sums in double:
 * as precise as summing everything in double, at the speed of float arithmetic. */
enum { PIECE = 4096 };

static void channel_moments(const float *x, bn_geometry g, int64_t c, double *mean, double *var) {
    const float pivot = x[c * g.S];
    double sum = 0.0, squares = 0.0;
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t s0 = 0; s0 < g.S; s0 += PIECE) {
            const float *strip = x + (n * g.C + c) * g.S + s0; // (S)
            const int64_t len = g.S - s0 < PIECE ? g.S - s0 : PIECE;
            float piece_sum = 0.0f, piece_squares = 0.0f;
#pragma omp simd reduction(+ : piece_sum, piece_squares)
            for (int64_t s = 0; s < len; s++) {
                const float d = strip[s] - pivot;
                piece_sum += d;
                piece_squares += d * d;
            }
            sum += piece_sum;
            squares += piece_squares;
        }
    double M = (double)(g.N * g.S);
    double shifted_mean = sum / M;
    *mean = (double)pivot + shifted_mean;
    *var = fmax(squares / M - shifted_mean * shifted_mean, 0.0);
}

/* y = (x - mean) * scale + shift over channel c. Subtracting the mean first (rather than folding it
 * into the shift) keeps the precision when the mean is large compared with the spread. */
static void channel_affine(float *y, const float *x, bn_geometry g, int64_t c, float mean,
                           float scale, float shift) {
    for (int64_t n = 0; n < g.N; n++) {
        int64_t off = (n * g.C + c) * g.S;
#pragma omp simd
        for (int64_t s = 0; s < g.S; s++) y[off + s] = (x[off + s] - mean) * scale + shift;
    }
}

/* sum(dy) and sum(dy * (x - mean)) over channel c: float lanes per piece, double across pieces. */
static void channel_grad_sums(const float *dy, const float *x, bn_geometry g, int64_t c, float mean,
                              double *sum_dy, double *sum_dy_centered) {
    double a = 0.0, b = 0.0;
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t s0 = 0; s0 < g.S; s0 += PIECE) {
            const int64_t off = (n * g.C + c) * g.S + s0, len = g.S - s0 < PIECE ? g.S - s0 : PIECE;
            float piece_a = 0.0f, piece_b = 0.0f;
#pragma omp simd reduction(+ : piece_a, piece_b)
            for (int64_t s = 0; s < len; s++) {
                piece_a += dy[off + s];
                piece_b += dy[off + s] * (x[off + s] - mean);
            }
            a += piece_a;
            b += piece_b;
        }
    *sum_dy = a;
    *sum_dy_centered = b;
}

/* dx = k * (dy - mean_dy - (x - mean) * slope) over channel c. */
static void channel_input_grad(float *dx, const float *dy, const float *x, bn_geometry g, int64_t c,
                               float k, float mean_dy, float mean, float slope) {
    for (int64_t n = 0; n < g.N; n++) {
        int64_t off = (n * g.C + c) * g.S;
#pragma omp simd
        for (int64_t s = 0; s < g.S; s++)
            dx[off + s] = k * (dy[off + s] - mean_dy - (x[off + s] - mean) * slope);
    }
}

/* ---- backward ----------------------------------------------------------------------------------- */

static cnn_status batch_norm_backward(cnn_node *node, cnn_tensor *grad_output,
                                      cnn_tensor **grad_inputs) {
    const bn_ctx *ctx = node->ctx;
    cnn_tensor *input = node->saved[0];
    bn_geometry g = {node->ints[0], node->ints[1], node->ints[2]};
    int64_t C = g.C;
    double M = (double)(g.N * g.S);
    cnn_tensor *x_tmp = NULL, *dy_tmp = NULL, *dx = NULL, *dweight = NULL, *dbias = NULL;
    cnn_status status = CNN_OK;
    const float *x = cnn_read_ptr(input, &x_tmp);
    const float *dy = x ? cnn_read_ptr(grad_output, &dy_tmp) : NULL;
    if (!dy) goto fail;
    int64_t vec_shape[1] = {C};
    if (node->needs_grad[0] && !(dx = cnn_alloc(input->ndim, input->shape))) goto fail;
    if (node->needs_grad[1] && !(dweight = cnn_alloc(1, vec_shape))) goto fail;
    if (node->needs_grad[2] && !(dbias = cnn_alloc(1, vec_shape))) goto fail;
    float *dxp = dx ? cnn_ptr(dx) : NULL;
    float *dwp = dweight ? cnn_ptr(dweight) : NULL;
    float *dbp = dbias ? cnn_ptr(dbias) : NULL;

    bool parallel = C > 1 && C * g.N * g.S >= PARALLEL_MIN_ELEMENTS;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t c = 0; c < C; c++) {
        if (cnn_interrupted()) continue;
        float mean = ctx->mean[c], invstd = ctx->invstd[c], w = ctx->weight[c];
        double sum_dy, sum_dy_centered;
        channel_grad_sums(dy, x, g, c, mean, &sum_dy, &sum_dy_centered);
        if (dbp) dbp[c] = (float)sum_dy;
        if (dwp) dwp[c] = (float)(sum_dy_centered * invstd);
        if (!dxp) continue;
        if (ctx->training)
            channel_input_grad(dxp, dy, x, g, c, w * invstd, (float)(sum_dy / M), mean,
                               (float)(sum_dy_centered * invstd * invstd / M));
        else
            channel_input_grad(dxp, dy, x, g, c, w * invstd, 0.0f, mean, 0.0f);
    }
    if (cnn_interrupted()) {
        status = cnn_fail(CNN_ERR_INTERRUPTED, "batch_norm: interrupted in backward");
        goto fail;
    }
    cnn_release(x_tmp);
    cnn_release(dy_tmp);
    grad_inputs[0] = dx;
    grad_inputs[1] = dweight;
    grad_inputs[2] = dbias;
    return CNN_OK;
fail:
    if (status == CNN_OK) status = cnn_last_status() != CNN_OK ? cnn_last_status() : CNN_ERR_MEMORY;
    cnn_release(x_tmp);
    cnn_release(dy_tmp);
    cnn_release(dx);
    cnn_release(dweight);
    cnn_release(dbias);
    return status;
}

/* ---- forward ------------------------------------------------------------------------------------ */

/* A per-channel tensor must be 1-d of size C (or absent when optional). */
static bool check_channel_vector(const cnn_tensor *t, const char *name, const cnn_tensor *input) {
    if (!t || (t->ndim == 1 && t->shape[0] == input->shape[1])) return true;
    cnn_fail(CNN_ERR_SHAPE, "batch_norm: %s has shape %s but input %s has %lld channels", name,
             cnn_shape_str(t), cnn_shape_str(input), (long long)input->shape[1]);
    return false;
}

static bool check_arguments(cnn_tensor *input, cnn_tensor *running_mean, cnn_tensor *running_var,
                            cnn_tensor *weight, cnn_tensor *bias, int training, float eps) {
    if (!input) return cnn_fail(CNN_ERR_ARGUMENT, "batch_norm: input is NULL"), false;
    if (input->ndim < 2)
        return cnn_fail(CNN_ERR_SHAPE, "batch_norm: input must be (N, C) or (N, C, ...), got %s",
                        cnn_shape_str(input)), false;
    if (!check_channel_vector(running_mean, "running_mean", input) ||
        !check_channel_vector(running_var, "running_var", input) ||
        !check_channel_vector(weight, "weight", input) || !check_channel_vector(bias, "bias", input))
        return false;
    if (!running_mean != !running_var)
        return cnn_fail(CNN_ERR_ARGUMENT,
                        "batch_norm: running_mean and running_var must be given together"), false;
    if (!training && !running_mean)
        return cnn_fail(CNN_ERR_ARGUMENT,
                        "batch_norm: eval mode needs running_mean and running_var"), false;
    if (!(eps >= 0.0f))
        return cnn_fail(CNN_ERR_ARGUMENT, "batch_norm: eps must be >= 0, got %g", (double)eps), false;
    int64_t per_channel = cnn_numel(input) / (input->shape[1] > 0 ? input->shape[1] : 1);
    if (training && per_channel == 1)
        return cnn_fail(CNN_ERR_SHAPE,
                        "batch_norm: training needs more than one value per channel, got input %s",
                        cnn_shape_str(input)), false;
    return true;
}

/* Fills mean/invstd of every channel: from the batch in training (also returning the biased
 * variances in batch_var), from the running estimates in eval. Then writes y. */
static cnn_status normalise(float *y, const float *x, bn_geometry g, bn_ctx *ctx,
                            cnn_tensor *running_mean, cnn_tensor *running_var, cnn_tensor *bias,
                            float eps, double *batch_var) {
    bool parallel = g.C > 1 && g.C * g.N * g.S >= PARALLEL_MIN_ELEMENTS;
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t c = 0; c < g.C; c++) {
        if (cnn_interrupted()) continue;
        double mean, var;
        if (ctx->training) {
            channel_moments(x, g, c, &mean, &var);
            batch_var[c] = var;
        } else {
            mean = *channel_at(running_mean, c);
            var = *channel_at(running_var, c);
        }
        float invstd = (float)(1.0 / sqrt(var + eps));
        float shift = bias ? *channel_at(bias, c) : 0.0f;
        float scale = invstd * ctx->weight[c];
        ctx->mean[c] = (float)mean;
        ctx->invstd[c] = invstd;
        channel_affine(y, x, g, c, (float)mean, scale, shift);
    }
    if (cnn_interrupted()) return cnn_fail(CNN_ERR_INTERRUPTED, "batch_norm: interrupted");
    return CNN_OK;
}

static void update_running_stats(cnn_tensor *running_mean, cnn_tensor *running_var,
                                 const bn_ctx *ctx, const double *batch_var, int64_t M,
                                 float momentum) {
    double unbias = (double)M / (double)(M - 1);
    for (int64_t c = 0; c < ctx->channels; c++) {
        float *rm = channel_at(running_mean, c), *rv = channel_at(running_var, c);
        *rm = (1.0f - momentum) * *rm + momentum * ctx->mean[c];
        *rv = (float)((1.0 - momentum) * *rv + momentum * batch_var[c] * unbias);
    }
}

cnn_tensor *cnn_batch_norm(cnn_tensor *input, cnn_tensor *running_mean, cnn_tensor *running_var,
                           cnn_tensor *weight, cnn_tensor *bias, int training, float momentum,
                           float eps) {
    if (!check_arguments(input, running_mean, running_var, weight, bias, training, eps)) return NULL;
    bn_geometry g = {input->shape[0], input->shape[1], 1};
    for (int d = 2; d < input->ndim; d++) g.S *= input->shape[d];

    cnn_tensor *x_tmp = NULL, *y = NULL;
    double *batch_var = NULL;
    bn_ctx *ctx = bn_ctx_new(g.C, training != 0);
    const float *x = ctx ? cnn_read_ptr(input, &x_tmp) : NULL;
    if (!x) goto fail;
    if (training && !(batch_var = malloc((size_t)(g.C > 0 ? g.C : 1) * sizeof(double)))) {
        cnn_fail(CNN_ERR_MEMORY, "batch_norm: out of memory");
        goto fail;
    }
    for (int64_t c = 0; c < g.C; c++) ctx->weight[c] = weight ? *channel_at(weight, c) : 1.0f;
    if (!(y = cnn_alloc(input->ndim, input->shape))) goto fail;
    if (g.N * g.S > 0) {
        if (normalise(cnn_ptr(y), x, g, ctx, running_mean, running_var, bias, eps, batch_var) != CNN_OK)
            goto fail;
        if (training && running_mean)
            update_running_stats(running_mean, running_var, ctx, batch_var, g.N * g.S, momentum);
    }
    cnn_release(x_tmp);
    x_tmp = NULL;
    free(batch_var);
    batch_var = NULL;

    cnn_tensor *inputs[3] = {input, weight, bias};
    bool failed = false;
    cnn_node *node = cnn_record(y, "batch_norm", batch_norm_backward, 3, inputs, &failed);
    if (failed) goto fail;
    if (!node) {
        free(ctx);
        return y;
    }
    node->ctx = ctx;
    node->free_ctx = free;
    ctx = NULL;
    node->ints[0] = g.N;
    node->ints[1] = g.C;
    node->ints[2] = g.S;
    if (!cnn_node_save(node, input)) goto fail;
    return y;
fail:
    cnn_release(x_tmp);
    cnn_release(y);
    free(batch_var);
    free(ctx);
    return NULL;
}
