/* augment_color.c - stages that change values, not positions: torchvision's ColorJitter (brightness,
 * contrast, saturation, hue on [0, 1] images), per-channel normalisation, and Keras' channel shift and
 * per-sample standardisation. */
#include <string.h>

#include "augment.h"

static inline float clamp01(float v) { return v < 0.0f ? 0.0f : (v > 1.0f ? 1.0f : v); }

/* torchvision's grayscale weights (ITU-R 601-2 luma) */
static const float luma[3] = {0.2989f, 0.587f, 0.114f};

static void adjust_brightness(aug_image img, float f) {
    const int64_t n = img.C * img.H * img.W;
    for (int64_t i = 0; i < n; i++) img.data[i] = clamp01(img.data[i] * f);
}

/* Blends with the mean gray level: of the luma for RGB, of all values otherwise. */
static void adjust_contrast(aug_image img, float f) {
    const int64_t plane = img.H * img.W, n = img.C * plane;
    double sum = 0.0;
    if (img.C == 3) {
        for (int64_t i = 0; i < plane; i++)
            sum += luma[0] * img.data[i] + luma[1] * img.data[plane + i] + luma[2] * img.data[2 * plane + i];
        sum /= (double)plane;
    } else {
        for (int64_t i = 0; i < n; i++) sum += img.data[i];
        sum /= (double)n;
    }
    const float offset = (1.0f - f) * (float)sum;
    for (int64_t i = 0; i < n; i++) img.data[i] = clamp01(f * img.data[i] + offset);
}

static void adjust_saturation(aug_image img, float f) {
    const int64_t plane = img.H * img.W;
    float *r = img.data, *g = r + plane, *b = g + plane;
    for (int64_t i = 0; i < plane; i++) {
        const float gray = (1.0f - f) * (luma[0] * r[i] + luma[1] * g[i] + luma[2] * b[i]);
        r[i] = clamp01(f * r[i] + gray);
        g[i] = clamp01(f * g[i] + gray);
        b[i] = clamp01(f * b[i] + gray);
    }
}

/* RGB -> HSV, turn the hue, HSV -> RGB, with torchvision's float formulas. */
static void adjust_hue(aug_image img, float turn) {
    const int64_t plane = img.H * img.W;
    float *rp = img.data, *gp = rp + plane, *bp = gp + plane;
    for (int64_t i = 0; i < plane; i++) {
        const float r = rp[i], g = gp[i], b = bp[i];
        const float maxc = fmaxf(r, fmaxf(g, b)), minc = fminf(r, fminf(g, b));
        const bool gray = maxc == minc;
        const float chroma = maxc - minc;
        const float s = chroma / (gray ? 1.0f : maxc);
        const float divisor = gray ? 1.0f : chroma;
        const float rc = (maxc - r) / divisor, gc = (maxc - g) / divisor, bc = (maxc - b) / divisor;
        float h;
        if (maxc == r) h = bc - gc;
        else if (maxc == g) h = 2.0f + rc - bc;
        else h = 4.0f + gc - rc;
        h = fmodf(h / 6.0f + 1.0f, 1.0f);
        h = fmodf(h + turn, 1.0f);
        if (h < 0.0f) h += 1.0f;
        const float v = maxc;
        const float sector = floorf(h * 6.0f), frac = h * 6.0f - sector;
        const float p = clamp01(v * (1.0f - s)), q = clamp01(v * (1.0f - s * frac));
        const float t = clamp01(v * (1.0f - s * (1.0f - frac)));
        switch (((int)sector) % 6) {
        case 0: rp[i] = v; gp[i] = t; bp[i] = p; break;
        case 1: rp[i] = q; gp[i] = v; bp[i] = p; break;
        case 2: rp[i] = p; gp[i] = v; bp[i] = t; break;
        case 3: rp[i] = p; gp[i] = q; bp[i] = v; break;
        case 4: rp[i] = t; gp[i] = p; bp[i] = v; break;
        default: rp[i] = v; gp[i] = p; bp[i] = q; break;
        }
    }
}

void aug_run_color(const aug_stage *s, aug_image in, aug_image out, aug_rng *r) {
    const cnn_aug_color *o = &s->u.color;
    memcpy(out.data, in.data, (size_t)(in.C * in.H * in.W) * sizeof(float));
    /* torchvision applies the four adjustments in a random order */
    int order[4] = {0, 1, 2, 3};
    for (int i = 3; i > 0; i--) {
        int j = (int)aug_below(r, i + 1), tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
    }
    for (int k = 0; k < 4; k++) {
        switch (order[k]) {
        case 0:
            if (o->brightness[0] != 1.0f || o->brightness[1] != 1.0f)
                adjust_brightness(out, (float)aug_in_range(r, o->brightness));
            break;
        case 1:
            if (o->contrast[0] != 1.0f || o->contrast[1] != 1.0f)
                adjust_contrast(out, (float)aug_in_range(r, o->contrast));
            break;
        case 2:
            if (o->saturation[0] != 1.0f || o->saturation[1] != 1.0f)
                adjust_saturation(out, (float)aug_in_range(r, o->saturation));
            break;
        default:
            if (o->hue[0] != 0.0f || o->hue[1] != 0.0f) adjust_hue(out, (float)aug_in_range(r, o->hue));
            break;
        }
    }
}

void aug_run_normalize(const aug_stage *s, aug_image in, aug_image out, aug_rng *r) {
    (void)r;
    const int64_t plane = in.H * in.W;
    const int n = s->n_values;
    for (int64_t c = 0; c < in.C; c++) {
        const float mean = s->values[n == 1 ? 0 : c], std = s->values[n + (n == 1 ? 0 : c)];
        const float *src = in.data + c * plane;
        float *dst = out.data + c * plane;
        for (int64_t i = 0; i < plane; i++) dst[i] = (src[i] - mean) / std;
    }
}

void aug_run_channel_shift(const aug_stage *s, aug_image in, aug_image out, aug_rng *r) {
    const float range[2] = {-s->u.channel_shift, s->u.channel_shift};
    const float shift = (float)aug_in_range(r, range);
    const int64_t n = in.C * in.H * in.W;
    float low = in.data[0], high = in.data[0];
    for (int64_t i = 1; i < n; i++) {
        low = fminf(low, in.data[i]);
        high = fmaxf(high, in.data[i]);
    }
    for (int64_t i = 0; i < n; i++) {
        float v = in.data[i] + shift;
        out.data[i] = v < low ? low : (v > high ? high : v);
    }
}

void aug_run_standardize(const aug_stage *s, aug_image in, aug_image out, aug_rng *r) {
    (void)r;
    const int64_t n = in.C * in.H * in.W;
    double sum = 0.0;
    for (int64_t i = 0; i < n; i++) sum += in.data[i];
    const double mean = sum / (double)n;
    double squares = 0.0;
    for (int64_t i = 0; i < n; i++) squares += (in.data[i] - mean) * (in.data[i] - mean);
    const float shift = s->u.standardize.center ? (float)mean : 0.0f;
    /* Keras divides by the population standard deviation plus 1e-6 */
    const float scale = s->u.standardize.scale ? (float)(1.0 / (sqrt(squares / (double)n) + 1e-6)) : 1.0f;
    for (int64_t i = 0; i < n; i++) out.data[i] = (in.data[i] - shift) * scale;
}
