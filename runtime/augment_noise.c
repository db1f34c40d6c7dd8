/* augment_noise.c - stages that add or remove information at random: Gaussian noise and random
 * erasing (cutout), the latter following torchvision's RandomErasing. */
#include <string.h>

#include "augment.h"

void aug_run_noise(const aug_stage *s, aug_image in, aug_image out, aug_rng *r) {
    const float mean = s->u.noise.mean, std = s->u.noise.std;
    const int64_t n = in.C * in.H * in.W;
    for (int64_t i = 0; i < n; i++) {
        float v = in.data[i] + mean + std * (float)aug_normal(r);
        if (s->u.noise.clip) v = v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v);
        out.data[i] = v;
    }
}

/* torchvision's RandomErasing.get_params: ten tries at a rectangle of random area and aspect ratio
 * (h / w) that fits strictly inside the image; none fitting leaves the image alone. */
static bool choose_rectangle(const cnn_aug_erasing *o, int64_t H, int64_t W, aug_rng *r, int64_t rect[4]) {
    for (int attempt = 0; attempt < 10; attempt++) {
        int64_t h, w;
        aug_draw_box(r, (double)H * (double)W, o->scale, o->ratio, &h, &w);
        if (!(h < H && w < W)) continue;
        rect[0] = aug_below(r, H - h + 1);
        rect[1] = aug_below(r, W - w + 1);
        rect[2] = h;
        rect[3] = w;
        return true;
    }
    return false;
}

void aug_run_erasing(const aug_stage *s, aug_image in, aug_image out, aug_rng *r) {
    const cnn_aug_erasing *o = &s->u.erasing;
    memcpy(out.data, in.data, (size_t)(in.C * in.H * in.W) * sizeof(float));
    int64_t rect[4]; /* top, left, height, width */
    if (!choose_rectangle(o, in.H, in.W, r, rect)) return;
    for (int64_t c = 0; c < in.C; c++) {
        const float value = o->random_fill ? 0.0f : s->values[s->n_values == 1 ? 0 : c];
        for (int64_t y = rect[0]; y < rect[0] + rect[2]; y++) {
            float *row = out.data + (c * in.H + y) * in.W + rect[1];
            for (int64_t x = 0; x < rect[3]; x++) row[x] = o->random_fill ? (float)aug_normal(r) : value;
        }
    }
}
