/* Matrix products through OpenBLAS sgemm: matmul (NumPy rules, batched with broadcasting) and the
 * fused linear layer y = x W^T + b. */
#include <string.h>

#include "blas_threads.h"
#include "internal.h"

/* A matrix operand for sgemm: a pointer, a leading dimension and whether it is stored transposed.
 * Row-major (rs, 1) and column-major (1, cs) layouts are used in place; anything else is copied. */
typedef struct gemm_operand {
    bool trans;
    int64_t ld;
} gemm_operand;

static bool as_gemm_operand(int64_t rows, int64_t cols, int64_t rs, int64_t cs, gemm_operand *o) {
    if (cs == 1 && (rs >= cols || rows == 1)) {
        o->trans = false;
        o->ld = rs > cols ? rs : (cols > 0 ? cols : 1);
        return true;
    }
    if (rs == 1 && (cs >= rows || cols == 1)) {
        o->trans = true;
        o->ld = cs > rows ? cs : (rows > 0 ? rows : 1);
        return true;
    }
    return false;
}

/* The last two dims of t as a gemm operand, copying t when its layout does not allow it. */
static cnn_tensor *prepare(cnn_tensor *t, gemm_operand *o) {
    int64_t rows = t->shape[t->ndim - 2], cols = t->shape[t->ndim - 1];
    if (as_gemm_operand(rows, cols, t->stride[t->ndim - 2], t->stride[t->ndim - 1], o)) {
        cnn_retain(t);
        return t;
    }
    cnn_tensor *c = cnn_alloc(t->ndim, t->shape);
    if (!c) return NULL;
    cnn_status st;
    int was = cnn_is_grad_enabled();
    cnn_set_grad_enabled(0);
    st = cnn_copy_(c, t);
    cnn_set_grad_enabled(was);
    if (st != CNN_OK) {
        cnn_release(c);
        return NULL;
    }
    as_gemm_operand(rows, cols, c->stride[c->ndim - 2], c->stride[c->ndim - 1], o);
    return c;
}

/* out (..., m, n) = a (..., m, k) b (..., k, n); batch dims already broadcast-checked. */
static void batched_gemm(cnn_tensor *out, const cnn_tensor *a, const gemm_operand *oa,
                         const cnn_tensor *b, const gemm_operand *ob) {
    int bd = out->ndim - 2;
    int64_t m = out->shape[bd], n = out->shape[bd + 1], k = a->shape[a->ndim - 1];
    int64_t sa[CNN_MAX_DIMS], sb[CNN_MAX_DIMS];
    for (int i = 0; i < bd; i++) {
        int ia = a->ndim - 2 - bd + i, ib = b->ndim - 2 - bd + i;
        sa[i] = (ia >= 0 && a->shape[ia] == out->shape[i]) ? a->stride[ia] : 0;
        sb[i] = (ib >= 0 && b->shape[ib] == out->shape[i]) ? b->stride[ib] : 0;
    }
    int64_t batches = 1;
    for (int i = 0; i < bd; i++) batches *= out->shape[i];
    int64_t idx[CNN_MAX_DIMS] = {0};
    float *po = cnn_ptr(out);
    for (int64_t bi = 0; bi < batches; bi++) {
        int64_t offa = 0, offb = 0;
        for (int i = 0; i < bd; i++) {
            offa += idx[i] * sa[i];
            offb += idx[i] * sb[i];
        }
        if (k == 0) {
            memset(po + bi * m * n, 0, (size_t)(m * n) * sizeof(float));
        } else {
            cnn_sgemm(oa->trans, ob->trans, m, n, k, 1.0f, cnn_ptr(a) + offa, oa->ld, cnn_ptr(b) + offb, ob->ld,
                      0.0f, po + bi * m * n, n);
        }
        for (int i = bd - 1; i >= 0; i--) {
            if (++idx[i] < out->shape[i]) break;
            idx[i] = 0;
        }
    }
}

static cnn_tensor *matmul_nd(cnn_tensor *a, cnn_tensor *b);

static cnn_status matmul_backward(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    cnn_tensor *a = node->saved[0], *b = node->saved[1];
    if (node->needs_grad[0]) {
        cnn_tensor *bt = cnn_transpose(b, -1, -2);
        cnn_tensor *full = bt ? matmul_nd(g, bt) : NULL;
        gi[0] = full ? cnn_reduce_grad_to(full, a) : NULL;
        cnn_release(bt);
        cnn_release(full);
        if (!gi[0]) return cnn_last_status();
    }
    if (node->needs_grad[1]) {
        cnn_tensor *at = cnn_transpose(a, -1, -2);
        cnn_tensor *full = at ? matmul_nd(at, g) : NULL;
        gi[1] = full ? cnn_reduce_grad_to(full, b) : NULL;
        cnn_release(at);
        cnn_release(full);
        if (!gi[1]) return cnn_last_status();
    }
    return CNN_OK;
}

