/* Validation and gradient access shared by the fused optimizer steps (see optim_common.h). */
#include "optim_common.h"

cnn_status cnn_optim_check_params(const char *op, int n, cnn_tensor *const *params) {
    cnn_note_write(); // every optimizer step checks its parameters first, then writes them
    if (n < 0) return cnn_fail(CNN_ERR_ARGUMENT, "%s: the parameter count must be >= 0 (got %d)", op, n);
    if (n > 0 && !params) return cnn_fail(CNN_ERR_ARGUMENT, "%s: params is NULL for %d parameters", op, n);
    for (int i = 0; i < n; i++) {
        cnn_tensor *p = params[i];
        if (!p) return cnn_fail(CNN_ERR_ARGUMENT, "%s: parameter %d is NULL", op, i);
        // The update runs as one flat loop over the parameter's storage.
        if (!cnn_is_contiguous(p))
            return cnn_fail(CNN_ERR_ARGUMENT,
                            "%s: parameter %d (shape %s) is not contiguous; optimizers update "
                            "contiguous tensors only",
                            op, i, cnn_shape_str(p));
        if (p->grad && !cnn_same_shape(p, p->grad))
            return cnn_fail(CNN_ERR_SHAPE, "%s: the gradient of parameter %d has shape %s but the parameter has shape %s",
                            op, i, cnn_shape_str(p->grad), cnn_shape_str(p));
    }
    return CNN_OK;
}

cnn_status cnn_optim_check_state(const char *op, const char *state_name, int n,
                                 cnn_tensor *const *params, cnn_tensor *const *state) {
    if (n > 0 && !state) return cnn_fail(CNN_ERR_ARGUMENT, "%s: the %s list is NULL", op, state_name);
    for (int i = 0; i < n; i++) {
        cnn_tensor *p = params[i], *s = state[i];
        if (!p->grad) continue; // skipped parameters may have no state yet
        if (!s) return cnn_fail(CNN_ERR_ARGUMENT, "%s: %s of parameter %d is NULL", op, state_name, i);
        if (!cnn_same_shape(p, s))
            return cnn_fail(CNN_ERR_SHAPE, "%s: %s of parameter %d has shape %s but the parameter has shape %s",
                            op, state_name, i, cnn_shape_str(s), cnn_shape_str(p));
        if (!cnn_is_contiguous(s))
            return cnn_fail(CNN_ERR_ARGUMENT, "%s: %s of parameter %d (shape %s) is not contiguous", op,
                            state_name, i, cnn_shape_str(s));
        if (s->storage == p->storage)
            return cnn_fail(CNN_ERR_ARGUMENT, "%s: %s of parameter %d shares the parameter's storage", op,
                            state_name, i);
    }
    return CNN_OK;
}

cnn_status cnn_optim_slot_open(cnn_tensor *param, cnn_optim_slot *slot) {
    slot->param = cnn_ptr(param);
    slot->grad = NULL;
    slot->grad_copy = NULL;
    slot->numel = cnn_numel(param);
    if (!param->grad) return CNN_OK;
    slot->grad = cnn_read_ptr(param->grad, &slot->grad_copy);
    return slot->grad ? CNN_OK : cnn_last_status();
}

void cnn_optim_slot_close(cnn_optim_slot *slot) {
    cnn_release(slot->grad_copy);
    slot->grad_copy = NULL;
}

cnn_status cnn_optim_check_min(const char *op, const char *name, double value, double low) {
    if (!(value >= low)) // written this way so that NaN fails too
        return cnn_fail(CNN_ERR_ARGUMENT, "%s: %s must be >= %g (got %g)", op, name, low, value);
    return CNN_OK;
}
