/* conv_depthwise.h - depthwise convolutions (groups == in == out channels): one small kernel per
 * channel plane. As a product per group these are 1-row matrix products, the worst case for any
 * GEMM; here each plane is a stencil, 16 output columns per vector register, over a zero-padded copy
 * of the plane (column stride 1 or 2, no dilation). */
#ifndef CNN_CONV_DEPTHWISE_H
#define CNN_CONV_DEPTHWISE_H

#include "internal.h"

typedef struct cnn_depthwise_conv {
    int64_t N, C, H, W;        /* input (N, C, H, W); output (N, C, out_h, out_w) */
    int64_t out_h, out_w;
    int64_t kh, kw, sh, sw;
    int64_t pad_top, pad_left; /* zeros before the first row / column; negative crops */
} cnn_depthwise_conv;

/* Whether the stencil path handles this geometry (AVX-512 builds; column stride 1 or 2). */
bool cnn_depthwise_suits(const cnn_depthwise_conv *g);

/* output = the convolution of each plane with its kernel + bias (C, or NULL). weight (C, 1, kh, kw);
 * flip reads every kernel rotated by 180 degrees (the input gradient of a stride-1 convolution). */
cnn_status cnn_depthwise_forward(const cnn_depthwise_conv *g, const float *input, const float *weight, bool flip,
                                 const float *bias, float *output, const char *op);

/* grad_weight (C, 1, kh, kw), overwritten, from input and grad_output (N, C, out_h, out_w). */
cnn_status cnn_depthwise_weight_grad(const cnn_depthwise_conv *g, const float *input, const float *grad_output,
                                     float *grad_weight, const char *op);

#endif /* CNN_CONV_DEPTHWISE_H */
