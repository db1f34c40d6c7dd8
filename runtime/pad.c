/* pad2d: pads the last two dims by (left, right, top, bottom) with a constant, a reflection (the edge
 * pixel not repeated), a replication of the edge, or a circular wrap, as PyTorch's F.pad. Constant
 * padding also accepts negative amounts, which crop. Every output row and column maps to one source
 * row/column (or none, for constant padding), so forward gathers through two index maps and
 * backward scatters through the same maps. */
#include <stdlib.h>

#include "spatial.h"

static const char *const mode_names[] = {"constant", "reflect", "replicate", "circular"};

/* Source index of output position o along an axis of the given size, or -1 (the constant). */
static int64_t source_index(int64_t o, int64_t before, int64_t size, cnn_pad_mode mode) {
    int64_t i = o - before;
    switch (mode) {
    case CNN_PAD_REFLECT:
        if (i < 0) i = -i;
        if (i >= size) i = 2 * (size - 1) - i;
        return i;
    case CNN_PAD_REPLICATE: return i < 0 ? 0 : i >= size ? size - 1 : i;
    case CNN_PAD_CIRCULAR: return ((i % size) + size) % size;
    default: return i >= 0 && i < size ? i : -1;
    }
}

/* map (out) <- source indices along one axis; NULL + error on allocation failure. */
static int64_t *index_map(int64_t out, int64_t before, int64_t size, cnn_pad_mode mode) {
    int64_t *map = malloc((size_t)(out > 0 ? out : 1) * sizeof *map);
    if (!map) return cnn_fail_null(CNN_ERR_MEMORY, "pad: out of memory");
    for (int64_t o = 0; o < out; o++) map[o] = source_index(o, before, size, mode);
    return map;
}

/* Checks one axis's pads for the mode; false + error. */
static bool check_axis(const cnn_tensor *input, const char *axis, int64_t size, int32_t before, int32_t after,
                       cnn_pad_mode mode) {
    const char *problem = NULL;
    if (mode != CNN_PAD_CONSTANT && (before < 0 || after < 0))
        problem = "must be non-negative";
    else if (mode == CNN_PAD_REFLECT && (before >= size || after >= size))
        problem = "must be smaller than the padded dimension";
    else if (mode == CNN_PAD_REPLICATE && size < 1 && before + after > 0)
        problem = "needs a non-empty dimension";
    else if (mode == CNN_PAD_CIRCULAR && (before > size || after > size))
        problem = "must be at most the padded dimension";
    else if (size + before + after < 0)
        problem = "would give a negative size";
    if (!problem) return true;
    cnn_fail(CNN_ERR_ARGUMENT, "pad: %s padding %d, %d of the %s %s (size %lld; input %s)", mode_names[mode],
             before, after, axis, problem, (long long)size, cnn_shape_str(input));
    return false;
}

typedef struct pad_plan {
    int64_t planes, H, W, oH, oW;
    int64_t *rows, *cols; /* (oH), (oW): source row/column or -1 */
} pad_plan;

static void pad_plan_free(pad_plan *p) {
    free(p->rows);
    free(p->cols);
}

static bool pad_plan_make(const cnn_tensor *input, const int32_t pads[4], cnn_pad_mode mode, pad_plan *p) {
    p->rows = p->cols = NULL;
    p->H = input->shape[input->ndim - 2];
    p->W = input->shape[input->ndim - 1];
    p->planes = cnn_spatial_count(input);
    p->oH = p->H + pads[2] + pads[3];
    p->oW = p->W + pads[0] + pads[1];
    p->rows = index_map(p->oH, pads[2], p->H, mode);
    p->cols = p->rows ? index_map(p->oW, pads[0], p->W, mode) : NULL;
    if (!p->cols) {
        pad_plan_free(p);
        return false;
    }
    return true;
}

enum { PAD_LEFT, PAD_RIGHT, PAD_TOP, PAD_BOTTOM, PAD_MODE, PAD_N_PARAMS };

static cnn_status pad2d_backward(cnn_node *node, cnn_tensor *grad_output, cnn_tensor **grad_inputs) {
    const cnn_tensor *input = node->inputs[0];
    const int32_t pads[4] = {(int32_t)node->ints[PAD_LEFT], (int32_t)node->ints[PAD_RIGHT],
                             (int32_t)node->ints[PAD_TOP], (int32_t)node->ints[PAD_BOTTOM]};
    pad_plan p;
    if (!pad_plan_make(input, pads, (cnn_pad_mode)node->ints[PAD_MODE], &p)) return cnn_last_status();
    cnn_spatial_io io;
    if (!cnn_spatial_backward_begin(&io, grad_output, input)) {
        pad_plan_free(&p);
        return cnn_last_status();
    }
#pragma omp parallel for if (p.planes * p.oH * p.oW > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < p.planes; c++) {
        const float *src = io.src + c * p.oH * p.oW; // (oH, oW)
        float *dst = io.dst + c * p.H * p.W;         // (H, W)
        for (int64_t y = 0; y < p.oH; y++) {
            if (p.rows[y] < 0) continue;
            float *dst_row = dst + p.rows[y] * p.W;
            for (int64_t x = 0; x < p.oW; x++)
                if (p.cols[x] >= 0) dst_row[p.cols[x]] += src[y * p.oW + x];
        }
    }
    pad_plan_free(&p);
    return cnn_spatial_backward_end(&io, grad_inputs);
}

cnn_tensor *cnn_pad2d(cnn_tensor *input, const int32_t pads[4], cnn_pad_mode mode, float value) {
    if ((unsigned)mode > CNN_PAD_CIRCULAR)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "pad: unknown mode %d (input %s)", (int)mode,
                             cnn_shape_str(input));
    if (input->ndim < 2)
        return cnn_fail_null(CNN_ERR_SHAPE, "pad: expected at least a 2-d input but got shape %s",
                             cnn_shape_str(input));
    const int64_t H = input->shape[input->ndim - 2], W = input->shape[input->ndim - 1];
    if (!check_axis(input, "width", W, pads[0], pads[1], mode) ||
        !check_axis(input, "height", H, pads[2], pads[3], mode))
        return NULL;
    pad_plan p;
    if (!pad_plan_make(input, pads, mode, &p)) return NULL;
    cnn_spatial_io io;
    if (!cnn_spatial_forward_begin(&io, input, p.oH, p.oW)) {
        pad_plan_free(&p);
        return NULL;
    }
#pragma omp parallel for if (p.planes * p.oH * p.oW > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < p.planes; c++) {
        const float *src = io.src + c * p.H * p.W; // (H, W)
        float *dst = io.dst + c * p.oH * p.oW;     // (oH, oW)
        for (int64_t r = 0; r < p.oH; r++) {
            float *dst_row = dst + r * p.oW;
            if (p.rows[r] < 0) {
                for (int64_t col = 0; col < p.oW; col++) dst_row[col] = value;
                continue;
            }
            const float *src_row = src + p.rows[r] * p.W;
            for (int64_t col = 0; col < p.oW; col++)
                dst_row[col] = p.cols[col] >= 0 ? src_row[p.cols[col]] : value;
        }
    }
    pad_plan_free(&p);
    const int64_t params[PAD_N_PARAMS] = {pads[0], pads[1], pads[2], pads[3], mode};
    return cnn_spatial_forward_end(&io, input, "pad", pad2d_backward, params, PAD_N_PARAMS, NULL);
}
