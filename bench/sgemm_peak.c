/* sgemm_peak.c - the sgemm rate of the BLAS cnnlua links, on all cores, for the benchmark's
 * "fraction of peak" column: best GFLOP/s over a few square sizes, each timed after a warm-up.
 * Linked against libcnn so that the BLAS runs as configured by the runtime (blas_threads.c). */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cblas.h>

#include "cnn_api.h"

static double seconds_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(void) {
    cnn_set_num_threads(cnn_get_num_threads()); /* the runtime's BLAS configuration */
    static const int sizes[] = {1024, 2048};
    double best = 0;
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        const int n = sizes[s];
        float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n), *c = malloc(sizeof(float) * n * n);
        if (!a || !b || !c) return 1;
        for (int i = 0; i < n * n; i++) {
            a[i] = (float)(i % 7) * 0.1f;
            b[i] = (float)(i % 5) * 0.1f;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
        for (int rep = 0; rep < 3; rep++) {
            const double t = seconds_now();
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
            const double gflops = 2.0 * n * n * n / (seconds_now() - t) / 1e9;
            if (gflops > best) best = gflops;
        }
        free(a);
        free(b);
        free(c);
    }
    printf("%.1f\n", best);
    return 0;
}
