/* conv_gemm.h - convolution as im2col + sgemm (the general path of conv_algo.h), and its two
 * adjoints (input gradient through col2im, weight gradient through a product with
 * the column matrix).
 *
 * Buffers are raw contiguous float arrays:
 *   input  (N, C, H, W)           weight (O, C/G, kH, kW)           output (N, O, oH, oW)
 * Several images are unfolded side by side into one wide column matrix so that each group needs one
 * large matrix product per chunk of images rather than one small product per image. */
#ifndef CNN_CONV_GEMM_H
#define CNN_CONV_GEMM_H

#include "im2col.h"
#include "internal.h"
#include "weight_cache.h"

typedef struct cnn_conv_plan {
    cnn_conv_geometry geo; /* one image of one group: geo.channels = C / G */
    int64_t batch;         /* N */
    int64_t groups;        /* G */
    int64_t out_channels;  /* O, over all groups */
    cnn_weight_key weight; /* the forward's weight, for copies derived from it (weight_cache.h) */
} cnn_conv_plan;

/* output = conv(input, weight) + bias; bias (O) may be NULL. op names the caller in errors. */
cnn_status cnn_conv_im2col_forward(const cnn_conv_plan *p, const float *input, const float *weight,
                                   const float *bias, float *output, const char *op);

/* From grad_output (N, O, oH, oW): grad_input (N, C, H, W) and/or grad_weight (O, C/G, kH, kW),
 * each overwritten, either may be NULL. input is read only for grad_weight, weight only for
 * grad_input. */
cnn_status cnn_conv_im2col_backward(const cnn_conv_plan *p, const float *input, const float *weight,
                                    const float *grad_output, float *grad_input, float *grad_weight,
                                    const char *op);

/* grad_bias (channels) = sum over n and the plane of grad (N, channels, plane). */
void cnn_conv_bias_grad(const float *grad, int64_t batch, int64_t channels, int64_t plane, float *grad_bias);

#endif /* CNN_CONV_GEMM_H */
