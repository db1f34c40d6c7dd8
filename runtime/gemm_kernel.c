/* The 8 x 32 register block of the runtime's own products (see gemm_kernel.h). */
#include "gemm_kernel.h"

#include <stdlib.h>

#ifdef __AVX512F__
#include <immintrin.h>

/* The accumulators are named variables, not an array: GCC keeps an array of vectors in memory as
 * well as in registers once any of it is indexed by a variable, storing all of it every step. */

/* row[0..32) (=|+=) (v0, v1) within the column masks. */
static inline void store_pair(float *row, __mmask16 m0, __mmask16 m1, __m512 v0, __m512 v1, bool accumulate) {
    if (accumulate) {
        v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, row));
        v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, row + 16));
    }
    _mm512_mask_storeu_ps(row, m0, v0);
    _mm512_mask_storeu_ps(row + 16, m1, v1);
}

static inline void store_one(float *row, __mmask16 m0, __m512 v, bool accumulate) {
    if (accumulate) v = _mm512_add_ps(v, _mm512_maskz_loadu_ps(m0, row));
    _mm512_mask_storeu_ps(row, m0, v);
}

static inline __mmask16 first_mask(int cols) { return (__mmask16)(cols >= 16 ? 0xffff : (1u << cols) - 1); }
static inline __mmask16 second_mask(int cols) {
    return (__mmask16)(cols >= 32 ? 0xffff : cols > 16 ? (1u << (cols - 16)) - 1 : 0);
}

#define CNN_ZERO_PAIRS                                                                                         \
    __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,        \
           c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00
#define CNN_FMA_PAIR(x, lo, hi)                                                                                \
    do {                                                                                                       \
        const __m512 x_ = (x);                                                                                 \
        lo = _mm512_fmadd_ps(x_, b0, lo);                                                                      \
        hi = _mm512_fmadd_ps(x_, b1, hi);                                                                      \
    } while (0)
#define CNN_STORE_PAIRS(row_of)                                                                                \
    do {                                                                                                       \
        if (rows > 0) store_pair(row_of(0), m0, m1, c00, c01, accumulate);                                     \
        if (rows > 1) store_pair(row_of(1), m0, m1, c10, c11, accumulate);                                     \
        if (rows > 2) store_pair(row_of(2), m0, m1, c20, c21, accumulate);                                     \
        if (rows > 3) store_pair(row_of(3), m0, m1, c30, c31, accumulate);                                     \
        if (rows > 4) store_pair(row_of(4), m0, m1, c40, c41, accumulate);                                     \
        if (rows > 5) store_pair(row_of(5), m0, m1, c50, c51, accumulate);                                     \
        if (rows > 6) store_pair(row_of(6), m0, m1, c60, c61, accumulate);                                     \
        if (rows > 7) store_pair(row_of(7), m0, m1, c70, c71, accumulate);                                     \
    } while (0)

void cnn_gemm_kernel(int64_t k_blocks, const float *a, const float *b, float *c, int64_t ldc, int rows, int cols,
                     bool accumulate) {
    CNN_ZERO_PAIRS;
    for (int64_t kb = 0; kb < k_blocks; kb++) {
#pragma GCC unroll 16
        for (int kk = 0; kk < CNN_GEMM_KB; kk++) {
            const __m512 b0 = _mm512_loadu_ps(b), b1 = _mm512_loadu_ps(b + 16);
            b += CNN_GEMM_NR;
            CNN_FMA_PAIR(_mm512_set1_ps(a[0 * CNN_GEMM_KB + kk]), c00, c01);
            CNN_FMA_PAIR(_mm512_set1_ps(a[1 * CNN_GEMM_KB + kk]), c10, c11);
            CNN_FMA_PAIR(_mm512_set1_ps(a[2 * CNN_GEMM_KB + kk]), c20, c21);
            CNN_FMA_PAIR(_mm512_set1_ps(a[3 * CNN_GEMM_KB + kk]), c30, c31);
            CNN_FMA_PAIR(_mm512_set1_ps(a[4 * CNN_GEMM_KB + kk]), c40, c41);
            CNN_FMA_PAIR(_mm512_set1_ps(a[5 * CNN_GEMM_KB + kk]), c50, c51);
            CNN_FMA_PAIR(_mm512_set1_ps(a[6 * CNN_GEMM_KB + kk]), c60, c61);
            CNN_FMA_PAIR(_mm512_set1_ps(a[7 * CNN_GEMM_KB + kk]), c70, c71);
        }
        a += CNN_GEMM_MR * CNN_GEMM_KB;
    }
    const __mmask16 m0 = first_mask(cols), m1 = second_mask(cols);
#define ROW_OF(r) (c + (r) * ldc)
    CNN_STORE_PAIRS(ROW_OF);
#undef ROW_OF
}

/* The gathered block of the first mr rows (4, 6 or 8; a constant in every caller, so that the rows
 * left out cost nothing: a block of 6 live rows otherwise runs 8 rows of multiply-adds); b row k at
 * b + b_steps[k] when b_steps is given, else at b + k * ldb. Inlined into its callers, each with mr
 * and b_steps fixed, so that each loop is the plain one. */
