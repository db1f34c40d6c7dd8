/* blas_threads.h - running BLAS calls from several OpenMP threads at once.
 *
 * Ops that split their work into independent pieces (the images of a batch) run one single-threaded
 * sgemm per piece on each OpenMP thread: small products scale far better that way than through the
 * BLAS's own threads, and the two thread pools never compete for the cores. An OpenMP build of
 * OpenBLAS is single-threaded inside a parallel region by itself; a pthreads build is told to be so
 * for the duration (nested users counted, so that the last one out restores the setting). */
#ifndef CNN_BLAS_THREADS_H
#define CNN_BLAS_THREADS_H

void cnn_blas_serial_begin(void);
void cnn_blas_serial_end(void);

#endif /* CNN_BLAS_THREADS_H */
