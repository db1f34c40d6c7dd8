/* Depthwise convolutions as per-plane stencils (see conv_depthwise.h). Each plane is first copied
 * with its zero border into a (Hp, Wp) buffer, Hp x Wp what the outputs read plus slack (32 columns,
 * up to 3 groups of rows), so that the loops need no bounds tests. Planes are spread over the threads: the forward
 * pass by (image, channel), the weight gradient by channel (each thread sums its channels over all
 * images, so no two threads write the same kernel). */
#include "conv_depthwise.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "blas_threads.h"

#ifdef __AVX512F__
#include "simd16.h"

enum { SLACK = 32 };

typedef struct plane_geometry {
    int64_t Hp, Wp; /* the padded copy */
} plane_geometry;

/* Rows: what the outputs read, rounded up to whole groups of four output rows (read, not stored). */
static plane_geometry plane_of(const cnn_depthwise_conv *g) {
    const int64_t out_rows = (g->out_h + 3) / 4 * 4;
    return (plane_geometry){(out_rows - 1) * g->sh + g->kh, (g->out_w - 1) * g->sw + g->kw + SLACK};
}

/* padded (Hp, Wp) <- plane (H, W) shifted by the padding, zeros elsewhere. Vector stores: planes
 * are small, and three library calls per row cost more than the convolution of the row. */
static void pad_plane(const cnn_depthwise_conv *g, plane_geometry pg, const float *plane, float *padded) {
    int64_t x_lo = g->pad_left < 0 ? 0 : g->pad_left, x_hi = g->pad_left + g->W;
    if (x_hi > pg.Wp) x_hi = pg.Wp;
    if (x_hi < x_lo) x_hi = x_lo;
    const __m512 zero = _mm512_setzero_ps();
    for (int64_t yp = 0; yp < pg.Hp; yp++) {
        float *row = padded + yp * pg.Wp;
        for (int64_t x = 0; x < pg.Wp; x += 16) _mm512_mask_storeu_ps(row + x, cnn_lanes16(pg.Wp - x), zero);
        const int64_t y = yp - g->pad_top;
        if (y < 0 || y >= g->H) continue;
        const float *src = plane + y * g->W + (x_lo - g->pad_left);
        for (int64_t x = x_lo; x < x_hi; x += 16) {
            const __mmask16 m = cnn_lanes16(x_hi - x);
            _mm512_mask_storeu_ps(row + x, m, _mm512_maskz_loadu_ps(m, src + (x - x_lo)));
        }
    }
}

/* 16 values at columns x, x + s, ..., x + 15 s of a padded row (s = 1 or 2). */
static inline __m512 load_strided(const float *at, int64_t s, __m512i even) {
    if (s == 1) return _mm512_loadu_ps(at);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(at), even, _mm512_loadu_ps(at + 16));
}

bool cnn_depthwise_suits(const cnn_depthwise_conv *g) { return g->sw == 1 || g->sw == 2; }

cnn_status cnn_depthwise_forward(const cnn_depthwise_conv *g, const float *input, const float *weight, bool flip,
                                 const float *bias, float *output, const char *op) {
    const plane_geometry pg = plane_of(g);
    const int64_t planes = g->N * g->C, taps = g->kh * g->kw, P = g->out_h * g->out_w;
    const int threads = cnn_threads_for(planes * P * taps, 1 << 16);
    bool failed = false;
#pragma omp parallel num_threads(threads)
    {
        float *padded = cnn_block_alloc((size_t)(pg.Hp * pg.Wp) * sizeof(float), false);
        float *kernel = malloc((size_t)taps * sizeof(float));
        if (!padded || !kernel) failed = true;
        const __m512i even = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                              _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
#pragma omp for schedule(static)
        for (int64_t plane = 0; plane < planes; plane++) {
            if (!padded || !kernel || cnn_interrupted()) continue;
            const int64_t c = plane % g->C;
            for (int64_t t = 0; t < taps; t++) kernel[t] = weight[c * taps + (flip ? taps - 1 - t : t)];
            pad_plane(g, pg, input + plane * g->H * g->W, padded);
            const __m512 b = _mm512_set1_ps(bias ? bias[c] : 0.0f);
            float *out = output + plane * P;
            // four output rows at a time: four independent chains of multiply-adds (one chain waits
            // out the latency of every step); rows past the end are computed from the slack rows
            // of the copy and not stored
            for (int64_t oy = 0; oy < g->out_h; oy += 4)
                for (int64_t ox = 0; ox < g->out_w; ox += 16) {
                    __m512 acc0 = b, acc1 = b, acc2 = b, acc3 = b;
                    const int64_t rows = g->out_h - oy < 4 ? g->out_h - oy : 4, step = g->sh * pg.Wp;
                    const float *corner = padded + oy * step + ox * g->sw;
                    for (int64_t i = 0; i < g->kh; i++)
                        for (int64_t j = 0; j < g->kw; j++) {
                            const __m512 w = _mm512_set1_ps(kernel[i * g->kw + j]);
                            const float *at = corner + i * pg.Wp + j;
                            acc0 = _mm512_fmadd_ps(w, load_strided(at, g->sw, even), acc0);
                            acc1 = _mm512_fmadd_ps(w, load_strided(at + step, g->sw, even), acc1);
                            acc2 = _mm512_fmadd_ps(w, load_strided(at + 2 * step, g->sw, even), acc2);
                            acc3 = _mm512_fmadd_ps(w, load_strided(at + 3 * step, g->sw, even), acc3);
                        }
                    const __mmask16 lanes = cnn_lanes16(g->out_w - ox);
                    float *dst = out + oy * g->out_w + ox;
                    _mm512_mask_storeu_ps(dst, lanes, acc0);
                    if (rows > 1) _mm512_mask_storeu_ps(dst + g->out_w, lanes, acc1);
                    if (rows > 2) _mm512_mask_storeu_ps(dst + 2 * g->out_w, lanes, acc2);
                    if (rows > 3) _mm512_mask_storeu_ps(dst + 3 * g->out_w, lanes, acc3);
                }
        }
        cnn_block_free(padded, false);
        free(kernel);
    }
    if (failed) return cnn_fail(CNN_ERR_MEMORY, "%s: out of memory for the depthwise buffers", op);
    if (cnn_interrupted()) return cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
    return CNN_OK;
}

