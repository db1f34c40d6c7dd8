/* optim_common.h - what the fused optimizer steps share: validation of the parameter and state
 * lists, and access to each parameter's gradient.
 *
 * Every step validates all of its inputs before it updates anything, so a refused call leaves the
 * parameters and their state exactly as they were. Indices in messages are 0-based positions in
 * the arrays the caller passed. For the same reason a step does not poll for interruption: it is a
 * single pass over the parameters, and stopping half way would leave some parameters updated and
 * others not. */
#ifndef CNN_OPTIM_COMMON_H
#define CNN_OPTIM_COMMON_H

#include "internal.h"

/* Elementwise updates smaller than this run on one thread: spawning costs more than it saves. */
enum { CNN_OPTIM_PARALLEL_MIN = 1 << 16 };

/* Checks n and the params array itself, then that every parameter is a contiguous tensor and that
 * its gradient, when it has one, has the parameter's shape. */
cnn_status cnn_optim_check_params(const char *op, int n, cnn_tensor *const *params);

/* Checks a list of state tensors named state_name (e.g. "exp_avg"): the list is present, and
 * every parameter that has a gradient has a contiguous state tensor of its own shape. */
cnn_status cnn_optim_check_state(const char *op, const char *state_name, int n,
                                 cnn_tensor *const *params, cnn_tensor *const *state);

/* The update of one parameter: its data, its gradient's data and the element count. */
typedef struct cnn_optim_slot {
    float *param;          // (numel)
    const float *grad;     // (numel); a contiguous copy when the gradient is strided
    cnn_tensor *grad_copy; // that copy, released by cnn_optim_slot_close
    int64_t numel;
} cnn_optim_slot;

/* Opens a parameter for updating. slot->grad is NULL when the parameter has no gradient (it is
 * skipped); fails only when a strided gradient could not be copied. */
cnn_status cnn_optim_slot_open(cnn_tensor *param, cnn_optim_slot *slot);
void cnn_optim_slot_close(cnn_optim_slot *slot);

/* "must be >= 0" style check of a float option: fails (NaN included) unless low <= value. */
cnn_status cnn_optim_check_min(const char *op, const char *name, double value, double low);

#endif /* CNN_OPTIM_COMMON_H */
