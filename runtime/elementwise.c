/* Elementwise binary ops with NumPy broadcasting, scalar variants, and their gradients. */
#include <math.h>
#include <string.h>

#include "internal.h"

typedef enum binary_op { OP_ADD, OP_SUB, OP_MUL, OP_DIV, OP_POW, OP_MAX, OP_MIN } binary_op;

static const char *const binary_names[] = {"add", "sub", "mul", "div", "pow", "maximum", "minimum"};

static inline float apply(binary_op op, float a, float b) {
    switch (op) {
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_MUL: return a * b;
    case OP_DIV: return a / b;
    case OP_POW: return powf(a, b);
    case OP_MAX: return (a > b || a != a) ? a : b; /* NaN propagates, as in PyTorch */
    case OP_MIN: return (a < b || a != a) ? a : b;
    }
    return 0;
}

/* The switch sits outside the loops so each loop is a simple one the compiler vectorises. */
#define BINARY_LOOPS(EXPR)                                                                        \
    if (s[0] == 1 && s[1] == 1 && s[2] == 1) {                                                    \
        for (int64_t i = 0; i < n; i++) { float a = pa[i], b = pb[i]; po[i] = (EXPR); }           \
    } else if (s[0] == 1 && s[1] == 1 && s[2] == 0) {                                             \
        float b = pb[0];                                                                          \
        for (int64_t i = 0; i < n; i++) { float a = pa[i]; po[i] = (EXPR); }                      \
    } else if (s[0] == 1 && s[1] == 0 && s[2] == 1) {                                             \
        float a = pa[0];                                                                          \
        for (int64_t i = 0; i < n; i++) { float b = pb[i]; po[i] = (EXPR); }                      \
    } else {                                                                                      \
        for (int64_t i = 0; i < n; i++) {                                                         \
            float a = pa[i * s[1]], b = pb[i * s[2]];                                             \
            po[i * s[0]] = (EXPR);                                                                \
        }                                                                                         \
    }

static void binary_row(void *ctx, int64_t n, float **p, const int64_t *s) {
    binary_op op = *(const binary_op *)ctx;
    float *po = p[0];
    const float *pa = p[1], *pb = p[2];
    switch (op) {
    case OP_ADD: BINARY_LOOPS(a + b); break;
    case OP_SUB: BINARY_LOOPS(a - b); break;
    case OP_MUL: BINARY_LOOPS(a * b); break;
    case OP_DIV: BINARY_LOOPS(a / b); break;
    default: BINARY_LOOPS(apply(op, a, b)); break;
    }
}

/* out = a op b, broadcasting; no autograd. */
static cnn_tensor *binary_forward(binary_op op, const cnn_tensor *a, const cnn_tensor *b) {
    int nd;
    int64_t shape[CNN_MAX_DIMS];
    if (!cnn_broadcast_shape(binary_names[op], a, b, &nd, shape)) return NULL;
    cnn_tensor *out = cnn_alloc(nd, shape);
    if (!out) return NULL;
    float *bases[3] = {cnn_ptr(out), cnn_ptr(a), cnn_ptr(b)};
    int64_t strides[3][CNN_MAX_DIMS];
    memcpy(strides[0], out->stride, sizeof strides[0]);
    cnn_broadcast_strides(a, nd, shape, strides[1]);
    cnn_broadcast_strides(b, nd, shape, strides[2]);
    cnn_foreach_row(nd, shape, 3, bases, (const int64_t(*)[CNN_MAX_DIMS])strides, binary_row, &op);
    return out;
}

/* ---- gradients ---------------------------------------------------------------------------------
 * Each input's gradient is computed at the output's (broadcast) shape and then summed down to the
 * input's shape. */
static cnn_tensor *to_input(cnn_tensor *g, const cnn_tensor *in) {
    if (!g) return NULL;
    cnn_tensor *r = cnn_reduce_grad_to(g, in);
    cnn_release(g);
    return r;
}

/* Elementwise gradient kernel over three same-shape operands made contiguous by broadcasting. */
typedef enum grad_kind { G_DIV_B, G_POW_A, G_POW_B, G_MAXMIN_A, G_MAXMIN_B } grad_kind;

typedef struct grad_ctx {
    grad_kind kind;
    int is_min;
} grad_ctx;

static void grad_row(void *vctx, int64_t n, float **p, const int64_t *s) {
    const grad_ctx *c = vctx;
    float *out = p[0];
    const float *g = p[1], *a = p[2], *b = p[3];
    for (int64_t i = 0; i < n; i++) {
        float gv = g[i * s[1]], av = a[i * s[2]], bv = b[i * s[3]], r = 0;
        switch (c->kind) {
        case G_DIV_B: r = -gv * av / (bv * bv); break;
        case G_POW_A: r = bv == 0 ? 0 : gv * bv * powf(av, bv - 1); break;
        case G_POW_B: r = av > 0 ? gv * powf(av, bv) * logf(av) : 0; break;
        case G_MAXMIN_A: {
            bool pick = c->is_min ? av < bv : av > bv;
            r = pick ? gv : (av == bv ? 0.5f * gv : 0);
            break;
        }
        case G_MAXMIN_B: {
            bool pick = c->is_min ? bv < av : bv > av;
            r = pick ? gv : (av == bv ? 0.5f * gv : 0);
            break;
        }
        }
        out[i * s[0]] = r;
    }
}

