/* Tensors: storage allocation and accounting, creation, reference counting and metadata. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "weight_cache.h"

int64_t cnn_shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

float *cnn_storage_alloc_floats(int64_t n) {
    return cnn_block_alloc((size_t)(n > 0 ? n : 1) * sizeof(float), true);
}

static void storage_free_floats(float *data) { cnn_block_free(data, true); }

static atomic_uint_fast64_t last_storage_id;
static atomic_uint_fast64_t write_epoch;

void cnn_note_write(void) { atomic_fetch_add_explicit(&write_epoch, 1, memory_order_relaxed); }

uint64_t cnn_write_epoch(void) { return atomic_load_explicit(&write_epoch, memory_order_relaxed); }

static cnn_storage *storage_new(int64_t numel) {
    cnn_storage *s = malloc(sizeof *s);
    if (!s) return cnn_fail_null(CNN_ERR_MEMORY, "out of memory");
    s->data = cnn_storage_alloc_floats(numel);
    if (!s->data) {
        free(s);
        return NULL;
    }
    atomic_init(&s->refcount, 1);
    s->numel = numel;
    s->id = atomic_fetch_add(&last_storage_id, 1) + 1;
    return s;
}

static void storage_release(cnn_storage *s) {
    if (atomic_fetch_sub(&s->refcount, 1) == 1) {
        cnn_weight_cache_forget(s->id);
        storage_free_floats(s->data);
        free(s);
    }
}

static bool check_shape(const char *op, int ndim, const int64_t *shape) {
    if (ndim < 0 || ndim > CNN_MAX_DIMS) {
        cnn_fail(CNN_ERR_SHAPE, "%s: %d dimensions requested, at most %d are supported", op, ndim,
                 CNN_MAX_DIMS);
        return false;
    }
    double total = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) {
            cnn_fail(CNN_ERR_SHAPE, "%s: negative size %lld in dimension %d of shape %s", op,
                     (long long)shape[i], i, cnn_dims_str(ndim, shape));
            return false;
        }
        total *= (double)shape[i];
    }
    if (total > (double)(INT64_MAX / 8)) {
        cnn_fail(CNN_ERR_SHAPE, "%s: shape %s is too large", op, cnn_dims_str(ndim, shape));
        return false;
    }
    return true;
}

static void set_contiguous_strides(cnn_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i];
    }
}

static cnn_tensor *tensor_struct(cnn_storage *storage, int ndim, const int64_t *shape) {
    cnn_tensor *t = calloc(1, sizeof *t);
    if (!t) return cnn_fail_null(CNN_ERR_MEMORY, "out of memory");
    atomic_init(&t->refcount, 1);
    t->storage = storage;
    t->ndim = ndim;
    for (int i = 0; i < ndim; i++) t->shape[i] = shape[i];
    return t;
}

cnn_tensor *cnn_alloc(int ndim, const int64_t *shape) {
    if (!check_shape("tensor", ndim, shape)) return NULL;
    cnn_storage *s = storage_new(cnn_shape_numel(ndim, shape));
    if (!s) return NULL;
    cnn_tensor *t = tensor_struct(s, ndim, shape);
    if (!t) {
        storage_release(s);
        return NULL;
    }
    set_contiguous_strides(t);
    return t;
}

cnn_tensor *cnn_make_view(cnn_tensor *base, int ndim, const int64_t *shape, const int64_t *stride,
                          int64_t offset) {
    cnn_tensor *t = tensor_struct(base->storage, ndim, shape);
    if (!t) return NULL;
    atomic_fetch_add(&base->storage->refcount, 1);
    for (int i = 0; i < ndim; i++) t->stride[i] = stride[i];
    t->offset = offset;
    return t;
}

/* The storage of every stand-in (see cnn_shape_only): no data, and a count that never reaches zero. */
static cnn_storage no_data = {1, NULL, 0, 0};

