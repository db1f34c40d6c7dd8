/* Copies derived from weights, kept while the weights are unchanged (see weight_cache.h).
 *
 * A few dozen entries under one lock. Room is made by dropping copies of older values first, then
 * the least recently used copy, but never one used within the last ENTRIES requests: a network with
 * more kernels than fit keeps the first ones and runs the rest without copies, rather than making
 * every copy again at every pass. The budget bounds the memory, which the tensor accounting does
 * not see. */
#include "weight_cache.h"

#include <pthread.h>

enum { ENTRIES = 64 }; /* ResNet-18 keeps 20 */
static const int64_t BUDGET_FLOATS = 64ll << 20 >> 2; /* 64 MiB */

typedef struct entry {
    cnn_weight_key key;
    uint64_t layout, last_use;
    int64_t floats;
    float *data; /* NULL: the slot is free */
    int refs;
    bool valid;
} entry;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static entry entries[ENTRIES];
static int64_t held_floats;
static uint64_t uses;
static atomic_int live; /* entries holding data, read without the lock by cnn_weight_cache_forget */

uint64_t cnn_layout_hash(uint64_t h, const int64_t *values, int64_t n) {
    for (int64_t i = 0; i < n; i++) h = (h ^ (uint64_t)values[i]) * 1099511628211ull;
    return h;
}

cnn_weight_key cnn_weight_key_of(const cnn_tensor *w) {
    if (!w || cnn_is_grad_enabled()) return (cnn_weight_key){0, 0, 0};
    return (cnn_weight_key){w->storage->id, cnn_write_epoch(), w->offset};
}

static void drop(entry *e) { // locked, e->refs == 0
    cnn_block_free(e->data, false);
    held_floats -= e->floats;
    atomic_fetch_sub(&live, 1);
    *e = (entry){0};
}

/* A free slot with room for floats more, dropping unreferenced entries that may go; NULL when none
 * may. Locked. */
static entry *make_room(int64_t floats) {
    const uint64_t epoch = cnn_write_epoch();
    for (;;) {
        entry *slot = NULL, *victim = NULL;
        for (int i = 0; i < ENTRIES; i++) {
            entry *e = &entries[i];
            if (!e->data) {
                if (!slot) slot = e;
                continue;
            }
            if (e->refs > 0) continue;
            const bool stale = e->key.epoch != epoch, victim_stale = victim && victim->key.epoch != epoch;
            if (!victim || (stale && !victim_stale) || (stale == victim_stale && e->last_use < victim->last_use))
                victim = e;
        }
        if (slot && held_floats + floats <= BUDGET_FLOATS) return slot;
        if (!victim || (victim->key.epoch == epoch && uses - victim->last_use < ENTRIES)) return NULL;
        drop(victim);
    }
}

float *cnn_weight_cache_acquire(const cnn_weight_key *key, uint64_t layout, int64_t floats, bool *fill) {
    *fill = false;
    if (!key->storage || floats <= 0 || floats > BUDGET_FLOATS) return NULL;
    pthread_mutex_lock(&lock);
    entry *found = NULL;
    for (int i = 0; i < ENTRIES && !found; i++) {
        entry *e = &entries[i];
        if (e->data && e->key.storage == key->storage && e->key.offset == key->offset && e->layout == layout &&
            e->floats == floats)
            found = e;
    }
    if (found && (found->key.epoch != key->epoch || !found->valid)) {
        if (found->refs > 0) { // in use by a call that saw other values: leave it to that call
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        found->key.epoch = key->epoch; // the same buffer, made again
        found->valid = false;
        *fill = true;
    }
    if (!found) {
        found = make_room(floats);
        float *data = found ? cnn_block_alloc((size_t)floats * sizeof(float), false) : NULL;
        if (!data) {
            cnn_clear_error();
            pthread_mutex_unlock(&lock);
            return NULL;
        }
        *found = (entry){.key = *key, .layout = layout, .floats = floats, .data = data};
        held_floats += floats;
        atomic_fetch_add(&live, 1);
        *fill = true;
    }
    found->refs++;
    found->last_use = ++uses;
    float *data = found->data;
    pthread_mutex_unlock(&lock);
    return data;
}

void cnn_weight_cache_release(const float *copy, bool filled) {
    if (!copy) return;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < ENTRIES; i++) {
        entry *e = &entries[i];
        if (e->data != copy) continue;
        e->refs--;
        if (filled) e->valid = true;
        else if (!e->valid && e->refs == 0) drop(e);
        break;
    }
    pthread_mutex_unlock(&lock);
}

bool cnn_derived_open(cnn_derived *d, const cnn_weight_key *key, uint64_t layout, int64_t floats) {
    bool fill = false;
    d->data = cnn_weight_cache_acquire(key, layout, floats, &fill);
    d->kept = d->data != NULL, d->ready = d->kept && !fill;
    if (!d->kept) d->data = cnn_block_alloc((size_t)(floats > 0 ? floats : 1) * sizeof(float), false);
    return d->data != NULL;
}

void cnn_derived_close(cnn_derived *d, bool computed) {
    if (d->kept) cnn_weight_cache_release(d->data, !d->ready && computed);
    else cnn_block_free(d->data, false);
    d->data = NULL;
}

void cnn_weight_cache_forget(uint64_t storage) {
    if (atomic_load_explicit(&live, memory_order_relaxed) == 0) return;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < ENTRIES; i++)
        if (entries[i].data && entries[i].key.storage == storage && entries[i].refs == 0) drop(&entries[i]);
    pthread_mutex_unlock(&lock);
}

void cnn_weight_cache_clear(void) {
    pthread_mutex_lock(&lock);
    for (int i = 0; i < ENTRIES; i++)
        if (entries[i].data && entries[i].refs == 0) drop(&entries[i]);
    pthread_mutex_unlock(&lock);
}
