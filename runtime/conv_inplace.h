/* conv_inplace.h - convolutions over few output positions, with the kernels read in place.
 *
 * With a handful of positions per image (ResNet's last stage: 512 channels on 1x1 maps, batch 32)
 * a convolution is a product of a large weight with a narrow matrix, and its time goes into
 * reading the weight: packing it into the direct product's panels (conv_direct.c) reads all of
 * it, picking out the kept taps, and writes the panels back. Here the weight is read once, in
 * place, as the broadcast rows of the register block (8 output channels at a time, any strides, so
 * flipped kernels too), against the unfolded input (kept (channel, tap) pairs x positions), which is
 * small. It applies when every kept tap lands inside the input for every output position (1x1
 * outputs, or no padding), so that the unfolded input holds no padding to multiply. */
#ifndef CNN_CONV_INPLACE_H
#define CNN_CONV_INPLACE_H

#include "conv_direct.h"

/* Whether this path suits g: few output positions over the batch (at most 64) and every tap that
 * reaches the input reaching it from every output position. */
bool cnn_inplace_suits(const cnn_direct_conv *g);

/* output (N, O, out_h, out_w) = conv(input, g->weight) + bias (O, or NULL). */
cnn_status cnn_inplace_forward(const cnn_direct_conv *g, const float *input, const float *bias, float *output,
                               const char *op);

#endif /* CNN_CONV_INPLACE_H */
