/* Buffers and autograd recording shared by the plane-by-plane ops (see spatial.h). */
#include "spatial.h"

#include <stdlib.h>

bool cnn_spatial_forward_begin(cnn_spatial_io *io, cnn_tensor *input, int64_t h, int64_t w) {
    int64_t shape[CNN_MAX_DIMS];
    memcpy(shape, input->shape, sizeof shape);
    shape[input->ndim - 2] = h;
    shape[input->ndim - 1] = w;
    *io = (cnn_spatial_io){0};
    io->out = cnn_alloc(input->ndim, shape);
    io->src = io->out ? cnn_read_ptr(input, &io->src_tmp) : NULL;
    if (!io->src) {
        cnn_spatial_io_abort(io);
        return false;
    }
    io->dst = cnn_ptr(io->out);
    return true;
}

cnn_tensor *cnn_spatial_forward_end(cnn_spatial_io *io, cnn_tensor *input, const char *op,
                                    cnn_backward_fn backward, const int64_t *params, int n_params,
                                    void *ctx) {
    cnn_release(io->src_tmp);
    cnn_tensor *out = io->out;
    *io = (cnn_spatial_io){0};
    bool failed;
    cnn_node *node = cnn_record(out, op, backward, 1, &input, &failed);
    if (node) {
        if (n_params > 0) memcpy(node->ints, params, (size_t)n_params * sizeof *params);
        node->ctx = ctx;
    } else {
        free(ctx);
    }
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}

bool cnn_spatial_backward_begin_as(cnn_spatial_io *io, cnn_tensor *grad_output, const cnn_tensor *input, bool zeroed) {
    *io = (cnn_spatial_io){0};
    io->src = cnn_read_ptr(grad_output, &io->src_tmp);
    io->out = io->src ? cnn_alloc(input->ndim, input->shape) : NULL;
    if (!io->out) {
        cnn_spatial_io_abort(io);
        return false;
    }
    io->dst = cnn_ptr(io->out);
    if (zeroed) memset(io->dst, 0, (size_t)cnn_numel(io->out) * sizeof(float));
    return true;
}

bool cnn_spatial_backward_begin(cnn_spatial_io *io, cnn_tensor *grad_output, const cnn_tensor *input) {
    return cnn_spatial_backward_begin_as(io, grad_output, input, true);
}

cnn_status cnn_spatial_backward_end(cnn_spatial_io *io, cnn_tensor **grad_inputs) {
    cnn_release(io->src_tmp);
    grad_inputs[0] = io->out;
    *io = (cnn_spatial_io){0};
    return CNN_OK;
}

void cnn_spatial_io_abort(cnn_spatial_io *io) {
    cnn_release(io->src_tmp);
    cnn_release(io->out);
    *io = (cnn_spatial_io){0};
}
