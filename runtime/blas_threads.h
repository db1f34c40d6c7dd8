/* blas_threads.h - the runtime's threading model and its one door to the BLAS.
 *
 * One thread pool: OpenMP's. Every parallel loop of the runtime is an OpenMP loop, and the BLAS
 * always runs single-threaded, whichever OpenBLAS build is loaded (see blas_threads.c for the
 * measurements behind this). Work that is a product of matrices is parallelised by the caller:
 *   - convolutions spread their images (and groups) over the threads, each thread running
 *     single-threaded products on its own buffers (cnn_sgemm_serial);
 *   - a standalone product (linear layers, matmul, a convolution of a single image) is cut into
 *     one block of rows or columns per thread (cnn_sgemm).
 *
 * Matrices are row-major; trans_a / trans_b say that the stored matrix is the transpose of the
 * operand (a is then stored k x m, b n x k), as in cblas with CblasRowMajor. */
#ifndef CNN_BLAS_THREADS_H
#define CNN_BLAS_THREADS_H

#include <stdbool.h>
#include <stdint.h>

/* Between begin and end the BLAS is single-threaded (configured once, on first use, with the fastest
 * of its kernels for this CPU). Calls nest and may come from several threads: the last end restores
 * the thread count the BLAS had (cnn_set_num_threads sets it), so that other users of the BLAS in
 * the process see their own setting. A pair costs about 20 ns. */
void cnn_blas_begin(void);
void cnn_blas_end(void);

/* c (m, n) = alpha * op(a) op(b) + beta * c on the calling thread; call between begin and end. */
void cnn_sgemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                      int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* The same product, spread over the runtime's threads when it is large enough and the caller is not
 * already inside a parallel region; needs no begin/end around it. */
void cnn_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
               const float *b, int64_t ldb, float beta, float *c, int64_t ldc);

/* Runs fn(ctx, item, thread) for every item in [0, items), spread over `threads` OpenMP threads (one
 * item at a time, as threads free up; thread is omp_get_thread_num()), polling cnn_interrupted()
 * between items. Returns false when interrupted (the remaining items are skipped). */
typedef void (*cnn_item_fn)(void *ctx, int64_t item, int thread);
bool cnn_run_items(int threads, int64_t items, cnn_item_fn fn, void *ctx);

/* Threads worth using for work of `work` units when each thread should get at least `min_per_thread`:
 * between 1 and cnn_get_num_threads(); 1 inside a parallel region. */
int cnn_threads_for(int64_t work, int64_t min_per_thread);

#endif /* CNN_BLAS_THREADS_H */
