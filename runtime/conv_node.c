/* Autograd glue shared by conv2d and conv_transpose2d (see conv_node.h). */
#include "conv_node.h"

#include <string.h>

bool cnn_conv_data_read(cnn_conv_data *d, cnn_tensor *input, cnn_tensor *weight, cnn_tensor *bias) {
    memset(d, 0, sizeof *d);
    cnn_tensor *const tensors[3] = {input, weight, bias};
    const float **ptrs[3] = {&d->input, &d->weight, &d->bias};
    for (int i = 0; i < 3; i++)
        if (tensors[i] && !(*ptrs[i] = cnn_read_ptr(tensors[i], &d->tmp[i]))) {
            cnn_conv_data_release(d);
            return false;
        }
    return true;
}

void cnn_conv_data_release(cnn_conv_data *d) {
    for (int i = 0; i < 3; i++) {
        cnn_release(d->tmp[i]);
        d->tmp[i] = NULL;
    }
}

cnn_tensor *cnn_conv_record(cnn_tensor *out, const char *op, cnn_backward_fn backward, cnn_tensor *input,
                            cnn_tensor *weight, cnn_tensor *bias, const int64_t params[CNN_CONV_N_PARAMS]) {
    bool failed;
    cnn_tensor *inputs[3] = {input, weight, bias};
    cnn_node *node = cnn_record(out, op, backward, 3, inputs, &failed);
    if (node) {
        memcpy(node->ints, params, CNN_CONV_N_PARAMS * sizeof *params);
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

cnn_status cnn_conv_grad_begin(cnn_node *node, cnn_tensor *grad_output, cnn_tensor **grad_inputs,
                               cnn_conv_grad *g) {
    memset(g, 0, sizeof *g);
    g->want_input = node->needs_grad[0];
    g->want_weight = node->needs_grad[1];
    int slot = 0;
    cnn_tensor *input = g->want_weight ? node->saved[slot++] : NULL;
    cnn_tensor *weight = g->want_input ? node->saved[slot++] : NULL;
    g->input_like = input ? input : node->inputs[0];
    g->weight_like = weight ? weight : node->inputs[1];
    g->grad_output = cnn_read_ptr(grad_output, &g->grad_output_tmp); // (N, O, oH, oW)
    if (!g->grad_output || !cnn_conv_data_read(&g->data, input, weight, NULL)) return cnn_last_status();
    if (g->want_input && !(grad_inputs[0] = cnn_alloc(4, g->input_like->shape))) return cnn_last_status();
    if (g->want_weight && !(grad_inputs[1] = cnn_alloc(4, g->weight_like->shape))) return cnn_last_status();
    if (node->needs_grad[2]) {
        const int64_t channels = grad_output->shape[1];
        if (!(grad_inputs[2] = cnn_alloc(1, &channels))) return cnn_last_status();
        cnn_conv_bias_grad(g->grad_output, grad_output->shape[0], channels,
                           grad_output->shape[2] * grad_output->shape[3], cnn_ptr(grad_inputs[2]));
    }
    return CNN_OK;
}

void cnn_conv_grad_end(cnn_conv_grad *g) {
    cnn_release(g->grad_output_tmp);
    g->grad_output_tmp = NULL;
    cnn_conv_data_release(&g->data);
}
