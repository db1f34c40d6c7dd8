/* augment_crop.c - random crops: a fixed-size window of the padded image (torchvision's RandomCrop)
 * and a window of random area and aspect ratio resized to a fixed size (RandomResizedCrop). */
#include "augment.h"

/* The padding (top, bottom, left, right) a crop stage uses on an h x w image, including what
 * pad_if_needed adds to reach the crop size. */
static void crop_padding(const cnn_aug_crop *o, int64_t h, int64_t w, int64_t pad[4]) {
    pad[0] = o->padding[2];
    pad[1] = o->padding[3];
    pad[2] = o->padding[0];
    pad[3] = o->padding[1];
    if (!o->pad_if_needed) return;
    int64_t short_h = o->size[0] - (h + pad[0] + pad[1]);
    int64_t short_w = o->size[1] - (w + pad[2] + pad[3]);
    if (short_h > 0) {
        pad[0] += short_h / 2;
        pad[1] += short_h - short_h / 2;
    }
    if (short_w > 0) {
        pad[2] += short_w / 2;
        pad[3] += short_w - short_w / 2;
    }
}

bool aug_crop_output(const aug_stage *s, int64_t h, int64_t w, int64_t out_hw[2]) {
    if (s->kind == AUG_RESIZED_CROP) {
        out_hw[0] = s->u.resized_crop.size[0];
        out_hw[1] = s->u.resized_crop.size[1];
        return true;
    }
    const cnn_aug_crop *o = &s->u.crop;
    int64_t pad[4];
    crop_padding(o, h, w, pad);
    const int64_t padded_h = h + pad[0] + pad[1], padded_w = w + pad[2] + pad[3];
    if (padded_h < o->size[0] || padded_w < o->size[1]) {
        cnn_fail(CNN_ERR_SHAPE,
                 "random_crop: a %dx%d crop does not fit in a %lldx%lld image padded to %lldx%lld "
                 "(add padding or pad_if_needed)",
                 (int)o->size[0], (int)o->size[1], (long long)h, (long long)w, (long long)padded_h,
                 (long long)padded_w);
        return false;
    }
    out_hw[0] = o->size[0];
    out_hw[1] = o->size[1];
    return true;
}

static aug_edge edge_of_pad(cnn_pad_mode mode) {
    switch (mode) {
    case CNN_PAD_REFLECT: return AUG_EDGE_MIRROR;
    case CNN_PAD_REPLICATE: return AUG_EDGE_CLAMP;
    case CNN_PAD_CIRCULAR: return AUG_EDGE_WRAP;
    case CNN_PAD_CONSTANT: break;
    }
    return AUG_EDGE_CONSTANT;
}

void aug_run_crop(const aug_stage *s, aug_image in, aug_image out, aug_rng *r) {
    const cnn_aug_crop *o = &s->u.crop;
    int64_t pad[4];
    crop_padding(o, in.H, in.W, pad);
    const int64_t padded_h = in.H + pad[0] + pad[1], padded_w = in.W + pad[2] + pad[3];
    /* top-left corner of the window in input coordinates (negative inside the padding) */
    const int64_t top = aug_below(r, padded_h - out.H + 1) - pad[0];
    const int64_t left = aug_below(r, padded_w - out.W + 1) - pad[2];
    const aug_edge edge = edge_of_pad((cnn_pad_mode)o->pad_mode);
    const bool inside = top >= 0 && left >= 0 && top + out.H <= in.H && left + out.W <= in.W;
    for (int64_t c = 0; c < in.C; c++) {
        const float *plane = in.data + c * in.H * in.W;
        for (int64_t y = 0; y < out.H; y++) {
            float *dst = out.data + (c * out.H + y) * out.W;
            if (inside) {
                const float *src = plane + (top + y) * in.W + left;
                for (int64_t x = 0; x < out.W; x++) dst[x] = src[x];
                continue;
            }
            const int64_t sy = aug_edge_index(top + y, in.H, edge);
            for (int64_t x = 0; x < out.W; x++) {
                const int64_t sx = aug_edge_index(left + x, in.W, edge);
                dst[x] = sy < 0 || sx < 0 ? o->pad_value : plane[sy * in.W + sx];
            }
        }
    }
}

/* torchvision's RandomResizedCrop.get_params: ten tries at a window of random area and aspect
 * ratio (w / h), then the central crop with the ratio clamped into range. */
static void choose_window(const cnn_aug_resized_crop *o, int64_t H, int64_t W, aug_rng *r,
                          int64_t window[4]) {
    for (int attempt = 0; attempt < 10; attempt++) {
        int64_t w, h;
        aug_draw_box(r, (double)H * (double)W, o->scale, o->ratio, &w, &h);
        if (w > 0 && w <= W && h > 0 && h <= H) {
            window[0] = aug_below(r, H - h + 1);
            window[1] = aug_below(r, W - w + 1);
            window[2] = h;
            window[3] = w;
            return;
        }
    }
    const double in_ratio = (double)W / (double)H;
    int64_t h = H, w = W;
    if (in_ratio < o->ratio[0]) {
        h = (int64_t)nearbyint((double)w / o->ratio[0]);
    } else if (in_ratio > o->ratio[1]) {
        w = (int64_t)nearbyint((double)h * o->ratio[1]);
    }
    if (h < 1) h = 1;
    if (w < 1) w = 1;
    window[0] = (H - h) / 2;
    window[1] = (W - w) / 2;
    window[2] = h;
    window[3] = w;
}

void aug_run_resized_crop(const aug_stage *s, aug_image in, aug_image out, aug_rng *r) {
    const cnn_aug_resized_crop *o = &s->u.resized_crop;
    int64_t win[4]; /* top, left, height, width */
    choose_window(o, in.H, in.W, r, win);
    const aug_window window = {in.data + win[0] * in.W + win[1], in.C, win[2], win[3], in.W, in.H * in.W};
    /* align_corners=false: output pixel centres spread evenly over the window */
    const double sy = (double)win[2] / (double)out.H, sx = (double)win[3] / (double)out.W;
    const double m[6] = {sy, 0.0, 0.5 * sy - 0.5, 0.0, sx, 0.5 * sx - 0.5};
    aug_resample(&window, out, m, AUG_EDGE_CLAMP, 0.0f, (cnn_sampling)o->sampling);
}
