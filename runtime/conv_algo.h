/* conv_algo.h - the numerical core shared by conv2d and conv_transpose2d: which algorithm computes a
 * convolution, its input gradient and its weight gradient. conv_transpose2d's forward pass is
 * conv2d's input gradient and vice versa, so both ops are thin shells around these two routines.
 *
 * Buffers are raw contiguous float arrays:
 *   input  (N, C, H, W)           weight (O, C/G, kH, kW)           output (N, O, oH, oW)
 *
 * The algorithms, best first (measured per shape in bench/, see conv_algo.c):
 *   winograd.c       3x3, stride 1, ungrouped, 8+ channels, outputs of 4x4 and more: F(4x4, 3x3)
 *   conv_depthwise.c one channel per group (depthwise), column stride 1 or 2: per-plane stencils
 *   conv_direct.c    other ungrouped convolutions and their weight gradients; input gradients of
 *                    stride 1 (a convolution with the flipped kernels); conv_rows.c within it for
 *                    stride 1 and few output channels (vector lanes along image rows)
 *   conv_fold.c      input gradients of stride 1 with few input channels and 8+ output channels:
 *                    a product with the transposed kernels, folded back onto the images
 *   conv_gemm.c      im2col + sgemm: other groups, strided input gradients, first layers with 1-3
 *                    channels and 3x3 kernels, builds without AVX-512
 * CNN_CONV_ALGO=im2col in the environment forces the last for everything and CNN_CONV_ALGO=direct
 * leaves out Winograd (for comparisons and for users who want the direct sum's rounding). */
#ifndef CNN_CONV_ALGO_H
#define CNN_CONV_ALGO_H

#include "conv_gemm.h"

/* output = conv(input, weight) + bias; bias (O) may be NULL. op names the caller in errors. */
cnn_status cnn_conv_forward(const cnn_conv_plan *p, const float *input, const float *weight, const float *bias,
                            float *output, const char *op);

/* From grad_output (N, O, oH, oW): grad_input (N, C, H, W) and/or grad_weight (O, C/G, kH, kW),
 * each overwritten, either may be NULL. input is read only for grad_weight, weight only for
 * grad_input. */
cnn_status cnn_conv_backward(const cnn_conv_plan *p, const float *input, const float *weight,
                             const float *grad_output, float *grad_input, float *grad_weight, const char *op);

#endif /* CNN_CONV_ALGO_H */
