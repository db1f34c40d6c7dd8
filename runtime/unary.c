/* Unary elementwise ops (and the parameterised activations) with fused derivative kernels:
 * backward computes grad_in = grad_out * f'(x) in one pass from the saved input or output (whichever
 * the derivative is written in, or both).
 * Large tensors are split over the threads (the loops are memory-bound: a second core adds its
 * share of bandwidth); ReLU, the hot one, has branch-free loops of its own. */
#include <math.h>

#include "blas_threads.h"
#include "internal.h"

/* Elements below which a loop stays on one thread: about 20 microseconds of streaming. */
enum { PARALLEL_MIN_ELEMENTS = 1 << 16 };

static const char *const unary_names[] = {
    "neg", "exp", "log", "sqrt", "abs", "relu", "sigmoid", "tanh", "sin", "cos", "square",
    "rsqrt", "sign", "softplus", "silu", "gelu", "floor", "ceil", "round", "reciprocal", "log1p",
    "expm1", "leaky_relu", "elu", "clamp"};
enum { OP_LEAKY_RELU = CNN_EXPM1 + 1, OP_ELU, OP_CLAMP, N_UNARY };

typedef struct unary_params {
    int op;
    float p0, p1;
} unary_params;

static inline float sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

static inline float forward1(const unary_params *u, float x) {
    switch (u->op) {
    case CNN_NEG: return -x;
    case CNN_EXP: return expf(x);
    case CNN_LOG: return logf(x);
    case CNN_SQRT: return sqrtf(x);
    case CNN_ABS: return fabsf(x);
    case CNN_RELU: return x > 0 ? x : 0;
    case CNN_SIGMOID: return sigmoidf(x);
    case CNN_TANH: return tanhf(x);
    case CNN_SIN: return sinf(x);
    case CNN_COS: return cosf(x);
    case CNN_SQUARE: return x * x;
    case CNN_RSQRT: return 1.0f / sqrtf(x);
    case CNN_SIGN: return (float)((x > 0) - (x < 0));
    case CNN_SOFTPLUS: return x > 20 ? x : log1pf(expf(x));
    case CNN_SILU: return x * sigmoidf(x);
    case CNN_GELU: return 0.5f * x * (1.0f + erff(x * (float)M_SQRT1_2));
    case CNN_FLOOR: return floorf(x);
    case CNN_CEIL: return ceilf(x);
    case CNN_ROUND: return nearbyintf(x); /* half to even, as PyTorch */
    case CNN_RECIPROCAL: return 1.0f / x;
    case CNN_LOG1P: return log1pf(x);
    case CNN_EXPM1: return expm1f(x);
    case OP_LEAKY_RELU: return x > 0 ? x : u->p0 * x;
    case OP_ELU: return x > 0 ? x : u->p0 * expm1f(x);
    case OP_CLAMP: return x < u->p0 ? u->p0 : (x > u->p1 ? u->p1 : x);
    }
    return 0;
}

/* What f'(x) is computed from, so that backward keeps only that alive: ReLU's mask, for one, is read
 * from its output, which the next layer usually saves anyway, and its input can be freed. */
enum { NEEDS_X = 1, NEEDS_Y = 2 };

static int derivative_needs(int op) {
    switch (op) {
    case CNN_EXP: case CNN_SQRT: case CNN_RELU: case CNN_SIGMOID: case CNN_TANH: case CNN_RSQRT:
    case CNN_RECIPROCAL: case CNN_EXPM1:
        return NEEDS_Y;
    case CNN_LOG: case CNN_ABS: case CNN_SIN: case CNN_COS: case CNN_SQUARE: case CNN_SOFTPLUS:
    case CNN_SILU: case CNN_GELU: case CNN_LOG1P: case OP_LEAKY_RELU: case OP_CLAMP:
        return NEEDS_X;
    case OP_ELU:
        return NEEDS_X | NEEDS_Y;
    default:
        return 0; /* neg: a constant; sign, floor, ceil, round: zero */
    }
}

