/* upsample2d: resizes the last two dims to out_h x out_w, nearest or bilinear, with PyTorch's
 * coordinate rules (F.interpolate with a size, align_corners=false), computed in float as PyTorch
 * does so that the chosen pixels agree exactly:
 *   nearest:  src = min(floor(dst * in/out), in - 1)
 *   bilinear: src = max((dst + 0.5) * in/out - 0.5, 0), blending pixels floor(src) and the next one
 *             (clamped to the edge) with weights 1 - frac and frac.
 * Each axis is precomputed once as a table of source taps; forward gathers, backward scatters. */
#include <math.h>
#include <stdlib.h>

#include "spatial.h"

/* Along one axis: output o reads in[i0[o]] * w0[o] + in[i1[o]] * w1[o]. */
typedef struct axis_taps {
    int64_t *i0, *i1;
    float *w0, *w1;
} axis_taps;

static void axis_taps_free(axis_taps *t) {
    free(t->i0);
    free(t->i1);
    free(t->w0);
    free(t->w1);
}

static bool axis_taps_make(int64_t in, int64_t out, cnn_upsample_mode mode, axis_taps *t) {
    const size_t n = (size_t)out;
    t->i0 = malloc(n * sizeof(int64_t));
    t->i1 = malloc(n * sizeof(int64_t));
    t->w0 = malloc(n * sizeof(float));
    t->w1 = malloc(n * sizeof(float));
    if (!t->i0 || !t->i1 || !t->w0 || !t->w1) {
        axis_taps_free(t);
        cnn_fail(CNN_ERR_MEMORY, "upsample: out of memory");
        return false;
    }
    const float scale = (float)in / (float)out;
    for (int64_t o = 0; o < out; o++) {
        if (mode == CNN_UPSAMPLE_NEAREST) {
            int64_t i = (int64_t)floorf((float)o * scale);
            t->i0[o] = t->i1[o] = i < in - 1 ? i : in - 1;
            t->w0[o] = 1.0f;
            t->w1[o] = 0.0f;
            continue;
        }
        float src = scale * ((float)o + 0.5f) - 0.5f;
        if (src < 0) src = 0;
        const int64_t i = (int64_t)src;
        t->i0[o] = i;
        t->i1[o] = i < in - 1 ? i + 1 : i;
        t->w1[o] = src - (float)i;
        t->w0[o] = 1.0f - t->w1[o];
    }
    return true;
}

typedef struct resample_plan {
    int64_t planes, H, W, oH, oW;
    bool nearest; /* one tap per axis: copy rather than blend, so that infinities pass unchanged */
    axis_taps rows, cols;
} resample_plan;

static void resample_plan_free(resample_plan *p) {
    axis_taps_free(&p->rows);
    axis_taps_free(&p->cols);
}

static bool resample_plan_make(const cnn_tensor *input, int64_t out_h, int64_t out_w, cnn_upsample_mode mode,
                               resample_plan *p) {
    p->H = input->shape[input->ndim - 2];
    p->W = input->shape[input->ndim - 1];
    p->oH = out_h;
    p->oW = out_w;
    p->planes = cnn_spatial_count(input);
    p->nearest = mode == CNN_UPSAMPLE_NEAREST;
    p->cols = (axis_taps){0};
    if (!axis_taps_make(p->H, out_h, mode, &p->rows)) return false;
    if (!axis_taps_make(p->W, out_w, mode, &p->cols)) {
        axis_taps_free(&p->rows);
        return false;
    }
    return true;
}

static void resample_plane(const resample_plan *p, const float *in, float *out) {
    const axis_taps *r = &p->rows, *c = &p->cols;
    for (int64_t oy = 0; oy < p->oH; oy++) {
        const float *top = in + r->i0[oy] * p->W, *bottom = in + r->i1[oy] * p->W;
        float *dst = out + oy * p->oW;
        if (p->nearest) {
            for (int64_t ox = 0; ox < p->oW; ox++) dst[ox] = top[c->i0[ox]];
            continue;
        }
        for (int64_t ox = 0; ox < p->oW; ox++) {
            const float upper = c->w0[ox] * top[c->i0[ox]] + c->w1[ox] * top[c->i1[ox]];
            const float lower = c->w0[ox] * bottom[c->i0[ox]] + c->w1[ox] * bottom[c->i1[ox]];
            dst[ox] = r->w0[oy] * upper + r->w1[oy] * lower;
        }
    }
}

