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
 * Each call is one or two passes of channel_passes.h: sums per channel, then a map per element. */
#include <math.h>
#include <stdlib.h>

#include "channel_passes.h"
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

/* Per-channel scratch of one call: two sums in double, three values in float. */
typedef struct bn_scratch {
    double *a, *b;
    float *f0, *f1, *f2;
    void *block;
} bn_scratch;

static bool scratch_new(bn_scratch *t, int64_t C) {
    const size_t n = (size_t)(C > 0 ? C : 1);
    t->block = malloc(n * (2 * sizeof(double) + 3 * sizeof(float)));
    if (!t->block) return cnn_fail(CNN_ERR_MEMORY, "batch_norm: out of memory"), false;
    t->a = t->block, t->b = t->a + n;
    t->f0 = (float *)(t->b + n), t->f1 = t->f0 + n, t->f2 = t->f1 + n;
    return true;
}

/* ---- backward ----------------------------------------------------------------------------------- */

static cnn_status batch_norm_backward(cnn_node *node, cnn_tensor *grad_output,
                                      cnn_tensor **grad_inputs) {
    const bn_ctx *ctx = node->ctx;
    cnn_tensor *input = node->saved[0];
    cnn_channel_geometry g = {node->ints[0], node->ints[1], node->ints[2]};
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

    const bool parallel = g.N * C * g.S >= PARALLEL_MIN_ELEMENTS;
    bn_scratch t;
    if (!scratch_new(&t, C)) goto fail;
    // sums of dy and dy * (x - mean), unless only an eval-mode dx (weight * invstd * dy) is wanted
    const bool sums = dwp || dbp || ctx->training;
    if (sums) status = cnn_channel_sums(g, dy, NULL, x, ctx->mean, t.a, t.b, parallel, "batch_norm backward");
    for (int64_t c = 0; status == CNN_OK && c < C; c++) {
        const float invstd = ctx->invstd[c], k = ctx->weight[c] * invstd;
        if (dbp) dbp[c] = (float)t.a[c];
        if (dwp) dwp[c] = (float)(t.b[c] * invstd);
        // dx = k * (dy - mean_dy - (x - mean) * slope) = (x - mean) * (-k * slope) - k * mean_dy + dy * k
        const float mean_dy = ctx->training ? (float)(t.a[c] / M) : 0.0f;
        const float slope = ctx->training ? (float)(t.b[c] * invstd * invstd / M) : 0.0f;
        t.f0[c] = -k * slope, t.f1[c] = -k * mean_dy, t.f2[c] = k;
    }
    if (status == CNN_OK && dxp)
        status = cnn_channel_map(g, dxp, x, ctx->mean, t.f0, t.f1, dy, t.f2, parallel, "batch_norm backward");
    free(t.block);
    if (status != CNN_OK) goto fail;
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
static cnn_status normalise(float *y, const float *x, cnn_channel_geometry g, bn_ctx *ctx,
                            cnn_tensor *running_mean, cnn_tensor *running_var, cnn_tensor *bias,
                            float eps, double *batch_var) {
    const bool parallel = g.N * g.C * g.S >= PARALLEL_MIN_ELEMENTS;
    bn_scratch t;
    if (!scratch_new(&t, g.C)) return cnn_last_status();
    cnn_status status = CNN_OK;
    if (ctx->training) {
        // moments around each channel's first value: no cancellation when the mean is large
        // compared with the spread
        for (int64_t c = 0; c < g.C; c++) t.f0[c] = x[c * g.S];
        status = cnn_channel_sums(g, x, t.f0, x, t.f0, t.a, t.b, parallel, "batch_norm");
    }
    const double M = (double)(g.N * g.S);
    for (int64_t c = 0; status == CNN_OK && c < g.C; c++) {
        double mean, var;
        if (ctx->training) {
            const double shifted_mean = t.a[c] / M;
            mean = (double)t.f0[c] + shifted_mean;
            var = fmax(t.b[c] / M - shifted_mean * shifted_mean, 0.0);
            batch_var[c] = var;
        } else {
            mean = *channel_at(running_mean, c);
            var = *channel_at(running_var, c);
        }
        const float invstd = (float)(1.0 / sqrt(var + eps));
        ctx->mean[c] = (float)mean;
        ctx->invstd[c] = invstd;
        t.f1[c] = invstd * ctx->weight[c];
        t.f2[c] = bias ? *channel_at(bias, c) : 0.0f;
    }
    if (status == CNN_OK)
        status = cnn_channel_map(g, y, x, ctx->mean, t.f1, t.f2, NULL, NULL, parallel, "batch_norm");
    free(t.block);
    return status;
}

static void update_running_stats(cnn_tensor *running_mean, cnn_tensor *running_var,
                                 const bn_ctx *ctx, const double *batch_var, int64_t M,
                                 float momentum) {
    cnn_note_write();
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
    cnn_channel_geometry g = {input->shape[0], input->shape[1], 1};
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
