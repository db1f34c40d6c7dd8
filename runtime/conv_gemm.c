/* Convolution as im2col + sgemm, with its adjoints. Dimension legend: N batch, C input channels,
 * O output channels, G groups, Cg = C/G, Og = O/G, K = Cg*kH*kW (rows of the column matrix),
 * P = oH*oW (output positions per image), B images per chunk.
 *
 * Work goes image by image when an image has a few hundred output positions: the column matrix
 * then stays in cache between im2col and sgemm, and the product lands in the NCHW output directly.
 * Small images are grouped B at a time, side by side in one (K, B*P) matrix, so that each sgemm is
 * still wide enough to run at full speed; their product goes through a (Og, B*P) buffer scattered
 * back per image. Threads: the products use the BLAS's own; only the unfolding of multi-image
 * chunks is spread over OpenMP threads. */
#include "conv_gemm.h"

#include <cblas.h>
#include <stdlib.h>
#include <string.h>

/* Images per chunk. One image per product is fastest once an image has a few hundred output
 * positions (the column matrix stays in cache and the product lands in the output directly); small
 * images are grouped until the product is about TARGET_COLUMNS wide, within COLUMN_BUDGET_FLOATS
 * of unfolded patches. */
enum { TARGET_COLUMNS = 256, COLUMN_BUDGET_FLOATS = 1 << 20 };

static int64_t images_per_chunk(const cnn_conv_plan *p, int64_t K, int64_t P) {
    int64_t b = P > 0 ? (TARGET_COLUMNS + P - 1) / P : p->batch;
    if (K * P > 0 && b > COLUMN_BUDGET_FLOATS / (K * P)) b = COLUMN_BUDGET_FLOATS / (K * P);
    if (b > p->batch) b = p->batch;
    return b < 1 ? 1 : b;
}

static float *scratch_floats(int64_t n) {
    void *ptr = NULL;
    if (posix_memalign(&ptr, 64, (size_t)(n > 0 ? n : 1) * sizeof(float)) != 0) return NULL;
    return ptr;
}

static cnn_status out_of_memory(const char *op, int64_t floats) {
    return cnn_fail(CNN_ERR_MEMORY, "%s: out of memory for a %lld-float work buffer", op, (long long)floats);
}

/* Fills (N, O, P) with the bias of each channel, or zeros. */
static void fill_with_bias(float *output, const float *bias, int64_t N, int64_t O, int64_t P) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < O; o++) {
            float *dst = output + (n * O + o) * P;
            const float v = bias ? bias[o] : 0.0f;
            for (int64_t i = 0; i < P; i++) dst[i] = v;
        }
}

/* col (K, B*P) <- the B images of one group, starting at first_image (C, H, W) strided by C*H*W. */
static void unfold_chunk(const cnn_conv_plan *p, const float *first_image, int64_t B, float *col) {
    const cnn_conv_geometry *g = &p->geo;
    const int64_t image_size = g->channels * p->groups * g->height * g->width;
    const int64_t P = g->out_h * g->out_w;
#pragma omp parallel for if (B > 1) schedule(static)
    for (int64_t b = 0; b < B; b++) cnn_im2col(first_image + b * image_size, g, col + b * P, B * P);
}

cnn_status cnn_conv_gemm_forward(const cnn_conv_plan *p, const float *input, const float *weight,
                                 const float *bias, float *output, const char *op) {
    const cnn_conv_geometry *g = &p->geo;
    const int64_t N = p->batch, G = p->groups, O = p->out_channels, Og = O / G;
    const int64_t Cg = g->channels, C = Cg * G, HW = g->height * g->width;
    const int64_t P = g->out_h * g->out_w, K = cnn_geometry_col_rows(g);
    if (N == 0 || O == 0 || P == 0) return CNN_OK;
    if (K == 0) {
        fill_with_bias(output, bias, N, O, P);
        return CNN_OK;
    }
    const int64_t chunk = images_per_chunk(p, K, P);
    float *col = scratch_floats(K * chunk * P);                      // (K, B*P)
    float *prod = chunk > 1 ? scratch_floats(Og * chunk * P) : NULL; // (Og, B*P)
    cnn_status st = CNN_OK;
    if (!col || (chunk > 1 && !prod)) {
        st = out_of_memory(op, K * chunk * P + Og * chunk * P);
        goto done;
    }
    for (int64_t n0 = 0; n0 < N; n0 += chunk) {
        const int64_t B = N - n0 < chunk ? N - n0 : chunk, BP = B * P;
        for (int64_t grp = 0; grp < G; grp++) {
            if (cnn_interrupted()) {
                st = cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
                goto done;
            }
            unfold_chunk(p, input + (n0 * C + grp * Cg) * HW, B, col);
            const float *w = weight + grp * Og * K; // (Og, K)
            if (B == 1) {
                float *dst = output + (n0 * O + grp * Og) * P; // (Og, P)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Og, (int)P, (int)K, 1.0f, w,
                            (int)K, col, (int)P, 0.0f, dst, (int)P);
                if (bias)
                    for (int64_t o = 0; o < Og; o++) {
                        const float v = bias[grp * Og + o];
                        for (int64_t i = 0; i < P; i++) dst[o * P + i] += v;
                    }
                continue;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)Og, (int)BP, (int)K, 1.0f, w, (int)K,
                        col, (int)BP, 0.0f, prod, (int)BP);
            for (int64_t b = 0; b < B; b++)
                for (int64_t o = 0; o < Og; o++) {
                    float *dst = output + ((n0 + b) * O + grp * Og + o) * P; // (P)
                    const float *src = prod + o * BP + b * P;                // (P)
                    const float v = bias ? bias[grp * Og + o] : 0.0f;
                    for (int64_t i = 0; i < P; i++) dst[i] = src[i] + v;
                }
        }
    }