/* f'(x) given x and y = f(x); only the operands derivative_needs names are meaningful. */
static inline float derivative(const unary_params *u, float x, float y) {
    switch (u->op) {
    case CNN_NEG: return -1;
    case CNN_EXP: return y;
    case CNN_LOG: return 1.0f / x;
    case CNN_SQRT: return 0.5f / y;
    case CNN_ABS: return (float)((x > 0) - (x < 0));
    case CNN_RELU: return x > 0 ? 1.0f : 0.0f;
    case CNN_SIGMOID: return y * (1 - y);
    case CNN_TANH: return 1 - y * y;
    case CNN_SIN: return cosf(x);
    case CNN_COS: return -sinf(x);
    case CNN_SQUARE: return 2 * x;
    case CNN_RSQRT: return -0.5f * y * y * y;
    case CNN_SOFTPLUS: return sigmoidf(x);
    case CNN_SILU: {
        float s = sigmoidf(x);
        return s * (1 + x * (1 - s));
    }
    case CNN_GELU:
        return 0.5f * (1.0f + erff(x * (float)M_SQRT1_2)) + x * expf(-0.5f * x * x) * 0.3989422804f;
    case CNN_RECIPROCAL: return -y * y;
    case CNN_LOG1P: return 1.0f / (1 + x);
    case CNN_EXPM1: return y + 1;
    case OP_LEAKY_RELU: return x > 0 ? 1.0f : u->p0;
    case OP_ELU: return x > 0 ? 1.0f : y + u->p0;
    case OP_CLAMP: return (x >= u->p0 && x <= u->p1) ? 1.0f : 0.0f;
    default: return 0; /* sign, floor, ceil, round: piecewise constant */
    }
}

static cnn_status unary_backward(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    unary_params u = {(int)node->ints[0], (float)node->reals[0], (float)node->reals[1]};
    const int needs = (int)node->ints[1];
    /* the saved operands, both contiguous and of g's shape; a missing one is never read */
    cnn_tensor *x = needs & NEEDS_X ? node->saved[0] : NULL;
    cnn_tensor *y = needs & NEEDS_Y ? node->saved[needs & NEEDS_X ? 1 : 0] : NULL;
    cnn_tensor *gtmp;
    const float *gp = cnn_read_ptr(g, &gtmp);
    if (!gp) return cnn_last_status();
    cnn_tensor *out = cnn_alloc(g->ndim, g->shape);
    if (!out) {
        cnn_release(gtmp);
        return cnn_last_status();
    }
    const float *xp = x ? cnn_ptr(x) : gp, *yp = y ? cnn_ptr(y) : gp;
    float *op = cnn_ptr(out);
    const int64_t n = cnn_numel(out);
    const int threads = cnn_threads_for(n, PARALLEL_MIN_ELEMENTS);
    if (u.op == CNN_RELU) {
#pragma omp parallel for simd num_threads(threads) schedule(static)
        for (int64_t i = 0; i < n; i++) op[i] = yp[i] > 0 ? gp[i] : 0.0f;
    } else {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = 0; i < n; i++) op[i] = gp[i] * derivative(&u, xp[i], yp[i]);
    }
    cnn_release(gtmp);
    gi[0] = out;
    return CNN_OK;
}

static cnn_tensor *unary_apply(cnn_tensor *a, unary_params u) {
    cnn_tensor *x = cnn_contiguous(a);
    if (!x) return NULL;
    cnn_tensor *out = cnn_alloc(x->ndim, x->shape);
    if (!out) {
        cnn_release(x);
        return NULL;
    }
    const float *xp = cnn_ptr(x);
    float *yp = cnn_ptr(out);
    const int64_t n = cnn_numel(x);
    const int threads = cnn_threads_for(n, PARALLEL_MIN_ELEMENTS);
    if (u.op == CNN_RELU) {
#pragma omp parallel for simd num_threads(threads) schedule(static)
        for (int64_t i = 0; i < n; i++) yp[i] = xp[i] > 0 ? xp[i] : 0.0f;
    } else {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t i = 0; i < n; i++) yp[i] = forward1(&u, xp[i]);
    }
    bool failed;
    cnn_node *node = cnn_record(out, unary_names[u.op], unary_backward, 1, &a, &failed);
    if (node) {
        node->ints[0] = u.op;
        node->reals[0] = u.p0;
        node->reals[1] = u.p1;
        const int needs = derivative_needs(u.op);
        node->ints[1] = needs;
        if ((needs & NEEDS_X) && !cnn_node_save(node, x)) failed = true;
        if ((needs & NEEDS_Y) && !failed && !cnn_node_save(node, out)) failed = true;
    }
    cnn_release(x);
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}

cnn_tensor *cnn_unary(cnn_tensor *a, cnn_unary_op op) {
    if ((int)op < 0 || (int)op > CNN_EXPM1)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "unary: unknown op %d", (int)op);
    return unary_apply(a, (unary_params){op, 0, 0});
}

cnn_tensor *cnn_leaky_relu(cnn_tensor *a, float slope) {
    return unary_apply(a, (unary_params){OP_LEAKY_RELU, slope, 0});
}

cnn_tensor *cnn_elu(cnn_tensor *a, float alpha) {
    return unary_apply(a, (unary_params){OP_ELU, alpha, 0});
}

cnn_tensor *cnn_clamp(cnn_tensor *a, float low, float high) {
    if (low > high)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "clamp: lower bound %g is above upper bound %g", low, high);
    return unary_apply(a, (unary_params){OP_CLAMP, low, high});
}