static cnn_tensor *grad_kernel(grad_kind kind, int is_min, cnn_tensor *g, const cnn_tensor *a,
                               const cnn_tensor *b) {
    cnn_tensor *out = cnn_alloc(g->ndim, g->shape);
    if (!out) return NULL;
    float *bases[4] = {cnn_ptr(out), cnn_ptr(g), cnn_ptr(a), cnn_ptr(b)};
    int64_t strides[4][CNN_MAX_DIMS];
    memcpy(strides[0], out->stride, sizeof strides[0]);
    cnn_broadcast_strides(g, g->ndim, g->shape, strides[1]);
    cnn_broadcast_strides(a, g->ndim, g->shape, strides[2]);
    cnn_broadcast_strides(b, g->ndim, g->shape, strides[3]);
    grad_ctx c = {kind, is_min};
    cnn_foreach_row(g->ndim, g->shape, 4, bases, (const int64_t(*)[CNN_MAX_DIMS])strides, grad_row, &c);
    return out;
}

static cnn_status binary_backward(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    binary_op op = (binary_op)node->ints[0];
    cnn_tensor *a = node->saved[0], *b = node->saved[1];
    for (int i = 0; i < 2; i++) {
        if (!node->needs_grad[i]) continue;
        cnn_tensor *full = NULL;
        switch (op) {
        case OP_ADD: cnn_retain(g); full = g; break;
        case OP_SUB: full = i == 0 ? (cnn_retain(g), g) : cnn_mul_scalar(g, -1.0f); break;
        case OP_MUL: full = binary_forward(OP_MUL, g, i == 0 ? b : a); break;
        case OP_DIV: full = i == 0 ? binary_forward(OP_DIV, g, b) : grad_kernel(G_DIV_B, 0, g, a, b); break;
        case OP_POW: full = grad_kernel(i == 0 ? G_POW_A : G_POW_B, 0, g, a, b); break;
        case OP_MAX:
        case OP_MIN: full = grad_kernel(i == 0 ? G_MAXMIN_A : G_MAXMIN_B, op == OP_MIN, g, a, b); break;
        }
        gi[i] = to_input(full, i == 0 ? a : b);
        if (!gi[i]) return cnn_last_status();
    }
    return CNN_OK;
}

static cnn_tensor *binary(binary_op op, cnn_tensor *a, cnn_tensor *b) {
    cnn_tensor *out = binary_forward(op, a, b);
    if (!out) return NULL;
    cnn_tensor *inputs[2] = {a, b};
    bool failed;
    cnn_node *node = cnn_record(out, binary_names[op], binary_backward, 2, inputs, &failed);
    if (node) {
        node->ints[0] = op;
        /* saved[0] = a, saved[1] = b: aliases keep shapes for the reduction back to each input */
        if (!cnn_node_save(node, a) || !cnn_node_save(node, b)) failed = true;
    }
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}

cnn_tensor *cnn_add(cnn_tensor *a, cnn_tensor *b) { return binary(OP_ADD, a, b); }
cnn_tensor *cnn_sub(cnn_tensor *a, cnn_tensor *b) { return binary(OP_SUB, a, b); }
cnn_tensor *cnn_mul(cnn_tensor *a, cnn_tensor *b) { return binary(OP_MUL, a, b); }
cnn_tensor *cnn_div(cnn_tensor *a, cnn_tensor *b) { return binary(OP_DIV, a, b); }
cnn_tensor *cnn_pow(cnn_tensor *a, cnn_tensor *b) { return binary(OP_POW, a, b); }
cnn_tensor *cnn_maximum(cnn_tensor *a, cnn_tensor *b) { return binary(OP_MAX, a, b); }
cnn_tensor *cnn_minimum(cnn_tensor *a, cnn_tensor *b) { return binary(OP_MIN, a, b); }

/* ---- scalar variants: a 0-d tensor on one side, so broadcasting and gradients come for free ---- */
static cnn_tensor *with_scalar(binary_op op, cnn_tensor *t, float s, bool scalar_first) {
    cnn_tensor *st = cnn_scalar(s);
    if (!st) return NULL;
    cnn_tensor *out = scalar_first ? binary(op, st, t) : binary(op, t, st);
    cnn_release(st);
    return out;
}

cnn_tensor *cnn_add_scalar(cnn_tensor *a, float s) { return with_scalar(OP_ADD, a, s, false); }
cnn_tensor *cnn_mul_scalar(cnn_tensor *a, float s) { return with_scalar(OP_MUL, a, s, false); }
cnn_tensor *cnn_pow_scalar(cnn_tensor *a, float e) { return with_scalar(OP_POW, a, e, false); }
cnn_tensor *cnn_rsub_scalar(float s, cnn_tensor *a) { return with_scalar(OP_SUB, a, s, true); }
cnn_tensor *cnn_rdiv_scalar(float s, cnn_tensor *a) { return with_scalar(OP_DIV, a, s, true); }
cnn_tensor *cnn_rpow_scalar(float base, cnn_tensor *a) { return with_scalar(OP_POW, a, base, true); }

