/* prefetch.c - worker threads that make the batches of one epoch ahead of the training loop.
 *
 * Workers claim batch numbers in increasing order and put each finished batch in slot b % capacity
 * of a ring; a worker may claim batch b only once the consumer has taken batch b - capacity, so a
 * slot is always free when its batch is claimed and at most capacity batches wait. The consumer takes
 * batches strictly in order. What a batch contains depends on (order, seeds) only: which worker makes
 * it never matters. Stopping sets a flag, wakes everyone and joins the workers; a worker finishes the
 * batch in hand first (a few milliseconds at most). */
#include <errno.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "thread_pinning.h"

/* How often a waiting consumer looks at the interrupt flag. */
#define PREFETCH_POLL_NS (20 * 1000 * 1000L)
#define PREFETCH_MAX_WORKERS 64

typedef struct batch_slot {
    bool ready;
    cnn_tensor *x, *y;
    cnn_status status; /* not CNN_OK: the batch failed with message */
    char message[512];
} batch_slot;

struct cnn_prefetch {
    cnn_tensor *x, *y;   /* the dataset: x (N, ...) contiguous, y (N) contiguous or NULL */
    int64_t *order;      /* (n_rows) dataset rows, 0-based */
    int64_t n_rows, batch_size, n_batches;
    const cnn_aug_pipeline *pipeline;
    uint64_t *seeds;     /* (n_batches) */
    int workers;

    pthread_mutex_t lock;
    pthread_cond_t batch_ready, slot_free;
    batch_slot *ring;    /* (capacity) */
    int64_t capacity;
    int64_t next_claim;  /* the batch the next idle worker makes */
    int64_t next_take;   /* the batch the consumer takes next */
    bool stopping, failed;
    pthread_t *threads;
    int started;
};

static atomic_int live_workers;

int cnn_prefetch_live_workers(void) { return atomic_load(&live_workers); }

int64_t cnn_prefetch_batches(const cnn_prefetch *p) { return p ? p->n_batches : 0; }

/* ---- making one batch (any thread) ---------------------------------------------------------------- */

/* Rows of batch b gathered from t (N, ...) into a new (count, ...) tensor. */
static cnn_tensor *gather_rows(const cnn_prefetch *p, cnn_tensor *t, int64_t first, int64_t count) {
    int64_t shape[CNN_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[0] = count;
    cnn_tensor *out = cnn_alloc(t->ndim, shape);
    if (!out) return NULL;
    const int64_t row = t->shape[0] ? cnn_numel(t) / t->shape[0] : 0;
    const float *src = cnn_ptr(t);
    float *dst = cnn_ptr(out);
    for (int64_t i = 0; i < count; i++)
        memcpy(dst + i * row, src + p->order[first + i] * row, (size_t)row * sizeof(float));
    return out;
}

/* Batch b: gathered, then augmented. CNN_OK or an error set on this thread. */
static cnn_status make_batch(const cnn_prefetch *p, int64_t b, cnn_tensor **x, cnn_tensor **y) {
    *x = *y = NULL;
    const int64_t first = b * p->batch_size;
    const int64_t count = p->n_rows - first < p->batch_size ? p->n_rows - first : p->batch_size;
    cnn_tensor *gathered = gather_rows(p, p->x, first, count);
    if (!gathered) return cnn_last_status();
    if (p->pipeline) {
        cnn_tensor *augmented = cnn_aug_apply(p->pipeline, gathered, p->seeds[b]);
        cnn_release(gathered);
        if (!augmented) return cnn_last_status();
        gathered = augmented;
    }
    if (p->y) {
        *y = gather_rows(p, p->y, first, count);
        if (!*y) {
            cnn_release(gathered);
            return cnn_last_status();
        }
    }
    *x = gathered;
    return CNN_OK;
}

/* ---- workers ---------------------------------------------------------------------------------------- */

static void *worker_main(void *arg) {
    cnn_prefetch *p = arg;
    /* the training loop's BLAS and OpenMP threads already use every core: a worker augments on its
     * own thread only (this setting belongs to this thread alone) */
    omp_set_num_threads(1);
    pthread_mutex_lock(&p->lock);
    for (;;) {
        while (!p->stopping && !p->failed && p->next_claim < p->n_batches &&
               p->next_claim >= p->next_take + p->capacity)
            pthread_cond_wait(&p->slot_free, &p->lock);
        if (p->stopping || p->failed || p->next_claim >= p->n_batches) break;
        const int64_t b = p->next_claim++;
        pthread_mutex_unlock(&p->lock);

        cnn_tensor *x, *y;
        cnn_status status = make_batch(p, b, &x, &y);

        pthread_mutex_lock(&p->lock);
        batch_slot *slot = &p->ring[b % p->capacity];
        slot->x = x;
        slot->y = y;
        slot->status = status;
        if (status != CNN_OK) {
            snprintf(slot->message, sizeof slot->message, "%s", cnn_last_error());
            p->failed = true; /* no point making batches after one the consumer will stop at */
        }
        slot->ready = true;
        pthread_cond_broadcast(&p->batch_ready);
    }
    pthread_mutex_unlock(&p->lock);
    atomic_fetch_sub(&live_workers, 1);
    return NULL;
}

/* ---- life cycle ------------------------------------------------------------------------------------- */

static void stop_workers(cnn_prefetch *p) {
    pthread_mutex_lock(&p->lock);
    p->stopping = true;
    pthread_cond_broadcast(&p->slot_free);
    pthread_cond_broadcast(&p->batch_ready);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->started; i++) pthread_join(p->threads[i], NULL);
    p->started = 0;
}

