/* loss_regression.c - elementwise losses between a prediction x and a target t of the same shape:
 * mean squared error, L1, binary cross-entropy on probabilities and on logits. Each element's loss
 * is multiplied by an optional weight (broadcast to the input's shape), then the reduction takes
 * the mean over all elements, the sum, or keeps them ("none").
 *
 *   mse:             (x - t)^2
 *   l1:              |x - t|
 *   bce:             -(t * max(log x, -100) + (1 - t) * max(log(1 - x), -100))      x in [0, 1]
 *   bce_with_logits: (1 - t) * x + (1 + (pw - 1) * t) * softplus(-x)
 *                    with softplus(-x) = log(1 + exp(-|x|)) + max(-x, 0), which never overflows,
 *                    and pw the positive-class weight (1 without pos_weight)
 * The log clamp at -100 is PyTorch's: a probability of exactly 0 or 1 costs 100, not infinity.
 *
 * All four are differentiable in both x and t:
 *   mse:  dx = 2 (x - t)                  dt = -dx
 *   l1:   dx = sign(x - t)                dt = -dx
 *   bce:  dx = (x - t) / max(x (1 - x), 1e-12)     dt = max(log(1 - x), -100) - max(log x, -100)
 *   bce_with_logits: dx = (1 + (pw - 1) t) sigmoid(x) - pw t     dt = -x + (pw - 1) softplus(-x) */
#include <math.h>

#include "internal.h"

enum { CHUNK = 1 << 14 }; /* elements per interrupt check */
enum { PARALLEL_MIN_ELEMENTS = 1 << 15 };

typedef enum pointwise_kind { LOSS_MSE, LOSS_L1, LOSS_BCE, LOSS_BCE_LOGITS } pointwise_kind;

static const char *const loss_names[] = {"mse_loss", "l1_loss", "bce_loss", "bce_with_logits"};

/* The arrays of one call, all with the input's number of elements. */
typedef struct pointwise_loss {
    pointwise_kind kind;
    const float *x, *t;
    const float *weight;     /* NULL: 1 */
    const float *pos_weight; /* NULL: 1 */
} pointwise_loss;

static inline double softplus_of_negative(double x) { return log1p(exp(-fabs(x))) + fmax(-x, 0.0); }

static inline double stable_sigmoid(double x) {
    if (x >= 0) return 1.0 / (1.0 + exp(-x));
    double e = exp(x);
    return e / (1.0 + e);
}

static inline double clamped_log(double v) { return fmax(log(v), -100.0); }
static inline double clamped_log1m(double v) { return fmax(log1p(-v), -100.0); }

static double element_loss(const pointwise_loss *P, int64_t i) {
    double x = P->x[i], t = P->t[i], loss = 0.0;
    switch (P->kind) {
    case LOSS_MSE: loss = (x - t) * (x - t); break;
    case LOSS_L1: loss = fabs(x - t); break;
    case LOSS_BCE: loss = -(t * clamped_log(x) + (1.0 - t) * clamped_log1m(x)); break;
    case LOSS_BCE_LOGITS: {
        double pw = P->pos_weight ? P->pos_weight[i] : 1.0;
        loss = (1.0 - t) * x + (1.0 + (pw - 1.0) * t) * softplus_of_negative(x);
        break;
    }
    }
    return P->weight ? loss * P->weight[i] : loss;
}

/* d loss / dx and d loss / dt of element i, times g. */
static void element_grads(const pointwise_loss *P, int64_t i, double g, float *dx, float *dt) {
    double x = P->x[i], t = P->t[i], gx = 0.0, gt = 0.0;
    switch (P->kind) {
    case LOSS_MSE:
        gx = 2.0 * (x - t);
        gt = -gx;
        break;
    case LOSS_L1:
        gx = (x > t) - (x < t);
        gt = -gx;
        break;
    case LOSS_BCE:
        gx = (x - t) / fmax(x * (1.0 - x), 1e-12);
        gt = clamped_log1m(x) - clamped_log(x);
        break;
    case LOSS_BCE_LOGITS: {
        double pw = P->pos_weight ? P->pos_weight[i] : 1.0;
        gx = (1.0 + (pw - 1.0) * t) * stable_sigmoid(x) - pw * t;
        gt = -x + (pw - 1.0) * softplus_of_negative(x);
        break;
    }
    }
    if (P->weight) g *= P->weight[i];
    if (dx) dx[i] = (float)(g * gx);
    if (dt) dt[i] = (float)(g * gt);
}

/* ---- argument checks ---------------------------------------------------------------------------- */

/* A view of w broadcast to like's shape (stride 0 along broadcast dims), without autograd; NULL +
 * error naming the op when the shapes do not broadcast. */
