/* blas_threads.c - one thread pool (OpenMP), a single-threaded BLAS, and products cut per thread.
 *
 * Why one pool. OpenMP threads keep spinning for a while after a parallel region, waiting for the
 * next; a pthreads OpenBLAS has its own threads doing the same, and on two cores the two pools
 * starve each other. So the BLAS runs on one thread whenever the runtime calls it, and parallelism
 * comes from the callers' OpenMP loops: convolutions spread images over threads (each with
 * single-threaded products), and a standalone product is cut here into one block per thread.
 * Between the runtime's calls the BLAS keeps the thread count it was given (cnn_set_num_threads sets
 * it), for other users in the process; switching it to one and back costs 7 ns, so begin/end pairs
 * around every op are free.
 *
 * Measured on a 2-core AMD EPYC (Zen 4, AVX-512), OpenBLAS 0.3.21, GFLOP/s on 2 threads against 1:
 *   - cut in two along the larger output dimension: 1.86x (128 x 128 x 1568, a linear layer),
 *     1.97x (256 x 1024 x 1024), 1.65x (64 x 120 x 400), 2.0x (1024^3: 210 GFLOP/s); OpenBLAS's own
 *     2 pthreads in the same process, right after an OpenMP region: 1.18x, 1.33x, 1.09x, 1.47x.
 *   - OpenBLAS's OpenMP build (libopenblas0-openmp, which shares the pool): 1.54x, 1.94x, 1.41x,
 *     2.02x with its own threading, i.e. as good as the cut on large products and worse on small
 *     ones; LeNet and VGG training were the same within noise. It is not what Debian installs by
 *     default; both builds work with this file.
 *   - OpenBLAS picks its Cooperlake kernels on this CPU; its Haswell kernels are faster on the shapes
 *     of convolutions (one core: 32 x 1024 x 288 64 -> 93 GFLOP/s; the NT product of a weight
 *     gradient 32 x 288 x 1024 52 -> 83) and equal elsewhere, except for products of a few rows
 *     (6 x 784 x 25: Cooperlake's small-matrix kernel 104, Haswell 48), which gemm_kernel.c's
 *     cnn_gemm_few_rows takes instead. Zen 4's 512-bit units are double-pumped 256-bit ones, so
 *     AVX-512 kernels gain no width there, and Cooperlake's blocking only costs. OPENBLAS_CORETYPE is
 *     read by OpenBLAS's own constructor, which runs before any of ours, so setting the variable
 *     from the library is too late; a DYNAMIC_ARCH OpenBLAS (Debian's) exports
 *     gotoblas_dynamic_quit/init, which re-run that selection: it is re-run here, before the BLAS's
 *     first use by the runtime, on AMD CPUs only. A user's OPENBLAS_CORETYPE is respected.
 *   - GOMP_SPINCOUNT / OMP_WAIT_POLICY: libgomp reads them in its own constructor, so they cannot
 *     be set from here either; its default (spin a while, then sleep) is also the right one. A
 *     training step is a chain of short parallel regions: with GOMP_SPINCOUNT=0 (sleep at once)
 *     LeNet's step took 4.8 ms instead of 3.05 and VGG's 171 ms instead of 161. The price is that
 *     the spinning threads compete with other processes on a busy machine. */
#include "blas_threads.h"

#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "gemm_kernel.h"
#include "internal.h"
#include "thread_pinning.h"

/* Entry points of a DYNAMIC_ARCH OpenBLAS; weak, so that other builds (and other BLAS) link too. */
extern void gotoblas_dynamic_init(void) __attribute__((weak));
extern void gotoblas_dynamic_quit(void) __attribute__((weak));
extern char *openblas_get_corename(void) __attribute__((weak));

/* A product below this many multiply-adds stays on one thread: waking a thread costs more. Products of
 * at most FEW_ROWS rows (convolutions with few output channels) go through gemm_kernel.h. */
enum { SPLIT_MIN_MACS = 1 << 19, FEW_ROWS = 12 };

static pthread_once_t configured = PTHREAD_ONCE_INIT;
static pthread_mutex_t users_lock = PTHREAD_MUTEX_INITIALIZER;
static int users;         /* begin/end pairs open, over all threads */
static int saved_threads; /* the BLAS's thread count when the first of them began */

