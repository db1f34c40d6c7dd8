/* Reductions: sum/mean/var/std over everything or one dimension, max/min/argmax/argmin, and
 * sum_to (undoing a broadcast), with gradients. */
#include <math.h>
#include <string.h>

#include "internal.h"

/* ---- sum_to: the workhorse behind sum, mean and broadcast gradients ---------------------------- */
static void accumulate_row(void *ctx, int64_t n, float **p, const int64_t *s) {
    float *out = p[0];
    const float *in = p[1];
    if (s[0] == 0) {
        double acc = 0;
        for (int64_t i = 0; i < n; i++) acc += in[i * s[1]];
        *out += (float)acc;
    } else {
        for (int64_t i = 0; i < n; i++) out[i * s[0]] += in[i * s[1]];
    }
}

/* Sums t into a zeroed contiguous tensor of `shape` (t must broadcast from... i.e. to t's shape). */
static cnn_tensor *sum_to_forward(const cnn_tensor *t, int ndim, const int64_t *shape) {
    cnn_tensor *out = cnn_zeros(ndim, shape);
    if (!out) return NULL;
    int64_t strides[2][CNN_MAX_DIMS];
    for (int i = 0; i < t->ndim; i++) {
        int io = ndim - t->ndim + i;
        strides[0][i] = (io >= 0 && shape[io] == t->shape[i]) ? out->stride[io] : 0;
    }
    memcpy(strides[1], t->stride, sizeof strides[1]);
    float *bases[2] = {cnn_ptr(out), cnn_ptr(t)};
    cnn_foreach_row(t->ndim, t->shape, 2, bases, (const int64_t(*)[CNN_MAX_DIMS])strides,
                    accumulate_row, NULL);
    return out;
}

static cnn_status expand_backward_to_input(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    cnn_tensor *in = node->inputs[0];
    /* g has the reduced shape with the same number of dims as sum_to's target; align, then expand. */
    cnn_tensor *e = cnn_expand(g, in->ndim, in->shape);
    if (!e) return cnn_last_status();
    gi[0] = cnn_contiguous(e);
    cnn_release(e);
    if (gi[0] && node->reals[0] != 1.0) {
        cnn_status st = cnn_mul_scalar_(gi[0], (float)node->reals[0]);
        if (st != CNN_OK) return st;
    }
    return gi[0] ? CNN_OK : cnn_last_status();
}

/* Sum of t down to `shape`, scaled by `scale` (1 for sum, 1/n for mean). */
static cnn_tensor *scaled_sum_to(const char *name, cnn_tensor *t, int ndim, const int64_t *shape,
                                 double scale) {
    if (ndim > t->ndim)
        return cnn_fail_null(CNN_ERR_SHAPE, "%s: cannot sum a %s tensor to the larger shape %s", name,
                             cnn_shape_str(t), cnn_dims_str(ndim, shape));
    for (int i = 0; i < ndim; i++) {
        int64_t have = t->shape[t->ndim - ndim + i];
        if (shape[i] != have && shape[i] != 1)
            return cnn_fail_null(CNN_ERR_SHAPE, "%s: a %s tensor cannot be summed to shape %s", name,
                                 cnn_shape_str(t), cnn_dims_str(ndim, shape));
    }
    cnn_tensor *out = sum_to_forward(t, ndim, shape);
    if (!out) return NULL;
    if (scale != 1.0) cnn_mul_scalar_(out, (float)scale); /* out is fresh: never refused */
    bool failed;
    cnn_node *node = cnn_record(out, name, expand_backward_to_input, 1, &t, &failed);
    if (node) node->reals[0] = scale;
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}

cnn_tensor *cnn_sum_to(cnn_tensor *t, int ndim, const int64_t *shape) {
    return scaled_sum_to("sum_to", t, ndim, shape, 1.0);
}

/* The shape a reduction keeps before dropping dims: t's shape with the reduced dim(s) set to 1.
 * ints[0] holds the dim, or CNN_ALL_DIMS. */
static void kept_shape(const cnn_tensor *t, int64_t dim, int64_t *shape) {
    for (int i = 0; i < t->ndim; i++) shape[i] = (dim == CNN_ALL_DIMS || dim == i) ? 1 : t->shape[i];
}

