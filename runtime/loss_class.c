/* loss_class.c - classification losses: cross-entropy on logits, negative log-likelihood on
 * log-probabilities. Both follow PyTorch's definitions, weighting and reductions.
 *
 * Dimension legend: N batch, C classes, S the product of the dims after C (1 for (N, C) scores).
 * A position is one (n, s) pair: its class scores are x[(n*C + c)*S + s] for c in 0..C-1 and its
 * target is targets[n*S + s]. An unbatched (C) score vector with a 0-d target is one position.
 *
 * For a counted position with target t, class weights w (all 1 without a weight tensor) and
 * logp = log_softmax(x) over the classes:
 *   nll:           loss = -w[t] * logp[t]
 *   cross-entropy: loss = (1 - ls) * (-w[t] * logp[t]) + ls/C * sum_c (-w[c] * logp[c])
 * where ls is the label smoothing. A position whose target equals ignore_index has loss 0 and
 * weight 0. The mean divides the summed loss by W, the summed w[t] of the counted positions
 * (PyTorch's rule, smoothing included), so it is NaN when every target is ignored, as in PyTorch.
 *
 * Gradients, with g the incoming gradient of the position (divided by W for the mean):
 *   nll:           dlogp[c] = -g * w[t] * [c == t]
 *   cross-entropy: dx[c] = g * (p[c] * ((1-ls) w[t] + ls/C * sum_w) - ls/C * w[c] - (1-ls) w[t] [c == t])
 * with p = softmax(x), recomputed in backward from the saved logits and the per-position
 * log-sum-exp. The log-sum-exp subtracts the maximum, so huge logits stay finite. */
#include <math.h>

#include "internal.h"
#include "vec_math.h"

enum { PARALLEL_MIN_ELEMENTS = 1 << 15 };
enum { BLOCK = 256 }; /* positions per work item when S > 1 */

cnn_class_loss_options cnn_class_loss_defaults(void) {
    cnn_class_loss_options o = {CNN_REDUCE_MEAN, -100, 0.0f, NULL};
    return o;
}

typedef struct class_geometry {
    int64_t N, C, S;
} class_geometry;

/* What forward and backward share about one call. */
typedef struct class_loss {
    const char *op;
    bool smoothing_allowed; /* cross-entropy only */
    bool from_logits;       /* cross-entropy: scores are logits; nll: log-probabilities */
    class_geometry g;
    cnn_reduction reduction;
    float ignore_index, smoothing;
    const float *x;       /* scores (N, C, S) */
    const float *targets; /* (N, S) */
    const float *weight;  /* (C) or NULL */
} class_loss;

static inline float weight_of(const class_loss *L, int64_t c) { return L->weight ? L->weight[c] : 1.0f; }

static double weight_total(const class_loss *L) {
    if (!L->weight) return (double)L->g.C;
    double sum = 0.0;
    for (int64_t c = 0; c < L->g.C; c++) sum += L->weight[c];
    return sum;
}

/* ---- argument checks ---------------------------------------------------------------------------- */

static bool check_shapes(class_loss *L, const cnn_tensor *scores, const cnn_tensor *targets,
                         const cnn_class_loss_options *o) {
    const char *what = L->from_logits ? "logits" : "log-probabilities";
    if (scores->ndim < 1)
        return cnn_fail(CNN_ERR_SHAPE, "%s: %s must be (C), (N, C) or (N, C, ...), got a 0-d tensor",
                        L->op, what), false;
    int64_t expected[CNN_MAX_DIMS];
    int expected_ndim = 0;
    if (scores->ndim == 1) {
        L->g = (class_geometry){1, scores->shape[0], 1};
    } else {
        L->g = (class_geometry){scores->shape[0], scores->shape[1], 1};
        expected[expected_ndim++] = scores->shape[0];
        for (int d = 2; d < scores->ndim; d++) {
            expected[expected_ndim++] = scores->shape[d];
            L->g.S *= scores->shape[d];
        }
    }
    bool fits = targets->ndim == expected_ndim;
    for (int d = 0; fits && d < expected_ndim; d++) fits = targets->shape[d] == expected[d];
    if (!fits)
        return cnn_fail(CNN_ERR_SHAPE, "%s: targets of shape %s do not fit %s %s (expected targets %s)",
                        L->op, cnn_shape_str(targets), what, cnn_shape_str(scores),
                        cnn_dims_str(expected_ndim, expected)), false;
    if (L->g.C < 1)
        return cnn_fail(CNN_ERR_SHAPE, "%s: %s %s have no classes", L->op, what,
                        cnn_shape_str(scores)), false;
    cnn_tensor *w = o->class_weight;
    if (w && !(w->ndim == 1 && w->shape[0] == L->g.C))
        return cnn_fail(CNN_ERR_SHAPE, "%s: class weight has shape %s but %s %s have %lld classes",
                        L->op, cnn_shape_str(w), what, cnn_shape_str(scores), (long long)L->g.C),
               false;
    return true;
}

