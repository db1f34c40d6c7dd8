/* Choosing a convolution algorithm (see conv_algo.h). */
#include "conv_algo.h"

#include <stdlib.h>
#include <string.h>

#include "conv_depthwise.h"
#include "conv_direct.h"
#include "conv_fold.h"
#include "winograd.h"

typedef enum { ALGO_AUTO, ALGO_DIRECT, ALGO_IM2COL } algo_override;

/* CNN_CONV_ALGO, read at every call so that a process can compare algorithms. */
static algo_override override(void) {
    const char *v = getenv("CNN_CONV_ALGO");
    if (!v) return ALGO_AUTO;
    if (strcmp(v, "im2col") == 0) return ALGO_IM2COL;
    if (strcmp(v, "direct") == 0) return ALGO_DIRECT;
    return ALGO_AUTO;
}

static bool ungrouped_direct(const cnn_conv_plan *p, algo_override a) {
    return a != ALGO_IM2COL && p->groups == 1 && cnn_direct_available();
}

/* The direct product's register block is 16 or 32 output channels wide and sums over input channels
 * times taps: sums shorter than 32 (a first layer's 1 to 3 channels with a 3x3 kernel) cost more in
 * setup than im2col's copy (LeNet-like 1->16 and 3->32 3x3 first layers run 1.1-1.3x faster
 * through im2col; 3->64 7x7 2.2x faster direct). With fewer than CNN_DIRECT_FEW_OUTPUTS outputs a
 * stride-1 convolution turns the block around (lanes along image rows) and pays from 5x5 kernels on
 * (LeNet's 1->6 5x5: 2.2x faster than im2col); on maps of fewer than 32 positions the direct
 * product stays the other way round (1x1 maps, 512->10: 2.6x faster than im2col). Weight gradients
 * are always faster direct. An input gradient is a stride-1 convolution with the channels swapped;
 * through im2col it pays for col2im's scattered additions on top, so direct wins there from 6 output
 * channels but not below (a 3->32 first layer's input gradient: 1.4x slower); fold_suits takes
 * some of these first. */
static bool direct_suits(int64_t in_channels, int64_t out_channels, const cnn_conv_geometry *g, bool stride1) {
    const int64_t sum = in_channels * g->kernel_h * g->kernel_w;
    if (out_channels < CNN_DIRECT_FEW_OUTPUTS) return stride1 && sum >= 25;
    return sum >= 32;
}

/* F(4x4, 3x3) for a convolution from C to O channels producing out_h x out_w (for the input
 * gradient: from O to C channels producing the input's size). Down to 4x4 outputs (one tile per
 * image) it beats the direct product (ResNet's 128 and 256 channels on 4x4 maps: 1.55x and 1.5x
 * forward, 1.3x and 1.15x with both gradients); on 2x2 outputs three quarters of a tile would be
 * padding, and the direct product, which skips padding, does less arithmetic. */
static bool winograd_applies(const cnn_conv_plan *p, algo_override a, int64_t C, int64_t O, int64_t out_h,
                             int64_t out_w) {
    const cnn_conv_geometry *g = &p->geo;
    return a == ALGO_AUTO && p->groups == 1 && g->kernel_h == 3 && g->kernel_w == 3 && g->stride_h == 1 &&
           g->stride_w == 1 && g->dilation_h == 1 && g->dilation_w == 1 && out_h >= 4 && out_w >= 4 &&
           cnn_winograd_suits(C, O, out_h, out_w);
}

/* Depthwise: one input and one output channel per group, no dilation; NULL geometry when not. */
static bool depthwise_of(const cnn_conv_plan *p, algo_override a, cnn_depthwise_conv *d) {
    const cnn_conv_geometry *g = &p->geo;
    if (a == ALGO_IM2COL || p->groups < 2 || g->channels != 1 || p->out_channels != p->groups ||
        g->dilation_h != 1 || g->dilation_w != 1)
        return false;
    *d = (cnn_depthwise_conv){.N = p->batch, .C = p->groups, .H = g->height, .W = g->width, .out_h = g->out_h,
                              .out_w = g->out_w, .kh = g->kernel_h, .kw = g->kernel_w, .sh = g->stride_h,
                              .sw = g->stride_w, .pad_top = g->pad_top, .pad_left = g->pad_left};
    return cnn_depthwise_suits(d);
}

