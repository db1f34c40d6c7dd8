/* adaptive_avg_pool2d: average pooling to a fixed output size, with PyTorch's windows
 *   start(i) = floor(i * H / oH), end(i) = ceil((i + 1) * H / oH)
 * which may overlap by one pixel when oH does not divide H. */
#include "spatial.h"

static int64_t window_start(int64_t i, int64_t in, int64_t out) { return (i * in) / out; }
static int64_t window_end(int64_t i, int64_t in, int64_t out) { return ((i + 1) * in + out - 1) / out; }

typedef struct adaptive_plan {
    int64_t planes, H, W, oH, oW;
} adaptive_plan;

static void adaptive_plane(const adaptive_plan *p, const float *in, float *out) {
    for (int64_t oy = 0; oy < p->oH; oy++) {
        const int64_t y0 = window_start(oy, p->H, p->oH), y1 = window_end(oy, p->H, p->oH);
        for (int64_t ox = 0; ox < p->oW; ox++) {
            const int64_t x0 = window_start(ox, p->W, p->oW), x1 = window_end(ox, p->W, p->oW);
            float sum = 0;
            for (int64_t y = y0; y < y1; y++)
                for (int64_t x = x0; x < x1; x++) sum += in[y * p->W + x];
            out[oy * p->oW + ox] = sum / (float)((y1 - y0) * (x1 - x0));
        }
    }
}

static void adaptive_plane_backward(const adaptive_plan *p, const float *go, float *gi) {
    for (int64_t oy = 0; oy < p->oH; oy++) {
        const int64_t y0 = window_start(oy, p->H, p->oH), y1 = window_end(oy, p->H, p->oH);
        for (int64_t ox = 0; ox < p->oW; ox++) {
            const int64_t x0 = window_start(ox, p->W, p->oW), x1 = window_end(ox, p->W, p->oW);
            const float g = go[oy * p->oW + ox] / (float)((y1 - y0) * (x1 - x0));
            for (int64_t y = y0; y < y1; y++)
                for (int64_t x = x0; x < x1; x++) gi[y * p->W + x] += g;
        }
    }
}

static adaptive_plan plan_of(const cnn_tensor *input, int64_t out_h, int64_t out_w) {
    adaptive_plan p = {
        .H = input->shape[input->ndim - 2], .W = input->shape[input->ndim - 1], .oH = out_h, .oW = out_w};
    p.planes = cnn_spatial_count(input);
    return p;
}

static cnn_status adaptive_avg_pool2d_backward(cnn_node *node, cnn_tensor *grad_output,
                                               cnn_tensor **grad_inputs) {
    const cnn_tensor *input = node->inputs[0];
    const adaptive_plan p =
        plan_of(input, grad_output->shape[grad_output->ndim - 2], grad_output->shape[grad_output->ndim - 1]);
    cnn_spatial_io io;
    if (!cnn_spatial_backward_begin(&io, grad_output, input)) return cnn_last_status();
#pragma omp parallel for if (p.planes * p.H * p.W > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < p.planes; c++)
        adaptive_plane_backward(&p, io.src + c * p.oH * p.oW, io.dst + c * p.H * p.W);
    return cnn_spatial_backward_end(&io, grad_inputs);
}

cnn_tensor *cnn_adaptive_avg_pool2d(cnn_tensor *input, int64_t out_h, int64_t out_w) {
    int64_t planes;
    if (!cnn_spatial_planes("adaptive_avg_pool2d", input, &planes)) return NULL;
    if (out_h < 1 || out_w < 1)
        return cnn_fail_null(CNN_ERR_ARGUMENT,
                             "adaptive_avg_pool2d: output size must be positive, got %lldx%lld (input %s)",
                             (long long)out_h, (long long)out_w, cnn_shape_str(input));
    const adaptive_plan p = plan_of(input, out_h, out_w);
    if (p.H < 1 || p.W < 1)
        return cnn_fail_null(CNN_ERR_SHAPE,
                             "adaptive_avg_pool2d: input %s has an empty plane, nothing to average",
                             cnn_shape_str(input));
    cnn_spatial_io io;
    if (!cnn_spatial_forward_begin(&io, input, out_h, out_w)) return NULL;
#pragma omp parallel for if (p.planes * p.H * p.W > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < p.planes; c++)
        adaptive_plane(&p, io.src + c * p.H * p.W, io.dst + c * out_h * out_w);
    return cnn_spatial_forward_end(&io, input, "adaptive_avg_pool2d", adaptive_avg_pool2d_backward, NULL, 0,
                                   NULL);
}
