/* Tensor memory: aligned blocks with a cache of freed blocks.
 *
 * Training repeats the same shapes every step. Returning large blocks to the system and asking for
 * them again costs a page fault per 4 KB (the kernel clears every page), which showed up as the
 * dominant cost of large backward passes. Freed blocks are therefore kept, per size, up to a byte
 * limit, and handed out again. Blocks are 64-byte aligned for every SIMD width the kernels use;
 * a header in front records the size.
 *
 * A request is served by a cached block of its exact size, or else (for large requests) by the
 * smallest cached block up to twice its size. Keyed by exact size alone, the cache would hold, for
 * every size, as many blocks as were ever in use at once, and the process would keep the sum of those
 * per-size peaks resident, more than was ever in use at one time: a step's forward pass and its
 * backward pass use different mixes of sizes. The pages of a cached block are already resident, so
 * handing it out for a smaller request costs no memory that is not held anyway. */
#include <pthread.h>
#include <stdlib.h>

#include "internal.h"
#include "weight_cache.h"

enum {
    BLOCK_ALIGN = 64,
    N_BUCKETS = 256,       /* distinct cached sizes */
    MIN_CACHED = 1024,     /* smaller blocks go straight back to malloc */
    LOOSE_FIT_MIN = 1 << 17 /* smaller requests take exact sizes only: a scan would cost more than a
                               fresh block */
};

typedef struct block {
    size_t bytes;
    struct block *next; /* in its bucket's free list */
} block;

typedef struct bucket {
    size_t bytes; /* 0: unused */
    block *head;
} bucket;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static bucket buckets[N_BUCKETS];
static int64_t cached_bytes;
static int64_t cache_limit = 256ll << 20;
static int next_victim;
static atomic_llong bytes_in_use;

static block *header_of(void *data) { return (block *)((char *)data - BLOCK_ALIGN); }

static bucket *find_bucket(size_t bytes, bool create) {
    size_t h = (bytes / BLOCK_ALIGN) * 2654435761u % N_BUCKETS;
    for (int i = 0; i < N_BUCKETS; i++) {
        bucket *b = &buckets[(h + (size_t)i) % N_BUCKETS];
        if (b->bytes == bytes) return b;
        if (b->bytes == 0 && b->head == NULL) {
            if (!create) return NULL;
            b->bytes = bytes;
            return b;
        }
    }
    return NULL;
}

/* The smallest cached size above bytes and at most twice bytes (NULL when none). Called locked. */
static bucket *smallest_fitting_bucket(size_t bytes) {
    bucket *best = NULL;
    for (int i = 0; i < N_BUCKETS; i++) {
        bucket *b = &buckets[i];
        if (b->head && b->bytes > bytes && b->bytes / 2 <= bytes && (!best || b->bytes < best->bytes))
            best = b;
    }
    return best;
}

/* Frees every block of one bucket (round robin) to make room for a new size. Called locked. */
static void evict_one_bucket(void) {
    bucket *b = &buckets[next_victim];
    next_victim = (next_victim + 1) % N_BUCKETS;
    while (b->head) {
        block *k = b->head;
        b->head = k->next;
        cached_bytes -= (int64_t)k->bytes;
        free(k);
    }
    b->bytes = 0;
}

void *cnn_block_alloc(size_t bytes, bool count_as_tensor) {
    cnn_pin_library();
    if (bytes == 0) bytes = sizeof(float);
    bytes = (bytes + BLOCK_ALIGN - 1) / BLOCK_ALIGN * BLOCK_ALIGN;
    block *k = NULL;
    if (bytes >= MIN_CACHED) {
        pthread_mutex_lock(&lock);
        bucket *b = find_bucket(bytes, false);
        if ((!b || !b->head) && bytes >= LOOSE_FIT_MIN) b = smallest_fitting_bucket(bytes);
        if (b && b->head) {
            k = b->head;
            b->head = k->next;
            cached_bytes -= (int64_t)k->bytes;
        }
        pthread_mutex_unlock(&lock);
    }
    if (!k) {
        void *p = NULL;
        if (posix_memalign(&p, BLOCK_ALIGN, bytes + BLOCK_ALIGN) != 0 || !p)
            return cnn_fail_null(CNN_ERR_MEMORY, "out of memory allocating %zu bytes", bytes);
        k = p;
        k->bytes = bytes;
    }
    if (count_as_tensor) atomic_fetch_add(&bytes_in_use, (long long)k->bytes); /* the block's size */
    return (char *)k + BLOCK_ALIGN;
}

void cnn_block_free(void *data, bool count_as_tensor) {
    if (!data) return;
    block *k = header_of(data);
    if (count_as_tensor) atomic_fetch_sub(&bytes_in_use, (long long)k->bytes);
    if (k->bytes >= MIN_CACHED) {
        pthread_mutex_lock(&lock);
        bool kept = false;
        if (cached_bytes + (int64_t)k->bytes <= cache_limit) {
            bucket *b = find_bucket(k->bytes, true);
            if (!b) {
                evict_one_bucket();
                b = find_bucket(k->bytes, true);
            }
            if (b) {
                k->next = b->head;
                b->head = k;
                cached_bytes += (int64_t)k->bytes;
                kept = true;
            }
        }
        pthread_mutex_unlock(&lock);
        if (kept) return;
    }
    free(k);
}

int64_t cnn_memory_in_use(void) { return atomic_load(&bytes_in_use); }

int64_t cnn_memory_cached(void) {
    pthread_mutex_lock(&lock);
    int64_t c = cached_bytes;
    pthread_mutex_unlock(&lock);
    return c;
}

void cnn_set_cache_limit(int64_t bytes) {
    pthread_mutex_lock(&lock);
    cache_limit = bytes < 0 ? 0 : bytes;
    pthread_mutex_unlock(&lock);
    if (cnn_memory_cached() > cache_limit) cnn_empty_cache();
}

void cnn_empty_cache(void) {
    cnn_weight_cache_clear();
    pthread_mutex_lock(&lock);
    for (int i = 0; i < N_BUCKETS; i++) {
        next_victim = i;
        evict_one_bucket();
    }
    next_victim = 0;
    pthread_mutex_unlock(&lock);
}
