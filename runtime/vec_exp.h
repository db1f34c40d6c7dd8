/* vec_exp.h - an exp for float loops that the compiler can vectorise.
 *
 * The C library's expf is a call the compiler cannot turn into SIMD code (without -ffast-math), so a
 * softmax over a row runs one element at a time. This version is branch-free arithmetic: it writes
 * x = n ln2 + r with |r| <= ln2/2, evaluates e^r with a degree-6 polynomial (Cephes' coefficients)
 * and multiplies by 2^n built directly in the exponent bits. Relative error is within 2 float ulps
 * of expf over the whole range.
 *
 * Edge cases match expf where softmax-like code meets them: x below -87.3 (including -inf) gives 0,
 * NaN stays NaN. Arguments above 88.37 are clamped there (e^88.37 ~ 2.6e38); callers subtract a
 * maximum first, so they only ever pass x <= 0. */
#ifndef CNN_VEC_EXP_H
#define CNN_VEC_EXP_H

#include <stdint.h>

static inline float cnn_vec_expf(float x) {
    const float hi = 88.3762626647949f, lo = -87.3365447504f;
    float xc = x > hi ? hi : (x < lo ? lo : x);
    /* n = round(x / ln2) by the 1.5 * 2^23 trick (floorf would not vectorise); r = x - n ln2,
     * with ln2 split in two so that n * ln2_hi is exact */
    const float round_magic = 12582912.0f;
    float n = (xc * 1.44269504088896341f + round_magic) - round_magic;
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t bits; float value; } scale = {((int32_t)n + 127) << 23}; /* 2^n */
    float result = p * scale.value;
    result = x < lo ? 0.0f : result;
    return x != x ? x : result;
}

#endif /* CNN_VEC_EXP_H */