void cnn_prefetch_free(cnn_prefetch *p) {
    if (!p) return;
    stop_workers(p);
    if (p->ring) {
        for (int64_t i = 0; i < p->capacity; i++) {
            cnn_release(p->ring[i].x);
            cnn_release(p->ring[i].y);
        }
    }
    pthread_cond_destroy(&p->batch_ready);
    pthread_cond_destroy(&p->slot_free);
    pthread_mutex_destroy(&p->lock);
    cnn_release(p->x);
    cnn_release(p->y);
    free(p->ring);
    free(p->threads);
    free(p->order);
    free(p->seeds);
    free(p);
}

static bool check_options(cnn_tensor *x, cnn_tensor *y, const cnn_prefetch_options *o) {
    const char *op = "prefetch";
    if (!x) return cnn_fail(CNN_ERR_ARGUMENT, "%s: the dataset tensor is NULL", op), false;
    if (!o) return cnn_fail(CNN_ERR_ARGUMENT, "%s: options are NULL", op), false;
    if (x->ndim < 1)
        return cnn_fail(CNN_ERR_SHAPE, "%s: the dataset must have a first (sample) dimension, got shape %s", op,
                        cnn_shape_str(x)), false;
    const int64_t N = x->shape[0];
    if (y && (y->ndim < 1 || y->shape[0] != N))
        return cnn_fail(CNN_ERR_SHAPE, "%s: labels must have one value per sample (x %s, y %s)", op,
                        cnn_shape_str(x), cnn_shape_str(y)), false;
    if (o->batch_size < 1)
        return cnn_fail(CNN_ERR_ARGUMENT, "%s: batch_size must be positive, got %lld", op,
                        (long long)o->batch_size), false;
    if (o->workers < 0 || o->workers > PREFETCH_MAX_WORKERS)
        return cnn_fail(CNN_ERR_ARGUMENT, "%s: workers must be in 0..%d, got %d", op, PREFETCH_MAX_WORKERS,
                        (int)o->workers), false;
    if (o->capacity < 0) return cnn_fail(CNN_ERR_ARGUMENT, "%s: capacity must be >= 0", op), false;
    const int64_t n_rows = o->order ? o->n_rows : N;
    if (n_rows < 0) return cnn_fail(CNN_ERR_ARGUMENT, "%s: negative row count %lld", op, (long long)n_rows), false;
    if (o->order)
        for (int64_t i = 0; i < n_rows; i++)
            if (o->order[i] < 0 || o->order[i] >= N)
                return cnn_fail(CNN_ERR_ARGUMENT, "%s: row %lld of the order is %lld, outside 0..%lld (dataset %s)", op,
                                (long long)i, (long long)o->order[i], (long long)N - 1, cnn_shape_str(x)), false;
    if (o->pipeline) {
        if (x->ndim != 4)
            return cnn_fail(CNN_ERR_SHAPE, "%s: augmentation needs images (N, C, H, W), got a dataset of shape %s",
                            op, cnn_shape_str(x)), false;
        /* a pipeline that does not fit the images fails here rather than in a worker */
        int64_t out_chw[3];
        if (cnn_aug_output_shape(o->pipeline, x->shape + 1, out_chw) != CNN_OK) return false;
    }
    return true;
}

static bool start_workers(cnn_prefetch *p) {
    p->threads = calloc((size_t)p->workers, sizeof *p->threads);
    if (!p->threads) return cnn_fail(CNN_ERR_MEMORY, "prefetch: out of memory"), false;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    cnn_unpinned_thread_attr(&attr);
    for (int i = 0; i < p->workers; i++) {
        atomic_fetch_add(&live_workers, 1);
        int err = pthread_create(&p->threads[i], &attr, worker_main, p);
        if (err) {
            atomic_fetch_sub(&live_workers, 1);
            pthread_attr_destroy(&attr);
            return cnn_fail(CNN_ERR_MEMORY, "prefetch: cannot start worker thread %d of %d (%s)", i + 1, p->workers,
                            strerror(err)), false;
        }
        p->started++;
    }
    pthread_attr_destroy(&attr);
    return true;
}

