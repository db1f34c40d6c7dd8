/* conv_node.h - the autograd glue both convolutions share: reading their tensors as contiguous
 * floats, recording the node, and the common start of their backward passes. */
#ifndef CNN_CONV_NODE_H
#define CNN_CONV_NODE_H

#include "conv_shape.h"

/* A convolution's tensors as contiguous floats (NULL for absent tensors); tmp holds the copies
 * made for non-contiguous ones. */
typedef struct cnn_conv_data {
    const float *input, *weight, *bias;
    cnn_tensor *tmp[3];
} cnn_conv_data;

/* Reads the given tensors (any may be NULL); false + error, with everything released, on failure. */
bool cnn_conv_data_read(cnn_conv_data *d, cnn_tensor *input, cnn_tensor *weight, cnn_tensor *bias);
void cnn_conv_data_release(cnn_conv_data *d);

/* Records op on out with inputs (input, weight, bias) and the given parameters. The node saves the
 * input when the weight needs a gradient and the weight when the input does. Returns out, or NULL
 * with out released when recording fails. */
cnn_tensor *cnn_conv_record(cnn_tensor *out, const char *op, cnn_backward_fn backward, cnn_tensor *input,
                            cnn_tensor *weight, cnn_tensor *bias, const int64_t params[CNN_CONV_N_PARAMS]);

/* The start of a convolution's backward pass, as recorded by cnn_conv_record. */
typedef struct cnn_conv_grad {
    bool want_input, want_weight;               /* which of grad_inputs[0], [1] are wanted (allocated) */
    const cnn_tensor *input_like, *weight_like; /* the shapes of input and weight */
    cnn_conv_data data;                         /* the saved input and/or weight that are needed */
    const float *grad_output;
    cnn_tensor *grad_output_tmp;
} cnn_conv_grad;

/* Reads the saved tensors and the output gradient, allocates grad_inputs[0] / [1] as wanted (their
 * contents are left to the caller) and computes the bias gradient into grad_inputs[2]. */
cnn_status cnn_conv_grad_begin(cnn_node *node, cnn_tensor *grad_output, cnn_tensor **grad_inputs,
                               cnn_conv_grad *g);
void cnn_conv_grad_end(cnn_conv_grad *g);

#endif /* CNN_CONV_NODE_H */