cnn_status cnn_depthwise_weight_grad(const cnn_depthwise_conv *g, const float *input, const float *grad_output,
                                     float *grad_weight, const char *op) {
    const plane_geometry pg = plane_of(g);
    const int64_t taps = g->kh * g->kw, P = g->out_h * g->out_w;
    const int threads = cnn_threads_for(g->N * g->C * P * taps, 1 << 16);
    bool failed = false;
#pragma omp parallel num_threads(threads)
    {
        float *padded = cnn_block_alloc((size_t)(pg.Hp * pg.Wp) * sizeof(float), false);
        __m512 *acc = aligned_alloc(64, (size_t)(taps > 0 ? taps : 1) * sizeof(__m512)); // malloc aligns to 16 only
        if (!padded || !acc) failed = true;
        const __m512i even = _mm512_add_epi32(_mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15),
                                              _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
#pragma omp for schedule(static)
        for (int64_t c = 0; c < g->C; c++) {
            if (!padded || !acc || cnn_interrupted()) continue;
            double total[taps > 0 ? taps : 1];
            for (int64_t t = 0; t < taps; t++) total[t] = 0.0;
            for (int64_t n = 0; n < g->N; n++) {
                pad_plane(g, pg, input + (n * g->C + c) * g->H * g->W, padded);
                const float *gy = grad_output + (n * g->C + c) * P;
                for (int64_t t = 0; t < taps; t++) acc[t] = _mm512_setzero_ps();
                for (int64_t oy = 0; oy < g->out_h; oy++)
                    for (int64_t ox = 0; ox < g->out_w; ox += 16) {
                        const __m512 d = _mm512_maskz_loadu_ps(cnn_lanes16(g->out_w - ox), gy + oy * g->out_w + ox);
                        const float *corner = padded + oy * g->sh * pg.Wp + ox * g->sw;
                        for (int64_t i = 0; i < g->kh; i++)
                            for (int64_t j = 0; j < g->kw; j++)
                                acc[i * g->kw + j] = _mm512_fmadd_ps(
                                    d, load_strided(corner + i * pg.Wp + j, g->sw, even), acc[i * g->kw + j]);
                    }
                for (int64_t t = 0; t < taps; t++) total[t] += _mm512_reduce_add_ps(acc[t]);
            }
            for (int64_t t = 0; t < taps; t++) grad_weight[c * taps + t] = (float)total[t];
        }
        cnn_block_free(padded, false);
        free(acc);
    }
    if (failed) return cnn_fail(CNN_ERR_MEMORY, "%s: out of memory for the depthwise buffers", op);
    if (cnn_interrupted()) return cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
    return CNN_OK;
}

#else /* without AVX-512 depthwise convolutions go through im2col */

bool cnn_depthwise_suits(const cnn_depthwise_conv *g) {
    CNN_UNUSED(g);
    return false;
}

cnn_status cnn_depthwise_forward(const cnn_depthwise_conv *g, const float *input, const float *weight, bool flip,
                                 const float *bias, float *output, const char *op) {
    CNN_UNUSED(g), CNN_UNUSED(input), CNN_UNUSED(weight), CNN_UNUSED(flip), CNN_UNUSED(bias), CNN_UNUSED(output);
    return cnn_fail(CNN_ERR_STATE, "%s: the depthwise stencil needs an AVX-512 build", op);
}

cnn_status cnn_depthwise_weight_grad(const cnn_depthwise_conv *g, const float *input, const float *grad_output,
                                     float *grad_weight, const char *op) {
    CNN_UNUSED(g), CNN_UNUSED(input), CNN_UNUSED(grad_output), CNN_UNUSED(grad_weight);
    return cnn_fail(CNN_ERR_STATE, "%s: the depthwise stencil needs an AVX-512 build", op);
}

#endif