static cnn_tensor *broadcast_view(const char *op, const char *name, cnn_tensor *w,
                                  const cnn_tensor *like) {
    int64_t stride[CNN_MAX_DIMS];
    bool fits = w->ndim <= like->ndim;
    for (int d = like->ndim - 1, e = w->ndim - 1; fits && d >= 0; d--, e--) {
        if (e < 0) {
            stride[d] = 0;
        } else if (w->shape[e] == like->shape[d]) {
            stride[d] = w->stride[e];
        } else if (w->shape[e] == 1) {
            stride[d] = 0;
        } else {
            fits = false;
        }
    }
    if (!fits)
        return cnn_fail_null(CNN_ERR_SHAPE, "%s: %s of shape %s does not broadcast to input %s", op,
                             name, cnn_shape_str(w), cnn_shape_str(like));
    return cnn_make_view(w, like->ndim, like->shape, stride, w->offset);
}

static bool check_input_target(const char *op, const cnn_tensor *x, const cnn_tensor *t,
                               cnn_reduction reduction) {
    if (!x || !t)
        return cnn_fail(CNN_ERR_ARGUMENT, "%s: %s is NULL", op, x ? "target" : "input"), false;
    if (!cnn_same_shape(x, t))
        return cnn_fail(CNN_ERR_SHAPE, "%s: input %s and target %s must have the same shape", op,
                        cnn_shape_str(x), cnn_shape_str(t)), false;
    if (reduction < CNN_REDUCE_MEAN || reduction > CNN_REDUCE_NONE)
        return cnn_fail(CNN_ERR_ARGUMENT, "%s: unknown reduction %d", op, (int)reduction), false;
    return true;
}

/* The message names the value and the shape but no element index: it reaches both 0-based C and
 * 1-based Lua callers. */
static bool check_probabilities(const float *x, const cnn_tensor *input) {
    int64_t n = cnn_numel(input);
    for (int64_t i = 0; i < n; i++)
        if (!(x[i] >= 0.0f && x[i] <= 1.0f))
            return cnn_fail(CNN_ERR_ARGUMENT,
                            "bce_loss: input value %g is not a probability in [0, 1] (input %s)",
                            (double)x[i], cnn_shape_str(input)), false;
    return true;
}

/* ---- backward ----------------------------------------------------------------------------------- */

/* Saved: input, target, then the broadcast weight and pos_weight views when present.
 * ints: kind, reduction, has_weight, has_pos_weight. */
static cnn_status pointwise_loss_backward(cnn_node *node, cnn_tensor *grad_output,
                                          cnn_tensor **grad_inputs) {
    pointwise_loss P = {.kind = (pointwise_kind)node->ints[0]};
    cnn_reduction reduction = (cnn_reduction)node->ints[1];
    cnn_tensor *tmp[5] = {NULL}, *dx = NULL, *dt = NULL;
    cnn_tensor *input = node->saved[0];
    int next_saved = 2;
    const float *dy = cnn_read_ptr(grad_output, &tmp[0]);
    bool ok = dy && (P.x = cnn_read_ptr(input, &tmp[1])) && (P.t = cnn_read_ptr(node->saved[1], &tmp[2]));
    if (ok && node->ints[2]) ok = (P.weight = cnn_read_ptr(node->saved[next_saved++], &tmp[3])) != NULL;
    if (ok && node->ints[3]) ok = (P.pos_weight = cnn_read_ptr(node->saved[next_saved], &tmp[4])) != NULL;
    if (ok && node->needs_grad[0]) ok = (dx = cnn_alloc(input->ndim, input->shape)) != NULL;
    if (ok && node->needs_grad[1]) ok = (dt = cnn_alloc(input->ndim, input->shape)) != NULL;
    cnn_status status = ok ? CNN_OK : cnn_last_status() != CNN_OK ? cnn_last_status() : CNN_ERR_MEMORY;
    if (ok) {
        int64_t n = cnn_numel(input);
        double scale = reduction == CNN_REDUCE_MEAN ? 1.0 / (double)n : 1.0;
        float *dxp = dx ? cnn_ptr(dx) : NULL, *dtp = dt ? cnn_ptr(dt) : NULL;
        bool parallel = n >= PARALLEL_MIN_ELEMENTS;
#pragma omp parallel for schedule(static) if (parallel)
        for (int64_t i0 = 0; i0 < n; i0 += CHUNK) {
            if (cnn_interrupted()) continue;
            int64_t i1 = i0 + CHUNK < n ? i0 + CHUNK : n;
            for (int64_t i = i0; i < i1; i++)
                element_grads(&P, i, (reduction == CNN_REDUCE_NONE ? dy[i] : dy[0]) * scale, dxp, dtp);
        }
        if (cnn_interrupted())
            status = cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted in backward", node->name);
    }
    for (int k = 0; k < 5; k++) cnn_release(tmp[k]);
    if (status != CNN_OK) {
        cnn_release(dx);
        cnn_release(dt);
        return status;
    }
    grad_inputs[0] = dx;
    grad_inputs[1] = dt;
    return CNN_OK;
}

