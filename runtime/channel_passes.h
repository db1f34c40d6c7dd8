/* channel_passes.h - the two kinds of pass batch normalisation is made of, over (N, C, S) inputs:
 * channel c of image n is the contiguous strip at (n*C + c)*S (S = H*W for images, 1 for (N, C)).
 *
 *   cnn_channel_sums: for every channel c, over all n and s,
 *       a[c] = sum(u - pu[c])        b[c] = sum((u - pu[c]) * (v - pv[c]))
 *     (mean and variance: u = v = x around a pivot; batch norm's backward: u = dy, v = x, pv = mean)
 *   cnn_channel_map: out = (x - m[c]) * k[c] + b[c] + u * ku[c]   (the u term optional)
 *
 * Sums are taken in float over pieces of a few hundred values per vector lane and the pieces in
 * double, in an order fixed by the shape alone: the result does not depend on the thread count.
 * Both return CNN_OK, CNN_ERR_INTERRUPTED or CNN_ERR_MEMORY, with a message naming op. */
#ifndef CNN_CHANNEL_PASSES_H
#define CNN_CHANNEL_PASSES_H

#include "internal.h"

typedef struct cnn_channel_geometry {
    int64_t N, C, S;
} cnn_channel_geometry;

/* pu may be NULL (zero); a and b have C entries. */
cnn_status cnn_channel_sums(cnn_channel_geometry g, const float *u, const float *pu, const float *v,
                            const float *pv, double *a, double *b, bool parallel, const char *op);

/* u and ku may both be NULL; out may be x. */
cnn_status cnn_channel_map(cnn_channel_geometry g, float *out, const float *x, const float *m, const float *k,
                           const float *b, const float *u, const float *ku, bool parallel, const char *op);

#endif
