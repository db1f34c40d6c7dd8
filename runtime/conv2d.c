/* conv2d: 2-d cross-correlation (no kernel flip), as in every deep-learning framework.
 *   input (N, C, H, W), weight (O, C/G, kH, kW), bias (O) -> output (N, O, oH, oW)
 *   oH = (H + pad_top + pad_bottom - dilation_h*(kH-1) - 1) / stride_h + 1, likewise oW.
 * "same" padding follows PyTorch: stride 1 only, total dilation*(k-1) split with the odd extra
 * element on the bottom/right; "valid" is no padding. The numerics live in conv_algo.c
 * (which of Winograd, the direct product or im2col) and the files it calls. */
#include "conv_node.h"

cnn_conv2d_options cnn_conv2d_defaults(void) {
    cnn_conv2d_options o = {.stride = {1, 1},
                            .padding = {0, 0},
                            .dilation = {1, 1},
                            .groups = 1,
                            .padding_mode = CNN_PAD_EXPLICIT,
                            .output_padding = {0, 0}};
    return o;
}

static cnn_status conv2d_backward(cnn_node *node, cnn_tensor *grad_output, cnn_tensor **grad_inputs) {
    cnn_conv_grad g;
    cnn_status st = cnn_conv_grad_begin(node, grad_output, grad_inputs, &g);
    if (st == CNN_OK && (g.want_input || g.want_weight)) {
        cnn_conv_plan plan = cnn_conv_make_plan(g.input_like->shape, g.weight_like->shape, node->ints,
                                                grad_output->shape[2], grad_output->shape[3]);
        st = cnn_conv_backward(&plan, g.data.input, g.data.weight, g.grad_output,
                                    g.want_input ? cnn_ptr(grad_inputs[0]) : NULL,
                                    g.want_weight ? cnn_ptr(grad_inputs[1]) : NULL, "conv2d backward");
    }
    cnn_conv_grad_end(&g);
    return st;
}

/* Resolves the padding mode into (top, left) and the output size; false + error when the kernel
 * does not fit. */
static bool conv2d_output_size(const cnn_tensor *input, const cnn_tensor *weight, const cnn_conv2d_options *o,
                               int64_t pad[2], int64_t out[2]) {
    int64_t total[2], span[2];
    bool fits = true;
    for (int d = 0; d < 2; d++) {
        span[d] = (int64_t)o->dilation[d] * (weight->shape[2 + d] - 1) + 1; // dilated kernel extent
        total[d] = 2 * (int64_t)o->padding[d];
        pad[d] = o->padding[d];
        if (o->padding_mode == CNN_PAD_VALID) pad[d] = total[d] = 0;
        if (o->padding_mode == CNN_PAD_SAME) {
            total[d] = span[d] - 1;
            pad[d] = total[d] / 2;
        }
        if (weight->shape[2 + d] < 1 || span[d] > input->shape[2 + d] + total[d]) fits = false;
    }
    if (!fits) {
        cnn_fail(CNN_ERR_SHAPE,
                 "conv2d: the %lldx%lld kernel (dilation %dx%d) does not fit in the padded input "
                 "%lldx%lld (input %s, weight %s, padding %lldx%lld)",
                 (long long)weight->shape[2], (long long)weight->shape[3], o->dilation[0], o->dilation[1],
                 (long long)(input->shape[2] + total[0]), (long long)(input->shape[3] + total[1]),
                 cnn_shape_str(input), cnn_shape_str(weight), (long long)pad[0], (long long)pad[1]);
        return false;
    }
    for (int d = 0; d < 2; d++) out[d] = (input->shape[2 + d] + total[d] - span[d]) / o->stride[d] + 1;
    return true;
}

cnn_tensor *cnn_conv2d(cnn_tensor *input, cnn_tensor *weight, cnn_tensor *bias,
                       const cnn_conv2d_options *options) {
    const cnn_conv2d_options defaults = cnn_conv2d_defaults();
    const cnn_conv2d_options *o = options ? options : &defaults;
    if (!cnn_conv_check_ranks("conv2d", input, weight) || !cnn_conv_check_options("conv2d", o, input, weight))
        return NULL;
    const int64_t C = input->shape[1], O = weight->shape[0];
    if (!cnn_conv_check_groups("conv2d", C, O, o->groups, input, weight)) return NULL;
    if (weight->shape[1] * o->groups != C) {
        if (o->groups == 1)
            return cnn_fail_null(CNN_ERR_SHAPE,
                                 "conv2d: input has %lld channels but weight expects %lld (input %s, "
                                 "weight %s)",
                                 (long long)C, (long long)weight->shape[1], cnn_shape_str(input),
                                 cnn_shape_str(weight));
        return cnn_fail_null(CNN_ERR_SHAPE,
                             "conv2d: input has %lld channels but weight expects %lld (%lld per group "
                             "x %d groups) (input %s, weight %s)",
                             (long long)C, (long long)(weight->shape[1] * o->groups),
                             (long long)weight->shape[1], o->groups, cnn_shape_str(input),
                             cnn_shape_str(weight));
    }
    if (!cnn_conv_check_bias("conv2d", bias, O, weight)) return NULL;
    if (o->padding_mode == CNN_PAD_SAME && (o->stride[0] != 1 || o->stride[1] != 1))
        return cnn_fail_null(CNN_ERR_ARGUMENT,
                             "conv2d: padding 'same' needs stride 1, got stride %dx%d (input %s, "
                             "weight %s)",
                             o->stride[0], o->stride[1], cnn_shape_str(input), cnn_shape_str(weight));
    int64_t pad[2], out_hw[2];
    if (!conv2d_output_size(input, weight, o, pad, out_hw)) return NULL;

    const int64_t params[CNN_CONV_N_PARAMS] = {o->stride[0],   o->stride[1],   pad[0],   pad[1],
                                               o->dilation[0], o->dilation[1], o->groups};
    cnn_conv_plan plan = cnn_conv_make_plan(input->shape, weight->shape, params, out_hw[0], out_hw[1]);
    if (!cnn_conv_check_plan_size("conv2d", &plan)) return NULL;

    const int64_t out_shape[4] = {input->shape[0], O, out_hw[0], out_hw[1]};
    cnn_tensor *out = cnn_alloc(4, out_shape);
    if (!out) return NULL;
    cnn_conv_data d;
    const bool read = cnn_conv_data_read(&d, input, weight, bias);
    if (read && d.weight == cnn_ptr(weight)) plan.weight = cnn_weight_key_of(weight); // not a temporary copy
    cnn_status st = read ? cnn_conv_forward(&plan, d.input, d.weight, d.bias, cnn_ptr(out), "conv2d")
                         : cnn_last_status();
    cnn_conv_data_release(&d);
    if (st != CNN_OK) {
        cnn_release(out);
        return NULL;
    }
    return cnn_conv_record(out, "conv2d", conv2d_backward, input, weight, bias, params);
}