/* OpenBLAS's AVX-512 kernel choice on an AMD CPU replaced by its AVX2 (Haswell) kernels. */
static void choose_kernels(void) {
    if (getenv("OPENBLAS_CORETYPE") || !gotoblas_dynamic_init || !gotoblas_dynamic_quit || !openblas_get_corename)
        return;
    __builtin_cpu_init();
    if (!__builtin_cpu_is("amd")) return;
    const char *core = openblas_get_corename();
    if (!core || (strcmp(core, "Cooperlake") != 0 && strcmp(core, "SkylakeX") != 0)) return;
    gotoblas_dynamic_quit();
    setenv("OPENBLAS_CORETYPE", "HASWELL", 0);
    gotoblas_dynamic_init();
    unsetenv("OPENBLAS_CORETYPE");
}

void cnn_blas_begin(void) {
    pthread_once(&configured, choose_kernels);
    pthread_mutex_lock(&users_lock);
    if (users++ == 0) {
        saved_threads = openblas_get_num_threads();
        if (saved_threads != 1) openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&users_lock);
}

void cnn_blas_end(void) {
    pthread_mutex_lock(&users_lock);
    if (--users == 0 && saved_threads != 1) openblas_set_num_threads(saved_threads);
    pthread_mutex_unlock(&users_lock);
}

bool cnn_run_items(int threads, int64_t items, cnn_item_fn fn, void *ctx) {
    if (threads <= 1) {
        for (int64_t item = 0; item < items; item++) {
            if (cnn_interrupted()) return false;
            fn(ctx, item, 0);
        }
        return true;
    }
    cnn_pin_team(threads);
    atomic_bool stop = false;
#pragma omp parallel for num_threads(threads) schedule(dynamic, 1)
    for (int64_t item = 0; item < items; item++) {
        if (atomic_load_explicit(&stop, memory_order_relaxed)) continue;
        if (cnn_interrupted()) {
            atomic_store(&stop, true);
            continue;
        }
        fn(ctx, item, omp_get_thread_num());
    }
    return !atomic_load(&stop);
}

int cnn_threads_for(int64_t work, int64_t min_per_thread) {
    if (omp_in_parallel()) return 1;
    int64_t t = cnn_get_num_threads();
    const int64_t by_work = min_per_thread > 0 ? work / min_per_thread : t;
    if (t > by_work) t = by_work;
    return t < 1 ? 1 : (int)t;
}

void cnn_sgemm_serial(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a,
                      int64_t lda, const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0) { // no terms: c = beta * c (BLAS would do the same, but not every BLAS accepts k = 0)
        for (int64_t i = 0; i < m; i++)
            for (int64_t j = 0; j < n; j++) c[i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
        return;
    }
    // few rows: the runtime's own block (OpenBLAS's Haswell kernels run such products at ~45% of peak)
    if (!trans_a && !trans_b && m <= FEW_ROWS && alpha == 1.0f && (beta == 0.0f || beta == 1.0f) &&
        cnn_gemm_few_rows(m, n, k, a, lda, b, ldb, c, ldc, beta == 1.0f))
        return;
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, (int)m,
                (int)n, (int)k, alpha, a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

void cnn_sgemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float *a, int64_t lda,
               const float *b, int64_t ldb, float beta, float *c, int64_t ldc) {
    cnn_blas_begin();
    const int threads = cnn_threads_for(m * n * (k > 0 ? k : 1), SPLIT_MIN_MACS);
    if (threads == 1) {
        cnn_sgemm_serial(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        cnn_blas_end();
        return;
    }
    // one block of the larger output dimension per thread, in multiples of a vector register's floats
    const bool split_rows = m >= n;
    const int64_t extent = split_rows ? m : n, unit = 16;
    const int64_t block = ((extent + threads - 1) / threads + unit - 1) / unit * unit;
#pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int t = 0; t < threads; t++) {
        const int64_t first = t * block, count = extent - first < block ? extent - first : block;
        if (count <= 0) continue;
        if (split_rows) // rows [first, first + count) of op(a) and c
            cnn_sgemm_serial(trans_a, trans_b, count, n, k, alpha, trans_a ? a + first : a + first * lda, lda, b,
                             ldb, beta, c + first * ldc, ldc);
        else // columns [first, first + count) of op(b) and c
            cnn_sgemm_serial(trans_a, trans_b, m, count, k, alpha, a, lda, trans_b ? b + first * ldb : b + first,
                             ldb, beta, c + first, ldc);
    }
    cnn_blas_end();
}
