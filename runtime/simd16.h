/* simd16.h - AVX-512 pieces shared by the kernels that keep 16 channels in one vector register
 * (winograd.c): moving between NCHW planes and channel-interleaved pixels. Only included by code
 * compiled for AVX-512. */
#ifndef CNN_SIMD16_H
#define CNN_SIMD16_H

#include <immintrin.h>

/* In-register transpose of a 16 x 16 block: on return r[j] lane i holds what r[i] lane j held. */
static inline void cnn_transpose16(__m512 r[16]) {
    __m512 t[16];
    for (int i = 0; i < 8; i++) {
        // per 128-bit lane L: t[2i] = rows 2i, 2i+1 at columns 4L, 4L+1; t[2i+1] at 4L+2, 4L+3
        t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        // r[4i + e], lane L: rows 4i..4i+3 of column 4L + e
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 2]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 1]), d = _mm512_castps_pd(t[4 * i + 3]);
        r[4 * i + 0] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, b));
        r[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, b));
        r[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(c, d));
        r[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(c, d));
    }
    __m512 out[16];
    for (int e = 0; e < 4; e++) {
        // column 4L + e gathers lane L of r[e], r[4 + e], r[8 + e], r[12 + e]
        const __m512 a = _mm512_shuffle_f32x4(r[e], r[4 + e], 0x88), b = _mm512_shuffle_f32x4(r[e], r[4 + e], 0xdd);
        const __m512 c = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0x88);
        const __m512 d = _mm512_shuffle_f32x4(r[8 + e], r[12 + e], 0xdd);
        out[e] = _mm512_shuffle_f32x4(a, c, 0x88);
        out[8 + e] = _mm512_shuffle_f32x4(a, c, 0xdd);
        out[4 + e] = _mm512_shuffle_f32x4(b, d, 0x88);
        out[12 + e] = _mm512_shuffle_f32x4(b, d, 0xdd);
    }
    for (int i = 0; i < 16; i++) r[i] = out[i];
}

/* Mask of the first n lanes (n may exceed 16 or be negative). */
static inline __mmask16 cnn_lanes16(int64_t n) {
    return n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
}

#endif /* CNN_SIMD16_H */
