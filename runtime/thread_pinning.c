/* thread_pinning.c - each thread of the runtime's OpenMP team on a core of its own.
 *
 * Why. A network is a chain of short parallel regions, each writing activations that the next one
 * reads. Left to the scheduler, the two threads of a team trade cores from time to time, and every
 * cache line written before the swap is then read from the other core's cache. On a virtual
 * machine whose two cores sometimes share no cache (bench/core_latency.c), ResNet-18 inference on
 * two threads took 0.93 s instead of 1.01 s for 60 batches with the cores far apart and 0.66
 * instead of 0.70 with them near; a training step 12-17% less. libgomp's OMP_PROC_BIND does the
 * same, but is read when the library loads, before a program can set it.
 *
 * Who is pinned: the threads of a team, the calling (main) thread included, to the CPUs the
 * process could use, in order, once per team size, and only when there are at least as many CPUs
 * as threads. Not pinned: when the user chose a placement (OMP_PROC_BIND, GOMP_CPU_AFFINITY, or
 * CNN_PIN_THREADS=0 to switch this off), or on one thread.
 *
 * What follows from pinning the main thread. Threads it creates would share its core: the data
 * loader's workers are started with cnn_unpinned_thread_attr. Processes it starts inherit its one
 * CPU: pinning puts the original CPU list in CNN_UNPINNED_CPUS, and a process that loads this
 * library with that variable set (a sweep's trials, an MPI rank) returns to those CPUs before it
 * starts any thread. Other programs a script starts keep the one CPU; CNN_PIN_THREADS=0 avoids it. */
#include "thread_pinning.h"

#include <omp.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const LIST_VARIABLE = "CNN_UNPINNED_CPUS";

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int pinned_team;      /* size of the team last pinned, 0 before any */
static cpu_set_t unpinned;   /* the process's CPUs before pinning */
static atomic_bool have_unpinned; /* the main thread was pinned: unpinned is what others go back to */

static bool switched_off(void) {
    const char *v = getenv("CNN_PIN_THREADS");
    return (v && strcmp(v, "0") == 0) || getenv("OMP_PROC_BIND") || getenv("GOMP_CPU_AFFINITY");
}

/* "0,1,5": the CPUs of set. */
static void write_list(const cpu_set_t *set, char *out, size_t size) {
    size_t used = 0;
    out[0] = '\0';
    for (int cpu = 0; cpu < CPU_SETSIZE && used + 8 < size; cpu++)
        if (CPU_ISSET(cpu, set)) used += (size_t)snprintf(out + used, size - used, used ? ",%d" : "%d", cpu);
}

/* A process started by a pinned one goes back to the CPUs its parent had before pinning. */
__attribute__((constructor)) static void leave_inherited_pin(void) {
    const char *list = getenv(LIST_VARIABLE);
    cpu_set_t set;
    if (!list || sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1) return; // not a pin's
    CPU_ZERO(&set);
    for (const char *p = list; *p;) {
        char *end;
        const long cpu = strtol(p, &end, 10);
        if (end == p) break;
        if (cpu >= 0 && cpu < CPU_SETSIZE) CPU_SET((int)cpu, &set);
        p = *end == ',' ? end + 1 : end;
    }
    if (CPU_COUNT(&set) > 0) sched_setaffinity(0, sizeof set, &set);
    unsetenv(LIST_VARIABLE);
}

/* False when the system refuses (a container may). */
static bool pin_self_to(const cpu_set_t *allowed, int index) {
    int seen = -1;
    for (int cpu = 0; cpu < CPU_SETSIZE; cpu++)
        if (CPU_ISSET(cpu, allowed) && ++seen == index) {
            cpu_set_t one;
            CPU_ZERO(&one);
            CPU_SET(cpu, &one);
            return pthread_setaffinity_np(pthread_self(), sizeof one, &one) == 0;
        }
    return false;
}

void cnn_pin_team(int threads) {
    if (threads < 2 || omp_in_parallel()) return;
    pthread_mutex_lock(&lock);
    if (pinned_team != threads && !switched_off()) {
        static bool read_unpinned;
        if (!read_unpinned) read_unpinned = sched_getaffinity(0, sizeof unpinned, &unpinned) == 0;
        if (read_unpinned && CPU_COUNT(&unpinned) >= threads) {
            bool main_pinned = false;
#pragma omp parallel num_threads(threads)
            {
                const bool pinned = pin_self_to(&unpinned, omp_get_thread_num());
                if (omp_get_thread_num() == 0) main_pinned = pinned;
            }
            if (main_pinned && !atomic_load(&have_unpinned)) { // what threads and children go back to
                char list[1024];
                write_list(&unpinned, list, sizeof list);
                setenv(LIST_VARIABLE, list, 1);
                atomic_store(&have_unpinned, true);
            }
        }
        pinned_team = threads;
    }
    pthread_mutex_unlock(&lock);
}

void cnn_unpinned_thread_attr(pthread_attr_t *attr) {
    if (atomic_load(&have_unpinned)) pthread_attr_setaffinity_np(attr, sizeof unpinned, &unpinned);
}
