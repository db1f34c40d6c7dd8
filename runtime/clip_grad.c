/* Gradient clipping by the joint norm of all gradients, following PyTorch's
 * torch.nn.utils.clip_grad_norm_: the norm is taken as if every gradient were concatenated into one
 * vector, and when it exceeds max_norm every gradient is scaled by max_norm / (norm + 1e-6).
 *
 * The norm is accumulated in double precision on one thread, so it is the same for any thread count. */
#include <math.h>

#include "optim_common.h"

/* Sum of |g|^p over one gradient, or max |g| when p is infinite. */
static double grad_power_sum(const float *g, int64_t n, double p) {
    double acc = 0;
    if (isinf(p)) {
        for (int64_t j = 0; j < n; j++) {
            double a = fabs((double)g[j]);
            if (a > acc || a != a) acc = a; // NaN wins, as in PyTorch's max
            if (acc != acc) break;
        }
    } else if (p == 2) {
        for (int64_t j = 0; j < n; j++) acc += (double)g[j] * (double)g[j];
    } else if (p == 1) {
        for (int64_t j = 0; j < n; j++) acc += fabs((double)g[j]);
    } else {
        for (int64_t j = 0; j < n; j++) acc += pow(fabs((double)g[j]), p);
    }
    return acc;
}

static cnn_status scale_grad(cnn_tensor *grad, float coef) {
    if (!cnn_is_contiguous(grad)) return cnn_mul_scalar_(grad, coef);
    float *g = cnn_ptr(grad); // (numel)
    const int64_t n = cnn_numel(grad);
#pragma omp parallel for schedule(static) if (n >= CNN_OPTIM_PARALLEL_MIN)
    for (int64_t j = 0; j < n; j++) g[j] *= coef;
    return CNN_OK;
}

static cnn_status check_arguments(int n, cnn_tensor *const *params, double max_norm, double norm_type) {
    if (n < 0) return cnn_fail(CNN_ERR_ARGUMENT, "clip_grad_norm: the parameter count must be >= 0 (got %d)", n);
    if (n > 0 && !params) return cnn_fail(CNN_ERR_ARGUMENT, "clip_grad_norm: params is NULL for %d parameters", n);
    for (int i = 0; i < n; i++)
        if (!params[i]) return cnn_fail(CNN_ERR_ARGUMENT, "clip_grad_norm: parameter %d is NULL", i);
    if (!(max_norm >= 0))
        return cnn_fail(CNN_ERR_ARGUMENT, "clip_grad_norm: max_norm must be >= 0 (got %g)", max_norm);
    if (!(norm_type > 0))
        return cnn_fail(CNN_ERR_ARGUMENT, "clip_grad_norm: norm_type must be > 0 or inf (got %g)", norm_type);
    return CNN_OK;
}

double cnn_clip_grad_norm(int n, cnn_tensor *const *params, double max_norm, double norm_type,
                          int error_if_nonfinite) {
    if (check_arguments(n, params, max_norm, norm_type) != CNN_OK) return NAN;
    cnn_note_write(); // the gradients are scaled in place
    const bool infinite = isinf(norm_type);
    double acc = 0;
    for (int i = 0; i < n; i++) {
        cnn_tensor *grad = params[i]->grad, *tmp = NULL;
        if (!grad) continue;
        const float *g = cnn_read_ptr(grad, &tmp);
        if (!g) return NAN;
        double part = grad_power_sum(g, cnn_numel(grad), norm_type);
        cnn_release(tmp);
        if (infinite) acc = (part > acc || part != part) ? part : acc;
        else acc += part;
    }
    const double total = infinite ? acc : norm_type == 2 ? sqrt(acc) : norm_type == 1 ? acc : pow(acc, 1.0 / norm_type);
    if (!isfinite(total) && error_if_nonfinite) {
        cnn_fail(CNN_ERR_NUMERIC,
                 "clip_grad_norm: the total norm of order %g of the gradients is %g, so they cannot be "
                 "clipped (turn error_if_nonfinite off to scale by it anyway)",
                 norm_type, total);
        return NAN;
    }
    const double coef = max_norm / (total + 1e-6);
    if (!(coef >= 1.0)) { // NaN scales too, as in PyTorch, so a broken gradient stays visible
        for (int i = 0; i < n; i++) {
            if (!params[i]->grad) continue;
            if (scale_grad(params[i]->grad, (float)coef) != CNN_OK) return NAN;
        }
    }
    return total;
}