/* The convolution of the plan as a direct product; weight (O, C, kh, kw) read through strides. */
static cnn_direct_conv direct_of(const cnn_conv_plan *p, const float *weight) {
    const cnn_conv_geometry *g = &p->geo;
    return (cnn_direct_conv){.N = p->batch, .C = g->channels, .H = g->height, .W = g->width,
                             .O = p->out_channels, .out_h = g->out_h, .out_w = g->out_w,
                             .kh = g->kernel_h, .kw = g->kernel_w, .sh = g->stride_h, .sw = g->stride_w,
                             .dh = g->dilation_h, .dw = g->dilation_w, .pad_top = g->pad_top,
                             .pad_left = g->pad_left, .weight = weight, .w_o = g->channels * g->kernel_h * g->kernel_w,
                             .w_c = g->kernel_h * g->kernel_w, .w_i = g->kernel_w, .w_j = 1, .key = p->weight};
}

cnn_status cnn_conv_forward(const cnn_conv_plan *p, const float *input, const float *weight, const float *bias,
                            float *output, const char *op) {
    const cnn_conv_geometry *g = &p->geo;
    const algo_override a = override();
    if (p->batch == 0 || p->out_channels == 0 || g->out_h * g->out_w == 0 || cnn_geometry_col_rows(g) == 0)
        return cnn_conv_im2col_forward(p, input, weight, bias, output, op);
    if (winograd_applies(p, a, g->channels, p->out_channels, g->out_h, g->out_w))
        return cnn_winograd_conv3x3(&(cnn_winograd_conv){.N = p->batch, .C = g->channels, .H = g->height,
                                                         .W = g->width, .O = p->out_channels, .out_h = g->out_h,
                                                         .out_w = g->out_w, .pad_top = g->pad_top,
                                                         .pad_left = g->pad_left, .input = input, .weight = weight,
                                                         .w_o = g->channels * 9, .w_c = 9, .w_i = 3, .w_j = 1,
                                                         .bias = bias, .output = output, .key = p->weight},
                                    op);
    cnn_depthwise_conv dw;
    if (depthwise_of(p, a, &dw)) return cnn_depthwise_forward(&dw, input, weight, false, bias, output, op);
    if (ungrouped_direct(p, a) &&
        direct_suits(g->channels, p->out_channels, g, g->stride_h == 1 && g->stride_w == 1)) {
        const cnn_direct_conv d = direct_of(p, weight);
        return cnn_direct_forward(&d, input, bias, output, op);
    }
    return cnn_conv_im2col_forward(p, input, weight, bias, output, op);
}

/* The input gradient as a product and a fold (conv_fold.h) for few input channels and 8 or more
 * output channels: the adjoint convolution would run C < 12 outputs through a block 32 wide
 * (Winograd) or sum over its zero border (the lanes-along-rows product), which is widest, k - 1 on
 * each side, for an unpadded convolution. Measured on one core against what it replaces: LeNet's
 * 6->16 5x5 2.0x, 6->8 5x5 1.5x, 8->32 and 10->20 3x3 unpadded 1.3-3x and padded 1.1-1.5x
 * (Winograd), 1->8 5x5 and 3->8 3x3 unpadded 1.6x and 2.5x (im2col); padded convolutions that
 * Winograd does not take stay with the rows product (0.8-1.1x here). */
static bool fold_suits(const cnn_conv_plan *p, algo_override a, bool winograd) {
    const cnn_conv_geometry *g = &p->geo;
    return ungrouped_direct(p, a) && g->stride_h == 1 && g->stride_w == 1 && g->channels < CNN_DIRECT_FEW_OUTPUTS &&
           p->out_channels >= 8 && (winograd || (g->pad_top == 0 && g->pad_left == 0)) && cnn_fold_fits(p);
}

/* grad_input as a convolution of grad_output with the kernels flipped and the channels swapped:
 * stride 1 only (a strided convolution's adjoint spreads each output over a strided grid). */