/* ---- forward ------------------------------------------------------------------------------------ */

static cnn_status sum_or_store(const pointwise_loss *P, int64_t n, float *losses, double *sum,
                               const char *op) {
    double total = 0.0;
    bool parallel = n >= PARALLEL_MIN_ELEMENTS;
#pragma omp parallel for schedule(static) reduction(+ : total) if (parallel)
    for (int64_t i0 = 0; i0 < n; i0 += CHUNK) {
        if (cnn_interrupted()) continue;
        int64_t i1 = i0 + CHUNK < n ? i0 + CHUNK : n;
        for (int64_t i = i0; i < i1; i++) {
            double loss = element_loss(P, i);
            if (losses) losses[i] = (float)loss;
            total += loss;
        }
    }
    if (cnn_interrupted()) return cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
    *sum = total;
    return CNN_OK;
}

static cnn_tensor *pointwise_loss_forward(pointwise_kind kind, cnn_tensor *x, cnn_tensor *t,
                                          cnn_tensor *weight, cnn_tensor *pos_weight,
                                          cnn_reduction reduction) {
    const char *op = loss_names[kind];
    if (!check_input_target(op, x, t, reduction)) return NULL;
    cnn_tensor *tmp[4] = {NULL}, *weight_view = NULL, *pos_weight_view = NULL, *out = NULL;
    pointwise_loss P = {.kind = kind};
    int64_t n = cnn_numel(x);
    bool ok = (!weight || (weight_view = broadcast_view(op, "weight", weight, x))) &&
              (!pos_weight || (pos_weight_view = broadcast_view(op, "pos_weight", pos_weight, x)));
    ok = ok && (P.x = cnn_read_ptr(x, &tmp[0])) && (P.t = cnn_read_ptr(t, &tmp[1]));
    if (ok && weight_view) ok = (P.weight = cnn_read_ptr(weight_view, &tmp[2])) != NULL;
    if (ok && pos_weight_view) ok = (P.pos_weight = cnn_read_ptr(pos_weight_view, &tmp[3])) != NULL;
    if (ok && kind == LOSS_BCE) ok = check_probabilities(P.x, x);
    if (ok && reduction == CNN_REDUCE_NONE) ok = (out = cnn_alloc(x->ndim, x->shape)) != NULL;
    double sum = 0.0;
    if (ok) ok = sum_or_store(&P, n, out ? cnn_ptr(out) : NULL, &sum, op) == CNN_OK;
    if (ok && reduction != CNN_REDUCE_NONE)
        ok = (out = cnn_scalar((float)(reduction == CNN_REDUCE_MEAN ? sum / (double)n : sum))) != NULL;
    for (int k = 0; k < 4; k++) cnn_release(tmp[k]);

    cnn_tensor *inputs[2] = {x, t};
    bool failed = !ok;
    cnn_node *node = ok ? cnn_record(out, op, pointwise_loss_backward, 2, inputs, &failed) : NULL;
    if (node) {
        node->ints[0] = kind;
        node->ints[1] = reduction;
        node->ints[2] = weight_view != NULL;
        node->ints[3] = pos_weight_view != NULL;
        failed = !cnn_node_save(node, x) || !cnn_node_save(node, t) ||
                 (weight_view && !cnn_node_save(node, weight_view)) ||
                 (pos_weight_view && !cnn_node_save(node, pos_weight_view));
    }
    cnn_release(weight_view);
    cnn_release(pos_weight_view);
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}

cnn_tensor *cnn_mse_loss(cnn_tensor *input, cnn_tensor *target, cnn_reduction reduction) {
    return pointwise_loss_forward(LOSS_MSE, input, target, NULL, NULL, reduction);
}

cnn_tensor *cnn_l1_loss(cnn_tensor *input, cnn_tensor *target, cnn_reduction reduction) {
    return pointwise_loss_forward(LOSS_L1, input, target, NULL, NULL, reduction);
}

cnn_tensor *cnn_bce_loss(cnn_tensor *probs, cnn_tensor *target, cnn_tensor *weight,
                         cnn_reduction reduction) {
    return pointwise_loss_forward(LOSS_BCE, probs, target, weight, NULL, reduction);
}

cnn_tensor *cnn_bce_with_logits(cnn_tensor *logits, cnn_tensor *target, cnn_tensor *weight,
                                cnn_tensor *pos_weight, cnn_reduction reduction) {
    return pointwise_loss_forward(LOSS_BCE_LOGITS, logits, target, weight, pos_weight, reduction);
}