/* Both operands have at least 2 dims. */
static cnn_tensor *matmul_nd(cnn_tensor *a, cnn_tensor *b) {
    int64_t k = a->shape[a->ndim - 1];
    if (b->shape[b->ndim - 2] != k)
        return cnn_fail_null(CNN_ERR_SHAPE,
                             "matmul: inner dimensions differ (%s and %s: %lld vs %lld)",
                             cnn_shape_str(a), cnn_shape_str(b), (long long)k,
                             (long long)b->shape[b->ndim - 2]);
    /* broadcast the batch dims */
    cnn_tensor ba = {.ndim = a->ndim - 2}, bb = {.ndim = b->ndim - 2};
    memcpy(ba.shape, a->shape, sizeof(int64_t) * (size_t)ba.ndim);
    memcpy(bb.shape, b->shape, sizeof(int64_t) * (size_t)bb.ndim);
    int nd;
    int64_t shape[CNN_MAX_DIMS];
    if (!cnn_broadcast_shape("matmul", &ba, &bb, &nd, shape)) {
        return cnn_fail_null(CNN_ERR_SHAPE, "matmul: batch dimensions of %s and %s do not broadcast",
                             cnn_shape_str(a), cnn_shape_str(b));
    }
    if (nd + 2 > CNN_MAX_DIMS)
        return cnn_fail_null(CNN_ERR_SHAPE, "matmul: too many dimensions");
    shape[nd] = a->shape[a->ndim - 2];
    shape[nd + 1] = b->shape[b->ndim - 1];
    gemm_operand oa, ob;
    cnn_tensor *pa = prepare(a, &oa);
    cnn_tensor *pb = pa ? prepare(b, &ob) : NULL;
    cnn_tensor *out = pb ? cnn_alloc(nd + 2, shape) : NULL;
    if (out) batched_gemm(out, pa, &oa, pb, &ob);
    cnn_release(pa);
    cnn_release(pb);
    if (!out) return NULL;
    cnn_tensor *inputs[2] = {a, b};
    bool failed;
    cnn_node *node = cnn_record(out, "matmul", matmul_backward, 2, inputs, &failed);
    if (node && (!cnn_node_save(node, a) || !cnn_node_save(node, b))) failed = true;
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}

cnn_tensor *cnn_matmul(cnn_tensor *a, cnn_tensor *b) {
    if (a->ndim == 0 || b->ndim == 0)
        return cnn_fail_null(CNN_ERR_SHAPE, "matmul: both arguments need at least one dimension (%s and %s)",
                             cnn_shape_str(a), cnn_shape_str(b));
    /* 1-d operands become a row (left) or a column (right), removed again from the result. */
    cnn_tensor *a2 = a->ndim == 1 ? cnn_unsqueeze(a, 0) : (cnn_retain(a), a);
    cnn_tensor *b2 = !a2 ? NULL : b->ndim == 1 ? cnn_unsqueeze(b, 1) : (cnn_retain(b), b);
    cnn_tensor *out = b2 ? matmul_nd(a2, b2) : NULL;
    cnn_release(a2);
    cnn_release(b2);
    if (!out) return NULL;
    if (a->ndim == 1 || b->ndim == 1) {
        int64_t shape[CNN_MAX_DIMS];
        int nd = 0;
        for (int i = 0; i < out->ndim; i++) {
            if (a->ndim == 1 && i == out->ndim - 2) continue;
            if (b->ndim == 1 && i == out->ndim - 1) continue;
            shape[nd++] = out->shape[i];
        }
        cnn_tensor *r = cnn_reshape(out, nd, shape);
        cnn_release(out);
        out = r;
    }
    return out;
}