static void resample_plane_backward(const resample_plan *p, const float *go, float *gi) {
    const axis_taps *r = &p->rows, *c = &p->cols;
    for (int64_t oy = 0; oy < p->oH; oy++) {
        float *top = gi + r->i0[oy] * p->W, *bottom = gi + r->i1[oy] * p->W;
        const float *src = go + oy * p->oW;
        if (p->nearest) {
            for (int64_t ox = 0; ox < p->oW; ox++) top[c->i0[ox]] += src[ox];
            continue;
        }
        for (int64_t ox = 0; ox < p->oW; ox++) {
            const float g_top = r->w0[oy] * src[ox], g_bottom = r->w1[oy] * src[ox];
            top[c->i0[ox]] += c->w0[ox] * g_top;
            top[c->i1[ox]] += c->w1[ox] * g_top;
            bottom[c->i0[ox]] += c->w0[ox] * g_bottom;
            bottom[c->i1[ox]] += c->w1[ox] * g_bottom;
        }
    }
}

static cnn_status upsample2d_backward(cnn_node *node, cnn_tensor *grad_output, cnn_tensor **grad_inputs) {
    const cnn_tensor *input = node->inputs[0];
    resample_plan p;
    if (!resample_plan_make(input, grad_output->shape[grad_output->ndim - 2],
                            grad_output->shape[grad_output->ndim - 1], (cnn_upsample_mode)node->ints[0], &p))
        return cnn_last_status();
    cnn_spatial_io io;
    if (!cnn_spatial_backward_begin(&io, grad_output, input)) {
        resample_plan_free(&p);
        return cnn_last_status();
    }
#pragma omp parallel for if (p.planes * p.oH * p.oW > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < p.planes; c++)
        resample_plane_backward(&p, io.src + c * p.oH * p.oW, io.dst + c * p.H * p.W);
    resample_plan_free(&p);
    return cnn_spatial_backward_end(&io, grad_inputs);
}

cnn_tensor *cnn_upsample2d(cnn_tensor *input, int64_t out_h, int64_t out_w, cnn_upsample_mode mode) {
    int64_t planes;
    if (!cnn_spatial_planes("upsample", input, &planes)) return NULL;
    if (mode != CNN_UPSAMPLE_NEAREST && mode != CNN_UPSAMPLE_BILINEAR)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "upsample: unknown mode %d (input %s)", (int)mode,
                             cnn_shape_str(input));
    if (out_h < 1 || out_w < 1)
        return cnn_fail_null(CNN_ERR_ARGUMENT,
                             "upsample: output size must be positive, got %lldx%lld (input %s)",
                             (long long)out_h, (long long)out_w, cnn_shape_str(input));
    if (input->shape[input->ndim - 2] < 1 || input->shape[input->ndim - 1] < 1)
        return cnn_fail_null(CNN_ERR_SHAPE, "upsample: input %s has an empty plane", cnn_shape_str(input));
    resample_plan p;
    if (!resample_plan_make(input, out_h, out_w, mode, &p)) return NULL;
    cnn_spatial_io io;
    if (!cnn_spatial_forward_begin(&io, input, out_h, out_w)) {
        resample_plan_free(&p);
        return NULL;
    }
#pragma omp parallel for if (p.planes * p.oH * p.oW > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < p.planes; c++)
        resample_plane(&p, io.src + c * p.H * p.W, io.dst + c * p.oH * p.oW);
    resample_plan_free(&p);
    const int64_t params[1] = {mode};
    return cnn_spatial_forward_end(&io, input, "upsample", upsample2d_backward, params, 1, NULL);
}