static cnn_status reduce_backward(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    cnn_tensor *in = node->inputs[0];
    int64_t shape[CNN_MAX_DIMS];
    kept_shape(in, node->ints[0], shape);
    cnn_tensor *kept = cnn_reshape(g, in->ndim, shape);
    cnn_tensor *e = kept ? cnn_expand(kept, in->ndim, in->shape) : NULL;
    gi[0] = e ? cnn_contiguous(e) : NULL;
    cnn_release(kept);
    cnn_release(e);
    if (gi[0] && node->reals[0] != 1.0) return cnn_mul_scalar_(gi[0], (float)node->reals[0]);
    return gi[0] ? CNN_OK : cnn_last_status();
}

/* Reduces over one dim (or all) as sum * scale; the result keeps or drops the dim. */
static cnn_tensor *reduce_sum(const char *name, cnn_tensor *t, int dim, int keepdim, bool mean) {
    if (dim != CNN_ALL_DIMS) {
        dim = cnn_wrap_dim(name, dim, t->ndim);
        if (dim < 0) return NULL;
        if (t->ndim == 0) dim = CNN_ALL_DIMS;
    }
    int64_t kshape[CNN_MAX_DIMS], oshape[CNN_MAX_DIMS];
    kept_shape(t, dim, kshape);
    int ond = 0;
    for (int i = 0; i < t->ndim; i++)
        if (keepdim || !(dim == CNN_ALL_DIMS || dim == i)) oshape[ond++] = kshape[i];
    double count = dim == CNN_ALL_DIMS ? (double)cnn_numel(t) : (double)t->shape[dim];
    double scale = mean ? 1.0 / count : 1.0;
    cnn_tensor *kept = sum_to_forward(t, t->ndim, kshape);
    if (!kept) return NULL;
    if (scale != 1.0) cnn_mul_scalar_(kept, (float)scale); /* fresh tensor: never refused */
    int64_t strides[CNN_MAX_DIMS], st = 1;
    for (int i = ond - 1; i >= 0; i--) {
        strides[i] = st;
        st *= oshape[i];
    }
    cnn_tensor *out = cnn_make_view(kept, ond, oshape, strides, 0);
    cnn_release(kept);
    if (!out) return NULL;
    bool failed;
    cnn_node *node = cnn_record(out, name, reduce_backward, 1, &t, &failed);
    if (node) {
        node->ints[0] = dim;
        node->reals[0] = scale;
    }
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}

cnn_tensor *cnn_sum(cnn_tensor *t, int dim, int keepdim) { return reduce_sum("sum", t, dim, keepdim, false); }
cnn_tensor *cnn_mean(cnn_tensor *t, int dim, int keepdim) { return reduce_sum("mean", t, dim, keepdim, true); }

/* var = sum((x - mean)^2) / (n - correction), composed from differentiable ops. */
cnn_tensor *cnn_var(cnn_tensor *t, int dim, int keepdim, int correction) {
    int64_t n = dim == CNN_ALL_DIMS ? cnn_numel(t) : cnn_size(t, dim);
    if (dim != CNN_ALL_DIMS && cnn_wrap_dim("var", dim, t->ndim) < 0) return NULL;
    if (n - correction <= 0)
        return cnn_fail_null(CNN_ERR_SHAPE,
                             "var/std: %lld elements are too few for correction %d (tensor %s)",
                             (long long)n, correction, cnn_shape_str(t));
    cnn_tensor *mean = cnn_mean(t, dim, 1);
    cnn_tensor *centered = mean ? cnn_sub(t, mean) : NULL;
    cnn_tensor *sq = centered ? cnn_unary(centered, CNN_SQUARE) : NULL;
    cnn_tensor *total = sq ? cnn_sum(sq, dim, keepdim) : NULL;
    cnn_tensor *out = total ? cnn_mul_scalar(total, 1.0f / (float)(n - correction)) : NULL;
    cnn_release(mean);
    cnn_release(centered);
    cnn_release(sq);
    cnn_release(total);
    return out;
}

cnn_tensor *cnn_std(cnn_tensor *t, int dim, int keepdim, int correction) {
    cnn_tensor *v = cnn_var(t, dim, keepdim, correction);
    if (!v) return NULL;
    cnn_tensor *out = cnn_unary(v, CNN_SQRT);
    cnn_release(v);
    return out;
}

/* ---- max / min / arg variants ------------------------------------------------------------------
 * The tensor is seen as (outer, size, inner) around the reduced dim. Values and 0-based indices are
 * produced together; the gradient goes to the chosen element (the first one among ties). */
