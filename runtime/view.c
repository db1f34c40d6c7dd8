/* Views: tensors that share their input's storage with a new geometry. Each is differentiable; the
 * backward of a view maps the gradient back onto the input's shape. */
#include <string.h>

#include "internal.h"

/* Records a view node; on failure releases out. */
static cnn_tensor *record_view(cnn_tensor *out, cnn_tensor *in, const char *name,
                               cnn_backward_fn backward) {
    if (!out) return NULL;
    bool failed;
    cnn_record(out, name, backward, 1, &in, &failed);
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}

/* ---- reshaping views: the gradient takes the input's shape back ------------------------------- */
static cnn_status reshape_backward(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    cnn_tensor *in = node->inputs[0];
    gi[0] = cnn_reshape(g, in->ndim, in->shape);
    return gi[0] ? CNN_OK : cnn_last_status();
}

/* Resolves one -1 entry and checks the element count. */
static bool infer_shape(const char *op, const cnn_tensor *t, int ndim, const int64_t *req,
                        int64_t *shape) {
    if (ndim < 0 || ndim > CNN_MAX_DIMS) {
        cnn_fail(CNN_ERR_SHAPE, "%s: %d dimensions requested, at most %d are supported", op, ndim,
                 CNN_MAX_DIMS);
        return false;
    }
    int infer = -1;
    int64_t known = 1;
    for (int i = 0; i < ndim; i++) {
        if (req[i] == -1) {
            if (infer >= 0) {
                cnn_fail(CNN_ERR_SHAPE, "%s: only one dimension can be -1 (shape %s)", op,
                         cnn_dims_str(ndim, req));
                return false;
            }
            infer = i;
        } else if (req[i] < 0) {
            cnn_fail(CNN_ERR_SHAPE, "%s: invalid size %lld in shape %s", op, (long long)req[i],
                     cnn_dims_str(ndim, req));
            return false;
        } else {
            known *= req[i];
        }
        shape[i] = req[i];
    }
    int64_t n = cnn_numel(t);
    if (infer >= 0) {
        if (known == 0 || n % known != 0) {
            cnn_fail(CNN_ERR_SHAPE, "%s: shape %s is invalid for a tensor of shape %s (%lld elements)",
                     op, cnn_dims_str(ndim, req), cnn_shape_str(t), (long long)n);
            return false;
        }
        shape[infer] = n / known;
    } else if (known != n) {
        cnn_fail(CNN_ERR_SHAPE, "%s: shape %s is invalid for a tensor of shape %s (%lld elements)", op,
                 cnn_dims_str(ndim, req), cnn_shape_str(t), (long long)n);
        return false;
    }
    return true;
}

/* Strides for viewing t as `shape` without copying, if possible (the rule PyTorch's view follows:
 * every run of merged dims must be contiguous within itself). */
static bool view_strides(const cnn_tensor *t, int ndim, const int64_t *shape, int64_t *strides) {
    int64_t n = cnn_numel(t);
    if (n == 0 || cnn_is_contiguous(t)) {
        int64_t s = 1;
        for (int i = ndim - 1; i >= 0; i--) {
            strides[i] = s;
            s *= shape[i];
        }
        return true;
    }
    int view_d = ndim - 1;
    int64_t chunk_base_stride = t->ndim ? t->stride[t->ndim - 1] : 1;
    int64_t tensor_numel = 1, view_numel = 1;
    for (int d = t->ndim - 1; d >= 0; d--) {
        tensor_numel *= t->shape[d];
        if (d == 0 || (t->shape[d - 1] != 1 && t->stride[d - 1] != tensor_numel * chunk_base_stride)) {
            while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
                strides[view_d] = view_numel * chunk_base_stride;
                view_numel *= shape[view_d];
                view_d--;
            }
            if (view_numel != tensor_numel) return false;
            if (d > 0) {
                chunk_base_stride = t->stride[d - 1];
                tensor_numel = 1;
                view_numel = 1;
            }
        }
    }
    return view_d == -1;
}

cnn_tensor *cnn_view(cnn_tensor *t, int ndim, const int64_t *req) {
    int64_t shape[CNN_MAX_DIMS], strides[CNN_MAX_DIMS];
    if (!infer_shape("view", t, ndim, req, shape)) return NULL;
    if (!view_strides(t, ndim, shape, strides))
        return cnn_fail_null(CNN_ERR_SHAPE,
                             "view: a %s tensor with these strides cannot be viewed as %s without a "
                             "copy; use reshape() or contiguous() first", cnn_shape_str(t),
                             cnn_dims_str(ndim, shape));
    return record_view(cnn_make_view(t, ndim, shape, strides, t->offset), t, "view", reshape_backward);
}

