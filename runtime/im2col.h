/* im2col.h - unfolding image patches into the columns of a matrix, and folding them back.
 *
 * Convolution becomes one matrix product once every receptive field is laid out as a column:
 *   col (C*kH*kW, oH*oW), row r = (c, ki, kj), column p = (oy, ox),
 *   col[r][p] = image[c][oy*stride_h - pad_top + ki*dilation_h][ox*stride_w - pad_left + kj*dilation_w]
 * with zero where the index falls into the padding. col2im is the adjoint: it adds every column
 * entry back onto the pixel it came from, which is what the input gradient needs.
 *
 * Bottom/right padding is implicit in out_h/out_w, so asymmetric ("same") padding needs no field. */
#ifndef CNN_IM2COL_H
#define CNN_IM2COL_H

#include <stdint.h>

typedef struct cnn_conv_geometry {
    int64_t channels, height, width; /* of one image, within one group */
    int64_t kernel_h, kernel_w;
    int64_t stride_h, stride_w;
    int64_t pad_top, pad_left;
    int64_t dilation_h, dilation_w;
    int64_t out_h, out_w;
} cnn_conv_geometry;

/* Rows of the column matrix: channels * kernel_h * kernel_w. */
static inline int64_t cnn_geometry_col_rows(const cnn_conv_geometry *g) {
    return g->channels * g->kernel_h * g->kernel_w;
}

/* image (C, H, W) -> col (C*kH*kW, oH*oW), written at col with a distance of col_row_stride floats
 * between rows (>= oH*oW), so that several images can share one wide matrix side by side. */
void cnn_im2col(const float *image, const cnn_conv_geometry *g, float *col, int64_t col_row_stride);

/* image (C, H, W) += fold(col (C*kH*kW, oH*oW)); col rows col_row_stride floats apart. Entries of
 * col whose source lies in the padding may be set to zero on the way (they carry nothing). */
void cnn_col2im(float *col, const cnn_conv_geometry *g, float *image, int64_t col_row_stride);

#endif /* CNN_IM2COL_H */
