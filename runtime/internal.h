/* internal.h - what the runtime's own files share: the tensor and autograd structures, error
 * reporting and small helpers. Nothing here is part of the public API.
 *
 * Dimension legend used in shape comments: N batch, C channels, H/W height/width, O output
 * channels, K kernel size, G groups. */
#ifndef CNN_INTERNAL_H
#define CNN_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>

#include "cnn.h"

/* Reference-counted float buffer shared by a tensor and all its views. */
typedef struct cnn_storage {
    atomic_long refcount;
    float *data;
    int64_t numel;
    uint64_t id; /* unique in the process: a later storage at the same address has another id */
} cnn_storage;

/* ---- in-place writes ------------------------------------------------------------------------------
 * A counter moved by every write into a tensor that already existed (the in-place functions of the
 * API, optimizer steps, running statistics, and cnn_data, which hands out a writable pointer), so
 * that copies derived from a weight (weight_cache.h) know whether it may have changed since. */
void cnn_note_write(void);
uint64_t cnn_write_epoch(void);

typedef struct cnn_node cnn_node;

struct cnn_tensor {
    atomic_long refcount;
    cnn_storage *storage;
    int64_t offset; /* in elements */
    int ndim;
    int64_t shape[CNN_MAX_DIMS];
    int64_t stride[CNN_MAX_DIMS]; /* in elements; 0 for broadcast (expanded) dims */
    bool requires_grad;
    cnn_tensor *grad;   /* accumulated gradient of a leaf */
    cnn_node *grad_fn;  /* the op that produced this tensor, NULL for leaves */
};

/* ---- autograd nodes ---------------------------------------------------------------------------
 * An op that records itself creates a node holding its inputs and whatever backward needs (saved
 * tensors, small integer/float parameters, or a ctx allocation). backward receives the gradient of
 * the op's output and writes one new tensor per input into grad_inputs[i] for every input whose
 * needs_grad[i] is set (NULL is allowed and means "zero"). It runs with grad mode off, so it may use
 * the public ops freely.
 *
 * An input that is a leaf is the leaf itself (its gradient lands in leaf->grad). An input computed by
 * another op is a stand-in of the same geometry without data whose grad_fn is that op's node: the
 * graph keeps the nodes alive, never the activations, so an activation's memory lives only as long
 * as a user or a saved tensor holds it. backward may read the inputs' shapes, never their data.
 * A node is reference counted: its output tensor holds one reference, every stand-in another. */
enum { CNN_NODE_MAX_INPUTS = 4, CNN_NODE_MAX_SAVED = 6 };

typedef cnn_status (*cnn_backward_fn)(cnn_node *node, cnn_tensor *grad_output,
                                      cnn_tensor **grad_inputs);

struct cnn_node {
    const char *name;
    cnn_backward_fn backward;
    int n_inputs;
    cnn_tensor *inputs[CNN_NODE_MAX_INPUTS]; /* retained leaves or stand-ins (see above); NULL
                                                  for inputs not needing grad */
    bool needs_grad[CNN_NODE_MAX_INPUTS];
    int n_saved;
    cnn_tensor *saved[CNN_NODE_MAX_SAVED];   /* detached aliases, retained */
    int64_t ints[8];                          /* op parameters */
    double reals[4];
    void *ctx;                                /* op-owned allocation, freed with free_ctx */
    void (*free_ctx)(void *ctx);
    bool released;                            /* saved state dropped after backward */
    /* used by the backward engine */
    cnn_tensor *grad_accum;
    int64_t order;
    int pending;
    atomic_long refcount;
};

/* Attaches a new node to out when grad mode is on and one of the inputs requires grad; returns it
 * (for the caller to save tensors and parameters into) or NULL when no graph is recorded. NULL
 * entries in inputs are allowed (non-differentiable arguments). On allocation failure returns NULL
 * and sets *failed. */
cnn_node *cnn_record(cnn_tensor *out, const char *name, cnn_backward_fn backward, int n_inputs,
                     cnn_tensor *const *inputs, bool *failed);
/* Saves a detached alias of t in the node (cycles through the output are avoided this way). */
bool cnn_node_save(cnn_node *node, cnn_tensor *t);
/* Drops one reference; the last one frees the node and what it holds. */
void cnn_node_release(cnn_node *node);
/* The stand-in for a computed input t: t's geometry and grad_fn (one more reference to it), no data.
 * NULL + error on failure. */