static bool check_options(class_loss *L, const cnn_class_loss_options *o) {
    if (o->reduction < CNN_REDUCE_MEAN || o->reduction > CNN_REDUCE_NONE)
        return cnn_fail(CNN_ERR_ARGUMENT, "%s: unknown reduction %d", L->op, (int)o->reduction), false;
    if (!(o->label_smoothing >= 0.0f && o->label_smoothing <= 1.0f))
        return cnn_fail(CNN_ERR_ARGUMENT, "%s: label_smoothing must be in [0, 1], got %g", L->op,
                        (double)o->label_smoothing), false;
    if (o->label_smoothing != 0.0f && !L->smoothing_allowed)
        return cnn_fail(CNN_ERR_ARGUMENT, "%s: label_smoothing is only supported by cross_entropy",
                        L->op), false;
    L->reduction = (cnn_reduction)o->reduction;
    L->ignore_index = (float)o->ignore_index;
    L->smoothing = o->label_smoothing;
    return true;
}

/* Every target must be ignore_index or an integer in [0, C). */
static bool check_targets(const class_loss *L) {
    int64_t n = L->g.N * L->g.S;
    for (int64_t i = 0; i < n; i++) {
        float t = L->targets[i];
        if (t == L->ignore_index) continue;
        if (t != floorf(t))
            return cnn_fail(CNN_ERR_ARGUMENT,
                            "%s: target %g at element %lld is not a class index (%lld classes)",
                            L->op, (double)t, (long long)i, (long long)L->g.C), false;
        if (t < 0.0f || t >= (float)L->g.C)
            return cnn_fail(CNN_ERR_ARGUMENT,
                            "%s: target %g at element %lld is out of range for %lld classes "
                            "(valid 0..%lld)",
                            L->op, (double)t, (long long)i, (long long)L->g.C,
                            (long long)L->g.C - 1), false;
    }
    return true;
}

/* ---- kernels --------------------------------------------------------------------------------------
 * The work is cut into items: with S == 1 an item is one position, whose C classes are contiguous;
 * with S > 1 it is a block of up to BLOCK neighbouring positions of one sample, whose class values
 * lie S apart, so the loops run over classes outside and over the block's positions inside, which
 * reads memory in order and vectorises. */

/* log(sum_c exp(x[c])) over C contiguous classes, with the maximum subtracted. */
static float row_log_sum_exp(const float *x, int64_t C) {
    float max = -INFINITY;
#pragma omp simd reduction(max : max)
    for (int64_t c = 0; c < C; c++) max = x[c] > max ? x[c] : max;
    if (isinf(max)) return max; /* all -inf (-> -inf) or some +inf (-> +inf) */
    double sum = 0.0;
#pragma omp simd reduction(+ : sum)
    for (int64_t c = 0; c < C; c++) sum += cnn_vec_expf(x[c] - max);
    return max + (float)log(sum);
}

/* The same for len positions at once: class c of position j is x[c*S + j]. */
static void block_log_sum_exp(const float *x, int64_t C, int64_t S, int len, float *lse) {
    float max[BLOCK];
    double sum[BLOCK];
    for (int j = 0; j < len; j++) {
        max[j] = -INFINITY;
        sum[j] = 0.0;
    }
    for (int64_t c = 0; c < C; c++) {
        const float *xc = x + c * S;
        for (int j = 0; j < len; j++) max[j] = xc[j] > max[j] ? xc[j] : max[j];
    }
    for (int64_t c = 0; c < C; c++) {
        const float *xc = x + c * S;
        for (int j = 0; j < len; j++) sum[j] += cnn_vec_expf(xc[j] - max[j]);
    }
    for (int j = 0; j < len; j++) lse[j] = isinf(max[j]) ? max[j] : max[j] + (float)log(sum[j]);
}

/* Loss of one position (0 when ignored); its weight w[t] goes to *counted_weight. lse is the
 * position's log-sum-exp (cross-entropy) or 0 (nll: the scores already are log-probabilities). */