static inline __attribute__((always_inline)) void gather_block(const int mr, int64_t steps,
                                                               const float *const a_rows[CNN_GEMM_MR],
                                                               const int64_t *a_steps, const float *b, int64_t ldb,
                                                               const int64_t *b_steps, float *const c_rows[CNN_GEMM_MR],
                                                               int rows, int cols, bool accumulate) {
    CNN_ZERO_PAIRS;
    const float *a0 = a_rows[0], *a1 = a_rows[1], *a2 = a_rows[2], *a3 = a_rows[3];
    const float *a4 = a_rows[mr > 4 ? 4 : 0], *a5 = a_rows[mr > 4 ? 5 : 0];
    const float *a6 = a_rows[mr > 6 ? 6 : 0], *a7 = a_rows[mr > 6 ? 7 : 0];
    // b is read only where c is written: its rows may end at the block's last column
    const __mmask16 m0 = first_mask(cols), m1 = second_mask(cols);
    for (int64_t k = 0; k < steps; k++) {
        const int64_t off = a_steps[k];
        const float *row = b_steps ? b + b_steps[k] : b + k * ldb;
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, row), b1 = _mm512_maskz_loadu_ps(m1, row + 16);
        CNN_FMA_PAIR(_mm512_set1_ps(a0[off]), c00, c01);
        CNN_FMA_PAIR(_mm512_set1_ps(a1[off]), c10, c11);
        CNN_FMA_PAIR(_mm512_set1_ps(a2[off]), c20, c21);
        CNN_FMA_PAIR(_mm512_set1_ps(a3[off]), c30, c31);
        if (mr > 4) {
            CNN_FMA_PAIR(_mm512_set1_ps(a4[off]), c40, c41);
            CNN_FMA_PAIR(_mm512_set1_ps(a5[off]), c50, c51);
        }
        if (mr > 6) {
            CNN_FMA_PAIR(_mm512_set1_ps(a6[off]), c60, c61);
            CNN_FMA_PAIR(_mm512_set1_ps(a7[off]), c70, c71);
        }
    }
#define ROW_OF(r) (c_rows[r])
    CNN_STORE_PAIRS(ROW_OF);
#undef ROW_OF
}

/* The gathered block with as few rows of multiply-adds as cover `rows`. */
static inline __attribute__((always_inline)) void gather_rows_fitted(int64_t steps,
                                                                     const float *const a_rows[CNN_GEMM_MR],
                                                                     const int64_t *a_steps, const float *b,
                                                                     int64_t ldb, const int64_t *b_steps,
                                                                     float *const c_rows[CNN_GEMM_MR], int rows,
                                                                     int cols, bool accumulate) {
    if (rows <= 4)
        gather_block(4, steps, a_rows, a_steps, b, ldb, b_steps, c_rows, rows, cols, accumulate);
    else if (rows <= 6)
        gather_block(6, steps, a_rows, a_steps, b, ldb, b_steps, c_rows, rows, cols, accumulate);
    else
        gather_block(8, steps, a_rows, a_steps, b, ldb, b_steps, c_rows, rows, cols, accumulate);
}

void cnn_gemm_kernel_gather(int64_t steps, const float *const a_rows[CNN_GEMM_MR], const int64_t *a_steps,
                            const float *b, int64_t ldb, float *const c_rows[CNN_GEMM_MR], int rows, int cols,
                            bool accumulate) {
    gather_rows_fitted(steps, a_rows, a_steps, b, ldb, NULL, c_rows, rows, cols, accumulate);
}

void cnn_gemm_kernel_gather_rows(int64_t steps, const float *const a_rows[CNN_GEMM_MR], const int64_t *a_steps,
                                 const float *b, const int64_t *b_steps, float *const c_rows[CNN_GEMM_MR], int rows,
                                 int cols, bool accumulate) {
    gather_rows_fitted(steps, a_rows, a_steps, b, 0, b_steps, c_rows, rows, cols, accumulate);
}