cnn_tensor *cnn_reshape(cnn_tensor *t, int ndim, const int64_t *req) {
    int64_t shape[CNN_MAX_DIMS], strides[CNN_MAX_DIMS];
    if (!infer_shape("reshape", t, ndim, req, shape)) return NULL;
    if (view_strides(t, ndim, shape, strides))
        return record_view(cnn_make_view(t, ndim, shape, strides, t->offset), t, "reshape",
                           reshape_backward);
    cnn_tensor *c = cnn_contiguous(t);
    if (!c) return NULL;
    cnn_tensor *out = cnn_view(c, ndim, shape);
    cnn_release(c);
    return out;
}

cnn_tensor *cnn_flatten(cnn_tensor *t, int start_dim, int end_dim) {
    if (t->ndim == 0) return cnn_reshape(t, 1, (int64_t[]){1});
    int s = cnn_wrap_dim("flatten", start_dim, t->ndim);
    int e = s < 0 ? -1 : cnn_wrap_dim("flatten", end_dim, t->ndim);
    if (s < 0 || e < 0) return NULL;
    if (s > e)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "flatten: start dimension %d comes after end dimension %d",
                             s + 1, e + 1);
    int64_t shape[CNN_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < s; i++) shape[nd++] = t->shape[i];
    int64_t merged = 1;
    for (int i = s; i <= e; i++) merged *= t->shape[i];
    shape[nd++] = merged;
    for (int i = e + 1; i < t->ndim; i++) shape[nd++] = t->shape[i];
    return cnn_reshape(t, nd, shape);
}

cnn_tensor *cnn_squeeze(cnn_tensor *t, int dim) {
    int64_t shape[CNN_MAX_DIMS];
    int nd = 0;
    int d = dim == CNN_ALL_DIMS ? -1 : cnn_wrap_dim("squeeze", dim, t->ndim);
    if (dim != CNN_ALL_DIMS && d < 0) return NULL;
    for (int i = 0; i < t->ndim; i++)
        if (!(t->shape[i] == 1 && (d < 0 || d == i))) shape[nd++] = t->shape[i];
    return cnn_reshape(t, nd, shape);
}

cnn_tensor *cnn_unsqueeze(cnn_tensor *t, int dim) {
    if (t->ndim >= CNN_MAX_DIMS)
        return cnn_fail_null(CNN_ERR_SHAPE, "unsqueeze: tensor already has %d dimensions", t->ndim);
    int d = cnn_wrap_dim("unsqueeze", dim, t->ndim + 1);
    if (d < 0) return NULL;
    int64_t shape[CNN_MAX_DIMS];
    for (int i = 0, k = 0; i <= t->ndim; i++) shape[i] = (i == d) ? 1 : t->shape[k++];
    return cnn_reshape(t, t->ndim + 1, shape);
}

/* ---- permutations ------------------------------------------------------------------------------ */
static cnn_status permute_backward(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    int inverse[CNN_MAX_DIMS];
    for (int i = 0; i < g->ndim; i++) inverse[node->ints[i]] = i;
    gi[0] = cnn_permute(g, g->ndim, inverse);
    return gi[0] ? CNN_OK : cnn_last_status();
}

cnn_tensor *cnn_permute(cnn_tensor *t, int ndim, const int *dims) {
    if (ndim != t->ndim)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "permute: %d dimensions given for a %s tensor with %d",
                             ndim, cnn_shape_str(t), t->ndim);
    bool seen[CNN_MAX_DIMS] = {false};
    int64_t shape[CNN_MAX_DIMS], strides[CNN_MAX_DIMS];
    int wrapped[CNN_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        int d = cnn_wrap_dim("permute", dims[i], ndim);
        if (d < 0) return NULL;
        if (seen[d])
            return cnn_fail_null(CNN_ERR_ARGUMENT, "permute: dimension %d appears twice", d + 1);
        seen[d] = true;
        wrapped[i] = d;
        shape[i] = t->shape[d];
        strides[i] = t->stride[d];
    }
    cnn_tensor *out = record_view(cnn_make_view(t, ndim, shape, strides, t->offset), t, "permute",
                                  permute_backward);
    if (out && out->grad_fn)
        for (int i = 0; i < ndim; i++) out->grad_fn->ints[i] = wrapped[i];
    return out;
}

cnn_tensor *cnn_transpose(cnn_tensor *t, int dim0, int dim1) {
    int a = cnn_wrap_dim("transpose", dim0, t->ndim);
    int b = a < 0 ? -1 : cnn_wrap_dim("transpose", dim1, t->ndim);
    if (a < 0 || b < 0) return NULL;
    int dims[CNN_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) dims[i] = i;
    dims[a] = b;
    dims[b] = a;
    return cnn_permute(t, t->ndim, dims);
}

