/* conv_fold.h - the input gradient of an ungrouped convolution as one product and a fold.
 *
 * The unfolded input gradient (C*kh*kw, positions) is the product of the transposed kernels
 * (C*kh*kw, O) with the output gradient (O, positions); col2im then adds every entry onto the pixel
 * it came from. For convolutions with few input channels (LeNet's 6->16 5x5) the alternative, a
 * convolution of the zero-padded output gradient with the flipped kernels (conv_rows.h), sums over
 * the whole padded border, k - 1 wide on each side of an unpadded convolution: 40% of its
 * arithmetic is useful there, against 99% for this product, whose sums are only O long but whose
 * blocks are full (kernel taps by positions of several images side by side).
 *
 * Buffers of one chunk of B images:
 *   staging (O, B*P)             the chunk's output gradients side by side
 *   col     (C*kh*kw, B*P)       the unfolded input gradient, folded onto the images
 * Chunks are spread over threads; each writes the input gradients of its own images only. */
#ifndef CNN_CONV_FOLD_H
#define CNN_CONV_FOLD_H

#include "conv_gemm.h"

/* Whether one image's buffers stay within the budget of a chunk (512 KB): larger images are left to
 * the paths that need no unfolded matrix. */
bool cnn_fold_fits(const cnn_conv_plan *p);

/* grad_input (N, C, H, W), overwritten, from grad_output (N, O, out_h, out_w) and weight
 * (O, C, kh, kw); plan->groups must be 1. Any stride, padding and dilation. */
cnn_status cnn_fold_input_grad(const cnn_conv_plan *p, const float *weight, const float *grad_output,
                               float *grad_input, const char *op);

#endif /* CNN_CONV_FOLD_H */
