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
 *   bce_with_logits: dx = (1 + (pw - 1) t) sigmoid(x) - pw t     dt = -x + (pw - 1) softplus(-x)
 *
 * The elements are processed in tiles: one loop per loss kind computes a tile's values (or
 * derivatives) into a small buffer, with the vectorisable exp/log of vec_math.h, and separate
 * loops apply the weights, the incoming gradient and the reduction. No loop branches per element,
 * so all of them vectorise. */
#include <math.h>

#include "internal.h"
#include "vec_math.h"

enum { CHUNK = 1 << 14 }; /* elements per parallel work item and interrupt check */
enum { TILE = 512 };      /* elements per buffered tile */
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

static inline float clamp_log(float v) { return v > -100.0f ? v : -100.0f; } /* NaN -> -100 too */

/* softplus(-x) = log(1 + e^-x), written so that it never overflows. */
static inline float softplus_of_negative(float x) {
    float neg = -x;
    return cnn_vec_log1pf(cnn_vec_expf(-fabsf(x))) + (neg > 0.0f ? neg : 0.0f);
}

static inline float stable_sigmoid(float x) {
    float e = cnn_vec_expf(-fabsf(x)); /* in (0, 1]: no overflow for either sign */
    float r = 1.0f / (1.0f + e);
    float other = e * r;
    return x >= 0.0f ? r : other;
}

/* Unweighted losses of the n <= TILE elements starting at i0. */
static void tile_losses(const pointwise_loss *P, int64_t i0, int n, float *restrict out) {
    const float *restrict x = P->x + i0, *restrict t = P->t + i0;
    switch (P->kind) {
    case LOSS_MSE:
#pragma omp simd
        for (int j = 0; j < n; j++) out[j] = (x[j] - t[j]) * (x[j] - t[j]);
        break;
    case LOSS_L1:
#pragma omp simd
        for (int j = 0; j < n; j++) out[j] = fabsf(x[j] - t[j]);
        break;
    case LOSS_BCE:
#pragma omp simd
        for (int j = 0; j < n; j++)
            out[j] = -(t[j] * clamp_log(cnn_vec_logf(x[j])) +
                       (1.0f - t[j]) * clamp_log(cnn_vec_log1pf(-x[j])));
        break;
    case LOSS_BCE_LOGITS:
        if (P->pos_weight) {
            const float *restrict pw = P->pos_weight + i0;
#pragma omp simd
            for (int j = 0; j < n; j++)
                out[j] = (1.0f - t[j]) * x[j] +
                         (1.0f + (pw[j] - 1.0f) * t[j]) * softplus_of_negative(x[j]);
        } else {
#pragma omp simd
            for (int j = 0; j < n; j++)
                out[j] = (1.0f - t[j]) * x[j] + softplus_of_negative(x[j]);
        }
        break;
    }
    if (P->weight) {
        const float *restrict w = P->weight + i0;
#pragma omp simd
        for (int j = 0; j < n; j++) out[j] *= w[j];
    }
}

/* Unweighted d loss / dx and d loss / dt of the n <= TILE elements starting at i0. */
static void tile_grads(const pointwise_loss *P, int64_t i0, int n, float *restrict gx,
                       float *restrict gt) {
    const float *restrict x = P->x + i0, *restrict t = P->t + i0;
    switch (P->kind) {
    case LOSS_MSE:
#pragma omp simd
        for (int j = 0; j < n; j++) {
            gx[j] = 2.0f * (x[j] - t[j]);
            gt[j] = -gx[j];
        }
        break;
    case LOSS_L1:
#pragma omp simd
        for (int j = 0; j < n; j++) {
            gx[j] = (float)(x[j] > t[j]) - (float)(x[j] < t[j]);
            gt[j] = -gx[j];
        }
        break;
    case LOSS_BCE:
#pragma omp simd
        for (int j = 0; j < n; j++) {
            float spread = x[j] * (1.0f - x[j]);
            gx[j] = (x[j] - t[j]) / (spread > 1e-12f ? spread : 1e-12f);
            gt[j] = clamp_log(cnn_vec_log1pf(-x[j])) - clamp_log(cnn_vec_logf(x[j]));
        }
        break;
    case LOSS_BCE_LOGITS:
        if (P->pos_weight) {
            const float *restrict pw = P->pos_weight + i0;
#pragma omp simd
            for (int j = 0; j < n; j++) {
                gx[j] = (1.0f + (pw[j] - 1.0f) * t[j]) * stable_sigmoid(x[j]) - pw[j] * t[j];
                gt[j] = -x[j] + (pw[j] - 1.0f) * softplus_of_negative(x[j]);
            }
        } else {
#pragma omp simd
            for (int j = 0; j < n; j++) {
                gx[j] = stable_sigmoid(x[j]) - t[j];
                gt[j] = -x[j];
            }
        }
        break;
    }
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
        float scale = reduction == CNN_REDUCE_MEAN ? (float)(1.0 / (double)n) : 1.0f;
        bool per_element = reduction == CNN_REDUCE_NONE;
        float *dxp = dx ? cnn_ptr(dx) : NULL, *dtp = dt ? cnn_ptr(dt) : NULL;
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN_ELEMENTS)
        for (int64_t c0 = 0; c0 < n; c0 += CHUNK) {
            if (cnn_interrupted()) continue;
            int64_t c1 = c0 + CHUNK < n ? c0 + CHUNK : n;
            for (int64_t i0 = c0; i0 < c1; i0 += TILE) {
                int len = (int)(c1 - i0 < TILE ? c1 - i0 : TILE);
                float gx[TILE], gt[TILE], g[TILE];
                tile_grads(&P, i0, len, gx, gt);
                if (per_element) {
                    for (int j = 0; j < len; j++) g[j] = dy[i0 + j] * scale;
                } else {
                    for (int j = 0; j < len; j++) g[j] = dy[0] * scale;
                }
                if (P.weight)
                    for (int j = 0; j < len; j++) g[j] *= P.weight[i0 + j];
                if (dxp)
                    for (int j = 0; j < len; j++) dxp[i0 + j] = g[j] * gx[j];
                if (dtp)
                    for (int j = 0; j < len; j++) dtp[i0 + j] = g[j] * gt[j];
            }
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

/* Writes the per-element losses (when losses is not NULL) and their sum. */
static cnn_status sum_or_store(const pointwise_loss *P, int64_t n, float *losses, double *sum,
                               const char *op) {
    double total = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total) if (n >= PARALLEL_MIN_ELEMENTS)
    for (int64_t c0 = 0; c0 < n; c0 += CHUNK) {
        if (cnn_interrupted()) continue;
        int64_t c1 = c0 + CHUNK < n ? c0 + CHUNK : n;
        for (int64_t i0 = c0; i0 < c1; i0 += TILE) {
            int len = (int)(c1 - i0 < TILE ? c1 - i0 : TILE);
            float out[TILE];
            tile_losses(P, i0, len, out);
            double tile_sum = 0.0;
#pragma omp simd reduction(+ : tile_sum)
            for (int j = 0; j < len; j++) tile_sum += out[j];
            total += tile_sum;
            if (losses)
                for (int j = 0; j < len; j++) losses[i0 + j] = out[j];
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