/* ---- linear ------------------------------------------------------------------------------------ */
static cnn_status linear_backward(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    cnn_tensor *x = node->saved[0], *w = node->saved[1]; /* x (N, in) contiguous, w (out, in) */
    int64_t n = x->shape[0], in = x->shape[1], out = w->shape[0];
    cnn_tensor *gtmp;
    const float *gp = cnn_read_ptr(g, &gtmp); /* (N, out) */
    if (!gp) return cnn_last_status();
    cnn_tensor *wtmp;
    const float *wp = cnn_read_ptr(w, &wtmp);
    if (!wp) {
        cnn_release(gtmp);
        return cnn_last_status();
    }
    cnn_status st = CNN_OK;
    if (node->needs_grad[0]) { /* gx (N, in) = g (N, out) W (out, in) */
        cnn_tensor *gx = cnn_alloc(2, (int64_t[]){n, in});
        if (!gx) st = cnn_last_status();
        else {
            cnn_sgemm(false, false, n, in, out, 1.0f, gp, out, wp, in, 0.0f, cnn_ptr(gx), in);
            gi[0] = cnn_reshape(gx, node->inputs[0]->ndim, node->inputs[0]->shape);
            cnn_release(gx);
            if (!gi[0]) st = cnn_last_status();
        }
    }
    if (st == CNN_OK && node->needs_grad[1]) { /* gW (out, in) = g^T (out, N) x (N, in) */
        gi[1] = cnn_alloc(2, (int64_t[]){out, in});
        if (!gi[1]) st = cnn_last_status();
        else
            cnn_sgemm(true, false, out, in, n, 1.0f, gp, out, cnn_ptr(x), in, 0.0f, cnn_ptr(gi[1]), in);
    }
    if (st == CNN_OK && node->needs_grad[2]) { /* gb (out) = column sums of g */
        gi[2] = cnn_zeros(1, (int64_t[]){out});
        if (!gi[2]) st = cnn_last_status();
        else {
            float *gb = cnn_ptr(gi[2]);
            for (int64_t r = 0; r < n; r++)
                for (int64_t j = 0; j < out; j++) gb[j] += gp[r * out + j];
        }
    }
    cnn_release(gtmp);
    cnn_release(wtmp);
    return st;
}

cnn_tensor *cnn_linear(cnn_tensor *x, cnn_tensor *weight, cnn_tensor *bias) {
    if (weight->ndim != 2)
        return cnn_fail_null(CNN_ERR_SHAPE, "linear: weight must be 2-d (out_features x in_features), got %s",
                             cnn_shape_str(weight));
    int64_t out_f = weight->shape[0], in_f = weight->shape[1];
    if (x->ndim < 1 || x->shape[x->ndim - 1] != in_f)
        return cnn_fail_null(CNN_ERR_SHAPE,
                             "linear: input has %lld features but weight expects %lld (input %s, weight %s)",
                             x->ndim ? (long long)x->shape[x->ndim - 1] : 0LL, (long long)in_f,
                             cnn_shape_str(x), cnn_shape_str(weight));
    if (bias && (bias->ndim != 1 || bias->shape[0] != out_f))
        return cnn_fail_null(CNN_ERR_SHAPE, "linear: bias of shape %s does not match %lld output features",
                             cnn_shape_str(bias), (long long)out_f);
    int64_t n = cnn_numel(x) / (in_f ? in_f : 1);
    /* x as (N, in): a view when contiguous, else a copy */
    cnn_tensor *x2 = cnn_is_contiguous(x)
                         ? cnn_make_view(x, 2, (int64_t[]){n, in_f}, (int64_t[]){in_f, 1}, x->offset)
                         : cnn_alloc(2, (int64_t[]){n, in_f});
    if (!x2) return NULL;
    if (!cnn_is_contiguous(x)) cnn_read(x, cnn_ptr(x2));
    cnn_tensor *wtmp = NULL;
    const float *wp = cnn_read_ptr(weight, &wtmp);
    int64_t oshape[CNN_MAX_DIMS];
    memcpy(oshape, x->shape, sizeof oshape);
    oshape[x->ndim - 1] = out_f;
    cnn_tensor *y = wp ? cnn_alloc(x->ndim, oshape) : NULL; /* (N, out) */
    if (!y) {
        cnn_release(x2);
        cnn_release(wtmp);
        return NULL;
    }
    float *yp = cnn_ptr(y);
    if (bias) {
        cnn_tensor *btmp;
        const float *bp = cnn_read_ptr(bias, &btmp);
        for (int64_t r = 0; bp && r < n; r++) memcpy(yp + r * out_f, bp, (size_t)out_f * sizeof(float));
        cnn_release(btmp);
    }
    if (n > 0 && out_f > 0 && in_f > 0)
        cnn_sgemm(false, true, n, out_f, in_f, 1.0f, cnn_ptr(x2), in_f, wp, in_f, bias ? 1.0f : 0.0f, yp, out_f);
    else if (!bias)
        memset(yp, 0, (size_t)cnn_numel(y) * sizeof(float));
    cnn_release(wtmp);
    cnn_tensor *inputs[3] = {x, weight, bias};
    bool failed;
    cnn_node *node = cnn_record(y, "linear", linear_backward, 3, inputs, &failed);
    if (node && (!cnn_node_save(node, x2) || !cnn_node_save(node, weight))) failed = true;
    cnn_release(x2);
    if (failed) {
        cnn_release(y);
        return NULL;
    }
    return y;
}
