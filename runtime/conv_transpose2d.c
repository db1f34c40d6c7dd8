/* conv_transpose2d: the adjoint of conv2d ("deconvolution"), as in PyTorch.
 *   input (N, C, H, W), weight (C, O/G, kH, kW), bias (O) -> output (N, O, oH, oW)
 *   oH = (H - 1)*stride_h - 2*padding_h + dilation_h*(kH - 1) + output_padding_h + 1, likewise oW.
 * Seen from the output side it is a conv2d from (N, O, oH, oW) to (N, C, H, W) with the same weight
 * read as (C, O/G, kH, kW), so its forward pass is that conv2d's input gradient and its backward pass
 * is that conv2d's forward pass (input gradient) and weight gradient, with the roles of input and
 * output gradient exchanged. output_padding only adds rows/columns at the bottom/right that the
 * kernel never reaches from the input: they get the bias alone. */
#include "conv_shape.h"

/* The conv2d this op is the adjoint of: its input is our output y, its output our input x. */
static cnn_conv_plan adjoint_plan(const int64_t y_shape[4], const int64_t w_shape[4],
                                  const int64_t params[CNN_CONV_N_PARAMS], const int64_t x_shape[4]) {
    return cnn_conv_make_plan(y_shape, w_shape, params, x_shape[2], x_shape[3]);
}

/* Saved tensors: the input when the weight needs a gradient, then the weight when the input does. */
static cnn_status conv_transpose2d_backward(cnn_node *node, cnn_tensor *grad_output,
                                            cnn_tensor **grad_inputs) {
    int slot = 0;
    cnn_tensor *input = node->needs_grad[1] ? node->saved[slot++] : NULL;
    cnn_tensor *weight = node->needs_grad[0] ? node->saved[slot++] : NULL;
    const int64_t out_channels = grad_output->shape[1];
    cnn_tensor *go_tmp = NULL, *in_tmp = NULL, *w_tmp = NULL;
    cnn_status st = CNN_OK;
    const float *go = cnn_read_ptr(grad_output, &go_tmp); // (N, O, oH, oW)
    if (!go) return cnn_last_status();

    if (node->needs_grad[2]) {
        grad_inputs[2] = cnn_alloc(1, &out_channels);
        if (!grad_inputs[2]) goto fail;
        cnn_conv_bias_grad(go, grad_output->shape[0], out_channels,
                           grad_output->shape[2] * grad_output->shape[3], cnn_ptr(grad_inputs[2]));
    }
    if (input || weight) {
        const cnn_tensor *input_like = input ? input : node->inputs[0];
        const cnn_tensor *weight_like = weight ? weight : node->inputs[1];
        cnn_conv_plan plan =
            adjoint_plan(grad_output->shape, weight_like->shape, node->ints, input_like->shape);
        const float *x = NULL, *w = NULL;
        if (input && !(x = cnn_read_ptr(input, &in_tmp))) goto fail;
        if (weight && !(w = cnn_read_ptr(weight, &w_tmp))) goto fail;
        if (weight) {
            if (!(grad_inputs[0] = cnn_alloc(4, input_like->shape))) goto fail;
            st = cnn_conv_gemm_forward(&plan, go, w, NULL, cnn_ptr(grad_inputs[0]),
                                       "conv_transpose2d backward");
        }
        if (input && st == CNN_OK) {
            if (!(grad_inputs[1] = cnn_alloc(4, weight_like->shape))) goto fail;
            st = cnn_conv_gemm_backward(&plan, go, NULL, x, NULL, cnn_ptr(grad_inputs[1]),
                                        "conv_transpose2d backward");
        }
    }
    cnn_release(go_tmp);
    cnn_release(in_tmp);
    cnn_release(w_tmp);
    return st;
fail:
    cnn_release(go_tmp);
    cnn_release(in_tmp);
    cnn_release(w_tmp);
    return cnn_last_status();
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
    cnn_tensor *x_tmp = NULL, *w_tmp = NULL, *b_tmp = NULL;
    const float *x = cnn_read_ptr(input, &x_tmp);
    const float *w = x ? cnn_read_ptr(weight, &w_tmp) : NULL;
    const float *b = w && bias ? cnn_read_ptr(bias, &b_tmp) : NULL;
    cnn_status st = !x || !w || (bias && !b)
                        ? cnn_last_status()
                        : cnn_conv_gemm_backward(&plan, NULL, w, x, cnn_ptr(out), NULL, op);
    if (st == CNN_OK && b) {
        float *y = cnn_ptr(out); // (N, O, oH, oW)
        const int64_t plane = out_hw[0] * out_hw[1];
        for (int64_t n = 0; n < out_shape[0]; n++)
            for (int64_t c = 0; c < O; c++) {
                float *dst = y + (n * O + c) * plane;
                for (int64_t i = 0; i < plane; i++) dst[i] += b[c];
            }
    }
    cnn_release(x_tmp);
    cnn_release(w_tmp);
    cnn_release(b_tmp);
    if (st != CNN_OK) {
        cnn_release(out);
        return NULL;
    }

    bool failed;
    cnn_tensor *inputs[3] = {input, weight, bias};
    cnn_node *node = cnn_record(out, op, conv_transpose2d_backward, 3, inputs, &failed);
    if (node) {
        for (int i = 0; i < CNN_CONV_N_PARAMS; i++) node->ints[i] = params[i];
        if ((node->needs_grad[1] && !cnn_node_save(node, input)) ||
            (node->needs_grad[0] && !cnn_node_save(node, weight)))
            failed = true;
    }
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}
