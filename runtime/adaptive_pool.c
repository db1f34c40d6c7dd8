/* adaptive_avg_pool2d: average pooling to a fixed output size, with PyTorch's windows
 *   start(i) = floor(i * H / oH), end(i) = ceil((i + 1) * H / oH)
 * which may overlap by one pixel when oH does not divide H. */
#include <stdlib.h>

#include "spatial.h"

static int64_t window_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
static int64_t window_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

/* The windows along each axis are computed once per call: per plane, the divisions (and a loop set
 * up for a window of one pixel) cost more than the sums themselves on small planes (ResNet's global
 * pooling of 1x1 maps took 170 us for 32 x 512 planes). */
typedef struct adaptive_plan {
    int64_t planes, H, W, oH, oW;
    int64_t *ys, *ye, *xs, *xe; /* (oH) and (oW) window starts and ends */
} adaptive_plan;

/* The sum of a window of rows [y0, y1) and columns [x0, x1). */
static float window_sum(const adaptive_plan *p, const float *in, int64_t y0, int64_t y1, int64_t x0, int64_t x1) {
    float sum = 0;
    for (int64_t y = y0; y < y1; y++)
        for (int64_t x = x0; x < x1; x++) sum += in[y * p->W + x];
    return sum;
}

static void adaptive_plane(const adaptive_plan *p, const float *in, float *out) {
    if (p->oH == 1 && p->oW == 1) { // global pooling: the plane is one contiguous window
        const int64_t n = p->H * p->W;
        float sum = 0;
        for (int64_t i = 0; i < n; i++) sum += in[i];
        out[0] = sum / (float)n;
        return;
    }
    for (int64_t oy = 0; oy < p->oH; oy++)
        for (int64_t ox = 0; ox < p->oW; ox++) {
            const int64_t y0 = p->ys[oy], y1 = p->ye[oy], x0 = p->xs[ox], x1 = p->xe[ox];
            out[oy * p->oW + ox] = window_sum(p, in, y0, y1, x0, x1) / (float)((y1 - y0) * (x1 - x0));
        }
}

static void adaptive_plane_backward(const adaptive_plan *p, const float *go, float *gi) {
    for (int64_t oy = 0; oy < p->oH; oy++)
        for (int64_t ox = 0; ox < p->oW; ox++) {
            const int64_t y0 = p->ys[oy], y1 = p->ye[oy], x0 = p->xs[ox], x1 = p->xe[ox];
            const float g = go[oy * p->oW + ox] / (float)((y1 - y0) * (x1 - x0));
            for (int64_t y = y0; y < y1; y++)
                for (int64_t x = x0; x < x1; x++) gi[y * p->W + x] += g;
        }
}

/* The plan of input pooled to out_h x out_w; false + error naming op when out of memory. */
static bool plan_of(const char *op, const cnn_tensor *input, int64_t out_h, int64_t out_w, adaptive_plan *p) {
    *p = (adaptive_plan){
        .H = input->shape[input->ndim - 2], .W = input->shape[input->ndim - 1], .oH = out_h, .oW = out_w};
    p->planes = cnn_spatial_count(input);
    p->ys = malloc((size_t)(2 * (out_h + out_w)) * sizeof(int64_t));
    if (!p->ys) {
        cnn_fail(CNN_ERR_MEMORY, "%s: out of memory (input %s)", op, cnn_shape_str(input));
        return false;
    }
    p->ye = p->ys + out_h, p->xs = p->ye + out_h, p->xe = p->xs + out_w;
    for (int64_t i = 0; i < out_h; i++) p->ys[i] = window_start(i, p->H, out_h), p->ye[i] = window_end(i, p->H, out_h);
    for (int64_t i = 0; i < out_w; i++) p->xs[i] = window_start(i, p->W, out_w), p->xe[i] = window_end(i, p->W, out_w);
    return true;
}

static cnn_status adaptive_avg_pool2d_backward(cnn_node *node, cnn_tensor *grad_output,
                                               cnn_tensor **grad_inputs) {
    const cnn_tensor *input = node->inputs[0];
    adaptive_plan p;
    if (!plan_of("adaptive_avg_pool2d backward", input, grad_output->shape[grad_output->ndim - 2],
                 grad_output->shape[grad_output->ndim - 1], &p))
        return cnn_last_status();
    cnn_spatial_io io;
    if (!cnn_spatial_backward_begin(&io, grad_output, input)) {
        free(p.ys);
        return cnn_last_status();
    }
#pragma omp parallel for if (p.planes * p.H * p.W > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < p.planes; c++)
        adaptive_plane_backward(&p, io.src + c * p.oH * p.oW, io.dst + c * p.H * p.W);
    free(p.ys);
    return cnn_spatial_backward_end(&io, grad_inputs);
}

cnn_tensor *cnn_adaptive_avg_pool2d(cnn_tensor *input, int64_t out_h, int64_t out_w) {
    int64_t planes;
    if (!cnn_spatial_planes("adaptive_avg_pool2d", input, &planes)) return NULL;
    if (out_h < 1 || out_w < 1)
        return cnn_fail_null(CNN_ERR_ARGUMENT,
                             "adaptive_avg_pool2d: output size must be positive, got %lldx%lld (input %s)",
                             (long long)out_h, (long long)out_w, cnn_shape_str(input));
    if (input->shape[input->ndim - 2] < 1 || input->shape[input->ndim - 1] < 1)
        return cnn_fail_null(CNN_ERR_SHAPE,
                             "adaptive_avg_pool2d: input %s has an empty plane, nothing to average",
                             cnn_shape_str(input));
    adaptive_plan p;
    if (!plan_of("adaptive_avg_pool2d", input, out_h, out_w, &p)) return NULL;
    cnn_spatial_io io;
    if (!cnn_spatial_forward_begin(&io, input, out_h, out_w)) {
        free(p.ys);
        return NULL;
    }
#pragma omp parallel for if (p.planes * p.H * p.W > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < p.planes; c++)
        adaptive_plane(&p, io.src + c * p.H * p.W, io.dst + c * out_h * out_w);
    free(p.ys);
    return cnn_spatial_forward_end(&io, input, "adaptive_avg_pool2d", adaptive_avg_pool2d_backward, NULL, 0,
                                   NULL);
}
