/* augment.h - what the augmentation files share: the per-image random generator, the stage records
 * of a pipeline, edge handling of sample positions, and the resampler that the geometric and crop
 * stages both use.
 *
 * A stage reads one image (C, H, W) and writes another (C, oH, oW) into a separate buffer; the
 * pipeline (augment_pipeline.c) chains stages image by image, so a whole pipeline is one pass over
 * each image while it sits in cache. */
#ifndef CNN_AUGMENT_H
#define CNN_AUGMENT_H

#include <math.h>

#include "internal.h"

/* ---- per-image random numbers ------------------------------------------------------------------
 * SplitMix64: one 64-bit word of state, so a generator per image costs nothing to create, and the
 * stream of image i depends only on (seed, i). */
typedef struct aug_rng {
    uint64_t state;
    double spare_normal;
    bool has_spare;
} aug_rng;

#define AUG_GOLDEN_GAMMA 0x9E3779B97F4A7C15ull

static inline uint64_t aug_mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline void aug_rng_seed(aug_rng *r, uint64_t seed, uint64_t stream) {
    r->state = aug_mix64(seed ^ aug_mix64((stream + 1) * AUG_GOLDEN_GAMMA));
    r->has_spare = false;
    r->spare_normal = 0.0;
}

static inline uint64_t aug_next(aug_rng *r) {
    r->state += AUG_GOLDEN_GAMMA;
    return aug_mix64(r->state);
}

/* [0, 1) */
static inline double aug_uniform(aug_rng *r) { return (double)(aug_next(r) >> 11) * 0x1.0p-53; }

/* Uniform in [range[0], range[1]]; exactly range[0] when the range is a single value. */
static inline double aug_in_range(aug_rng *r, const float range[2]) {
    double u = aug_uniform(r);
    return range[0] == range[1] ? (double)range[0] : range[0] + (range[1] - (double)range[0]) * u;
}

/* An integer in [0, n), n >= 1. */
static inline int64_t aug_below(aug_rng *r, int64_t n) { return (int64_t)(aug_uniform(r) * (double)n); }

/* True with probability p; p >= 1 and p <= 0 take no draw, so deterministic stages use none. */
static inline bool aug_chance(aug_rng *r, float p) {
    if (p >= 1.0f) return true;
    if (p <= 0.0f) return false;
    return aug_uniform(r) < (double)p;
}

/* Standard normal (Box-Muller, both values used). */
static inline double aug_normal(aug_rng *r) {
    if (r->has_spare) {
        r->has_spare = false;
        return r->spare_normal;
    }
    double u1 = 1.0 - aug_uniform(r); /* (0, 1]: the log is finite */
    double u2 = aug_uniform(r);
    double radius = sqrt(-2.0 * log(u1));
    r->spare_normal = radius * sin(2.0 * M_PI * u2);
    r->has_spare = true;
    return radius * cos(2.0 * M_PI * u2);
}

/* The sides of a random box as torchvision draws them for RandomResizedCrop and RandomErasing: an
 * area of scale x area and an aspect ratio drawn log-uniformly; *along = round(sqrt(area * ratio)),
 * *across = round(sqrt(area / ratio)) (Python's round() halves to even, as nearbyint does). */
static inline void aug_draw_box(aug_rng *r, double area, const float scale[2], const float ratio[2],
                                int64_t *along, int64_t *across) {
    const float log_ratio[2] = {logf(ratio[0]), logf(ratio[1])};
    const double target = area * aug_in_range(r, scale);
    const double aspect = exp(aug_in_range(r, log_ratio));
    *along = (int64_t)nearbyint(sqrt(target * aspect));
    *across = (int64_t)nearbyint(sqrt(target / aspect));
}

/* ---- images and edges -------------------------------------------------------------------------- */
typedef struct aug_image {
    float *data; /* (C, H, W) contiguous */
    int64_t C, H, W;
} aug_image;

/* What an index outside 0..n-1 reads (for a row or column of length n). */
typedef enum aug_edge {
    AUG_EDGE_CONSTANT,  /* a fill value: kkk|abcd|kkk */
    AUG_EDGE_CLAMP,     /* aaa|abcd|ddd */
    AUG_EDGE_SYMMETRIC, /* cba|abcd|dcb: the edge pixel repeats (scipy 'reflect') */
    AUG_EDGE_MIRROR,    /* dcb|abcd|cba: no repeat (numpy/torch 'reflect') */
    AUG_EDGE_WRAP       /* bcd|abcd|abc */
} aug_edge;

