/* conv_direct.h - ungrouped convolutions as products that read the image in place.
 *
 * The convolution is the product of the unfolded image (positions x taps, the im2col matrix) with
 * the kernels (taps x output channels). Here the unfolded matrix is never written: each image is
 * copied once with its zero padding, and the product's register block reads a[position][tap] at
 * padded_image + position_offset + tap_offset, so that any stride, dilation and padding is a
 * table of offsets (gemm_kernel.h, gather variant). Outputs come out as (position, channel) rows
 * and are transposed to NCHW planes, adding the bias, on the way out. Taps that fall in the padding
 * for every output position (all but the centre tap on a 1x1 map) are left out of the product.
 *
 * The weight gradient is the same product turned around: (taps x positions) by the output
 * gradient as (positions x channels). Stride-1 convolutions with few output channels turn the
 * block the other way (lanes along image rows, conv_rows.h), and convolutions over a few positions
 * with a large weight read the kernels in place (conv_inplace.h); cnn_direct_forward and
 * cnn_direct_weight_grad hand those over. */
#ifndef CNN_CONV_DIRECT_H
#define CNN_CONV_DIRECT_H

#include "internal.h"
#include "weight_cache.h"

typedef struct cnn_direct_conv {
    int64_t N, C, H, W;          /* input (N, C, H, W) */
    int64_t O, out_h, out_w;     /* output (N, O, out_h, out_w) */
    int64_t kh, kw, sh, sw, dh, dw;
    int64_t pad_top, pad_left;   /* zeros before the first row / column; negative crops */
    const float *weight;         /* element (o, c, i, j) at weight[o*w_o + c*w_c + i*w_i + j*w_j] */
    int64_t w_o, w_c, w_i, w_j;
    cnn_weight_key key;          /* whose values weight holds, when known (storage 0: not) */
} cnn_direct_conv;

/* Below this many output channels a stride-1 forward runs its vector lanes along image rows rather
 * than over output channels. */
enum { CNN_DIRECT_FEW_OUTPUTS = 12 };

/* Whether this path is built (AVX-512). */
bool cnn_direct_available(void);

/* output (N, O, out_h, out_w) = conv(input, weight) + bias (O, or NULL). */
cnn_status cnn_direct_forward(const cnn_direct_conv *g, const float *input, const float *bias, float *output,
                              const char *op);

/* grad_weight (O, C, kh, kw), contiguous and overwritten, from input and grad_output
 * (N, O, out_h, out_w). g->weight is not read. */
cnn_status cnn_direct_weight_grad(const cnn_direct_conv *g, const float *input, const float *grad_output,
                                  float *grad_weight, const char *op);

#endif /* CNN_CONV_DIRECT_H */
