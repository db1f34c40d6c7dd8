/* Single-threaded BLAS for the length of a parallel region (see blas_threads.h). */
#include "blas_threads.h"

#include <cblas.h>
#include <pthread.h>

/* openblas_get_parallel(): 0 sequential build, 1 pthreads, 2 OpenMP. */
enum { BLAS_PARALLEL_OPENMP = 2 };

static pthread_mutex_t serial_lock = PTHREAD_MUTEX_INITIALIZER;
static int serial_users;
static int saved_threads;

void cnn_blas_serial_begin(void) {
    if (openblas_get_parallel() == BLAS_PARALLEL_OPENMP) return;
    pthread_mutex_lock(&serial_lock);
    if (serial_users++ == 0) {
        saved_threads = openblas_get_num_threads();
        if (saved_threads > 1) openblas_set_num_threads(1);
    }
    pthread_mutex_unlock(&serial_lock);
}

void cnn_blas_serial_end(void) {
    if (openblas_get_parallel() == BLAS_PARALLEL_OPENMP) return;
    pthread_mutex_lock(&serial_lock);
    if (--serial_users == 0 && saved_threads > 1) openblas_set_num_threads(saved_threads);
    pthread_mutex_unlock(&serial_lock);
}
