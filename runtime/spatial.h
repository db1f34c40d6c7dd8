/* spatial.h - what the pooling and resampling ops share: they all work plane by plane on the last
 * two dims of a (C, H, W) or (N, C, H, W) tensor, and backward gets a zeroed input-shaped gradient
 * to scatter into. */
#ifndef CNN_SPATIAL_H
#define CNN_SPATIAL_H

#include <string.h>

#include "internal.h"

/* Work (in elements) below which a loop over planes stays on one thread. */
enum { CNN_SPATIAL_PARALLEL_MIN = 1 << 15 };

/* Product of all dims but the last two: the number of planes. */
static inline int64_t cnn_spatial_count(const cnn_tensor *t) {
    int64_t n = 1;
    for (int d = 0; d < t->ndim - 2; d++) n *= t->shape[d];
    return n;
}

/* Number of H x W planes of a 3-d or 4-d tensor; false + error naming op for other ranks. */
static inline bool cnn_spatial_planes(const char *op, const cnn_tensor *t, int64_t *planes) {
    if (t->ndim != 3 && t->ndim != 4) {
        cnn_fail(CNN_ERR_SHAPE, "%s: expected a 3-d (C, H, W) or 4-d (N, C, H, W) input but got shape %s", op,
                 cnn_shape_str(t));
        return false;
    }
    *planes = cnn_spatial_count(t);
    return true;
}

/* A new tensor shaped like t with its last two dims replaced by h x w. */
static inline cnn_tensor *cnn_spatial_alloc(const cnn_tensor *t, int64_t h, int64_t w) {
    int64_t shape[CNN_MAX_DIMS];
    memcpy(shape, t->shape, sizeof shape);
    shape[t->ndim - 2] = h;
    shape[t->ndim - 1] = w;
    return cnn_alloc(t->ndim, shape);
}

/* A zero tensor shaped like t (the gradient backward scatters into). */
static inline cnn_tensor *cnn_spatial_zeros_like(const cnn_tensor *t) {
    cnn_tensor *z = cnn_alloc(t->ndim, t->shape);
    if (z) memset(cnn_ptr(z), 0, (size_t)cnn_numel(z) * sizeof(float));
    return z;
}

#endif /* CNN_SPATIAL_H */