done:
    free(col);
    free(prod);
    return st;
}

cnn_status cnn_conv_gemm_backward(const cnn_conv_plan *p, const float *input, const float *weight,
                                  const float *grad_output, float *grad_input, float *grad_weight,
                                  const char *op) {
    const cnn_conv_geometry *g = &p->geo;
    const int64_t N = p->batch, G = p->groups, O = p->out_channels, Og = O / G;
    const int64_t Cg = g->channels, C = Cg * G, HW = g->height * g->width;
    const int64_t P = g->out_h * g->out_w, K = cnn_geometry_col_rows(g);
    if (grad_input) memset(grad_input, 0, (size_t)(N * C * HW) * sizeof(float));
    if (grad_weight) memset(grad_weight, 0, (size_t)(O * K) * sizeof(float));
    if (N == 0 || O == 0 || P == 0 || K == 0 || (!grad_input && !grad_weight)) return CNN_OK;

    const int64_t chunk = images_per_chunk(p, K, P);
    float *col = scratch_floats(K * chunk * P);                          // (K, B*P)
    float *gathered = chunk > 1 ? scratch_floats(Og * chunk * P) : NULL; // (Og, B*P)
    cnn_status st = CNN_OK;
    if (!col || (chunk > 1 && !gathered)) {
        st = out_of_memory(op, K * chunk * P + Og * chunk * P);
        goto done;
    }
    for (int64_t n0 = 0; n0 < N; n0 += chunk) {
        const int64_t B = N - n0 < chunk ? N - n0 : chunk, BP = B * P;
        for (int64_t grp = 0; grp < G; grp++) {
            if (cnn_interrupted()) {
                st = cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
                goto done;
            }
            // go: this group's output gradient for the chunk as one (Og, B*P) matrix
            const float *go = grad_output + (n0 * O + grp * Og) * P;
            if (B > 1) {
                for (int64_t b = 0; b < B; b++)
                    for (int64_t o = 0; o < Og; o++)
                        memcpy(gathered + o * BP + b * P, grad_output + ((n0 + b) * O + grp * Og + o) * P,
                               (size_t)P * sizeof(float));
                go = gathered;
            }
            if (grad_weight) {
                unfold_chunk(p, input + (n0 * C + grp * Cg) * HW, B, col);
                // grad_weight_g (Og, K) += go (Og, B*P) x col^T (B*P, K)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)Og, (int)K, (int)BP, 1.0f, go,
                            (int)BP, col, (int)BP, n0 == 0 ? 0.0f : 1.0f, grad_weight + grp * Og * K, (int)K);
            }
            if (grad_input) {
                // col (K, B*P) = weight_g^T (K, Og) x go (Og, B*P), folded back onto the images
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)K, (int)BP, (int)Og, 1.0f,
                            weight + grp * Og * K, (int)K, go, (int)BP, 0.0f, col, (int)BP);
                float *first = grad_input + (n0 * C + grp * Cg) * HW;
#pragma omp parallel for if (B > 1) schedule(static)
                for (int64_t b = 0; b < B; b++) cnn_col2im(col + b * P, g, first + b * C * HW, BP);
            }
        }
    }
done:
    free(col);
    free(gathered);
    return st;
}

/* Sum of n floats with independent partial sums, which the compiler keeps in vector lanes (a single
 * running float sum must stay sequential under strict floating-point rules). */
static float sum_floats(const float *x, int64_t n) {
    enum { LANES = 16 };
    float part[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int k = 0; k < LANES; k++) part[k] += x[i + k];
    float s = 0;
    for (; i < n; i++) s += x[i];
    for (int k = 0; k < LANES; k++) s += part[k];
    return s;
}

void cnn_conv_bias_grad(const float *grad, int64_t batch, int64_t channels, int64_t plane, float *grad_bias) {
    for (int64_t c = 0; c < channels; c++) {
        double total = 0;
        for (int64_t n = 0; n < batch; n++) total += sum_floats(grad + (n * channels + c) * plane, plane);
        grad_bias[c] = (float)total;
    }
}
