/* Iteration over strided tensors: the shape is walked row by row (the innermost dimension after
 * merging dimensions that are contiguous for every operand), so kernels see long simple rows.
 *
 * Large walks are spread over the threads in pieces of rows (long rows are cut into pieces), when
 * that is safe: operand 0 is the one every caller writes, and as long as it has no zero stride (a
 * reduction into one element, or a broadcast destination) no two pieces write the same element.
 * Elementwise loops are memory-bound; the second core brings its share of bandwidth, 1.6-1.9x on
 * the large tensors of a training step (gradient accumulation, residual additions, copies). */
#include "blas_threads.h"
#include "internal.h"

/* Elements per piece, and below which a walk stays on the calling thread. */
enum { PIECE_ELEMENTS = 1 << 14, PARALLEL_MIN_ELEMENTS = 1 << 16 };

/* Calls fn on piece k of `pieces`: row k / per_row, elements [start, start + n) of it. */
static void run_piece(int nd, const int64_t *dims, int nops, float *const *bases,
                      const int64_t (*st)[CNN_MAX_DIMS], const int64_t *inner, int64_t per_row, int64_t k,
                      cnn_row_fn fn, void *ctx) {
    const int64_t r = k / per_row, len = dims[nd - 1], chunk = (len + per_row - 1) / per_row;
    const int64_t start = (k % per_row) * chunk, n = len - start < chunk ? len - start : chunk;
    if (n <= 0) return;
    float *ptrs[CNN_ITER_MAX_OPS];
    for (int j = 0; j < nops; j++) ptrs[j] = bases[j] + start * inner[j];
    int64_t rest = r;
    for (int d = nd - 2; d >= 0; d--) {
        const int64_t i = rest % dims[d];
        rest /= dims[d];
        for (int j = 0; j < nops; j++) ptrs[j] += i * st[j][d];
    }
    fn(ctx, n, ptrs, inner);
}

void cnn_foreach_row(int ndim, const int64_t *shape, int nops, float *const *bases,
                     const int64_t (*strides)[CNN_MAX_DIMS], cnn_row_fn fn, void *ctx) {
    int64_t dims[CNN_MAX_DIMS] = {0}, st[CNN_ITER_MAX_OPS][CNN_MAX_DIMS] = {{0}};
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
    bool distinct = true; // operand 0 never revisits an element
    for (int d = 0; d < nd; d++) distinct = distinct && st[0][d] != 0;
    const int threads = distinct ? cnn_threads_for(rows * dims[nd - 1], PARALLEL_MIN_ELEMENTS) : 1;
    if (threads > 1) {
        const int64_t per_row = (dims[nd - 1] + PIECE_ELEMENTS - 1) / PIECE_ELEMENTS, pieces = rows * per_row;
#pragma omp parallel for num_threads(threads) schedule(static)
        for (int64_t k = 0; k < pieces; k++)
            run_piece(nd, dims, nops, bases, (const int64_t(*)[CNN_MAX_DIMS])st, inner, per_row, k, fn, ctx);
        return;
    }
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
