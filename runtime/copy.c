/* Copies and in-place updates: clone, contiguous, copy_, fill_, add_, mul_scalar_, cat. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static void copy_row(void *ctx, int64_t n, float **p, const int64_t *s) {
    float *dst = p[0];
    const float *src = p[1];
    if (s[0] == 1 && s[1] == 1) {
        memcpy(dst, src, (size_t)n * sizeof(float));
        return;
    }
    for (int64_t i = 0; i < n; i++) dst[i * s[0]] = src[i * s[1]];
}

/* dst and src have the same shape (no autograd). */
static void strided_copy(cnn_tensor *dst, const cnn_tensor *src) {
    float *bases[2] = {cnn_ptr(dst), cnn_ptr(src)};
    int64_t strides[2][CNN_MAX_DIMS];
    memcpy(strides[0], dst->stride, sizeof strides[0]);
    memcpy(strides[1], src->stride, sizeof strides[1]);
    cnn_foreach_row(dst->ndim, dst->shape, 2, bases, (const int64_t(*)[CNN_MAX_DIMS])strides, copy_row, NULL);
}

static cnn_status identity_backward(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    cnn_retain(g);
    gi[0] = g;
    return CNN_OK;
}

cnn_tensor *cnn_clone(cnn_tensor *t) {
    cnn_tensor *out = cnn_alloc(t->ndim, t->shape);
    if (!out) return NULL;
    strided_copy(out, t);
    bool failed;
    cnn_record(out, "clone", identity_backward, 1, &t, &failed);
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}

cnn_tensor *cnn_contiguous(cnn_tensor *t) {
    if (cnn_is_contiguous(t)) {
        cnn_retain(t);
        return t;
    }
    return cnn_clone(t);
}

const float *cnn_read_ptr(cnn_tensor *t, cnn_tensor **tmp) {
    *tmp = NULL;
    if (cnn_is_contiguous(t)) return cnn_ptr(t);
    *tmp = cnn_alloc(t->ndim, t->shape);
    if (!*tmp) return NULL;
    strided_copy(*tmp, t);
    return cnn_ptr(*tmp);
}

static cnn_status check_inplace(const char *op, const cnn_tensor *t) {
    if (cnn_is_grad_enabled() && t->requires_grad)
        return cnn_fail(CNN_ERR_STATE,
                        "%s: the %s tensor requires grad and cannot be changed in place while grad "
                        "mode is on (use cnn.no_grad)", op, cnn_shape_str(t));
    return CNN_OK;
}

/* A tensor whose strides alias one element several times (e.g. an expanded view) cannot be written. */
static cnn_status check_writable(const char *op, const cnn_tensor *t) {
    if (cnn_numel(t) == 0) return CNN_OK; /* nothing to write, whatever the strides */
    for (int d = 0; d < t->ndim; d++)
        if (t->stride[d] == 0 && t->shape[d] > 1)
            return cnn_fail(CNN_ERR_STATE,
                            "%s: the %s tensor is an expanded view whose elements share memory; "
                            "clone() it before writing", op, cnn_shape_str(t));
    return CNN_OK;
}

static void fill_row(void *ctx, int64_t n, float **p, const int64_t *s) {
    float v = *(const float *)ctx;
    for (int64_t i = 0; i < n; i++) p[0][i * s[0]] = v;
}

cnn_status cnn_fill_(cnn_tensor *t, float value) {
    cnn_note_write();
    cnn_status st = check_inplace("fill", t);
    if (st == CNN_OK) st = check_writable("fill", t);
    if (st != CNN_OK) return st;
    float *bases[1] = {cnn_ptr(t)};
    cnn_foreach_row(t->ndim, t->shape, 1, bases, (const int64_t(*)[CNN_MAX_DIMS])t->stride, fill_row, &value);
    return CNN_OK;
}

/* Operands of an in-place update: dst's geometry and src broadcast to it. */
static cnn_status inplace_operands(const char *op, cnn_tensor *dst, const cnn_tensor *src,
                                   float *bases[2], int64_t strides[2][CNN_MAX_DIMS]) {
    cnn_status st = check_inplace(op, dst);
    if (st == CNN_OK) st = check_writable(op, dst);
    if (st != CNN_OK) return st;
    int nd;
    int64_t shape[CNN_MAX_DIMS];
    if (!cnn_broadcast_shape(op, dst, src, &nd, shape)) return cnn_last_status();
    for (int i = 0; i < nd; i++)
        if (nd != dst->ndim || shape[i] != dst->shape[i])
            return cnn_fail(CNN_ERR_SHAPE, "%s: source of shape %s does not broadcast to destination %s",
                            op, cnn_shape_str(src), cnn_shape_str(dst));
    bases[0] = cnn_ptr(dst);
    bases[1] = cnn_ptr(src);
    memcpy(strides[0], dst->stride, sizeof strides[0]);
    cnn_broadcast_strides(src, dst->ndim, dst->shape, strides[1]);
    return CNN_OK;
}

cnn_status cnn_copy_(cnn_tensor *dst, const cnn_tensor *src) {
    cnn_note_write();
    float *bases[2];
    int64_t strides[2][CNN_MAX_DIMS];
    cnn_status st = inplace_operands("copy", dst, src, bases, strides);
    if (st != CNN_OK) return st;
    /* Overlapping storage (e.g. copying a tensor onto a shifted view of itself) goes through a copy. */
    if (dst->storage == src->storage) {
        cnn_tensor *tmp = cnn_alloc(src->ndim, src->shape);
        if (!tmp) return cnn_last_status();
        strided_copy(tmp, src);
        st = cnn_copy_(dst, tmp);
        cnn_release(tmp);
        return st;
    }
    cnn_foreach_row(dst->ndim, dst->shape, 2, bases, (const int64_t(*)[CNN_MAX_DIMS])strides, copy_row, NULL);
    return CNN_OK;
}

