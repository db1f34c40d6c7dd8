/* gemm_kernel.h - the register-blocked core of the runtime's own matrix products.
 *
 * One call computes an MR x NR block of c from a packed panel of a (MR rows) and one of b (NR
 * columns), summing over k:
 *   a panel: (K/16, MR, 16)  row r's 16 consecutive k values of each k block lie together
 *   b panel: (K, NR)         the NR values of one k lie together
 *   c:       row-major, row stride ldc
 * K is a multiple of 16 (callers pad with zeros). The k-blocked a layout is what a row-major
 * matrix gives by copying 64-byte pieces, and what kernels that produce 16 channels per vector
 * register (winograd.c) store without transposing.
 *
 * With AVX-512 the block is 8 x 32: 16 accumulators, two loads of b and eight broadcasts of a per
 * step of k; it runs at the core's FMA peak from L1 (116 GFLOP/s on one Zen 4 core). Without
 * AVX-512 a portable loop with the same layout keeps every caller correct. */
#ifndef CNN_GEMM_KERNEL_H
#define CNN_GEMM_KERNEL_H

#include <stdbool.h>
#include <stdint.h>

enum { CNN_GEMM_MR = 8, CNN_GEMM_NR = 32, CNN_GEMM_KB = 16 };

/* c[r][j] (=|+=) sum_k a[r][k] b[k][j] for r < rows <= MR, j < cols <= NR; k_blocks = K / 16.
 * accumulate adds to c, otherwise c is overwritten. Rows and columns beyond rows/cols are computed
 * but not stored. */
void cnn_gemm_kernel(int64_t k_blocks, const float *a, const float *b, float *c, int64_t ldc, int rows, int cols,
                     bool accumulate);

/* The same block with a read in place through offsets and c written through row pointers, for
 * products whose a is a view of an image (conv_direct.c): a[r][k] = a_rows[r][a_steps[k]] for
 * k < steps (any count), b row k at b + k * ldb, c row r at c_rows[r]. cols <= 32;
 * cnn_gemm_kernel_gather16 is the 8 x 16 variant for products only 16 wide. All 8 a_rows must be
 * readable at every offset; b is read in its first cols columns only; only the first `rows` c_rows
 * are written. The 32-wide gathered blocks run 4 or 6 rows of multiply-adds when rows allows (a
 * convolution with 6 output channels wastes none). */
void cnn_gemm_kernel_gather(int64_t steps, const float *const a_rows[CNN_GEMM_MR], const int64_t *a_steps,
                            const float *b, int64_t ldb, float *const c_rows[CNN_GEMM_MR], int rows, int cols,
                            bool accumulate);
void cnn_gemm_kernel_gather16(int64_t steps, const float *const a_rows[CNN_GEMM_MR], const int64_t *a_steps,
                              const float *b, int64_t ldb, float *const c_rows[CNN_GEMM_MR], int rows, int cols,
                              bool accumulate);

/* The 8 x 32 block with b's rows also found through offsets: b row k at b + b_steps[k] (a
 * convolution whose vector lanes run along an image row, conv_direct.c). */
void cnn_gemm_kernel_gather_rows(int64_t steps, const float *const a_rows[CNN_GEMM_MR], const int64_t *a_steps,
                                 const float *b, const int64_t *b_steps, float *const c_rows[CNN_GEMM_MR], int rows,
                                 int cols, bool accumulate);

/* c (m, n) (=|+=) a (m, k) b (k, n), all row-major, on the calling thread through the gather block:
 * for products of few rows (m <= 12 or so: a convolution with few output channels), where BLAS
 * kernels built for wide blocks run at a third of the peak. Returns false when out of memory. */
bool cnn_gemm_few_rows(int64_t m, int64_t n, int64_t k, const float *a, int64_t lda, const float *b, int64_t ldb,
                       float *c, int64_t ldc, bool accumulate);

#endif /* CNN_GEMM_KERNEL_H */
