/* conv_shape.h - argument checks shared by conv2d and conv_transpose2d. Each returns false with the
 * thread's error set to a message naming op, the shapes and the offending value. */
#ifndef CNN_CONV_SHAPE_H
#define CNN_CONV_SHAPE_H

#include "conv_algo.h"

/* input (N, C, H, W) and weight (4-d) are both 4-d. */
bool cnn_conv_check_ranks(const char *op, const cnn_tensor *input, const cnn_tensor *weight);
/* stride and dilation >= 1, groups >= 1, explicit padding >= 0, a known padding mode. */
bool cnn_conv_check_options(const char *op, const cnn_conv2d_options *o, const cnn_tensor *input,
                            const cnn_tensor *weight);
/* groups divides both channel counts. */
bool cnn_conv_check_groups(const char *op, int64_t in_channels, int64_t out_channels, int groups,
                           const cnn_tensor *input, const cnn_tensor *weight);
/* bias is NULL or a 1-d tensor of out_channels values. */
bool cnn_conv_check_bias(const char *op, const cnn_tensor *bias, int64_t out_channels,
                         const cnn_tensor *weight);
/* Every size handed to sgemm fits its int arguments. */
bool cnn_conv_check_plan_size(const char *op, const cnn_conv_plan *p);

/* The parameters an autograd node keeps in node->ints (padding already resolved to top/left). */
enum {
    CNN_CONV_STRIDE_H,
    CNN_CONV_STRIDE_W,
    CNN_CONV_PAD_TOP,
    CNN_CONV_PAD_LEFT,
    CNN_CONV_DIL_H,
    CNN_CONV_DIL_W,
    CNN_CONV_GROUPS,
    CNN_CONV_N_PARAMS
};

/* The plan of a convolution whose input has in_shape (N, C, H, W), whose weight has w_shape
 * (O, C/G, kH, kW) and whose output is out_h x out_w. */
static inline cnn_conv_plan cnn_conv_make_plan(const int64_t in_shape[4], const int64_t w_shape[4],
                                               const int64_t params[CNN_CONV_N_PARAMS], int64_t out_h,
                                               int64_t out_w) {
    cnn_conv_plan p = {.geo = {.channels = w_shape[1],
                               .height = in_shape[2],
                               .width = in_shape[3],
                               .kernel_h = w_shape[2],
                               .kernel_w = w_shape[3],
                               .stride_h = params[CNN_CONV_STRIDE_H],
                               .stride_w = params[CNN_CONV_STRIDE_W],
                               .pad_top = params[CNN_CONV_PAD_TOP],
                               .pad_left = params[CNN_CONV_PAD_LEFT],
                               .dilation_h = params[CNN_CONV_DIL_H],
                               .dilation_w = params[CNN_CONV_DIL_W],
                               .out_h = out_h,
                               .out_w = out_w},
                       .batch = in_shape[0],
                       .groups = params[CNN_CONV_GROUPS],
                       .out_channels = w_shape[0]};
    return p;
}

/* The plan's dimensions as one string, e.g. "stride 2x2, padding 1x1, dilation 1x1, groups 1". */
const char *cnn_conv_options_str(const cnn_conv2d_options *o);

#endif /* CNN_CONV_SHAPE_H */
