/* Input gradients as a product and a fold (see conv_fold.h). Dimension legend: N batch, C input
 * channels, O output channels, K = C*kh*kw rows of the unfolded matrix, P = out_h*out_w positions
 * per image, B images per chunk. */
#include "conv_fold.h"

#include <stdlib.h>
#include <string.h>

#include "blas_threads.h"
#include "gemm_kernel.h"

#ifdef __AVX512F__
#include "simd16.h"
#endif

/* About TARGET_COLUMNS positions per chunk, so that a chunk's unfolded gradient (K x B*P) stays
 * in the core's cache between the product and the fold, within COLUMN_BUDGET_FLOATS. */
enum { TARGET_COLUMNS = 512, COLUMN_BUDGET_FLOATS = 1 << 17 };

typedef struct fold_work {
    const cnn_conv_plan *p;
    const float *weight, *grad_output;
    float *grad_input;
    int64_t O, C, HW, P, K, B;
    int64_t *a_steps; /* (O) offsets of the kernels of each output channel: column r of weight^T */
    int64_t *first;   /* stride 1: (W/16 chunks, kw) the output column under lane 0, per chunk and tap column */
    uint16_t *lanes;  /* the same: lanes whose output column lies inside [0, out_w) and pixel inside the row */
    float **buf;      /* per thread: staging (O, B*P), then col (K, B*P) */
} fold_work;

/* Stride 1: for every chunk of 16 pixels of a row and every kernel column j, the output column that
 * lane 0 reads and the lanes that read one inside the output. */
static void fold_tables(fold_work *w) {
    const cnn_conv_geometry *g = &w->p->geo;
    for (int64_t x0 = 0, t = 0; x0 < g->width; x0 += 16)
        for (int64_t j = 0; j < g->kernel_w; j++, t++) {
            const int64_t first = x0 + g->pad_left - j * g->dilation_w;
            uint16_t m = 0;
            for (int64_t l = 0; l < 16 && x0 + l < g->width; l++)
                if (first + l >= 0 && first + l < g->out_w) m |= (uint16_t)(1u << l);
            w->first[t] = first, w->lanes[t] = m;
        }
}

#ifdef __AVX512F__
/* image (C, H, W) <- fold(col): stride 1 only. Each pixel row is the sum of the column rows that
 * land on it, read at their shifts and written once: adding the columns onto the image one after
 * another would make every add wait for the previous, overlapping, store. Four pixel rows at a time
 * keep four independent sums. */
static void fold_rows(const fold_work *w, const float *col, float *image, int64_t ld) {
    const cnn_conv_geometry *g = &w->p->geo;
    const int64_t H = g->height, W = g->width, oH = g->out_h, oW = g->out_w, kh = g->kernel_h, kw = g->kernel_w;
    for (int64_t x0 = 0; x0 < W; x0 += 16) {
        const int64_t *first = w->first + x0 / 16 * kw;
        const uint16_t *lanes = w->lanes + x0 / 16 * kw;
        const __mmask16 store = cnn_lanes16(W - x0);
        for (int64_t c = 0; c < g->channels; c++)
            for (int64_t y0 = 0; y0 < H; y0 += 4) {
                __m512 s0 = _mm512_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
                for (int64_t i = 0; i < kh; i++) {
                    // pixel row y0 + r is read from output row oy0 + r by tap row i
                    const int64_t oy0 = y0 + g->pad_top - i * g->dilation_h;
                    const bool r0 = oy0 >= 0 && oy0 < oH, r1 = oy0 + 1 >= 0 && oy0 + 1 < oH && y0 + 1 < H;
                    const bool r2 = oy0 + 2 >= 0 && oy0 + 2 < oH && y0 + 2 < H;
                    const bool r3 = oy0 + 3 >= 0 && oy0 + 3 < oH && y0 + 3 < H;
                    if (!(r0 || r1 || r2 || r3)) continue;
                    const float *rows = col + (c * kh + i) * kw * ld + oy0 * oW;
                    for (int64_t j = 0; j < kw; j++) {
                        const float *row = rows + j * ld + first[j];
                        if (r0) s0 = _mm512_add_ps(s0, _mm512_maskz_loadu_ps(lanes[j], row));
                        if (r1) s1 = _mm512_add_ps(s1, _mm512_maskz_loadu_ps(lanes[j], row + oW));
                        if (r2) s2 = _mm512_add_ps(s2, _mm512_maskz_loadu_ps(lanes[j], row + 2 * oW));
                        if (r3) s3 = _mm512_add_ps(s3, _mm512_maskz_loadu_ps(lanes[j], row + 3 * oW));
                    }
                }
                float *dst = image + (c * H + y0) * W + x0;
                _mm512_mask_storeu_ps(dst, store, s0);
                if (y0 + 1 < H) _mm512_mask_storeu_ps(dst + W, store, s1);
                if (y0 + 2 < H) _mm512_mask_storeu_ps(dst + 2 * W, store, s2);
                if (y0 + 3 < H) _mm512_mask_storeu_ps(dst + 3 * W, store, s3);
            }
    }
}
#else
/* Without AVX-512, the same sums one pixel at a time. */
static void fold_rows(const fold_work *w, const float *col, float *image, int64_t ld) {
    const cnn_conv_geometry *g = &w->p->geo;
    const int64_t H = g->height, W = g->width, kh = g->kernel_h, kw = g->kernel_w;
    for (int64_t c = 0; c < g->channels; c++)
        for (int64_t y = 0; y < H; y++)
            for (int64_t x = 0; x < W; x++) {
                float sum = 0;
                for (int64_t i = 0; i < kh; i++) {
                    const int64_t oy = y + g->pad_top - i * g->dilation_h;
                    if (oy < 0 || oy >= g->out_h) continue;
                    for (int64_t j = 0; j < kw; j++) {
                        const int64_t ox = x + g->pad_left - j * g->dilation_w;
                        if (ox >= 0 && ox < g->out_w) sum += col[((c * kh + i) * kw + j) * ld + oy * g->out_w + ox];
                    }
                }
                image[(c * H + y) * W + x] = sum;
            }
}
#endif

