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
    cnn_tensor *go_tmp = NULL;
    const float *go = cnn_read_ptr(grad_output, &go_tmp);
    cnn_tensor *gi = go ? cnn_spatial_zeros_like(input) : NULL;
    if (!gi) {
        cnn_release(go_tmp);
        return cnn_last_status();
    }
    float *g = cnn_ptr(gi);
#pragma omp parallel for if (p.planes * p.H * p.W > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < p.planes; c++)
        adaptive_plane_backward(&p, go + c * p.oH * p.oW, g + c * p.H * p.W);
    cnn_release(go_tmp);
    grad_inputs[0] = gi;
    return CNN_OK;
}

cnn_tensor *cnn_adaptive_avg_pool2d(cnn_tensor *input, int64_t out_h, int64_t out_w) {
    int64_t planes;
    if (!cnn_spatial_planes("adaptive_avg_pool2d", input, &planes)) return NULL;
    const adaptive_plan p = plan_of(input, out_h, out_w);
    if (out_h < 1 || out_w < 1)
        return cnn_fail_null(CNN_ERR_ARGUMENT,
                             "adaptive_avg_pool2d: output size must be positive, got %lldx%lld (input %s)",
                             (long long)out_h, (long long)out_w, cnn_shape_str(input));
    if (p.H < 1 || p.W < 1)
        return cnn_fail_null(CNN_ERR_SHAPE,
                             "adaptive_avg_pool2d: input %s has an empty plane, nothing to average",
                             cnn_shape_str(input));
    cnn_tensor *out = cnn_spatial_alloc(input, out_h, out_w);
    if (!out) return NULL;
    cnn_tensor *x_tmp = NULL;
    const float *x = cnn_read_ptr(input, &x_tmp);
    if (!x) {
        cnn_release(out);
        return NULL;
    }
    float *y = cnn_ptr(out);
#pragma omp parallel for if (p.planes * p.H * p.W > CNN_SPATIAL_PARALLEL_MIN) schedule(static)
    for (int64_t c = 0; c < p.planes; c++) adaptive_plane(&p, x + c * p.H * p.W, y + c * out_h * out_w);
    cnn_release(x_tmp);

    bool failed;
    cnn_record(out, "adaptive_avg_pool2d", adaptive_avg_pool2d_backward, 1, &input, &failed);
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}
