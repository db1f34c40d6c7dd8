/* Stochastic gradient descent with momentum, dampening, Nesterov momentum, weight decay and
 * maximize, following PyTorch's torch.optim.SGD. Per element, with g the gradient:
 *
 *   g = maximize ? -g : g
 *   g = g + weight_decay * p
 *   b = first step ? g : momentum * b + (1 - dampening) * g      (only when momentum != 0)
 *   g = nesterov ? g + momentum * b : b
 *   p = p - lr * g
 *
 * The momentum buffer starts as a copy of the first (decayed) gradient, not as zeros, so dampening
 * does not shrink the first step. */
#include "optim_common.h"

static cnn_status check_options(const cnn_sgd_options *o) {
    if (!o) return cnn_fail(CNN_ERR_ARGUMENT, "sgd: options are NULL");
    cnn_status st;
    if ((st = cnn_optim_check_min("sgd", "lr", o->lr, 0)) != CNN_OK) return st;
    if ((st = cnn_optim_check_min("sgd", "momentum", o->momentum, 0)) != CNN_OK) return st;
    if ((st = cnn_optim_check_min("sgd", "weight_decay", o->weight_decay, 0)) != CNN_OK) return st;
    if (o->dampening != o->dampening) return cnn_fail(CNN_ERR_ARGUMENT, "sgd: dampening is NaN");
    if (o->nesterov && (o->momentum <= 0 || o->dampening != 0))
        return cnn_fail(CNN_ERR_ARGUMENT,
                        "sgd: nesterov momentum requires momentum > 0 and dampening 0 (got momentum %g, "
                        "dampening %g)",
                        o->momentum, o->dampening);
    return CNN_OK;
}

static void sgd_update(const cnn_optim_slot *s, float *buf, const cnn_sgd_options *o, int first_step) {
    float *p = s->param;          // (numel)
    const float *grad = s->grad;  // (numel)
    const float lr = o->lr, wd = o->weight_decay, momentum = o->momentum;
    const float keep = (float)(1.0 - (double)o->dampening);
    const float sign = o->maximize ? -1.0f : 1.0f;
    const bool nesterov = o->nesterov;
    const int64_t n = s->numel;
#pragma omp parallel for schedule(static) if (n >= CNN_OPTIM_PARALLEL_MIN)
    for (int64_t j = 0; j < n; j++) {
        float g = sign * grad[j];
        if (wd != 0) g += wd * p[j];
        if (buf) {
            float b = first_step ? g : momentum * buf[j] + keep * g;
            buf[j] = b;
            g = nesterov ? g + momentum * b : b;
        }
        p[j] -= lr * g;
    }
}

cnn_status cnn_sgd_step(int n, cnn_tensor *const *params, cnn_tensor *const *momentum_buffers,
                        const cnn_sgd_options *o, int first_step) {
    cnn_status st = check_options(o);
    if (st == CNN_OK) st = cnn_optim_check_params("sgd", n, params);
    const bool use_momentum = st == CNN_OK && o->momentum != 0;
    if (use_momentum) st = cnn_optim_check_state("sgd", "momentum_buffer", n, params, momentum_buffers);
    if (st != CNN_OK) return st;
    for (int i = 0; i < n; i++) {
        cnn_optim_slot slot;
        if ((st = cnn_optim_slot_open(params[i], &slot)) != CNN_OK) return st;
        if (!slot.grad) continue;
        sgd_update(&slot, use_momentum ? cnn_ptr(momentum_buffers[i]) : NULL, o, first_step);
        cnn_optim_slot_close(&slot);
    }
    return CNN_OK;
}