static void axpy_row(void *ctx, int64_t n, float **p, const int64_t *s) {
    float alpha = *(const float *)ctx;
    float *dst = p[0];
    const float *src = p[1];
    if (s[0] == 1 && s[1] == 1) {
        for (int64_t i = 0; i < n; i++) dst[i] += alpha * src[i];
    } else {
        for (int64_t i = 0; i < n; i++) dst[i * s[0]] += alpha * src[i * s[1]];
    }
}

cnn_status cnn_add_(cnn_tensor *dst, const cnn_tensor *src, float alpha) {
    cnn_note_write();
    float *bases[2];
    int64_t strides[2][CNN_MAX_DIMS];
    cnn_status st = inplace_operands("add_", dst, src, bases, strides);
    if (st != CNN_OK) return st;
    cnn_foreach_row(dst->ndim, dst->shape, 2, bases, (const int64_t(*)[CNN_MAX_DIMS])strides, axpy_row, &alpha);
    return CNN_OK;
}

static void scale_row(void *ctx, int64_t n, float **p, const int64_t *s) {
    float v = *(const float *)ctx;
    for (int64_t i = 0; i < n; i++) p[0][i * s[0]] *= v;
}

cnn_status cnn_mul_scalar_(cnn_tensor *t, float value) {
    cnn_note_write();
    cnn_status st = check_inplace("mul_", t);
    if (st == CNN_OK) st = check_writable("mul_", t);
    if (st != CNN_OK) return st;
    float *bases[1] = {cnn_ptr(t)};
    cnn_foreach_row(t->ndim, t->shape, 1, bases, (const int64_t(*)[CNN_MAX_DIMS])t->stride, scale_row, &value);
    return CNN_OK;
}

/* ---- cat ---------------------------------------------------------------------------------------
 * The node keeps each piece's extent along dim in ctx so backward can narrow the gradient. */
typedef struct cat_ctx {
    int n, dim;
    int64_t sizes[];
} cat_ctx;

static cnn_status cat_backward(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    cat_ctx *c = node->ctx;
    int64_t start = 0;
    for (int i = 0; i < c->n; i++) {
        if (i < node->n_inputs && node->needs_grad[i]) {
            cnn_tensor *piece = cnn_narrow(g, c->dim, start, c->sizes[i]);
            if (!piece) return cnn_last_status();
            gi[i] = cnn_contiguous(piece);
            cnn_release(piece);
            if (!gi[i]) return cnn_last_status();
        }
        start += c->sizes[i];
    }
    return CNN_OK;
}

cnn_tensor *cnn_cat(int n, cnn_tensor *const *ts, int dim) {
    if (n < 1) return cnn_fail_null(CNN_ERR_ARGUMENT, "cat: needs at least one tensor");
    const cnn_tensor *first = ts[0];
    int d = cnn_wrap_dim("cat", dim, first->ndim);
    if (d < 0) return NULL;
    if (first->ndim == 0) return cnn_fail_null(CNN_ERR_SHAPE, "cat: cannot concatenate scalars");
    int64_t shape[CNN_MAX_DIMS];
    memcpy(shape, first->shape, sizeof shape);
    shape[d] = 0;
    for (int i = 0; i < n; i++) {
        const cnn_tensor *t = ts[i];
        bool ok = t->ndim == first->ndim;
        for (int k = 0; ok && k < t->ndim; k++)
            if (k != d && t->shape[k] != first->shape[k]) ok = false;
        if (!ok)
            return cnn_fail_null(CNN_ERR_SHAPE,
                                 "cat: tensor %d has shape %s but tensor 1 has shape %s; all sizes must "
                                 "match except in dimension %d", i + 1, cnn_shape_str(t),
                                 cnn_shape_str(first), d + 1);
        shape[d] += t->shape[d];
    }
    cnn_tensor *out = cnn_alloc(first->ndim, shape);
    if (!out) return NULL;
    int64_t start = 0;
    for (int i = 0; i < n; i++) {
        cnn_tensor *dst = cnn_narrow(out, d, start, ts[i]->shape[d]);
        if (!dst) {
            cnn_release(out);
            return NULL;
        }
        strided_copy(dst, ts[i]);
        cnn_release(dst);
        start += ts[i]->shape[d];
    }
    /* Only the first CNN_NODE_MAX_INPUTS pieces could be tracked by a node: record when they are all. */
    bool any_grad = false;
    for (int i = 0; i < n; i++) any_grad |= ts[i]->requires_grad;
    if (any_grad && cnn_is_grad_enabled()) {
        if (n > CNN_NODE_MAX_INPUTS) {
            cnn_release(out);
            return cnn_fail_null(CNN_ERR_ARGUMENT,
                                 "cat: at most %d tensors can be concatenated while tracking gradients "
                                 "(got %d); concatenate in steps", CNN_NODE_MAX_INPUTS, n);
        }
        bool failed;
        cnn_node *node = cnn_record(out, "cat", cat_backward, n, ts, &failed);
        cat_ctx *c = node ? malloc(sizeof *c + (size_t)n * sizeof(int64_t)) : NULL;
        if (failed || (node && !c)) {
            cnn_release(out);
            return failed ? NULL : cnn_fail_null(CNN_ERR_MEMORY, "cat: out of memory");
        }
        if (node) {
            c->n = n;
            c->dim = d;
            for (int i = 0; i < n; i++) c->sizes[i] = ts[i]->shape[d];
            node->ctx = c;
        }
    }
    return out;
}