static double position_loss(const class_loss *L, int64_t i, float lse, double *counted_weight) {
    float t = L->targets[i];
    *counted_weight = 0.0;
    if (t == L->ignore_index) return 0.0;
    int64_t n = i / L->g.S, s = i % L->g.S;
    const float *xs = L->x + n * L->g.C * L->g.S + s; // (C) with stride S
    int64_t target = (int64_t)t;
    double wt = weight_of(L, target);
    *counted_weight = wt;
    double loss = -wt * ((double)xs[target * L->g.S] - lse);
    if (L->smoothing == 0.0f) return loss;
    double smooth = 0.0;
    for (int64_t c = 0; c < L->g.C; c++)
        smooth -= weight_of(L, c) * ((double)xs[c * L->g.S] - lse);
    return (1.0 - L->smoothing) * loss + L->smoothing / (double)L->g.C * smooth;
}

/* The incoming gradient of each position: one value per position (reduction none) or one for
 * all, times scale (1/W for the mean). */
typedef struct upstream {
    const float *dy;
    bool per_position;
    float scale;
} upstream;

static inline float upstream_at(const upstream *u, int64_t i) {
    return (u->per_position ? u->dy[i] : u->dy[0]) * u->scale;
}

/* Gradient of the len positions starting at position i0 = n*S + s0 (len is 1 when S == 1):
 *   dx[c] = g * (p[c] * total - ls/C * w[c]) - [c == t] * g * (1 - ls) * w[t]
 * with total = (1 - ls) w[t] + ls/C * sum_w (cross-entropy), or dx[c] = -[c == t] * g * w[t] (nll).
 * Ignored positions get g = 0 and so a zero gradient. */
static void items_grad(const class_loss *L, int64_t n, int64_t s0, int len, const float *lse,
                       const upstream *u, double sum_w, float *dx) {
    int64_t C = L->g.C, S = L->g.S, i0 = n * S + s0;
    float ls = L->smoothing, per_class = ls / (float)C;
    float g[BLOCK], total[BLOCK];
    for (int j = 0; j < len; j++) {
        float t = L->targets[i0 + j];
        bool counted = t != L->ignore_index;
        float wt = counted ? weight_of(L, (int64_t)t) : 0.0f;
        g[j] = counted ? upstream_at(u, i0 + j) : 0.0f;
        total[j] = (1.0f - ls) * wt + (float)(per_class * sum_w);
    }
    for (int64_t c = 0; c < C; c++) {
        int64_t off = (n * C + c) * S + s0;
        float *dc = dx + off;
        if (!L->from_logits) {
            for (int j = 0; j < len; j++) dc[j] = 0.0f;
            continue;
        }
        const float *xc = L->x + off, *lj = lse + i0;
        float wc = per_class * weight_of(L, c);
        for (int j = 0; j < len; j++) {
            float p = cnn_vec_expf(xc[j] - lj[j]);
            dc[j] = g[j] == 0.0f ? 0.0f : g[j] * (p * total[j] - wc);
        }
    }
    for (int j = 0; j < len; j++) {
        float t = L->targets[i0 + j];
        if (t == L->ignore_index) continue;
        int64_t target = (int64_t)t;
        dx[(n * C + target) * S + s0 + j] -= g[j] * (1.0f - ls) * weight_of(L, target);
    }
}

/* The gradient of one position with contiguous classes (S == 1), vectorised over the classes. */
static void row_grad(const class_loss *L, int64_t i, const float *lse, const upstream *u,
                     double sum_w, float *dx) {
    int64_t C = L->g.C;
    float *d = dx + i * C;
    float t = L->targets[i];
    if (t == L->ignore_index || !L->from_logits) {
        for (int64_t c = 0; c < C; c++) d[c] = 0.0f;
        if (t != L->ignore_index) d[(int64_t)t] = -upstream_at(u, i) * weight_of(L, (int64_t)t);
        return;
    }
    int64_t target = (int64_t)t;
    float ls = L->smoothing, per_class = ls / (float)C, wt = weight_of(L, target);
    float g = upstream_at(u, i), total = (1.0f - ls) * wt + (float)(per_class * sum_w);
    const float *x = L->x + i * C, *w = L->weight;
    float l = lse[i];
    /* Two loops rather than `w ? w[c] : 1` inside one: vectorised, that would become a masked
     * load from a NULL address, which costs a microcode assist per vector on some processors. */
    if (w) {
#pragma omp simd
        for (int64_t c = 0; c < C; c++)
            d[c] = g * (cnn_vec_expf(x[c] - l) * total - per_class * w[c]);
    } else {
#pragma omp simd
        for (int64_t c = 0; c < C; c++) d[c] = g * (cnn_vec_expf(x[c] - l) * total - per_class);
    }
    d[target] -= g * (1.0f - ls) * wt;
}

