/* RMSprop, optionally centered and with momentum, following PyTorch's torch.optim.RMSprop. Per
 * element, with g the gradient:
 *
 *   g = maximize ? -g : g
 *   g = g + weight_decay * p
 *   s = alpha * s + (1 - alpha) * g^2
 *   centered: a = alpha * a + (1 - alpha) * g, and the denominator is sqrt(s - a^2) + eps
 *   otherwise the denominator is sqrt(s) + eps
 *   momentum > 0: b = momentum * b + g / denominator; p = p - lr * b
 *   otherwise:    p = p - lr * g / denominator
 *
 * eps is added outside the square root, as PyTorch does (TensorFlow adds it inside). */
#include <math.h>

#include "optim_common.h"

static cnn_status check_options(const cnn_rmsprop_options *o) {
    if (!o) return cnn_fail(CNN_ERR_ARGUMENT, "rmsprop: options are NULL");
    cnn_status st;
    if ((st = cnn_optim_check_min("rmsprop", "lr", o->lr, 0)) != CNN_OK) return st;
    if ((st = cnn_optim_check_min("rmsprop", "alpha", o->alpha, 0)) != CNN_OK) return st;
    if ((st = cnn_optim_check_min("rmsprop", "eps", o->eps, 0)) != CNN_OK) return st;
    if ((st = cnn_optim_check_min("rmsprop", "momentum", o->momentum, 0)) != CNN_OK) return st;
    if ((st = cnn_optim_check_min("rmsprop", "weight_decay", o->weight_decay, 0)) != CNN_OK) return st;
    return CNN_OK;
}

static void rmsprop_update(const cnn_optim_slot *s, float *square_avg, float *momentum_buffer,
                           float *grad_avg, const cnn_rmsprop_options *o) {
    float *p = s->param;          // (numel)
    const float *grad = s->grad;  // (numel)
    const float lr = o->lr, alpha = o->alpha, eps = o->eps, wd = o->weight_decay, momentum = o->momentum;
    const float one_minus_alpha = (float)(1.0 - (double)o->alpha);
    const float sign = o->maximize ? -1.0f : 1.0f;
    const int64_t n = s->numel;
#pragma omp parallel for schedule(static) if (n >= CNN_OPTIM_PARALLEL_MIN)
    for (int64_t j = 0; j < n; j++) {
        float g = sign * grad[j];
        if (wd != 0) g += wd * p[j];
        float sq = alpha * square_avg[j] + one_minus_alpha * (g * g);
        square_avg[j] = sq;
        float denom;
        if (grad_avg) {
            float a = alpha * grad_avg[j] + one_minus_alpha * g;
            grad_avg[j] = a;
            denom = sqrtf(sq - a * a) + eps;
        } else {
            denom = sqrtf(sq) + eps;
        }
        if (momentum_buffer) {
            float b = momentum * momentum_buffer[j] + g / denom;
            momentum_buffer[j] = b;
            p[j] -= lr * b;
        } else {
            p[j] -= lr * (g / denom);
        }
    }
}

cnn_status cnn_rmsprop_step(int n, cnn_tensor *const *params, cnn_tensor *const *square_avg,
                            cnn_tensor *const *momentum_buffers, cnn_tensor *const *grad_avg,
                            const cnn_rmsprop_options *o) {
    cnn_status st = check_options(o);
    if (st == CNN_OK) st = cnn_optim_check_params("rmsprop", n, params);
    if (st == CNN_OK) st = cnn_optim_check_state("rmsprop", "square_avg", n, params, square_avg);
    const bool use_momentum = st == CNN_OK && o->momentum > 0;
    const bool centered = st == CNN_OK && o->centered;
    if (use_momentum) st = cnn_optim_check_state("rmsprop", "momentum_buffer", n, params, momentum_buffers);
    if (st == CNN_OK && centered) st = cnn_optim_check_state("rmsprop", "grad_avg", n, params, grad_avg);
    if (st != CNN_OK) return st;
    for (int i = 0; i < n; i++) {
        cnn_optim_slot slot;
        if ((st = cnn_optim_slot_open(params[i], &slot)) != CNN_OK) return st;
        if (!slot.grad) continue;
        rmsprop_update(&slot, cnn_ptr(square_avg[i]), use_momentum ? cnn_ptr(momentum_buffers[i]) : NULL,
                       centered ? cnn_ptr(grad_avg[i]) : NULL, o);
        cnn_optim_slot_close(&slot);
    }
    return CNN_OK;
}