void cnn_gemm_kernel_gather16(int64_t steps, const float *const a_rows[CNN_GEMM_MR], const int64_t *a_steps,
                              const float *b, int64_t ldb, float *const c_rows[CNN_GEMM_MR], int rows, int cols,
                              bool accumulate) {
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0;
    const float *a0 = a_rows[0], *a1 = a_rows[1], *a2 = a_rows[2], *a3 = a_rows[3];
    const float *a4 = a_rows[4], *a5 = a_rows[5], *a6 = a_rows[6], *a7 = a_rows[7];
    const __mmask16 m0 = first_mask(cols);
    for (int64_t k = 0; k < steps; k++) {
        const int64_t off = a_steps[k];
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, b);
        b += ldb;
        c0 = _mm512_fmadd_ps(_mm512_set1_ps(a0[off]), b0, c0);
        c1 = _mm512_fmadd_ps(_mm512_set1_ps(a1[off]), b0, c1);
        c2 = _mm512_fmadd_ps(_mm512_set1_ps(a2[off]), b0, c2);
        c3 = _mm512_fmadd_ps(_mm512_set1_ps(a3[off]), b0, c3);
        c4 = _mm512_fmadd_ps(_mm512_set1_ps(a4[off]), b0, c4);
        c5 = _mm512_fmadd_ps(_mm512_set1_ps(a5[off]), b0, c5);
        c6 = _mm512_fmadd_ps(_mm512_set1_ps(a6[off]), b0, c6);
        c7 = _mm512_fmadd_ps(_mm512_set1_ps(a7[off]), b0, c7);
    }
    if (rows > 0) store_one(c_rows[0], m0, c0, accumulate);
    if (rows > 1) store_one(c_rows[1], m0, c1, accumulate);
    if (rows > 2) store_one(c_rows[2], m0, c2, accumulate);
    if (rows > 3) store_one(c_rows[3], m0, c3, accumulate);
    if (rows > 4) store_one(c_rows[4], m0, c4, accumulate);
    if (rows > 5) store_one(c_rows[5], m0, c5, accumulate);
    if (rows > 6) store_one(c_rows[6], m0, c6, accumulate);
    if (rows > 7) store_one(c_rows[7], m0, c7, accumulate);
}

#else

void cnn_gemm_kernel(int64_t k_blocks, const float *a, const float *b, float *c, int64_t ldc, int rows, int cols,
                     bool accumulate) {
    float acc[CNN_GEMM_MR][CNN_GEMM_NR] = {{0}};
    for (int64_t kb = 0; kb < k_blocks; kb++) {
        for (int kk = 0; kk < CNN_GEMM_KB; kk++) {
            for (int r = 0; r < CNN_GEMM_MR; r++) {
                const float x = a[r * CNN_GEMM_KB + kk];
                for (int j = 0; j < CNN_GEMM_NR; j++) acc[r][j] += x * b[j];
            }
            b += CNN_GEMM_NR;
        }
        a += CNN_GEMM_MR * CNN_GEMM_KB;
    }
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) c[r * ldc + j] = accumulate ? c[r * ldc + j] + acc[r][j] : acc[r][j];
}

void cnn_gemm_kernel_gather(int64_t steps, const float *const a_rows[CNN_GEMM_MR], const int64_t *a_steps,
                            const float *b, int64_t ldb, float *const c_rows[CNN_GEMM_MR], int rows, int cols,
                            bool accumulate) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) {
            float sum = 0;
            for (int64_t k = 0; k < steps; k++) sum += a_rows[r][a_steps[k]] * b[k * ldb + j];
            c_rows[r][j] = accumulate ? c_rows[r][j] + sum : sum;
        }
}

void cnn_gemm_kernel_gather16(int64_t steps, const float *const a_rows[CNN_GEMM_MR], const int64_t *a_steps,
                              const float *b, int64_t ldb, float *const c_rows[CNN_GEMM_MR], int rows, int cols,
                              bool accumulate) {
    cnn_gemm_kernel_gather(steps, a_rows, a_steps, b, ldb, c_rows, rows, cols, accumulate);
}

void cnn_gemm_kernel_gather_rows(int64_t steps, const float *const a_rows[CNN_GEMM_MR], const int64_t *a_steps,
                                 const float *b, const int64_t *b_steps, float *const c_rows[CNN_GEMM_MR], int rows,
                                 int cols, bool accumulate) {
    for (int r = 0; r < rows; r++)
        for (int j = 0; j < cols; j++) {
            float sum = 0;
            for (int64_t k = 0; k < steps; k++) sum += a_rows[r][a_steps[k]] * b[b_steps[k] + j];
            c_rows[r][j] = accumulate ? c_rows[r][j] + sum : sum;
        }
}

#endif

bool cnn_gemm_few_rows(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                       float *c, int64_t ldc, bool accumulate) {
    int64_t *steps = malloc((size_t)(k > 0 ? k : 1) * sizeof(int64_t)); // a's row elements in order
    if (!steps) return false;
    for (int64_t i = 0; i < k; i++) steps[i] = i;
    for (int64_t m0 = 0; m0 < m; m0 += CNN_GEMM_MR) {
        const int rows = m - m0 < CNN_GEMM_MR ? (int)(m - m0) : CNN_GEMM_MR;
        const float *a_rows[CNN_GEMM_MR];
        float *c_rows[CNN_GEMM_MR];
        for (int r = 0; r < CNN_GEMM_MR; r++) a_rows[r] = a + (m0 + (r < rows ? r : 0)) * lda;
        for (int64_t n0 = 0; n0 < n; n0 += CNN_GEMM_NR) {
            const int cols = n - n0 < CNN_GEMM_NR ? (int)(n - n0) : CNN_GEMM_NR;
            for (int r = 0; r < rows; r++) c_rows[r] = c + (m0 + r) * ldc + n0;
            cnn_gemm_kernel_gather(k, a_rows, steps, b + n0, ldb, c_rows, rows, cols, accumulate);
        }
    }
    free(steps);
    return true;
}