/* ---- forward and backward over all positions ---------------------------------------------------- */

static int64_t blocks_per_sample(const class_geometry *g) {
    return g->S == 1 ? 1 : (g->S + BLOCK - 1) / BLOCK;
}

/* Fills lse (cross-entropy) and per-position losses (reduction none) or the two sums. */
static cnn_status forward_positions(const class_loss *L, float *lse, float *losses,
                                    double *loss_sum, double *weight_sum) {
    int64_t C = L->g.C, S = L->g.S, per_sample = blocks_per_sample(&L->g);
    int64_t items = L->g.N * per_sample;
    bool parallel = items > 1 && L->g.N * S * C >= PARALLEL_MIN_ELEMENTS;
    double total_loss = 0.0, total_weight = 0.0;
#pragma omp parallel for schedule(static) reduction(+ : total_loss, total_weight) if (parallel)
    for (int64_t item = 0; item < items; item++) {
        if (cnn_interrupted()) continue;
        int64_t n = item / per_sample, s0 = (item % per_sample) * BLOCK;
        int len = S == 1 ? 1 : (int)(S - s0 < BLOCK ? S - s0 : BLOCK);
        int64_t i0 = n * S + s0;
        if (L->from_logits) {
            if (S == 1) lse[i0] = row_log_sum_exp(L->x + n * C, C);
            else block_log_sum_exp(L->x + n * C * S + s0, C, S, len, lse + i0);
        }
        for (int j = 0; j < len; j++) {
            double w;
            double loss = position_loss(L, i0 + j, lse ? lse[i0 + j] : 0.0f, &w);
            if (losses) losses[i0 + j] = (float)loss;
            total_loss += loss;
            total_weight += w;
        }
    }
    if (cnn_interrupted()) return cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", L->op);
    *loss_sum = total_loss;
    *weight_sum = total_weight;
    return CNN_OK;
}

static cnn_status backward_positions(const class_loss *L, const float *lse, const upstream *u,
                                     float *dx) {
    int64_t S = L->g.S, per_sample = blocks_per_sample(&L->g);
    int64_t items = L->g.N * per_sample;
    bool parallel = items > 1 && L->g.N * S * L->g.C >= PARALLEL_MIN_ELEMENTS;
    double sum_w = weight_total(L);
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t item = 0; item < items; item++) {
        if (cnn_interrupted()) continue;
        if (S == 1) {
            row_grad(L, item, lse, u, sum_w, dx);
        } else {
            int64_t n = item / per_sample, s0 = (item % per_sample) * BLOCK;
            items_grad(L, n, s0, (int)(S - s0 < BLOCK ? S - s0 : BLOCK), lse, u, sum_w, dx);
        }
    }
    if (cnn_interrupted()) return cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted in backward", L->op);
    return CNN_OK;
}

/* The node saves the scores, the targets, then the per-position log-sum-exp (cross-entropy only)
 * and the class weight (when given). ints: N, C, S, reduction, ignore_index, from_logits,
 * has_weight; reals: smoothing, W. */
