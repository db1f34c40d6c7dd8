/* weight_cache.h - copies derived from weights (a layout a kernel reads faster), kept while the
 * weight is unchanged, for inference.
 *
 * A weight is identified by its storage's id and its offset in it, and its values by the write
 * epoch (internal.h): any in-place write in the process moves the epoch, after which every copy is
 * made again. Only without grad mode: a weight being trained changes at every step. */
#ifndef CNN_WEIGHT_CACHE_H
#define CNN_WEIGHT_CACHE_H

#include "internal.h"

typedef struct cnn_weight_key {
    uint64_t storage; /* 0: nothing may be cached */
    uint64_t epoch;
    int64_t offset;
} cnn_weight_key;

/* The key of w's values as they are now; storage 0 in grad mode or for NULL. */
cnn_weight_key cnn_weight_key_of(const cnn_tensor *w);

/* A copy of `floats` floats derived from the weight of key in the form `layout` (any number that
 * tells forms apart). *fill says whether the caller must compute it; it then calls
 * cnn_weight_cache_release(copy, true) once done, or (copy, false) if it could not. NULL when
 * key->storage is 0, the copy would take more than the cache's budget, or memory is short: the
 * caller then reads the weight itself. */
float *cnn_weight_cache_acquire(const cnn_weight_key *key, uint64_t layout, int64_t floats, bool *fill);
void cnn_weight_cache_release(const float *copy, bool filled);

/* What a kernel derives from a weight, for one call: the kept copy when the cache takes it, else a
 * block of the call's own. `ready` says that data holds the derivation already (a kept copy of the
 * same values); otherwise the caller computes it, and says whether it did when it closes. */
typedef struct cnn_derived {
    float *data;
    bool kept, ready;
} cnn_derived;

/* False (with the error set) when out of memory. */
bool cnn_derived_open(cnn_derived *d, const cnn_weight_key *key, uint64_t layout, int64_t floats);
void cnn_derived_close(cnn_derived *d, bool computed);

/* A number telling layouts apart: FNV-1a over values, continuing from h (CNN_LAYOUT_START at first). */
#define CNN_LAYOUT_START 1469598103934665603ull
uint64_t cnn_layout_hash(uint64_t h, const int64_t *values, int64_t n);

/* Drops the copies of a storage being freed (called by the storage's release), and every copy. */
void cnn_weight_cache_forget(uint64_t storage);
void cnn_weight_cache_clear(void);

#endif
