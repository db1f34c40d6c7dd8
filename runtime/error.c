/* Per-thread error state, the process-wide interrupt flag, thread count and memory accounting. */
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>
#include <omp.h>

#include "internal.h"

static _Thread_local char error_message[1024];
static _Thread_local cnn_status error_status;
static atomic_int interrupt_flag;

const char *cnn_last_error(void) { return error_message[0] ? error_message : "no error"; }
cnn_status cnn_last_status(void) { return error_status; }

void cnn_clear_error(void) {
    error_message[0] = '\0';
    error_status = CNN_OK;
}

static void set_error(cnn_status status, const char *fmt, va_list ap) {
    vsnprintf(error_message, sizeof error_message, fmt, ap);
    error_status = status;
}

cnn_status cnn_fail(cnn_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_error(status, fmt, ap);
    va_end(ap);
    return status;
}

void *cnn_fail_null(cnn_status status, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    set_error(status, fmt, ap);
    va_end(ap);
    return NULL;
}

static atomic_int deferral_on;
static atomic_int deferred_interrupt;

/* Async-signal-safe (lock-free atomics only): Ctrl-C handlers call it. */
void cnn_interrupt(void) {
    if (atomic_load(&deferral_on) && !atomic_exchange(&deferred_interrupt, 1)) return;
    atomic_store(&interrupt_flag, 1);
}

int cnn_set_interrupt_deferral(int on) {
    if (!on) atomic_store(&deferred_interrupt, 0);
    return atomic_exchange(&deferral_on, on ? 1 : 0);
}

int cnn_take_deferred_interrupt(void) { return atomic_exchange(&deferred_interrupt, 0); }

void cnn_clear_interrupt(void) { atomic_store(&interrupt_flag, 0); }
int cnn_interrupt_pending(void) { return atomic_load_explicit(&interrupt_flag, memory_order_relaxed); }
bool cnn_interrupted(void) { return atomic_load_explicit(&interrupt_flag, memory_order_relaxed) != 0; }

static int num_threads;

void cnn_set_num_threads(int n) {
    if (n < 1) n = 1;
    num_threads = n;
    omp_set_num_threads(n);
    openblas_set_num_threads(n);
}

int cnn_get_num_threads(void) { return num_threads > 0 ? num_threads : omp_get_max_threads(); }

const char *cnn_version(void) { return "0.1.0"; }