/* ---- comparisons and where --------------------------------------------------------------------- */
typedef struct compare_ctx {
    cnn_compare_op op;
} compare_ctx;

static void compare_row(void *vctx, int64_t n, float **p, const int64_t *s) {
    cnn_compare_op op = ((const compare_ctx *)vctx)->op;
    for (int64_t i = 0; i < n; i++) {
        float a = p[1][i * s[1]], b = p[2][i * s[2]];
        bool r = false;
        switch (op) {
        case CNN_EQ: r = a == b; break;
        case CNN_NE: r = a != b; break;
        case CNN_LT: r = a < b; break;
        case CNN_LE: r = a <= b; break;
        case CNN_GT: r = a > b; break;
        case CNN_GE: r = a >= b; break;
        }
        p[0][i * s[0]] = r ? 1.0f : 0.0f;
    }
}

cnn_tensor *cnn_compare(cnn_tensor *a, cnn_tensor *b, cnn_compare_op op) {
    int nd;
    int64_t shape[CNN_MAX_DIMS];
    if (!cnn_broadcast_shape("compare", a, b, &nd, shape)) return NULL;
    cnn_tensor *out = cnn_alloc(nd, shape);
    if (!out) return NULL;
    float *bases[3] = {cnn_ptr(out), cnn_ptr(a), cnn_ptr(b)};
    int64_t strides[3][CNN_MAX_DIMS];
    memcpy(strides[0], out->stride, sizeof strides[0]);
    cnn_broadcast_strides(a, nd, shape, strides[1]);
    cnn_broadcast_strides(b, nd, shape, strides[2]);
    compare_ctx c = {op};
    cnn_foreach_row(nd, shape, 3, bases, (const int64_t(*)[CNN_MAX_DIMS])strides, compare_row, &c);
    return out;
}

static void where_row(void *vctx, int64_t n, float **p, const int64_t *s) {
    for (int64_t i = 0; i < n; i++)
        p[0][i * s[0]] = p[1][i * s[1]] != 0 ? p[2][i * s[2]] : p[3][i * s[3]];
}

/* out = where(cond, a, b) at the broadcast shape of all three. */
static cnn_tensor *where_forward(const cnn_tensor *cond, const cnn_tensor *a, const cnn_tensor *b) {
    int nd1, nd;
    int64_t s1[CNN_MAX_DIMS], shape[CNN_MAX_DIMS];
    if (!cnn_broadcast_shape("where", a, b, &nd1, s1)) return NULL;
    cnn_tensor probe = {.ndim = nd1};
    memcpy(probe.shape, s1, sizeof s1);
    if (!cnn_broadcast_shape("where", cond, &probe, &nd, shape)) return NULL;
    cnn_tensor *out = cnn_alloc(nd, shape);
    if (!out) return NULL;
    float *bases[4] = {cnn_ptr(out), cnn_ptr(cond), cnn_ptr(a), cnn_ptr(b)};
    int64_t strides[4][CNN_MAX_DIMS];
    memcpy(strides[0], out->stride, sizeof strides[0]);
    cnn_broadcast_strides(cond, nd, shape, strides[1]);
    cnn_broadcast_strides(a, nd, shape, strides[2]);
    cnn_broadcast_strides(b, nd, shape, strides[3]);
    cnn_foreach_row(nd, shape, 4, bases, (const int64_t(*)[CNN_MAX_DIMS])strides, where_row, NULL);
    return out;
}

static cnn_status where_backward(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    cnn_tensor *cond = node->saved[0], *a = node->saved[1], *b = node->saved[2];
    cnn_tensor *zero = cnn_scalar(0.0f);
    if (!zero) return cnn_last_status();
    for (int i = 1; i <= 2; i++) {
        if (!node->needs_grad[i]) continue;
        cnn_tensor *full = i == 1 ? where_forward(cond, g, zero) : where_forward(cond, zero, g);
        gi[i] = to_input(full, i == 1 ? a : b);
        if (!gi[i]) {
            cnn_release(zero);
            return cnn_last_status();
        }
    }
    cnn_release(zero);
    return CNN_OK;
}

cnn_tensor *cnn_where(cnn_tensor *cond, cnn_tensor *a, cnn_tensor *b) {
    cnn_tensor *out = where_forward(cond, a, b);
    if (!out) return NULL;
    cnn_tensor *inputs[3] = {NULL, a, b};
    bool failed;
    cnn_node *node = cnn_record(out, "where", where_backward, 3, inputs, &failed);
    if (node && (!cnn_node_save(node, cond) || !cnn_node_save(node, a) || !cnn_node_save(node, b)))
        failed = true;
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}