cnn_prefetch *cnn_prefetch_new(cnn_tensor *x, cnn_tensor *y, const cnn_prefetch_options *o) {
    if (!check_options(x, y, o)) return NULL;
    cnn_prefetch *p = calloc(1, sizeof *p);
    if (!p) return cnn_fail_null(CNN_ERR_MEMORY, "prefetch: out of memory");
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->batch_ready, NULL);
    pthread_cond_init(&p->slot_free, NULL);
    const int64_t N = x->shape[0];
    p->n_rows = o->order ? o->n_rows : N;
    p->batch_size = o->batch_size;
    p->n_batches = o->drop_last ? p->n_rows / p->batch_size : (p->n_rows + p->batch_size - 1) / p->batch_size;
    p->next_claim = p->next_take = o->first_batch < 0 ? 0 : o->first_batch;
    p->pipeline = o->pipeline;
    p->workers = o->workers;
    p->capacity = o->capacity > 0 ? o->capacity : (o->workers > 0 ? 2 * o->workers : 1);
    /* workers read the dataset at the same time: contiguous copies (or the tensors themselves) */
    p->x = cnn_contiguous(x);
    p->y = y ? cnn_contiguous(y) : NULL;
    p->order = malloc((size_t)(p->n_rows > 0 ? p->n_rows : 1) * sizeof *p->order);
    p->seeds = malloc((size_t)(p->n_batches > 0 ? p->n_batches : 1) * sizeof *p->seeds);
    p->ring = calloc((size_t)p->capacity, sizeof *p->ring);
    if (!p->x || (y && !p->y) || !p->order || !p->seeds || !p->ring) {
        if (p->x && (!y || p->y)) cnn_fail(CNN_ERR_MEMORY, "prefetch: out of memory");
        cnn_prefetch_free(p);
        return NULL;
    }
    for (int64_t i = 0; i < p->n_rows; i++) p->order[i] = o->order ? o->order[i] : i;
    for (int64_t b = 0; b < p->n_batches; b++) p->seeds[b] = o->seeds ? o->seeds[b] : (uint64_t)b;
    if (!start_workers(p)) {
        char reason[512];
        snprintf(reason, sizeof reason, "%s", cnn_last_error());
        cnn_prefetch_free(p);
        return cnn_fail_null(CNN_ERR_MEMORY, "%s", reason);
    }
    return p;
}

/* ---- the consumer ---------------------------------------------------------------------------------- */

static void deadline_after(struct timespec *t, long ns) {
    clock_gettime(CLOCK_REALTIME, t);
    t->tv_nsec += ns;
    if (t->tv_nsec >= 1000000000L) {
        t->tv_sec += 1;
        t->tv_nsec -= 1000000000L;
    }
}

cnn_status cnn_prefetch_next(cnn_prefetch *p, cnn_tensor **x, cnn_tensor **y) {
    if (!x || !y) return cnn_fail(CNN_ERR_ARGUMENT, "prefetch: NULL result pointers");
    *x = *y = NULL;
    if (!p) return cnn_fail(CNN_ERR_ARGUMENT, "prefetch: the prefetcher is NULL");
    if (p->next_take >= p->n_batches) return CNN_OK;
    if (p->workers == 0) {
        cnn_status status = make_batch(p, p->next_take, x, y);
        if (status == CNN_OK) p->next_take++;
        return status;
    }
    pthread_mutex_lock(&p->lock);
    batch_slot *slot = &p->ring[p->next_take % p->capacity];
    for (;;) {
        if (cnn_interrupted()) {
            pthread_mutex_unlock(&p->lock);
            return cnn_fail(CNN_ERR_INTERRUPTED, "prefetch: interrupted while waiting for batch %lld of %lld",
                            (long long)p->next_take + 1, (long long)p->n_batches);
        }
        if (slot->ready || p->stopping) break;
        struct timespec until;
        deadline_after(&until, PREFETCH_POLL_NS);
        int err = pthread_cond_timedwait(&p->batch_ready, &p->lock, &until);
        if (err && err != ETIMEDOUT) break;
    }
    if (!slot->ready) {
        pthread_mutex_unlock(&p->lock);
        return cnn_fail(CNN_ERR_STATE, "prefetch: the prefetcher was stopped");
    }
    cnn_status status = slot->status;
    if (status != CNN_OK) {
        /* the slot keeps its message; the epoch ends here (every later call reports it again) */
        pthread_mutex_unlock(&p->lock);
        return cnn_fail(status, "%s", slot->message);
    }
    *x = slot->x;
    *y = slot->y;
    slot->x = slot->y = NULL;
    slot->ready = false;
    p->next_take++;
    pthread_cond_broadcast(&p->slot_free);
    pthread_mutex_unlock(&p->lock);
    return CNN_OK;
}
