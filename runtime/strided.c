/* Iteration over strided tensors: the shape is walked row by row (the innermost dimension after
 * merging dimensions that are contiguous for every operand), so kernels see long simple rows. */
#include "internal.h"

void cnn_foreach_row(int ndim, const int64_t *shape, int nops, float *const *bases,
                     const int64_t (*strides)[CNN_MAX_DIMS], cnn_row_fn fn, void *ctx) {
    int64_t dims[CNN_MAX_DIMS], st[CNN_ITER_MAX_OPS][CNN_MAX_DIMS];
    int nd = 0;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] == 1) continue; /* size-1 dims never move the pointers */
        if (shape[d] == 0) return;
        bool merge = nd > 0;
        for (int k = 0; k < nops && merge; k++)
            if (st[k][nd - 1] != strides[k][d] * shape[d]) merge = false;
        if (merge) {
            dims[nd - 1] *= shape[d];
            for (int k = 0; k < nops; k++) st[k][nd - 1] = strides[k][d];
        } else {
            dims[nd] = shape[d];
            for (int k = 0; k < nops; k++) st[k][nd] = strides[k][d];
            nd++;
        }
    }
    float *ptrs[CNN_ITER_MAX_OPS];
    int64_t inner[CNN_ITER_MAX_OPS];
    if (nd == 0) {
        for (int k = 0; k < nops; k++) {
            ptrs[k] = bases[k];
            inner[k] = 0;
        }
        fn(ctx, 1, ptrs, inner);
        return;
    }
    for (int k = 0; k < nops; k++) inner[k] = st[k][nd - 1];
    int64_t idx[CNN_MAX_DIMS] = {0};
    int64_t rows = 1;
    for (int d = 0; d < nd - 1; d++) rows *= dims[d];
    for (int64_t r = 0; r < rows; r++) {
        for (int k = 0; k < nops; k++) {
            int64_t off = 0;
            for (int d = 0; d < nd - 1; d++) off += idx[d] * st[k][d];
            ptrs[k] = bases[k] + off;
        }
        fn(ctx, dims[nd - 1], ptrs, inner);
        for (int d = nd - 2; d >= 0; d--) {
            if (++idx[d] < dims[d]) break;
            idx[d] = 0;
        }
    }
}

bool cnn_broadcast_shape(const char *op, const cnn_tensor *a, const cnn_tensor *b, int *ndim,
                         int64_t *shape) {
    int nd = a->ndim > b->ndim ? a->ndim : b->ndim;
    for (int i = 0; i < nd; i++) {
        int ia = a->ndim - nd + i, ib = b->ndim - nd + i;
        int64_t sa = ia >= 0 ? a->shape[ia] : 1, sb = ib >= 0 ? b->shape[ib] : 1;
        if (sa != sb && sa != 1 && sb != 1) {
            cnn_fail(CNN_ERR_SHAPE,
                     "%s: shapes %s and %s cannot be broadcast together (dimension %d: %lld vs %lld)",
                     op, cnn_shape_str(a), cnn_shape_str(b), i + 1, (long long)sa, (long long)sb);
            return false;
        }
        shape[i] = sa == 1 ? sb : sa;
    }
    *ndim = nd;
    return true;
}

void cnn_broadcast_strides(const cnn_tensor *t, int ndim, const int64_t *shape, int64_t *strides) {
    for (int i = 0; i < ndim; i++) {
        int it = t->ndim - ndim + i;
        strides[i] = (it >= 0 && t->shape[it] == shape[i]) ? t->stride[it] : 0;
    }
}