cnn_tensor *cnn_shape_only(const cnn_tensor *t);

/* ---- errors ----------------------------------------------------------------------------------- */
/* Sets the thread's error (printf-style) and returns status; use as `return cnn_fail(...)`. */
cnn_status cnn_fail(cnn_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, for functions returning a pointer: sets the error and returns NULL. */
void *cnn_fail_null(cnn_status status, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
bool cnn_interrupted(void); /* cheap; long loops poll it between chunks of work */

/* ---- helpers ---------------------------------------------------------------------------------- */
/* Allocates a contiguous tensor of the given shape with uninitialised data; NULL + error on failure. */
cnn_tensor *cnn_alloc(int ndim, const int64_t *shape);
/* A view of base's storage with the given geometry (no autograd). */
cnn_tensor *cnn_make_view(cnn_tensor *base, int ndim, const int64_t *shape, const int64_t *stride,
                          int64_t offset);
/* "2x3x4" for a shape; the returned buffer is one of a few thread-local rotating buffers so that up
 * to four may be used in one error message. */
const char *cnn_shape_str(const cnn_tensor *t);
const char *cnn_dims_str(int ndim, const int64_t *shape);
/* Normalises a possibly negative dim for a tensor of ndim dims; -1 + error naming op when out of range. */
int cnn_wrap_dim(const char *op, int dim, int ndim);
bool cnn_same_shape(const cnn_tensor *a, const cnn_tensor *b);
int64_t cnn_shape_numel(int ndim, const int64_t *shape);
/* Contiguous float pointer for reading: t's own data when contiguous, else a copy in *tmp
 * (released by the caller with cnn_release). NULL + error on failure. */
const float *cnn_read_ptr(cnn_tensor *t, cnn_tensor **tmp);
/* Float pointer at element 0 of t (storage data + offset). */
static inline float *cnn_ptr(const cnn_tensor *t) { return t->storage->data + t->offset; }
/* Gradient reduction helper: grad summed to like's shape (a new reference). */
cnn_tensor *cnn_reduce_grad_to(cnn_tensor *grad, const cnn_tensor *like);

/* ---- random numbers (rng.c): bulk fills from the process generator ------------------------------ */
void cnn_rng_fill_uniform(float *out, int64_t n, float low, float high);
void cnn_rng_fill_normal(float *out, int64_t n, float mean, float std);
uint64_t cnn_rng_next_u64(void);

/* ---- memory accounting (tensor.c) ------------------------------------------------------------- */
/* Aligned storage allocation that the process-wide byte counter sees; NULL + error on failure. */
float *cnn_storage_alloc_floats(int64_t n);
/* 64-byte aligned blocks from the size-keyed cache (allocator.c). Scratch buffers of kernels pass
 * count_as_tensor = false so that only tensor bytes drive the Lua collector. */
void *cnn_block_alloc(size_t bytes, bool count_as_tensor);
void cnn_block_free(void *data, bool count_as_tensor);

/* ---- strided iteration (strided.c) ------------------------------------------------------------ */
enum { CNN_ITER_MAX_OPS = 4 };
/* Row kernel: n elements; operand k starts at ptrs[k] and advances by inner_strides[k]. */
typedef void (*cnn_row_fn)(void *ctx, int64_t n, float **ptrs, const int64_t *inner_strides);
/* Walks `shape` with nops operands (base pointers and per-dim strides, 0 for broadcast dims). */
void cnn_foreach_row(int ndim, const int64_t *shape, int nops, float *const *bases,
                     const int64_t (*strides)[CNN_MAX_DIMS], cnn_row_fn fn, void *ctx);
/* NumPy broadcasting of a and b into (*ndim, shape); false + error naming op otherwise. */
bool cnn_broadcast_shape(const char *op, const cnn_tensor *a, const cnn_tensor *b, int *ndim,
                         int64_t *shape);
/* t's strides seen through a broadcast to (ndim, shape). */
void cnn_broadcast_strides(const cnn_tensor *t, int ndim, const int64_t *shape, int64_t *strides);

/* Keeps the object holding the runtime loaded for the life of the process (pin.c). */
void cnn_pin_library(void);

#define CNN_UNUSED(x) ((void)(x))

#endif /* CNN_INTERNAL_H */
