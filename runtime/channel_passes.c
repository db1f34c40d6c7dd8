/* Per-channel sums and maps over (N, C, S) inputs (see channel_passes.h).
 *
 * Channels of SHORT_CHANNEL values or more run strip by strip, each strip a vector loop. Shorter
 * channels (S = 1 after global pooling or in (N, C) inputs, 4 on ResNet's 2x2 maps) would leave most
 * vector lanes idle and pay a loop per strip: a map then spreads its per-channel values to one per
 * element of an image and runs whole images as flat rows, and a sum keeps one float accumulator per
 * element of a group of channels. On two cores, batch norm of 32x512x1x1 went from 38 to 8 us a call
 * in eval and from 438 to 52 us for training's forward and backward (32x256x2x2: 37 to 11, 235 to
 * 91); 4x4 maps and larger ran no faster through the short path.
 *
 * Maps share the images out over the threads in order, as the element-wise ops do, so that a thread
 * mostly writes and later reads the same images; sums share out the channels. */
#include "channel_passes.h"

#include <stdlib.h>

enum {
    SHORT_CHANNEL = 16,
    PIECE = 4096,        /* values summed in float, over 16 lanes, before a piece goes into double */
    GROUP_ELEMENTS = 256 /* short channels: elements of one group's float accumulators */
};

static cnn_status interrupted(const char *op) { return cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted", op); }

/* ---- sums -------------------------------------------------------------------------------------- */

/* Channel c of a long-channel input. */
static void strip_sums(cnn_channel_geometry g, int64_t c, const float *u, float pu, const float *v, float pv,
                       double *a, double *b) {
    double sum_a = 0.0, sum_b = 0.0;
    for (int64_t n = 0; n < g.N; n++)
        for (int64_t s0 = 0; s0 < g.S; s0 += PIECE) {
            const int64_t off = (n * g.C + c) * g.S + s0, len = g.S - s0 < PIECE ? g.S - s0 : PIECE;
            float piece_a = 0.0f, piece_b = 0.0f;
#pragma omp simd reduction(+ : piece_a, piece_b)
            for (int64_t s = 0; s < len; s++) {
                const float du = u[off + s] - pu;
                piece_a += du;
                piece_b += du * (v[off + s] - pv);
            }
            sum_a += piece_a;
            sum_b += piece_b;
        }
    a[c] = sum_a;
    b[c] = sum_b;
}

/* Channels [c0, c0 + count) of a short-channel input, count * S <= GROUP_ELEMENTS: one float
 * accumulator per element of the group, over pieces of images, then each channel's S of them. */
static void group_sums(cnn_channel_geometry g, int64_t c0, int64_t count, const float *u, const float *pu,
                       const float *v, const float *pv, double *a, double *b) {
    const int64_t E = count * g.S, row = g.C * g.S, first = c0 * g.S, images_per_piece = PIECE / 16;
    float spread_pu[GROUP_ELEMENTS], spread_pv[GROUP_ELEMENTS], acc_a[GROUP_ELEMENTS], acc_b[GROUP_ELEMENTS];
    for (int64_t e = 0; e < E; e++) {
        spread_pu[e] = pu ? pu[c0 + e / g.S] : 0.0f;
        spread_pv[e] = pv[c0 + e / g.S];
    }
    for (int64_t c = c0; c < c0 + count; c++) a[c] = b[c] = 0.0;
    for (int64_t n0 = 0; n0 < g.N; n0 += images_per_piece) {
        const int64_t n1 = n0 + images_per_piece < g.N ? n0 + images_per_piece : g.N;
        for (int64_t e = 0; e < E; e++) acc_a[e] = acc_b[e] = 0.0f;
        for (int64_t n = n0; n < n1; n++) {
            const float *un = u + n * row + first, *vn = v + n * row + first;
#pragma omp simd
            for (int64_t e = 0; e < E; e++) {
                const float du = un[e] - spread_pu[e];
                acc_a[e] += du;
                acc_b[e] += du * (vn[e] - spread_pv[e]);
            }
        }
        for (int64_t e = 0; e < E; e++) {
            a[c0 + e / g.S] += acc_a[e];
            b[c0 + e / g.S] += acc_b[e];
        }
    }
}

cnn_status cnn_channel_sums(cnn_channel_geometry g, const float *u, const float *pu, const float *v,
                            const float *pv, double *a, double *b, bool parallel, const char *op) {
    if (g.S >= SHORT_CHANNEL) {
#pragma omp parallel for schedule(static) if (parallel)
        for (int64_t c = 0; c < g.C; c++) {
            if (cnn_interrupted()) continue;
            strip_sums(g, c, u, pu ? pu[c] : 0.0f, v, pv[c], a, b);
        }
    } else {
        const int64_t per_group = GROUP_ELEMENTS / g.S, groups = (g.C + per_group - 1) / per_group;
#pragma omp parallel for schedule(static) if (parallel && groups > 1)
        for (int64_t group = 0; group < groups; group++) {
            if (cnn_interrupted()) continue;
            const int64_t c0 = group * per_group;
            group_sums(g, c0, g.C - c0 < per_group ? g.C - c0 : per_group, u, pu, v, pv, a, b);
        }
    }
    return cnn_interrupted() ? interrupted(op) : CNN_OK;
}

/* ---- maps -------------------------------------------------------------------------------------- */

cnn_status cnn_channel_map(cnn_channel_geometry g, float *out, const float *x, const float *m, const float *k,
                           const float *b, const float *u, const float *ku, bool parallel, const char *op) {
    if (g.S >= SHORT_CHANNEL) {
#pragma omp parallel for schedule(static) if (parallel)
        for (int64_t plane = 0; plane < g.N * g.C; plane++) {
            if (cnn_interrupted()) continue;
            const int64_t c = plane % g.C, off = plane * g.S;
            const float mc = m[c], kc = k[c], bc = b[c], kuc = u ? ku[c] : 0.0f;
            if (u) {
#pragma omp simd
                for (int64_t s = 0; s < g.S; s++) out[off + s] = (x[off + s] - mc) * kc + bc + u[off + s] * kuc;
            } else {
#pragma omp simd
                for (int64_t s = 0; s < g.S; s++) out[off + s] = (x[off + s] - mc) * kc + bc;
            }
        }
        return cnn_interrupted() ? interrupted(op) : CNN_OK;
    }
    const int64_t E = g.C * g.S;
    float *spread = malloc((size_t)(4 * (E > 0 ? E : 1)) * sizeof(float)); // m, k, b, ku per element
    if (!spread) return cnn_fail(CNN_ERR_MEMORY, "%s: out of memory", op);
    float *sm = spread, *sk = spread + E, *sb = spread + 2 * E, *sku = spread + 3 * E;
    for (int64_t e = 0; e < E; e++) {
        const int64_t c = e / g.S;
        sm[e] = m[c], sk[e] = k[c], sb[e] = b[c], sku[e] = u ? ku[c] : 0.0f;
    }
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t n = 0; n < g.N; n++) {
        if (cnn_interrupted()) continue;
        float *on = out + n * E;
        const float *xn = x + n * E;
        if (u) {
            const float *un = u + n * E;
#pragma omp simd
            for (int64_t e = 0; e < E; e++) on[e] = (xn[e] - sm[e]) * sk[e] + sb[e] + un[e] * sku[e];
        } else {
#pragma omp simd
            for (int64_t e = 0; e < E; e++) on[e] = (xn[e] - sm[e]) * sk[e] + sb[e];
        }
    }
    free(spread);
    return cnn_interrupted() ? interrupted(op) : CNN_OK;
}