static cnn_status class_loss_backward(cnn_node *node, cnn_tensor *grad_output,
                                      cnn_tensor **grad_inputs) {
    if (!node->needs_grad[0]) return CNN_OK;
    bool from_logits = node->ints[5], has_weight = node->ints[6];
    class_loss L = {.op = node->name,
                    .from_logits = from_logits,
                    .g = {node->ints[0], node->ints[1], node->ints[2]},
                    .reduction = (cnn_reduction)node->ints[3],
                    .ignore_index = (float)node->ints[4],
                    .smoothing = (float)node->reals[0]};
    cnn_tensor *tmp[5] = {NULL};
    cnn_tensor *scores = node->saved[0], *dx = NULL;
    int next_saved = 2;
    const float *dy = cnn_read_ptr(grad_output, &tmp[0]), *lse = NULL;
    bool ok = dy && (L.x = cnn_read_ptr(scores, &tmp[1])) &&
              (L.targets = cnn_read_ptr(node->saved[1], &tmp[2]));
    if (ok && from_logits) ok = (lse = cnn_read_ptr(node->saved[next_saved++], &tmp[3])) != NULL;
    if (ok && has_weight) ok = (L.weight = cnn_read_ptr(node->saved[next_saved], &tmp[4])) != NULL;
    if (ok) ok = (dx = cnn_alloc(scores->ndim, scores->shape)) != NULL;
    cnn_status status = ok ? CNN_OK : cnn_last_status() != CNN_OK ? cnn_last_status() : CNN_ERR_MEMORY;
    if (ok) {
        upstream u = {dy, L.reduction == CNN_REDUCE_NONE,
                      L.reduction == CNN_REDUCE_MEAN ? (float)(1.0 / node->reals[1]) : 1.0f};
        status = backward_positions(&L, lse, &u, cnn_ptr(dx));
    }
    for (int k = 0; k < 5; k++) cnn_release(tmp[k]);
    if (status != CNN_OK) {
        cnn_release(dx);
        return status;
    }
    grad_inputs[0] = dx;
    return CNN_OK;
}

static cnn_tensor *class_loss_forward(class_loss *L, cnn_tensor *scores, cnn_tensor *targets,
                                      const cnn_class_loss_options *options) {
    cnn_class_loss_options defaults = cnn_class_loss_defaults();
    const cnn_class_loss_options *o = options ? options : &defaults;
    if (!scores || !targets)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "%s: %s is NULL", L->op, scores ? "targets" : "input");
    if (!check_options(L, o) || !check_shapes(L, scores, targets, o)) return NULL;

    cnn_tensor *tmp[3] = {NULL}, *lse = NULL, *out = NULL;
    int64_t positions = L->g.N * L->g.S;
    bool ok = (L->x = cnn_read_ptr(scores, &tmp[0])) && (L->targets = cnn_read_ptr(targets, &tmp[1]));
    if (ok && o->class_weight) ok = (L->weight = cnn_read_ptr(o->class_weight, &tmp[2])) != NULL;
    ok = ok && check_targets(L);
    if (ok && L->from_logits) ok = (lse = cnn_alloc(1, &positions)) != NULL;
    if (ok && L->reduction == CNN_REDUCE_NONE) ok = (out = cnn_alloc(targets->ndim, targets->shape)) != NULL;
    double loss_sum = 0.0, weight_sum = 0.0;
    if (ok)
        ok = forward_positions(L, lse ? cnn_ptr(lse) : NULL, out ? cnn_ptr(out) : NULL, &loss_sum,
                               &weight_sum) == CNN_OK;
    if (ok && L->reduction != CNN_REDUCE_NONE)
        ok = (out = cnn_scalar((float)(L->reduction == CNN_REDUCE_MEAN ? loss_sum / weight_sum
                                                                       : loss_sum))) != NULL;
    for (int k = 0; k < 3; k++) cnn_release(tmp[k]);
    if (!ok) {
        cnn_release(lse);
        cnn_release(out);
        return NULL;
    }

    bool failed = false; /* the targets are not differentiable: the node has one input */
    cnn_node *node = cnn_record(out, L->op, class_loss_backward, 1, &scores, &failed);
    if (node) {
        node->ints[0] = L->g.N;
        node->ints[1] = L->g.C;
        node->ints[2] = L->g.S;
        node->ints[3] = L->reduction;
        node->ints[4] = o->ignore_index;
        node->ints[5] = L->from_logits;
        node->ints[6] = o->class_weight != NULL;
        node->reals[0] = L->smoothing;
        node->reals[1] = weight_sum;
        failed = !cnn_node_save(node, scores) || !cnn_node_save(node, targets) ||
                 (lse && !cnn_node_save(node, lse)) ||
                 (o->class_weight && !cnn_node_save(node, o->class_weight));
    }
    cnn_release(lse);
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}

cnn_tensor *cnn_cross_entropy(cnn_tensor *logits, cnn_tensor *targets, const cnn_class_loss_options *o) {
    class_loss L = {.op = "cross_entropy", .smoothing_allowed = true, .from_logits = true};
    return class_loss_forward(&L, logits, targets, o);
}

cnn_tensor *cnn_nll_loss(cnn_tensor *log_probs, cnn_tensor *targets, const cnn_class_loss_options *o) {
    class_loss L = {.op = "nll_loss", .smoothing_allowed = false, .from_logits = false};
    return class_loss_forward(&L, log_probs, targets, o);
}
