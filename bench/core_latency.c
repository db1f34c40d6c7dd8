/* core_latency.c - the round trip of one cache line between CPU 0 and CPU 1, in nanoseconds (median of
 * five runs of ROUNDS exchanges).
 *
 * On a virtual machine the two virtual cores may sit on one physical core complex, sharing its L3
 * cache (a round trip of about 60 ns here), or on two (about 330 ns), and the host moves them from
 * one arrangement to the other while a benchmark runs. In the second, every cache line one thread
 * writes and the other reads crosses between the complexes, which slows a two-thread network by a
 * quarter or more on this machine while OpenBLAS sgemm peak does not move. run.py measures it before
 * each repetition so that the table can say which arrangement its figures come from. */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum { ROUNDS = 20000, RUNS = 5 };

static _Alignas(64) atomic_int turn;
static _Alignas(64) atomic_bool partner_ready; /* set once the partner runs on its CPU */

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

/* The partner answers every odd value with the next even one. */
static void *partner(void *arg) {
    (void)arg;
    pin(1);
    atomic_store(&partner_ready, true);
    for (int i = 0; i < ROUNDS; i++) {
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 1) {}
        atomic_store_explicit(&turn, 2 * i + 2, memory_order_release);
    }
    return NULL;
}

static double run_once(void) {
    atomic_store(&turn, 0);
    atomic_store(&partner_ready, false);
    pthread_t thread;
    if (pthread_create(&thread, NULL, partner, NULL) != 0) return -1;
    while (!atomic_load(&partner_ready)) {} // its start and move to CPU 1 are not part of a round trip
    struct timespec start, end;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < ROUNDS; i++) {
        atomic_store_explicit(&turn, 2 * i + 1, memory_order_release);
        while (atomic_load_explicit(&turn, memory_order_acquire) != 2 * i + 2) {}
    }
    clock_gettime(CLOCK_MONOTONIC, &end);
    pthread_join(thread, NULL);
    return ((double)(end.tv_sec - start.tv_sec) * 1e9 + (double)(end.tv_nsec - start.tv_nsec)) / ROUNDS;
}

static int by_value(const void *a, const void *b) {
    const double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int main(void) {
    pin(0);
    double runs[RUNS];
    for (int r = 0; r < RUNS; r++)
        if ((runs[r] = run_once()) < 0) {
            fprintf(stderr, "core_latency: cannot start a thread\n");
            return 1;
        }
    qsort(runs, RUNS, sizeof *runs, by_value);
    printf("%.0f\n", runs[RUNS / 2]);
    return 0;
}