static cnn_status extreme_backward(cnn_node *node, cnn_tensor *g, cnn_tensor **gi) {
    cnn_tensor *in = node->inputs[0], *idx = node->saved[0];
    int64_t outer = node->ints[0], size = node->ints[1], inner = node->ints[2];
    cnn_tensor *full = cnn_zeros(in->ndim, in->shape);
    cnn_tensor *gtmp;
    const float *gp = full ? cnn_read_ptr(g, &gtmp) : NULL;
    if (!gp) {
        cnn_release(full);
        return cnn_last_status();
    }
    float *fp = cnn_ptr(full);
    const float *ip = cnn_ptr(idx);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < inner; k++) {
            int64_t j = (int64_t)ip[o * inner + k];
            fp[(o * size + j) * inner + k] += gp[o * inner + k];
        }
    cnn_release(gtmp);
    gi[0] = full;
    return CNN_OK;
}

static cnn_tensor *extreme(const char *name, cnn_tensor *t, int dim, int keepdim, bool is_max,
                           cnn_tensor **indices_out, bool want_values) {
    if (cnn_numel(t) == 0)
        return cnn_fail_null(CNN_ERR_SHAPE, "%s: the tensor is empty (%s)", name, cnn_shape_str(t));
    int d = -1;
    if (dim != CNN_ALL_DIMS) {
        d = cnn_wrap_dim(name, dim, t->ndim);
        if (d < 0) return NULL;
        if (t->ndim == 0) d = -1;
    }
    cnn_tensor *c = cnn_contiguous(t);
    if (!c) return NULL;
    int64_t outer = 1, size, inner = 1;
    int64_t kshape[CNN_MAX_DIMS], rshape[CNN_MAX_DIMS];
    int knd = t->ndim, rnd = 0;
    if (d < 0) {
        size = cnn_numel(t);
        for (int i = 0; i < knd; i++) kshape[i] = 1;
    } else {
        size = t->shape[d];
        for (int i = 0; i < d; i++) outer *= t->shape[i];
        for (int i = d + 1; i < t->ndim; i++) inner *= t->shape[i];
        for (int i = 0; i < t->ndim; i++) {
            kshape[i] = i == d ? 1 : t->shape[i];
            if (i != d) rshape[rnd++] = t->shape[i];
        }
    }
    const int64_t *oshape = keepdim ? kshape : rshape;
    int ond = keepdim ? knd : rnd;
    cnn_tensor *values = cnn_alloc(ond, oshape), *indices = cnn_alloc(ond, oshape);
    if (!values || !indices) {
        cnn_release(values);
        cnn_release(indices);
        cnn_release(c);
        return NULL;
    }
    const float *src = cnn_ptr(c);
    float *vp = cnn_ptr(values), *ip = cnn_ptr(indices);
    for (int64_t o = 0; o < outer; o++)
        for (int64_t k = 0; k < inner; k++) {
            const float *row = src + o * size * inner + k;
            float best = row[0];
            int64_t at = 0;
            for (int64_t j = 1; j < size && best == best; j++) { /* a NaN wins and stops the search */
                float v = row[j * inner];
                if ((is_max ? v > best : v < best) || v != v) {
                    best = v;
                    at = j;
                }
            }
            vp[o * inner + k] = best;
            ip[o * inner + k] = (float)at;
        }
    cnn_release(c);
    if (!want_values) {
        cnn_release(values);
        return indices;
    }
    bool failed;
    cnn_node *node = cnn_record(values, name, extreme_backward, 1, &t, &failed);
    if (node) {
        node->ints[0] = outer;
        node->ints[1] = size;
        node->ints[2] = inner;
        if (!cnn_node_save(node, indices)) failed = true;
    }
    if (failed) {
        cnn_release(values);
        cnn_release(indices);
        return NULL;
    }
    if (indices_out) *indices_out = indices;
    else cnn_release(indices);
    return values;
}

cnn_tensor *cnn_max(cnn_tensor *t, int dim, int keepdim, cnn_tensor **indices) {
    return extreme("max", t, dim, keepdim, true, indices, true);
}
cnn_tensor *cnn_min(cnn_tensor *t, int dim, int keepdim, cnn_tensor **indices) {
    return extreme("min", t, dim, keepdim, false, indices, true);
}
cnn_tensor *cnn_argmax(cnn_tensor *t, int dim, int keepdim) {
    return extreme("argmax", t, dim, keepdim, true, NULL, false);
}
cnn_tensor *cnn_argmin(cnn_tensor *t, int dim, int keepdim) {
    return extreme("argmin", t, dim, keepdim, false, NULL, false);
}