static cnn_status input_grad_as_convolution(const cnn_conv_plan *p, algo_override a, const float *weight,
                                            const float *grad_output, float *grad_input, const char *op,
                                            bool *done) {
    const cnn_conv_geometry *g = &p->geo;
    const int64_t C = g->channels, O = p->out_channels, kh = g->kernel_h, kw = g->kernel_w;
    *done = false;
    if (g->stride_h != 1 || g->stride_w != 1 || !ungrouped_direct(p, a)) return CNN_OK;
    // gx[c][y][x] = sum gy[o][y - pad' + i*dh][x - pad_left' + j*dw] W[o][c][kh-1-i][kw-1-j]
    const int64_t pad_top = g->dilation_h * (kh - 1) - g->pad_top, pad_left = g->dilation_w * (kw - 1) - g->pad_left;
    const bool winograd = winograd_applies(p, a, O, C, g->height, g->width);
    if (fold_suits(p, a, winograd)) {
        *done = true;
        return cnn_fold_input_grad(p, weight, grad_output, grad_input, op);
    }
    if (winograd) {
        *done = true;
        return cnn_winograd_conv3x3(&(cnn_winograd_conv){.N = p->batch, .C = O, .H = g->out_h, .W = g->out_w, .O = C,
                                                         .out_h = g->height, .out_w = g->width, .pad_top = pad_top,
                                                         .pad_left = pad_left, .input = grad_output,
                                                         .weight = weight + 8, .w_o = 9, .w_c = C * 9, .w_i = -3,
                                                         .w_j = -1, .output = grad_input},
                                    op);
    }
    if (C < 6 || !direct_suits(O, C, g, true)) return CNN_OK; // a first layer's 1 to 3 channels: im2col
    *done = true;
    const cnn_direct_conv d = {.N = p->batch, .C = O, .H = g->out_h, .W = g->out_w, .O = C, .out_h = g->height,
                               .out_w = g->width, .kh = kh, .kw = kw, .sh = 1, .sw = 1, .dh = g->dilation_h,
                               .dw = g->dilation_w, .pad_top = pad_top, .pad_left = pad_left,
                               .weight = weight + (kh - 1) * kw + (kw - 1), .w_o = kh * kw, .w_c = C * kh * kw,
                               .w_i = -kw, .w_j = -1};
    return cnn_direct_forward(&d, grad_output, NULL, grad_input, op);
}

cnn_status cnn_conv_backward(const cnn_conv_plan *p, const float *input, const float *weight,
                             const float *grad_output, float *grad_input, float *grad_weight, const char *op) {
    const cnn_conv_geometry *g = &p->geo;
    const algo_override a = override();
    if (p->batch == 0 || p->out_channels == 0 || g->out_h * g->out_w == 0 || cnn_geometry_col_rows(g) == 0)
        return cnn_conv_im2col_backward(p, input, weight, grad_output, grad_input, grad_weight, op);
    cnn_depthwise_conv dw;
    if (depthwise_of(p, a, &dw)) {
        if (grad_input && g->stride_h == 1 && g->stride_w == 1) {
            // the convolution of grad_output with each kernel rotated, padded by k - 1 - pad
            const cnn_depthwise_conv back = {.N = p->batch, .C = p->groups, .H = g->out_h, .W = g->out_w,
                                             .out_h = g->height, .out_w = g->width, .kh = g->kernel_h,
                                             .kw = g->kernel_w, .sh = 1, .sw = 1,
                                             .pad_top = g->kernel_h - 1 - g->pad_top,
                                             .pad_left = g->kernel_w - 1 - g->pad_left};
            cnn_status st = cnn_depthwise_forward(&back, grad_output, weight, true, NULL, grad_input, op);
            if (st != CNN_OK) return st;
            grad_input = NULL;
        }
        if (grad_weight) {
            cnn_status st = cnn_depthwise_weight_grad(&dw, input, grad_output, grad_weight, op);
            if (st != CNN_OK) return st;
            grad_weight = NULL;
        }
        if (!grad_input) return CNN_OK;
        return cnn_conv_im2col_backward(p, input, weight, grad_output, grad_input, NULL, op);
    }
    if (grad_input) {
        bool done;
        cnn_status st = input_grad_as_convolution(p, a, weight, grad_output, grad_input, op, &done);
        if (st != CNN_OK) return st;
        if (done) grad_input = NULL;
    }
    if (grad_weight && ungrouped_direct(p, a)) {
        const cnn_direct_conv d = direct_of(p, NULL);
        cnn_status st = cnn_direct_weight_grad(&d, input, grad_output, grad_weight, op);
        if (st != CNN_OK) return st;
        grad_weight = NULL;
    }
    if (!grad_input && !grad_weight) return CNN_OK;
    return cnn_conv_im2col_backward(p, input, weight, grad_output, grad_input, grad_weight, op);
}
