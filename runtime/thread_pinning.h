/* thread_pinning.h - each thread of the runtime's OpenMP team kept on a core of its own (see
 * thread_pinning.c for why, and for what it means to threads and processes started later). */
#ifndef CNN_THREAD_PINNING_H
#define CNN_THREAD_PINNING_H

#include <pthread.h>
#include <stdbool.h>

/* Pins thread i of a team of `threads` to the i-th CPU the process may use, once per team size;
 * nothing when the process may use fewer CPUs, inside a parallel region, or when switched off. */
void cnn_pin_team(int threads);

/* Makes attr start its thread on every CPU the process could use before any pinning (a worker
 * created by a pinned thread would otherwise share that thread's one core). */
void cnn_unpinned_thread_attr(pthread_attr_t *attr);

#endif