cnn_tensor *cnn_shape_only(const cnn_tensor *t) {
    cnn_tensor *s = tensor_struct(&no_data, t->ndim, t->shape);
    if (!s) return NULL;
    atomic_fetch_add(&no_data.refcount, 1);
    for (int i = 0; i < t->ndim; i++) s->stride[i] = t->stride[i];
    s->offset = t->offset;
    s->requires_grad = t->requires_grad;
    s->grad_fn = t->grad_fn;
    if (s->grad_fn) atomic_fetch_add(&s->grad_fn->refcount, 1);
    return s;
}

cnn_tensor *cnn_empty(int ndim, const int64_t *shape) { return cnn_alloc(ndim, shape); }

cnn_tensor *cnn_full(int ndim, const int64_t *shape, float value) {
    cnn_tensor *t = cnn_alloc(ndim, shape);
    if (!t) return NULL;
    float *p = cnn_ptr(t);
    int64_t n = cnn_numel(t);
    for (int64_t i = 0; i < n; i++) p[i] = value;
    return t;
}

cnn_tensor *cnn_zeros(int ndim, const int64_t *shape) { return cnn_full(ndim, shape, 0.0f); }
cnn_tensor *cnn_ones(int ndim, const int64_t *shape) { return cnn_full(ndim, shape, 1.0f); }
cnn_tensor *cnn_scalar(float value) { return cnn_full(0, NULL, value); }

cnn_tensor *cnn_from_data(int ndim, const int64_t *shape, const float *data) {
    cnn_tensor *t = cnn_alloc(ndim, shape);
    if (!t) return NULL;
    memcpy(cnn_ptr(t), data, (size_t)cnn_numel(t) * sizeof(float));
    return t;
}

cnn_tensor *cnn_arange(double start, double end, double step) {
    if (step == 0 || step != step || start != start || end != end)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "arange: step must be a non-zero number (start %g, end %g, step %g)",
                             start, end, step);
    double count = (end - start) / step;
    int64_t n = count > 0 ? (int64_t)ceil(count - 1e-9) : 0;
    int64_t shape[1] = {n};
    cnn_tensor *t = cnn_alloc(1, shape);
    if (!t) return NULL;
    float *p = cnn_ptr(t);
    for (int64_t i = 0; i < n; i++) p[i] = (float)(start + (double)i * step);
    return t;
}

cnn_tensor *cnn_uniform(int ndim, const int64_t *shape, float low, float high) {
    cnn_tensor *t = cnn_alloc(ndim, shape);
    if (!t) return NULL;
    cnn_rng_fill_uniform(cnn_ptr(t), cnn_numel(t), low, high);
    return t;
}

cnn_tensor *cnn_rand(int ndim, const int64_t *shape) { return cnn_uniform(ndim, shape, 0.0f, 1.0f); }

cnn_tensor *cnn_randn(int ndim, const int64_t *shape) {
    cnn_tensor *t = cnn_alloc(ndim, shape);
    if (!t) return NULL;
    cnn_rng_fill_normal(cnn_ptr(t), cnn_numel(t), 0.0f, 1.0f);
    return t;
}

/* ---- lifetime ---------------------------------------------------------------------------------
 * Releasing a tensor may release its gradient function, whose inputs may be released in turn: a long
 * chain of ops would recurse once per op. Tensors whose count reaches zero are queued instead and
 * destroyed by the outermost call, one after another. */
static _Thread_local cnn_tensor **release_queue;
static _Thread_local size_t release_len, release_cap;
static _Thread_local bool releasing;

static void destroy(cnn_tensor *t) {
    if (t->grad) cnn_release(t->grad);
    if (t->grad_fn) cnn_node_release(t->grad_fn);
    storage_release(t->storage);
    free(t);
}

void cnn_retain(cnn_tensor *t) {
    if (t) atomic_fetch_add(&t->refcount, 1);
}