static void fold_chunk(void *ctx, int64_t chunk, int thread) {
    const fold_work *w = ctx;
    const int64_t n0 = chunk * w->B, B = w->p->batch - n0 < w->B ? w->p->batch - n0 : w->B, BP = B * w->P;
    const int64_t O = w->O, K = w->K, P = w->P;
    float *staging = w->buf[thread], *col = staging + O * w->B * P;
    for (int64_t b = 0; b < B; b++)
        for (int64_t o = 0; o < O; o++)
            memcpy(staging + o * BP + b * P, w->grad_output + ((n0 + b) * O + o) * P, (size_t)P * sizeof(float));
    // col (K, BP) = weight^T (K, O) x staging (O, BP); a row block of weight^T reads 8 adjacent
    // columns of weight, whose rows are the output channels summed over
    const float *a_rows[CNN_GEMM_MR];
    float *c_rows[CNN_GEMM_MR];
    for (int64_t c0 = 0; c0 < BP; c0 += CNN_GEMM_NR) {
        const int cols = BP - c0 < CNN_GEMM_NR ? (int)(BP - c0) : CNN_GEMM_NR;
        for (int64_t r0 = 0; r0 < K; r0 += CNN_GEMM_MR) {
            const int rows = K - r0 < CNN_GEMM_MR ? (int)(K - r0) : CNN_GEMM_MR;
            for (int r = 0; r < CNN_GEMM_MR; r++) {
                a_rows[r] = w->weight + r0 + (r < rows ? r : 0);
                c_rows[r] = col + (r0 + (r < rows ? r : 0)) * BP + c0;
            }
            cnn_gemm_kernel_gather(O, a_rows, w->a_steps, staging + c0, BP, c_rows, rows, cols, false);
        }
    }
    for (int64_t b = 0; b < B; b++) {
        float *image = w->grad_input + (n0 + b) * w->C * w->HW;
        if (w->first) {
            fold_rows(w, col + b * P, image, BP);
        } else {
            memset(image, 0, (size_t)(w->C * w->HW) * sizeof(float));
            cnn_col2im(col + b * P, &w->p->geo, image, BP);
        }
    }
}

bool cnn_fold_fits(const cnn_conv_plan *p) {
    const int64_t P = p->geo.out_h * p->geo.out_w, K = cnn_geometry_col_rows(&p->geo);
    return (K + p->out_channels) * P <= COLUMN_BUDGET_FLOATS;
}

cnn_status cnn_fold_input_grad(const cnn_conv_plan *p, const float *weight, const float *grad_output,
                               float *grad_input, const char *op) {
    const cnn_conv_geometry *g = &p->geo;
    fold_work w = {.p = p, .weight = weight, .grad_output = grad_output, .grad_input = grad_input,
                   .O = p->out_channels, .C = g->channels, .HW = g->height * g->width, .P = g->out_h * g->out_w,
                   .K = cnn_geometry_col_rows(g)};
    if (p->batch == 0) return CNN_OK;
    if (w.O == 0 || w.P == 0 || w.K == 0) {
        memset(grad_input, 0, (size_t)(p->batch * w.C * w.HW) * sizeof(float));
        return CNN_OK;
    }
    int64_t B = (TARGET_COLUMNS + w.P - 1) / w.P;
    if (B > COLUMN_BUDGET_FLOATS / ((w.K + w.O) * w.P)) B = COLUMN_BUDGET_FLOATS / ((w.K + w.O) * w.P);
    if (B > p->batch) B = p->batch;
    w.B = B < 1 ? 1 : B;
    const int64_t chunks = (p->batch + w.B - 1) / w.B;
    int threads = cnn_threads_for(p->batch * w.P * w.K * w.O, 1 << 18);
    if (threads > chunks) threads = (int)chunks;
    const bool stride1 = g->stride_h == 1 && g->stride_w == 1;
    const int64_t tables = (g->width + 15) / 16 * g->kernel_w;
    w.a_steps = malloc((size_t)w.O * sizeof(int64_t));
    w.first = stride1 ? malloc((size_t)tables * (sizeof(int64_t) + sizeof(uint16_t))) : NULL;
    w.lanes = stride1 && w.first ? (uint16_t *)(w.first + tables) : NULL;
    w.buf = calloc((size_t)threads, sizeof *w.buf);
    bool ok = w.a_steps && w.buf && (w.first || !stride1);
    for (int t = 0; ok && t < threads; t++)
        ok = (w.buf[t] = cnn_block_alloc((size_t)((w.O + w.K) * w.B * w.P) * sizeof(float), false)) != NULL;
    cnn_status st = CNN_OK;
    if (!ok) {
        st = cnn_fail(CNN_ERR_MEMORY, "%s: out of memory for the input-gradient buffers", op);
    } else {
        for (int64_t o = 0; o < w.O; o++) w.a_steps[o] = o * w.K;
        if (stride1) fold_tables(&w);
        if (!cnn_run_items(threads, chunks, fold_chunk, &w)) st = cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op);
    }
    for (int t = 0; w.buf && t < threads; t++) cnn_block_free(w.buf[t], false);
    free(w.buf);
    free(w.a_steps);
    free(w.first);
    return st;
}
