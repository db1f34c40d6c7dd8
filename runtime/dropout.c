/* dropout.c - inverted dropout, elementwise or by whole feature maps (Dropout2d).
 *
 * In training every element (or, channelwise, every (n, c) map of an (N, C, ...) input) is kept with
 * probability 1 - p and then scaled by 1 / (1 - p), so that the expected value of each element is
 * unchanged and evaluation needs no rescaling. The keep/drop decisions come from the process
 * generator, one uniform draw per element or map in row-major order, so cnn_manual_seed makes them
 * reproducible. The decisions are kept as one byte each (a quarter of a float mask's memory) and
 * backward multiplies the incoming gradient by 0 or 1/(1-p) with them. p == 1 drops everything. */
#include <stdint.h>
#include <stdlib.h>

#include "internal.h"

enum { DRAW_CHUNK = 4096 };
enum { PARALLEL_MIN_ELEMENTS = 1 << 15 };

typedef struct dropout_mask {
    int64_t count; /* decisions: numel, or N*C when channelwise */
    int64_t span;  /* consecutive elements each decision covers: 1, or the map size S */
    float scale;   /* 1/(1-p) for kept elements (0 when p == 1) */
    uint8_t keep[];
} dropout_mask;

static dropout_mask *draw_mask(int64_t count, int64_t span, float p) {
    dropout_mask *m = malloc(sizeof *m + (size_t)(count > 0 ? count : 1));
    if (!m) return cnn_fail_null(CNN_ERR_MEMORY, "dropout: out of memory for the mask");
    m->count = count;
    m->span = span;
    m->scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    float u[DRAW_CHUNK];
    for (int64_t i0 = 0; i0 < count; i0 += DRAW_CHUNK) {
        int64_t n = count - i0 < DRAW_CHUNK ? count - i0 : DRAW_CHUNK;
        cnn_rng_fill_uniform(u, n, 0.0f, 1.0f);
        for (int64_t i = 0; i < n; i++) m->keep[i0 + i] = u[i] >= p;
    }
    return m;
}

/* out = in * keep * scale, each decision covering span consecutive elements. The product with the
 * 0/1 byte replaces a branch that random decisions would mispredict half the time, and lets the
 * loop vectorise. */
static void apply_mask(float *restrict out, const float *restrict in, const dropout_mask *m) {
    const uint8_t *restrict keep = m->keep;
    const float scale = m->scale;
    const int64_t count = m->count, span = m->span;
    bool parallel = count * span >= PARALLEL_MIN_ELEMENTS;
    if (span == 1) {
#pragma omp parallel for simd schedule(static) if (parallel)
        for (int64_t i = 0; i < count; i++) out[i] = in[i] * ((float)keep[i] * scale);
        return;
    }
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t i = 0; i < count; i++) {
        float k = (float)keep[i] * scale;
        const float *src = in + i * span; // (S)
        float *dst = out + i * span;
        for (int64_t s = 0; s < span; s++) dst[s] = src[s] * k;
    }
}

static cnn_status dropout_backward(cnn_node *node, cnn_tensor *grad_output,
                                   cnn_tensor **grad_inputs) {
    if (!node->needs_grad[0]) return CNN_OK;
    cnn_tensor *dy_tmp = NULL;
    const float *dy = cnn_read_ptr(grad_output, &dy_tmp);
    cnn_tensor *dx = dy ? cnn_alloc(grad_output->ndim, grad_output->shape) : NULL;
    if (!dx) {
        cnn_release(dy_tmp);
        return cnn_last_status() != CNN_OK ? cnn_last_status() : CNN_ERR_MEMORY;
    }
    apply_mask(cnn_ptr(dx), dy, node->ctx);
    cnn_release(dy_tmp);
    grad_inputs[0] = dx;
    return CNN_OK;
}

cnn_tensor *cnn_dropout(cnn_tensor *input, float p, int training, int channelwise) {
    if (!input) return cnn_fail_null(CNN_ERR_ARGUMENT, "dropout: input is NULL");
    if (!(p >= 0.0f && p <= 1.0f))
        return cnn_fail_null(CNN_ERR_ARGUMENT, "dropout: p must be in [0, 1], got %g", (double)p);
    if (channelwise && input->ndim < 2)
        return cnn_fail_null(CNN_ERR_SHAPE,
                             "dropout: channelwise dropout needs an (N, C, ...) input, got %s",
                             cnn_shape_str(input));
    if (!training || p == 0.0f) {
        cnn_retain(input);
        return input;
    }
    int64_t span = 1, count = cnn_numel(input);
    if (channelwise) {
        count = input->shape[0] * input->shape[1];
        for (int d = 2; d < input->ndim; d++) span *= input->shape[d];
    }

    cnn_tensor *x_tmp = NULL, *y = NULL;
    dropout_mask *mask = draw_mask(count, span, p);
    const float *x = mask ? cnn_read_ptr(input, &x_tmp) : NULL;
    if (x) y = cnn_alloc(input->ndim, input->shape);
    if (y) apply_mask(cnn_ptr(y), x, mask);
    cnn_release(x_tmp);

    bool failed = false;
    cnn_node *node = y ? cnn_record(y, "dropout", dropout_backward, 1, &input, &failed) : NULL;
    if (node) {
        node->ctx = mask;
        node->free_ctx = free;
        mask = NULL;
    }
    free(mask);
    if (failed) {
        cnn_release(y);
        return NULL;
    }
    return y;
}
