/* conv_rows.h - stride-1 convolutions with few output channels, with the vector lanes along image
 * rows (the forward pass and the weight gradient; conv_direct.c chooses them).
 *
 * A register block 16 or 32 output channels wide would be mostly idle for a first layer's 6
 * channels or an input gradient's 3 to 11. With stride 1 the pixels that 16 or 32 consecutive
 * output positions read through one kernel tap are consecutive in a copy of the image made for that
 * tap's kernel column (shifted by the column and padded with zeros, at the output's row pitch), so
 * the vector lanes run along the output positions, the kernels are read in place as broadcasts, and
 * the outputs (or output gradients) are read and written as the NCHW planes they are. */
#ifndef CNN_CONV_ROWS_H
#define CNN_CONV_ROWS_H

#include "conv_direct.h"

/* Whether the forward pass suits this path: stride 1, fewer than CNN_DIRECT_FEW_OUTPUTS output
 * channels, and maps of 32 positions or more (on smaller ones most of each 32-lane block idles). */
bool cnn_rows_forward_suits(const cnn_direct_conv *g);

/* output (N, O, out_h, out_w) = conv(input, weight) + bias (O, or NULL); g->sh == g->sw == 1. */
cnn_status cnn_rows_forward(const cnn_direct_conv *g, const float *input, const float *bias, float *output,
                            const char *op);

/* Whether the weight gradient is faster this way than as a product over output channels: stride 1,
 * at most 6 output channels (one block of sums) and rows of 8 outputs or more (12 or more from 16
 * input channels on, where the product skips the padding tap by tap). */
bool cnn_rows_weight_grad_suits(const cnn_direct_conv *g);

/* grad_weight (O, C, kh, kw), contiguous and overwritten, from input and grad_output
 * (N, O, out_h, out_w); g->sh == g->sw == 1, g->weight is not read. */
cnn_status cnn_rows_weight_grad(const cnn_direct_conv *g, const float *input, const float *grad_output,
                                float *grad_weight, const char *op);

#endif /* CNN_CONV_ROWS_H */
