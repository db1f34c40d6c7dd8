/* conv_transpose2d: the adjoint of conv2d ("deconvolution"), as in PyTorch.
 *   input (N, C, H, W), weight (C, O/G, kH, kW), bias (O) -> output (N, O, oH, oW)
 *   oH = (H - 1)*stride_h - 2*padding_h + dilation_h*(kH - 1) + output_padding_h + 1, likewise oW.
 * Seen from the output side it is a conv2d from (N, O, oH, oW) to (N, C, H, W) with the same weight
 * read as (C, O/G, kH, kW), so its forward pass is that conv2d's input gradient and its backward pass
 * is that conv2d's forward pass (input gradient) and weight gradient, with the roles of input and
 * output gradient exchanged. output_padding only adds rows/columns at the bottom/right that the
 * kernel never reaches from the input: they get the bias alone. */
#include "conv_node.h"

/* The conv2d this op is the adjoint of: its input is our output y, its output our input x. */
static cnn_conv_plan adjoint_plan(const int64_t y_shape[4], const int64_t w_shape[4],
                                  const int64_t params[CNN_CONV_N_PARAMS], const int64_t x_shape[4]) {
    return cnn_conv_make_plan(y_shape, w_shape, params, x_shape[2], x_shape[3]);
}

/* Our input gradient is the adjoint conv2d's forward pass of grad_output; our weight gradient is its
 * weight gradient with grad_output as its input and our input as its output gradient. */
static cnn_status conv_transpose2d_backward(cnn_node *node, cnn_tensor *grad_output,
                                            cnn_tensor **grad_inputs) {
    const char *op = "conv_transpose2d backward";
    cnn_conv_grad g;
    cnn_status st = cnn_conv_grad_begin(node, grad_output, grad_inputs, &g);
    if (st == CNN_OK && (g.want_input || g.want_weight)) {
        cnn_conv_plan plan =
            adjoint_plan(grad_output->shape, g.weight_like->shape, node->ints, g.input_like->shape);
        if (g.want_input)
            st =
                cnn_conv_forward(&plan, g.grad_output, g.data.weight, NULL, cnn_ptr(grad_inputs[0]), op);
        if (g.want_weight && st == CNN_OK)
            st = cnn_conv_backward(&plan, g.grad_output, NULL, g.data.input, NULL,
                                        cnn_ptr(grad_inputs[1]), op);
    }
    cnn_conv_grad_end(&g);
    return st;
}

/* Checks what only the transposed convolution has: no "same" padding, output_padding smaller than
 * stride or dilation, and a non-empty output. */
static bool transpose_output_size(const cnn_tensor *input, const cnn_tensor *weight,
                                  const cnn_conv2d_options *o, int64_t pad[2], int64_t out[2]) {
    const char *op = "conv_transpose2d";
    if (o->padding_mode == CNN_PAD_SAME) {
        cnn_fail(CNN_ERR_ARGUMENT, "%s: padding 'same' is not supported (input %s, weight %s)", op,
                 cnn_shape_str(input), cnn_shape_str(weight));
        return false;
    }
    for (int d = 0; d < 2; d++) {
        const int32_t op_d = o->output_padding[d];
        const int32_t limit = o->stride[d] > o->dilation[d] ? o->stride[d] : o->dilation[d];
        if (op_d < 0 || op_d >= limit) {
            cnn_fail(CNN_ERR_ARGUMENT,
                     "%s: output_padding %dx%d must be non-negative and smaller than either stride "
                     "%dx%d or dilation %dx%d (input %s, weight %s)",
                     op, o->output_padding[0], o->output_padding[1], o->stride[0], o->stride[1],
                     o->dilation[0], o->dilation[1], cnn_shape_str(input), cnn_shape_str(weight));
            return false;
        }
        pad[d] = o->padding_mode == CNN_PAD_VALID ? 0 : o->padding[d];
        out[d] = (input->shape[2 + d] - 1) * o->stride[d] - 2 * pad[d] +
                 (int64_t)o->dilation[d] * (weight->shape[2 + d] - 1) + op_d + 1;
    }
    if (out[0] < 1 || out[1] < 1 || weight->shape[2] < 1 || weight->shape[3] < 1 || input->shape[2] < 1 ||
        input->shape[3] < 1) {
        cnn_fail(CNN_ERR_SHAPE,
                 "%s: the output would be %lldx%lld, it must be at least 1x1 (input %s, weight %s, "
                 "%s)",
                 op, (long long)out[0], (long long)out[1], cnn_shape_str(input), cnn_shape_str(weight),
                 cnn_conv_options_str(o));
        return false;
    }
    return true;
}

cnn_tensor *cnn_conv_transpose2d(cnn_tensor *input, cnn_tensor *weight, cnn_tensor *bias,
                                 const cnn_conv2d_options *options) {
    const char *op = "conv_transpose2d";
    const cnn_conv2d_options defaults = cnn_conv2d_defaults();
    const cnn_conv2d_options *o = options ? options : &defaults;
    if (!cnn_conv_check_ranks(op, input, weight) || !cnn_conv_check_options(op, o, input, weight))
        return NULL;
    const int64_t C = input->shape[1], O = weight->shape[1] * o->groups;
    if (weight->shape[0] != C)
        return cnn_fail_null(
            CNN_ERR_SHAPE, "%s: input has %lld channels but weight expects %lld (input %s, weight %s)", op,
            (long long)C, (long long)weight->shape[0], cnn_shape_str(input), cnn_shape_str(weight));
    if (!cnn_conv_check_groups(op, C, O, o->groups, input, weight) ||
        !cnn_conv_check_bias(op, bias, O, weight))
        return NULL;
    int64_t pad[2], out_hw[2];
    if (!transpose_output_size(input, weight, o, pad, out_hw)) return NULL;

    const int64_t params[CNN_CONV_N_PARAMS] = {o->stride[0],   o->stride[1],   pad[0],   pad[1],
                                               o->dilation[0], o->dilation[1], o->groups};
    const int64_t out_shape[4] = {input->shape[0], O, out_hw[0], out_hw[1]};
    cnn_conv_plan plan = adjoint_plan(out_shape, weight->shape, params, input->shape);
    if (!cnn_conv_check_plan_size(op, &plan)) return NULL;

    cnn_tensor *out = cnn_alloc(4, out_shape);
    if (!out) return NULL;
    cnn_conv_data d;
    cnn_status st = cnn_conv_data_read(&d, input, weight, bias)
                        ? cnn_conv_backward(&plan, NULL, d.weight, d.input, cnn_ptr(out), NULL, op)
                        : cnn_last_status();
    if (st == CNN_OK && d.bias) {
        float *y = cnn_ptr(out); // (N, O, oH, oW)
        const int64_t plane = out_hw[0] * out_hw[1];
        for (int64_t n = 0; n < out_shape[0]; n++)
            for (int64_t c = 0; c < O; c++)
                for (int64_t i = 0; i < plane; i++) y[(n * O + c) * plane + i] += d.bias[c];
    }
    cnn_conv_data_release(&d);
    if (st != CNN_OK) {
        cnn_release(out);
        return NULL;
    }
    return cnn_conv_record(out, op, conv_transpose2d_backward, input, weight, bias, params);
}
