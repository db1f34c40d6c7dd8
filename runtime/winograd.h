/* winograd.h - 3x3 convolutions of stride 1 by Winograd's minimal filtering F(4x4, 3x3).
 *
 * Every 4x4 block of outputs ("tile") comes from a 6x6 patch d of each input channel:
 *   Y = A^T [ sum_c (G g G^T) (.) (B^T d B) ] A
 * which takes 36 multiplications per tile, input and output channel where the direct sum takes
 * 144: the products become 36 independent matrix products (one per point of the 6x6 transform
 * domain) of (tiles x C) by (C x O). The transforms cost a few vector operations per tile and
 * channel. Errors are a few times those of the direct sum (Lavin & Gray's interpolation points
 * 0, +-1, +-2), well within the convolution tests' tolerances.
 *
 * The same routine computes the input gradient of such a convolution: that is the convolution of
 * the output gradient with the kernels flipped and input/output channels swapped (weight strides
 * express both), padded by 2 - pad. */
#ifndef CNN_WINOGRAD_H
#define CNN_WINOGRAD_H

#include "weight_cache.h"
#include "internal.h"

typedef struct cnn_winograd_conv {
    int64_t N, C, H, W;        /* input (N, C, H, W) */
    int64_t O, out_h, out_w;   /* output (N, O, out_h, out_w) */
    int64_t pad_top, pad_left; /* implicit zeros before the first input row / column */
    const float *input;
    const float *weight;       /* element (o, c, i, j) at weight[o*w_o + c*w_c + i*w_i + j*w_j] */
    int64_t w_o, w_c, w_i, w_j;
    const float *bias;         /* (O) or NULL */
    float *output;             /* overwritten */
    cnn_weight_key key;        /* whose values weight holds, when known (storage 0: not) */
} cnn_winograd_conv;

/* Whether F(4x4, 3x3) pays for a 3x3, stride 1, undilated, ungrouped convolution of these sizes
 * on this machine (AVX-512 builds; enough channels to fill vector registers; outputs of at least
 * 3x3). */
bool cnn_winograd_suits(int64_t C, int64_t O, int64_t out_h, int64_t out_w);

/* out = conv3x3(in, weight) + bias; op names the caller in errors (out of memory, interrupted). */
cnn_status cnn_winograd_conv3x3(const cnn_winograd_conv *p, const char *op);

#endif /* CNN_WINOGRAD_H */
