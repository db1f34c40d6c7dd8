/* spatial.h - what the pooling, padding and resampling ops share: they work plane by plane on the
 * last two dims of a (C, H, W) or (N, C, H, W) tensor, forward gathers into a new output and
 * backward scatters into a zeroed input-shaped gradient. */
#ifndef CNN_SPATIAL_H
#define CNN_SPATIAL_H

#include <string.h>

#include "internal.h"

/* Work (in elements) below which a loop over planes stays on one thread. */
enum { CNN_SPATIAL_PARALLEL_MIN = 1 << 15 };

/* Product of all dims but the last two: the number of planes. */
static inline int64_t cnn_spatial_count(const cnn_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim - 2; d++) n *= t->shape[d];
    return n;
}

/* Number of H x W planes of a 3-d or 4-d tensor; false + error naming op for other ranks. */
static inline bool cnn_spatial_planes(const char *op, const cnn_tensor *t, int64_t *planes) {
    if (t->ndim != 3 && t->ndim != 4) {
        cnn_fail(CNN_ERR_SHAPE, "%s: expected a 3-d (C, H, W) or 4-d (N, C, H, W) input but got shape %s", op,
                 cnn_shape_str(t));
        return false;
    }
    *planes = cnn_spatial_count(t);
    return true;
}

/* The buffers of one pass of a plane-by-plane op. Forward reads the input and writes a new output;
 * backward reads the output gradient and scatters into a zeroed input gradient. */
typedef struct cnn_spatial_io {
    const float *src; /* the input or the output gradient, contiguous */
    float *dst;       /* the output or the input gradient */
    cnn_tensor *out;  /* the tensor behind dst */
    cnn_tensor *src_tmp;
} cnn_spatial_io;

/* Forward: src <- input; out <- a new tensor shaped like input with h x w planes. */
bool cnn_spatial_forward_begin(cnn_spatial_io *io, cnn_tensor *input, int64_t h, int64_t w);
/* Records op on the output with n_params parameters and ctx (owned by the node from then on, or
 * freed here when no node is recorded) and returns the output, or NULL when recording failed. */
cnn_tensor *cnn_spatial_forward_end(cnn_spatial_io *io, cnn_tensor *input, const char *op,
                                    cnn_backward_fn backward, const int64_t *params, int n_params, void *ctx);
/* Backward: src <- grad_output; out <- zeros shaped like input (left uninitialised when zeroed is
 * false, for a pass that writes every element itself). */
bool cnn_spatial_backward_begin(cnn_spatial_io *io, cnn_tensor *grad_output, const cnn_tensor *input);
bool cnn_spatial_backward_begin_as(cnn_spatial_io *io, cnn_tensor *grad_output, const cnn_tensor *input, bool zeroed);
/* Hands the input gradient over to grad_inputs[0]. */
cnn_status cnn_spatial_backward_end(cnn_spatial_io *io, cnn_tensor **grad_inputs);
/* Releases everything after a failure between begin and end. */
void cnn_spatial_io_abort(cnn_spatial_io *io);

#endif /* CNN_SPATIAL_H */