void cnn_release(cnn_tensor *t) {
    if (!t || atomic_fetch_sub(&t->refcount, 1) != 1) return;
    if (releasing) {
        if (release_len == release_cap) {
            size_t cap = release_cap ? release_cap * 2 : 64;
            cnn_tensor **q = realloc(release_queue, cap * sizeof *q);
            if (!q) { /* cannot queue: fall back to recursion for this one */
                destroy(t);
                return;
            }
            release_queue = q;
            release_cap = cap;
        }
        release_queue[release_len++] = t;
        return;
    }
    releasing = true;
    destroy(t);
    while (release_len > 0) destroy(release_queue[--release_len]);
    releasing = false;
}

/* ---- metadata --------------------------------------------------------------------------------- */
int cnn_ndim(const cnn_tensor *t) { return t->ndim; }

int64_t cnn_size(const cnn_tensor *t, int dim) {
    if (dim < 0) dim += t->ndim;
    return (dim >= 0 && dim < t->ndim) ? t->shape[dim] : -1;
}

int64_t cnn_stride(const cnn_tensor *t, int dim) {
    if (dim < 0) dim += t->ndim;
    return (dim >= 0 && dim < t->ndim) ? t->stride[dim] : 0;
}

int64_t cnn_numel(const cnn_tensor *t) { return cnn_shape_numel(t->ndim, t->shape); }

int cnn_is_contiguous(const cnn_tensor *t) {
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        if (t->shape[i] != 1 && t->stride[i] != s) return 0;
        s *= t->shape[i];
    }
    return 1;
}

float *cnn_data(cnn_tensor *t) {
    cnn_note_write(); // the caller may write through the pointer
    return cnn_ptr(t);
}

const float *cnn_data_read(const cnn_tensor *t) { return cnn_ptr(t); }

bool cnn_same_shape(const cnn_tensor *a, const cnn_tensor *b) {
    if (a->ndim != b->ndim) return false;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return false;
    return true;
}

int cnn_wrap_dim(const char *op, int dim, int ndim) {
    int n = ndim > 0 ? ndim : 1;
    int d = dim < 0 ? dim + n : dim;
    if (d < 0 || d >= n) {
        cnn_fail(CNN_ERR_ARGUMENT, "%s: dimension %d is out of range for a tensor with %d dimensions",
                 op, dim, ndim);
        return -1;
    }
    return d;
}

cnn_status cnn_read(const cnn_tensor *t, float *out) {
    int64_t n = cnn_numel(t);
    if (cnn_is_contiguous(t)) {
        memcpy(out, cnn_ptr(t), (size_t)n * sizeof(float));
        return CNN_OK;
    }
    int64_t idx[CNN_MAX_DIMS] = {0};
    const float *base = cnn_ptr(t);
    for (int64_t i = 0; i < n; i++) {
        int64_t off = 0;
        for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
        out[i] = base[off];
        for (int d = t->ndim - 1; d >= 0; d--) {
            if (++idx[d] < t->shape[d]) break;
            idx[d] = 0;
        }
    }
    return CNN_OK;
}

float cnn_item(const cnn_tensor *t) {
    if (cnn_numel(t) != 1) {
        cnn_fail(CNN_ERR_SHAPE, "item: tensor of shape %s has %lld elements, expected exactly one",
                 cnn_shape_str(t), (long long)cnn_numel(t));
        return NAN;
    }
    return cnn_ptr(t)[0];
}

const char *cnn_dims_str(int ndim, const int64_t *shape) {
    static _Thread_local char bufs[4][128];
    static _Thread_local int next;
    char *buf = bufs[next];
    next = (next + 1) % 4;
    size_t used = 0;
    buf[0] = '\0';
    if (ndim == 0) snprintf(buf, sizeof bufs[0], "scalar");
    for (int i = 0; i < ndim && used < sizeof bufs[0]; i++)
        used += (size_t)snprintf(buf + used, sizeof bufs[0] - used, i ? "x%lld" : "%lld",
                                 (long long)shape[i]);
    return buf;
}

const char *cnn_shape_str(const cnn_tensor *t) { return cnn_dims_str(t->ndim, t->shape); }

const char *cnn_shape_string(const cnn_tensor *t, char *buf, size_t size) {
    snprintf(buf, size, "%s", cnn_shape_str(t));
    return buf;
}