/* ---- slicing: the gradient is scattered into zeros of the input's shape ------------------------- */
static cnn_status slice_backward(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    cnn_tensor *in = node->inputs[0];
    cnn_tensor *full = cnn_zeros(in->ndim, in->shape);
    if (!full) return cnn_last_status();
    int dim = (int)node->ints[0];
    cnn_tensor *region = node->ints[2] < 0 ? cnn_select(full, dim, node->ints[1])
                                           : cnn_narrow(full, dim, node->ints[1], node->ints[2]);
    cnn_status st = region ? cnn_copy_(region, g) : cnn_last_status();
    cnn_release(region);
    if (st != CNN_OK) {
        cnn_release(full);
        return st;
    }
    gi[0] = full;
    return CNN_OK;
}

static cnn_tensor *record_slice(cnn_tensor *out, cnn_tensor *in, const char *name, int dim,
                                int64_t start, int64_t length) {
    out = record_view(out, in, name, slice_backward);
    if (out && out->grad_fn) {
        out->grad_fn->ints[0] = dim;
        out->grad_fn->ints[1] = start;
        out->grad_fn->ints[2] = length;
    }
    return out;
}

cnn_tensor *cnn_narrow(cnn_tensor *t, int dim, int64_t start, int64_t length) {
    int d = cnn_wrap_dim("narrow", dim, t->ndim);
    if (d < 0) return NULL;
    if (t->ndim == 0) return cnn_fail_null(CNN_ERR_SHAPE, "narrow: cannot narrow a scalar");
    if (start < 0 || length < 0 || start + length > t->shape[d])
        return cnn_fail_null(CNN_ERR_ARGUMENT,
                             "narrow: elements %lld to %lld are out of range for dimension %d of size "
                             "%lld (tensor %s)", (long long)start + 1, (long long)(start + length),
                             d + 1, (long long)t->shape[d], cnn_shape_str(t));
    int64_t shape[CNN_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[d] = length;
    cnn_tensor *out = cnn_make_view(t, t->ndim, shape, t->stride, t->offset + start * t->stride[d]);
    return record_slice(out, t, "narrow", d, start, length);
}

cnn_tensor *cnn_select(cnn_tensor *t, int dim, int64_t index) {
    if (t->ndim == 0) return cnn_fail_null(CNN_ERR_SHAPE, "select: cannot index a scalar");
    int d = cnn_wrap_dim("select", dim, t->ndim);
    if (d < 0) return NULL;
    if (index < 0 || index >= t->shape[d])
        return cnn_fail_null(CNN_ERR_ARGUMENT,
                             "select: index %lld is out of range for dimension %d of size %lld (tensor %s)",
                             (long long)index + 1, d + 1, (long long)t->shape[d], cnn_shape_str(t));
    int64_t shape[CNN_MAX_DIMS], strides[CNN_MAX_DIMS];
    int nd = 0;
    for (int i = 0; i < t->ndim; i++) {
        if (i == d) continue;
        shape[nd] = t->shape[i];
        strides[nd++] = t->stride[i];
    }
    cnn_tensor *out = cnn_make_view(t, nd, shape, strides, t->offset + index * t->stride[d]);
    return record_slice(out, t, "select", d, index, -1);
}

/* ---- expand: broadcast without copying; the gradient sums over the expanded dims ---------------- */
static cnn_status expand_backward(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    cnn_tensor *in = node->inputs[0];
    gi[0] = cnn_sum_to(g, in->ndim, in->shape);
    return gi[0] ? CNN_OK : cnn_last_status();
}

cnn_tensor *cnn_expand(cnn_tensor *t, int ndim, const int64_t *req) {
    if (ndim < t->ndim || ndim > CNN_MAX_DIMS)
        return cnn_fail_null(CNN_ERR_SHAPE, "expand: cannot expand a %s tensor to %d dimensions",
                             cnn_shape_str(t), ndim);
    int64_t shape[CNN_MAX_DIMS], strides[CNN_MAX_DIMS];
    for (int i = 0; i < ndim; i++) {
        int it = t->ndim - ndim + i;
        int64_t have = it >= 0 ? t->shape[it] : 1;
        int64_t want = req[i] == -1 ? have : req[i];
        if (it < 0 && req[i] == -1)
            return cnn_fail_null(CNN_ERR_SHAPE, "expand: -1 is not allowed for new leading dimension %d",
                                 i + 1);
        if (have != want && have != 1)
            return cnn_fail_null(CNN_ERR_SHAPE,
                                 "expand: a %s tensor cannot be expanded to %s (dimension %d: %lld vs %lld)",
                                 cnn_shape_str(t), cnn_dims_str(ndim, req), i + 1, (long long)have,
                                 (long long)want);
        shape[i] = want;
        strides[i] = (it >= 0 && have == want) ? t->stride[it] : 0;
    }
    return record_view(cnn_make_view(t, ndim, shape, strides, t->offset), t, "expand", expand_backward);
}
