/* Adam and AdamW (decoupled weight decay) with optional AMSGrad, following PyTorch's torch.optim.Adam
 * and torch.optim.AdamW. Per element, with g the gradient and t the 1-based step:
 *
 *   g = maximize ? -g : g
 *   AdamW: p = p * (1 - lr * weight_decay)        Adam: g = g + weight_decay * p
 *   m = beta1 * m + (1 - beta1) * g
 *   v = beta2 * v + (1 - beta2) * g^2
 *   amsgrad: vmax = max(vmax, v), and vmax replaces v below
 *   p = p - lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *
 * The bias corrections are computed once per call in double precision, as PyTorch does in Python. */
#include <math.h>

#include "optim_common.h"

static cnn_status check_options(const cnn_adam_options *o, int64_t step) {
    if (!o) return cnn_fail(CNN_ERR_ARGUMENT, "adam: options are NULL");
    cnn_status st;
    if ((st = cnn_optim_check_min("adam", "lr", o->lr, 0)) != CNN_OK) return st;
    if ((st = cnn_optim_check_min("adam", "eps", o->eps, 0)) != CNN_OK) return st;
    if ((st = cnn_optim_check_min("adam", "weight_decay", o->weight_decay, 0)) != CNN_OK) return st;
    if (!(o->beta1 >= 0 && o->beta1 < 1) || !(o->beta2 >= 0 && o->beta2 < 1))
        return cnn_fail(CNN_ERR_ARGUMENT, "adam: betas must be in [0, 1) (got %g, %g)", o->beta1, o->beta2);
    if (step < 1) return cnn_fail(CNN_ERR_ARGUMENT, "adam: step must be >= 1 (got %lld)", (long long)step);
    return CNN_OK;
}

/* Scalars of one call, shared by every parameter. */
typedef struct adam_scalars {
    float beta1, beta2, one_minus_beta1, one_minus_beta2, eps, weight_decay;
    float step_size;       // lr / (1 - beta1^t)
    float bias2_sqrt;      // sqrt(1 - beta2^t)
    float decay;           // 1 - lr * weight_decay (AdamW)
    bool decoupled, amsgrad;
    float sign;            // -1 when maximizing
} adam_scalars;

static adam_scalars scalars_of(const cnn_adam_options *o, int64_t step) {
    adam_scalars k;
    k.beta1 = o->beta1;
    k.beta2 = o->beta2;
    k.one_minus_beta1 = (float)(1.0 - (double)o->beta1);
    k.one_minus_beta2 = (float)(1.0 - (double)o->beta2);
    k.eps = o->eps;
    k.weight_decay = o->weight_decay;
    k.step_size = (float)((double)o->lr / (1.0 - pow((double)o->beta1, (double)step)));
    k.bias2_sqrt = (float)sqrt(1.0 - pow((double)o->beta2, (double)step));
    k.decay = (float)(1.0 - (double)o->lr * (double)o->weight_decay);
    k.decoupled = o->decoupled_weight_decay != 0;
    k.amsgrad = o->amsgrad != 0;
    k.sign = o->maximize ? -1.0f : 1.0f;
    return k;
}

static void adam_update(const cnn_optim_slot *s, float *exp_avg, float *exp_avg_sq, float *max_exp_avg_sq,
                        const adam_scalars *k) {
    float *p = s->param;          // (numel)
    const float *grad = s->grad;  // (numel)
    const int64_t n = s->numel;
    const adam_scalars c = *k;
#pragma omp parallel for schedule(static) if (n >= CNN_OPTIM_PARALLEL_MIN)
    for (int64_t j = 0; j < n; j++) {
        float g = c.sign * grad[j];
        if (c.weight_decay != 0) {
            if (c.decoupled) p[j] *= c.decay;
            else g += c.weight_decay * p[j];
        }
        float m = c.beta1 * exp_avg[j] + c.one_minus_beta1 * g;
        float v = c.beta2 * exp_avg_sq[j] + c.one_minus_beta2 * (g * g);
        exp_avg[j] = m;
        exp_avg_sq[j] = v;
        if (c.amsgrad) {
            if (max_exp_avg_sq[j] > v) v = max_exp_avg_sq[j];
            max_exp_avg_sq[j] = v;
        }
        float denom = sqrtf(v) / c.bias2_sqrt + c.eps;
        p[j] -= c.step_size * (m / denom);
    }
}

cnn_status cnn_adam_step(int n, cnn_tensor *const *params, cnn_tensor *const *exp_avg,
                         cnn_tensor *const *exp_avg_sq, cnn_tensor *const *max_exp_avg_sq,
                         int64_t step, const cnn_adam_options *o) {
    cnn_status st = check_options(o, step);
    if (st == CNN_OK) st = cnn_optim_check_params("adam", n, params);
    if (st == CNN_OK) st = cnn_optim_check_state("adam", "exp_avg", n, params, exp_avg);
    if (st == CNN_OK) st = cnn_optim_check_state("adam", "exp_avg_sq", n, params, exp_avg_sq);
    if (st == CNN_OK && o->amsgrad)
        st = cnn_optim_check_state("adam", "max_exp_avg_sq", n, params, max_exp_avg_sq);
    if (st != CNN_OK) return st;
    const adam_scalars k = scalars_of(o, step);
    for (int i = 0; i < n; i++) {
        cnn_optim_slot slot;
        if ((st = cnn_optim_slot_open(params[i], &slot)) != CNN_OK) return st;
        if (!slot.grad) continue;
        adam_update(&slot, cnn_ptr(exp_avg[i]), cnn_ptr(exp_avg_sq[i]),
                    o->amsgrad ? cnn_ptr(max_exp_avg_sq[i]) : NULL, &k);
        cnn_optim_slot_close(&slot);
    }
    return CNN_OK;
}
