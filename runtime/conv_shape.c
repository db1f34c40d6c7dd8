/* Argument checks shared by the two convolutions, so that both report mistakes the same way. */
#include "conv_shape.h"

#include <limits.h>

bool cnn_conv_check_ranks(const char *op, const cnn_tensor *input, const cnn_tensor *weight) {
    if (input->ndim != 4) {
        cnn_fail(CNN_ERR_SHAPE, "%s: expected a 4-d input (N, C, H, W) but got shape %s (weight %s)", op,
                 cnn_shape_str(input), cnn_shape_str(weight));
        return false;
    }
    if (weight->ndim != 4) {
        cnn_fail(CNN_ERR_SHAPE, "%s: expected a 4-d weight but got shape %s (input %s)", op,
                 cnn_shape_str(weight), cnn_shape_str(input));
        return false;
    }
    return true;
}

bool cnn_conv_check_options(const char *op, const cnn_conv2d_options *o, const cnn_tensor *input,
                            const cnn_tensor *weight) {
    const char *bad = NULL;
    int32_t a = 0, b = 0;
    if (o->stride[0] < 1 || o->stride[1] < 1)
        bad = "stride", a = o->stride[0], b = o->stride[1];
    else if (o->dilation[0] < 1 || o->dilation[1] < 1)
        bad = "dilation", a = o->dilation[0], b = o->dilation[1];
    else if (o->padding_mode == CNN_PAD_EXPLICIT && (o->padding[0] < 0 || o->padding[1] < 0))
        bad = "padding", a = o->padding[0], b = o->padding[1];
    if (bad) {
        cnn_fail(CNN_ERR_ARGUMENT, "%s: %s must be %s, got %dx%d (input %s, weight %s)", op, bad,
                 bad[0] == 'p' ? "non-negative" : "positive", a, b, cnn_shape_str(input),
                 cnn_shape_str(weight));
        return false;
    }
    if (o->groups < 1) {
        cnn_fail(CNN_ERR_ARGUMENT, "%s: groups must be positive, got %d (input %s, weight %s)", op, o->groups,
                 cnn_shape_str(input), cnn_shape_str(weight));
        return false;
    }
    if (o->padding_mode != CNN_PAD_EXPLICIT && o->padding_mode != CNN_PAD_SAME &&
        o->padding_mode != CNN_PAD_VALID) {
        cnn_fail(CNN_ERR_ARGUMENT, "%s: unknown padding mode %d", op, o->padding_mode);
        return false;
    }
    return true;
}

bool cnn_conv_check_groups(const char *op, int64_t in_channels, int64_t out_channels, int groups,
                           const cnn_tensor *input, const cnn_tensor *weight) {
    const char *which = in_channels % groups ? "input" : out_channels % groups ? "output" : NULL;
    if (!which) return true;
    cnn_fail(CNN_ERR_SHAPE, "%s: groups=%d does not divide the %lld %s channels (input %s, weight %s)", op,
             groups, (long long)(which[0] == 'i' ? in_channels : out_channels), which, cnn_shape_str(input),
             cnn_shape_str(weight));
    return false;
}

bool cnn_conv_check_bias(const char *op, const cnn_tensor *bias, int64_t out_channels,
                         const cnn_tensor *weight) {
    if (!bias || (bias->ndim == 1 && bias->shape[0] == out_channels)) return true;
    cnn_fail(CNN_ERR_SHAPE, "%s: bias has shape %s but there are %lld output channels (weight %s)", op,
             cnn_shape_str(bias), (long long)out_channels, cnn_shape_str(weight));
    return false;
}

bool cnn_conv_check_plan_size(const char *op, const cnn_conv_plan *p) {
    const cnn_conv_geometry *g = &p->geo;
    const int64_t sizes[] = {cnn_geometry_col_rows(g), g->out_h * g->out_w, p->out_channels / p->groups,
                             g->height * g->width};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        if (sizes[i] > INT_MAX / 2) {
            cnn_fail(CNN_ERR_SHAPE, "%s: a %lld-element matrix dimension is too large for sgemm", op,
                     (long long)sizes[i]);
            return false;
        }
    return true;
}

const char *cnn_conv_options_str(const cnn_conv2d_options *o) {
    static _Thread_local char buf[160];
    snprintf(buf, sizeof buf, "stride %dx%d, padding %dx%d, dilation %dx%d, groups %d", o->stride[0],
             o->stride[1], o->padding[0], o->padding[1], o->dilation[0], o->dilation[1], o->groups);
    return buf;
}