/* The index inside 0..n-1 that i reads, or -1 for the fill value. */
static inline int64_t aug_edge_index(int64_t i, int64_t n, aug_edge edge) {
    if (i >= 0 && i < n) return i;
    switch (edge) {
    case AUG_EDGE_CONSTANT:
        return -1;
    case AUG_EDGE_CLAMP:
        return i < 0 ? 0 : n - 1;
    case AUG_EDGE_SYMMETRIC: {
        int64_t period = 2 * n, k = ((i % period) + period) % period;
        return k < n ? k : period - 1 - k;
    }
    case AUG_EDGE_MIRROR: {
        if (n == 1) return 0;
        int64_t period = 2 * n - 2, k = ((i % period) + period) % period;
        return k < n ? k : period - k;
    }
    case AUG_EDGE_WRAP:
        return ((i % n) + n) % n;
    }
    return -1;
}

aug_edge aug_edge_of_fill(cnn_fill_mode mode);

/* ---- resampling ---------------------------------------------------------------------------------
 * out(c, r, q) = in(c, y, x) with y = m[0] r + m[1] q + m[2], x = m[3] r + m[4] q + m[5]: the output
 * pixel (r, q) pulls from the input position (y, x) (row, column), as scipy.ndimage.affine_transform
 * does. Bilinear or nearest; positions outside the window follow edge. With AUG_EDGE_CONSTANT a
 * position outside [0, h-1] x [0, w-1] reads cval (scipy's 'constant': no blending across the edge).
 * The input window is h x w pixels starting at in, rows row_stride apart, planes plane_stride apart. */
typedef struct aug_window {
    const float *data;
    int64_t C, h, w, row_stride, plane_stride;
} aug_window;

void aug_resample(const aug_window *in, aug_image out, const double m[6], aug_edge edge, float cval,
                  cnn_sampling sampling);

/* ---- stages ------------------------------------------------------------------------------------ */
typedef enum aug_kind {
    AUG_GATE, AUG_AFFINE, AUG_FLIP, AUG_CROP, AUG_RESIZED_CROP, AUG_COLOR, AUG_NOISE, AUG_ERASING,
    AUG_NORMALIZE, AUG_CHANNEL_SHIFT, AUG_STANDARDIZE
} aug_kind;

typedef struct aug_stage {
    aug_kind kind;
    float prob;
    union {
        int32_t gate_count;
        cnn_aug_affine affine;
        struct {
            float horizontal, vertical;
        } flip;
        cnn_aug_crop crop;
        cnn_aug_resized_crop resized_crop;
        cnn_aug_color color;
        struct {
            float mean, std;
            int32_t clip;
        } noise;
        cnn_aug_erasing erasing;
        float channel_shift;
        struct {
            int32_t center, scale;
        } standardize;
    } u;
    float *values; /* normalize: n_values means then n_values stds; erasing: the fill values */
    int n_values;
} aug_stage;

/* Each runs one stage on one image: reads in, writes out (already sized by the pipeline). */
void aug_run_affine(const aug_stage *s, aug_image in, aug_image out, aug_rng *r);
void aug_run_flip(const aug_stage *s, aug_image in, aug_image out, aug_rng *r);
void aug_run_crop(const aug_stage *s, aug_image in, aug_image out, aug_rng *r);
void aug_run_resized_crop(const aug_stage *s, aug_image in, aug_image out, aug_rng *r);
void aug_run_color(const aug_stage *s, aug_image in, aug_image out, aug_rng *r);
void aug_run_normalize(const aug_stage *s, aug_image in, aug_image out, aug_rng *r);
void aug_run_channel_shift(const aug_stage *s, aug_image in, aug_image out, aug_rng *r);
void aug_run_standardize(const aug_stage *s, aug_image in, aug_image out, aug_rng *r);
void aug_run_noise(const aug_stage *s, aug_image in, aug_image out, aug_rng *r);
void aug_run_erasing(const aug_stage *s, aug_image in, aug_image out, aug_rng *r);

/* Image-size bookkeeping of the crop stages (augment_crop.c): the output (h, w) of a crop stage for an
 * input of h x w, or false + error naming the stage. */
bool aug_crop_output(const aug_stage *s, int64_t h, int64_t w, int64_t out_hw[2]);

#endif /* CNN_AUGMENT_H */
