/* vec_math.h - exp and log for float loops that the compiler can vectorise.
 *
 * The C library's expf/logf are calls the compiler cannot turn into SIMD code (without
 * -ffast-math), so a loop using them runs one element at a time. These versions are branch-free
 * arithmetic on the float's bits and a short polynomial (Cephes' coefficients): exp and log are
 * within 1 ulp of the exact result, log1p within 2.5 ulps, over the ranges noted.
 *
 * Loops using them should not contain `p ? p[i] : 1` with p possibly NULL: vectorised, that is a
 * masked load from address NULL, which some processors serve with a slow microcode assist. */
#ifndef CNN_VEC_MATH_H
#define CNN_VEC_MATH_H

#include <stdint.h>

typedef union {
    int32_t bits;
    float value;
} cnn_float_bits;

/* e^x. x below -87.3 (including -inf) gives 0 and NaN stays NaN, as with expf; x above 88.37 is
 * clamped there (e^88.37 ~ 2.6e38) instead of giving infinity. */
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
    cnn_float_bits scale = {((int32_t)n + 127) << 23}; /* 2^n */
    float result = p * scale.value;
    result = x < lo ? 0.0f : result;
    return x != x ? x : result;
}

/* log(x) for x > 0, subnormals included. log(0) = -inf, log(x < 0) = NaN, log(inf) = inf and NaN
 * stays NaN, as with logf. */
static inline float cnn_vec_logf(float x) {
    /* subnormals are scaled into the normal range first; every choice is written as a select
     * between two computed values so that the compiler can vectorise it */
    const float smallest_normal = 1.17549435e-38f;
    float scaled = x < smallest_normal ? x * 8388608.0f : x; /* times 2^23 */
    float exponent_fix = x < smallest_normal ? 23.0f : 0.0f;
    cnn_float_bits u = {.value = scaled};
    /* x = m * 2^e with m in [sqrt(1/2), sqrt(2)) */
    float e = (float)(((u.bits >> 23) & 0xff) - 127) - exponent_fix;
    u.bits = (u.bits & 0x007fffff) | 0x3f800000; /* m in [1, 2) */
    float m = u.value, half_m = m * 0.5f, e_plus_one = e + 1.0f;
    e = m > 1.41421356f ? e_plus_one : e;
    m = m > 1.41421356f ? half_m : m;
    float f = m - 1.0f, z = f * f;
    float y = 7.0376836292e-2f;
    y = y * f - 1.1514610310e-1f;
    y = y * f + 1.1676998740e-1f;
    y = y * f - 1.2420140846e-1f;
    y = y * f + 1.4249322787e-1f;
    y = y * f - 1.6668057665e-1f;
    y = y * f + 2.0000714765e-1f;
    y = y * f - 2.4999993993e-1f;
    y = y * f + 3.3333331174e-1f;
    y = y * f * z;
    y += e * -2.12194440e-4f;
    y += -0.5f * z;
    float result = f + y + e * 0.693359375f;
    result = x == 0.0f ? -__builtin_inff() : result;
    result = x < 0.0f ? __builtin_nanf("") : result;
    result = x == __builtin_inff() ? x : result;
    return x != x ? x : result;
}

/* log(1 + v) for v >= -1, accurate for small |v|: with u = 1 + v rounded, log(u) * v / (u - 1)
 * corrects the rounding of u (and is v itself when u rounds to 1). log1p(-1) = -inf. */
static inline float cnn_vec_log1pf(float v) {
    float u = 1.0f + v, d = u - 1.0f;
    float safe_d = d == 0.0f ? 1.0f : d;
    float corrected = cnn_vec_logf(u) * (v / safe_d);
    return d == 0.0f ? v : corrected;
}

#endif /* CNN_VEC_MATH_H */
