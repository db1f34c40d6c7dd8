/* augment_pipeline.c - building a pipeline of augmentation stages (with argument checks) and running
 * it over a batch: images in parallel, each through every stage while it is in cache, each with its
 * own generator seeded from (seed, image index) so that the thread count never changes a result. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "augment.h"

struct cnn_aug_pipeline {
    int n, capacity;
    aug_stage *stages;
};

/* Estimated work per batch (element operations, see stage_cost) below which a batch stays on one
 * thread: a Fashion-MNIST batch of 128 through an affine warp takes well under a millisecond, less
 * than waking a second thread costs on a busy machine. */
#define AUG_PARALLEL_MIN (2.0 * 1024 * 1024)
/* Limits that keep every size computation far from overflow. */
#define AUG_MAX_SIDE 65536

cnn_aug_pipeline *cnn_aug_pipeline_new(void) {
    cnn_aug_pipeline *p = calloc(1, sizeof *p);
    if (!p) return cnn_fail_null(CNN_ERR_MEMORY, "augment: out of memory");
    return p;
}

void cnn_aug_pipeline_free(cnn_aug_pipeline *p) {
    if (!p) return;
    for (int i = 0; i < p->n; i++) free(p->stages[i].values);
    free(p->stages);
    free(p);
}

int cnn_aug_pipeline_length(const cnn_aug_pipeline *p) { return p ? p->n : 0; }

/* ---- argument checks ------------------------------------------------------------------------------ */

static bool check_probability(const char *op, const char *what, float p) {
    if (p >= 0.0f && p <= 1.0f) return true;
    cnn_fail(CNN_ERR_ARGUMENT, "%s: %s must be a probability in [0, 1], got %g", op, what, (double)p);
    return false;
}

/* A finite range {low, high} with low <= high inside [min, max]. */
static bool check_range(const char *op, const char *what, const float r[2], double min, double max) {
    if (!isfinite(r[0]) || !isfinite(r[1]) || r[0] > r[1]) {
        cnn_fail(CNN_ERR_ARGUMENT, "%s: %s must be a range {low, high} of finite numbers with low <= high, "
                 "got {%g, %g}", op, what, (double)r[0], (double)r[1]);
        return false;
    }
    if (r[0] < min || r[1] > max) {
        cnn_fail(CNN_ERR_ARGUMENT, "%s: %s {%g, %g} must lie within [%g, %g]", op, what, (double)r[0],
                 (double)r[1], min, max);
        return false;
    }
    return true;
}

static bool check_positive_range(const char *op, const char *what, const float r[2]) {
    if (!check_range(op, what, r, 0.0, HUGE_VAL)) return false;
    if (r[0] <= 0.0f) {
        cnn_fail(CNN_ERR_ARGUMENT, "%s: %s must be positive, got {%g, %g}", op, what, (double)r[0], (double)r[1]);
        return false;
    }
    return true;
}

static bool check_size(const char *op, const int32_t size[2]) {
    if (size[0] >= 1 && size[1] >= 1 && size[0] <= AUG_MAX_SIDE && size[1] <= AUG_MAX_SIDE) return true;
    cnn_fail(CNN_ERR_ARGUMENT, "%s: size must be positive (at most %d), got %dx%d", op, AUG_MAX_SIDE,
             (int)size[0], (int)size[1]);
    return false;
}

static bool check_sampling(const char *op, int32_t sampling) {
    if (sampling == CNN_SAMPLE_NEAREST || sampling == CNN_SAMPLE_BILINEAR) return true;
    cnn_fail(CNN_ERR_ARGUMENT, "%s: unknown sampling %d (0 nearest, 1 bilinear)", op, (int)sampling);
    return false;
}

static aug_stage *add_stage(cnn_aug_pipeline *p, aug_kind kind, float prob, const char *op) {
    if (!p) return cnn_fail_null(CNN_ERR_ARGUMENT, "%s: the pipeline is NULL", op);
    if (!check_probability(op, "the probability", prob)) return NULL;
    if (p->n == p->capacity) {
        int capacity = p->capacity ? 2 * p->capacity : 8;
        aug_stage *grown = realloc(p->stages, (size_t)capacity * sizeof *grown);
        if (!grown) return cnn_fail_null(CNN_ERR_MEMORY, "%s: out of memory", op);
        p->stages = grown;
        p->capacity = capacity;
    }
    aug_stage *s = &p->stages[p->n++];
    memset(s, 0, sizeof *s);
    s->kind = kind;
    s->prob = prob;
    return s;
}

/* Copies n floats (count of them given, each finite) into the stage. */
static bool store_values(aug_stage *s, const float *values, int n, int copies, const char *op) {
    s->values = malloc((size_t)(n * copies) * sizeof(float));
    if (!s->values) {
        cnn_fail(CNN_ERR_MEMORY, "%s: out of memory", op);
        return false;
    }
    memcpy(s->values, values, (size_t)n * sizeof(float));
    s->n_values = n;
    return true;
}

/* Takes back the stage just added (after a failed check of its contents). */
static cnn_status drop_last(cnn_aug_pipeline *p) {
    aug_stage *s = &p->stages[--p->n];
    free(s->values);
    s->values = NULL;
    return cnn_last_status();
}

/* ---- adding stages -------------------------------------------------------------------------------- */

cnn_status cnn_aug_add_affine(cnn_aug_pipeline *p, const cnn_aug_affine *o, float prob) {
    const char *op = "affine";
    if (!o) return cnn_fail(CNN_ERR_ARGUMENT, "%s: options are NULL", op);
    if (!check_range(op, "rotation", o->rotation, -1e6, 1e6) || !check_range(op, "shift_x", o->shift_x, -1e6, 1e6) ||
        !check_range(op, "shift_y", o->shift_y, -1e6, 1e6) || !check_positive_range(op, "zoom_x", o->zoom_x) ||
        !check_positive_range(op, "zoom_y", o->zoom_y) || !check_range(op, "shear", o->shear, -1e6, 1e6) ||
        !check_probability(op, "flip_horizontal", o->flip_horizontal) ||
        !check_probability(op, "flip_vertical", o->flip_vertical) || !check_sampling(op, o->sampling))
        return cnn_last_status();
    if (o->zoom_x[1] > 1e4 || o->zoom_y[1] > 1e4)
        return cnn_fail(CNN_ERR_ARGUMENT, "%s: zoom factors above 1e4 are not supported", op);
    for (int k = 0; k < 2; k++) {
        int32_t units = k == 0 ? o->shift_x_units : o->shift_y_units;
        if (units < CNN_SHIFT_FRACTION || units > CNN_SHIFT_WHOLE_PIXELS)
            return cnn_fail(CNN_ERR_ARGUMENT, "%s: unknown shift units %d", op, (int)units);
    }
    if (o->fill_mode < CNN_FILL_NEAREST || o->fill_mode > CNN_FILL_WRAP)
        return cnn_fail(CNN_ERR_ARGUMENT, "%s: unknown fill mode %d", op, (int)o->fill_mode);
    if (!isfinite(o->cval)) return cnn_fail(CNN_ERR_ARGUMENT, "%s: cval must be finite", op);
    aug_stage *s = add_stage(p, AUG_AFFINE, prob, op);
    if (!s) return cnn_last_status();
    s->u.affine = *o;
    return CNN_OK;
}

cnn_status cnn_aug_add_flip(cnn_aug_pipeline *p, float p_horizontal, float p_vertical) {
    if (!check_probability("random_flip", "the horizontal probability", p_horizontal) ||
        !check_probability("random_flip", "the vertical probability", p_vertical))
        return cnn_last_status();
    aug_stage *s = add_stage(p, AUG_FLIP, 1.0f, "random_flip");
    if (!s) return cnn_last_status();
    s->u.flip.horizontal = p_horizontal;
    s->u.flip.vertical = p_vertical;
    return CNN_OK;
}

cnn_status cnn_aug_add_crop(cnn_aug_pipeline *p, const cnn_aug_crop *o) {
    const char *op = "random_crop";
    if (!o) return cnn_fail(CNN_ERR_ARGUMENT, "%s: options are NULL", op);
    if (!check_size(op, o->size)) return cnn_last_status();
    for (int k = 0; k < 4; k++)
        if (o->padding[k] < 0 || o->padding[k] > AUG_MAX_SIDE)
            return cnn_fail(CNN_ERR_ARGUMENT, "%s: padding must be in 0..%d, got %d", op, AUG_MAX_SIDE,
                            (int)o->padding[k]);
    if (o->pad_mode < CNN_PAD_CONSTANT || o->pad_mode > CNN_PAD_CIRCULAR)
        return cnn_fail(CNN_ERR_ARGUMENT, "%s: unknown padding mode %d", op, (int)o->pad_mode);
    aug_stage *s = add_stage(p, AUG_CROP, 1.0f, op);
    if (!s) return cnn_last_status();
    s->u.crop = *o;
    return CNN_OK;
}

cnn_status cnn_aug_add_resized_crop(cnn_aug_pipeline *p, const cnn_aug_resized_crop *o) {
    const char *op = "random_resized_crop";
    if (!o) return cnn_fail(CNN_ERR_ARGUMENT, "%s: options are NULL", op);
    if (!check_size(op, o->size) || !check_positive_range(op, "scale", o->scale) ||
        !check_positive_range(op, "ratio", o->ratio) || !check_sampling(op, o->sampling))
        return cnn_last_status();
    aug_stage *s = add_stage(p, AUG_RESIZED_CROP, 1.0f, op);
    if (!s) return cnn_last_status();
    s->u.resized_crop = *o;
    return CNN_OK;
}

cnn_status cnn_aug_add_color(cnn_aug_pipeline *p, const cnn_aug_color *o, float prob) {
    const char *op = "color_jitter";
    if (!o) return cnn_fail(CNN_ERR_ARGUMENT, "%s: options are NULL", op);
    if (!check_range(op, "brightness", o->brightness, 0.0, 1e6) || !check_range(op, "contrast", o->contrast, 0.0, 1e6) ||
        !check_range(op, "saturation", o->saturation, 0.0, 1e6) || !check_range(op, "hue", o->hue, -0.5, 0.5))
        return cnn_last_status();
    aug_stage *s = add_stage(p, AUG_COLOR, prob, op);
    if (!s) return cnn_last_status();
    s->u.color = *o;
    return CNN_OK;
}

cnn_status cnn_aug_add_noise(cnn_aug_pipeline *p, float mean, float std, int clip, float prob) {
    if (!isfinite(mean) || !isfinite(std) || std < 0.0f)
        return cnn_fail(CNN_ERR_ARGUMENT, "gaussian_noise: mean must be finite and std finite and >= 0, "
                        "got mean %g, std %g", (double)mean, (double)std);
    aug_stage *s = add_stage(p, AUG_NOISE, prob, "gaussian_noise");
    if (!s) return cnn_last_status();
    s->u.noise.mean = mean;
    s->u.noise.std = std;
    s->u.noise.clip = clip != 0;
    return CNN_OK;
}

cnn_status cnn_aug_add_erasing(cnn_aug_pipeline *p, const cnn_aug_erasing *o, const float *values,
                               int n_values, float prob) {
    const char *op = "random_erasing";
    if (!o) return cnn_fail(CNN_ERR_ARGUMENT, "%s: options are NULL", op);
    if (!check_positive_range(op, "scale", o->scale) || !check_range(op, "scale", o->scale, 0.0, 1.0) ||
        !check_positive_range(op, "ratio", o->ratio))
        return cnn_last_status();
    if (!o->random_fill) {
        if (!values || n_values < 1)
            return cnn_fail(CNN_ERR_ARGUMENT, "%s: give at least one fill value (or random_fill)", op);
        for (int i = 0; i < n_values; i++)
            if (!isfinite(values[i]))
                return cnn_fail(CNN_ERR_ARGUMENT, "%s: fill value %d is not finite", op, i + 1);
    }
    aug_stage *s = add_stage(p, AUG_ERASING, prob, op);
    if (!s) return cnn_last_status();
    s->u.erasing = *o;
    if (!o->random_fill && !store_values(s, values, n_values, 1, op)) return drop_last(p);
    return CNN_OK;
}

cnn_status cnn_aug_add_normalize(cnn_aug_pipeline *p, const float *mean, const float *std, int n) {
    const char *op = "normalize";
    if (!mean || !std || n < 1) return cnn_fail(CNN_ERR_ARGUMENT, "%s: give at least one mean and std", op);
    for (int i = 0; i < n; i++) {
        if (!isfinite(mean[i]) || !isfinite(std[i]) || std[i] == 0.0f)
            return cnn_fail(CNN_ERR_ARGUMENT, "%s: channel %d has mean %g and std %g; both must be finite "
                            "and std non-zero", op, i + 1, (double)mean[i], (double)std[i]);
    }
    aug_stage *s = add_stage(p, AUG_NORMALIZE, 1.0f, op);
    if (!s) return cnn_last_status();
    if (!store_values(s, mean, n, 2, op)) return drop_last(p);
    memcpy(s->values + n, std, (size_t)n * sizeof(float));
    return CNN_OK;
}

cnn_status cnn_aug_add_channel_shift(cnn_aug_pipeline *p, float range, float prob) {
    if (!isfinite(range) || range < 0.0f)
        return cnn_fail(CNN_ERR_ARGUMENT, "channel_shift: range must be finite and >= 0, got %g", (double)range);
    aug_stage *s = add_stage(p, AUG_CHANNEL_SHIFT, prob, "channel_shift");
    if (!s) return cnn_last_status();
    s->u.channel_shift = range;
    return CNN_OK;
}

cnn_status cnn_aug_add_standardize(cnn_aug_pipeline *p, int center, int scale) {
    aug_stage *s = add_stage(p, AUG_STANDARDIZE, 1.0f, "standardize");
    if (!s) return cnn_last_status();
    s->u.standardize.center = center != 0;
    s->u.standardize.scale = scale != 0;
    return CNN_OK;
}

cnn_status cnn_aug_add_gate(cnn_aug_pipeline *p, float prob, int count) {
    if (count < 0) return cnn_fail(CNN_ERR_ARGUMENT, "augment: a group cannot hold %d stages", count);
    aug_stage *s = add_stage(p, AUG_GATE, prob, "augment group");
    if (!s) return cnn_last_status();
    s->u.gate_count = count;
    return CNN_OK;
}

/* ---- shapes --------------------------------------------------------------------------------------- */

static const char *stage_name(aug_kind kind) {
    switch (kind) {
    case AUG_GATE: return "augment group";
    case AUG_AFFINE: return "affine";
    case AUG_FLIP: return "random_flip";
    case AUG_CROP: return "random_crop";
    case AUG_RESIZED_CROP: return "random_resized_crop";
    case AUG_COLOR: return "color_jitter";
    case AUG_NOISE: return "gaussian_noise";
    case AUG_ERASING: return "random_erasing";
    case AUG_NORMALIZE: return "normalize";
    case AUG_CHANNEL_SHIFT: return "channel_shift";
    case AUG_STANDARDIZE: return "standardize";
    }
    return "augment";
}

static bool uses_rgb(const cnn_aug_color *o) {
    return o->saturation[0] != 1.0f || o->saturation[1] != 1.0f || o->hue[0] != 0.0f || o->hue[1] != 0.0f;
}

/* Rough cost per output element of a stage, relative to a copy. */
static double stage_cost(const aug_stage *s) {
    switch (s->kind) {
    case AUG_AFFINE:
    case AUG_RESIZED_CROP: return 8.0;
    case AUG_COLOR: return uses_rgb(&s->u.color) ? 12.0 : 3.0;
    case AUG_NOISE: return 6.0;
    case AUG_STANDARDIZE:
    case AUG_CHANNEL_SHIFT: return 2.0;
    default: return 1.0;
    }
}

/* Walks the stages for a (C, H, W) input: the output size, the largest image any stage produces
 * (for scratch buffers) and the estimated work per image. Errors name the stage and the sizes. */
static bool walk_shapes(const cnn_aug_pipeline *p, const int64_t in[3], int64_t out[3], int64_t *max_elems,
                        double *work) {
    int64_t C = in[0], H = in[1], W = in[2];
    int64_t largest = C * H * W;
    double cost = 0.0;
    int64_t maybe_skipped_until = -1; /* stages up to this index are in a group with p < 1 */
    float group_prob = 1.0f;
    for (int k = 0; k < p->n; k++) {
        const aug_stage *s = &p->stages[k];
        const char *op = stage_name(s->kind);
        switch (s->kind) {
        case AUG_GATE:
            if (s->prob < 1.0f && k + s->u.gate_count > maybe_skipped_until) {
                maybe_skipped_until = k + s->u.gate_count;
                group_prob = s->prob;
            }
            break;
        case AUG_CROP:
        case AUG_RESIZED_CROP: {
            if (k <= maybe_skipped_until) {
                cnn_fail(CNN_ERR_ARGUMENT, "%s: changes the image size, so it cannot run with a probability "
                         "(it is in a group applied with p = %g)", op, (double)group_prob);
                return false;
            }
            int64_t hw[2];
            if (!aug_crop_output(s, H, W, hw)) return false;
            H = hw[0];
            W = hw[1];
            break;
        }
        case AUG_COLOR:
            if (uses_rgb(&s->u.color) && C != 3) {
                cnn_fail(CNN_ERR_SHAPE, "%s: saturation and hue need RGB images (3 channels), got %lld channels",
                         op, (long long)C);
                return false;
            }
            break;
        case AUG_NORMALIZE:
        case AUG_ERASING:
            if (s->n_values > 1 && s->n_values != C) {
                cnn_fail(CNN_ERR_SHAPE, "%s: %d per-channel values for images with %lld channels", op,
                         s->n_values, (long long)C);
                return false;
            }
            break;
        default:
            break;
        }
        if (C * H * W > largest) largest = C * H * W;
        cost += stage_cost(s) * (double)(C * H * W);
    }
    out[0] = C;
    out[1] = H;
    out[2] = W;
    if (max_elems) *max_elems = largest;
    if (work) *work = cost;
    return true;
}

cnn_status cnn_aug_output_shape(const cnn_aug_pipeline *p, const int64_t in_chw[3], int64_t out_chw[3]) {
    if (!p) return cnn_fail(CNN_ERR_ARGUMENT, "augment: the pipeline is NULL");
    return walk_shapes(p, in_chw, out_chw, NULL, NULL) ? CNN_OK : cnn_last_status();
}

uint64_t cnn_aug_random_seed(void) { return cnn_rng_next_u64(); }

/* ---- running ---------------------------------------------------------------------------------------- */

static void run_stage(const aug_stage *s, aug_image in, aug_image out, aug_rng *r) {
    switch (s->kind) {
    case AUG_AFFINE: aug_run_affine(s, in, out, r); break;
    case AUG_FLIP: aug_run_flip(s, in, out, r); break;
    case AUG_CROP: aug_run_crop(s, in, out, r); break;
    case AUG_RESIZED_CROP: aug_run_resized_crop(s, in, out, r); break;
    case AUG_COLOR: aug_run_color(s, in, out, r); break;
    case AUG_NOISE: aug_run_noise(s, in, out, r); break;
    case AUG_ERASING: aug_run_erasing(s, in, out, r); break;
    case AUG_NORMALIZE: aug_run_normalize(s, in, out, r); break;
    case AUG_CHANNEL_SHIFT: aug_run_channel_shift(s, in, out, r); break;
    case AUG_STANDARDIZE: aug_run_standardize(s, in, out, r); break;
    case AUG_GATE: break;
    }
}

/* One image through every stage, alternating between the two halves of scratch. */
static void run_image(const cnn_aug_pipeline *p, const float *src, const int64_t chw[3], float *dst,
                      float *scratch, int64_t half, uint64_t seed, int64_t index) {
    aug_rng r;
    aug_rng_seed(&r, seed, (uint64_t)index);
    aug_image cur = {(float *)src, chw[0], chw[1], chw[2]};
    int which = 0;
    for (int k = 0; k < p->n; k++) {
        const aug_stage *s = &p->stages[k];
        if (s->kind == AUG_GATE) {
            if (!aug_chance(&r, s->prob)) k += s->u.gate_count;
            continue;
        }
        if (!aug_chance(&r, s->prob)) continue;
        aug_image next = {scratch + which * half, cur.C, cur.H, cur.W};
        if (s->kind == AUG_CROP || s->kind == AUG_RESIZED_CROP) {
            int64_t hw[2];
            aug_crop_output(s, cur.H, cur.W, hw); /* checked by walk_shapes */
            next.H = hw[0];
            next.W = hw[1];
        }
        run_stage(s, cur, next, &r);
        cur = next;
        which ^= 1;
    }
    memcpy(dst, cur.data, (size_t)(cur.C * cur.H * cur.W) * sizeof(float));
}

cnn_tensor *cnn_aug_apply(const cnn_aug_pipeline *p, cnn_tensor *x, uint64_t seed) {
    if (!p) return cnn_fail_null(CNN_ERR_ARGUMENT, "augment: the pipeline is NULL");
    if (!x) return cnn_fail_null(CNN_ERR_ARGUMENT, "augment: the input is NULL");
    if (x->ndim != 3 && x->ndim != 4)
        return cnn_fail_null(CNN_ERR_SHAPE, "augment: expected a batch (N, C, H, W) or an image (C, H, W), "
                             "got shape %s", cnn_shape_str(x));
    const int batched = x->ndim == 4;
    const int64_t N = batched ? x->shape[0] : 1;
    const int64_t in_chw[3] = {x->shape[batched], x->shape[batched + 1], x->shape[batched + 2]};
    for (int d = 0; d < 3; d++)
        if (in_chw[d] < 1 || in_chw[d] > AUG_MAX_SIDE)
            return cnn_fail_null(CNN_ERR_SHAPE, "augment: images must have 1..%d channels, rows and columns, "
                                 "got shape %s", AUG_MAX_SIDE, cnn_shape_str(x));
    int64_t out_chw[3], max_elems;
    double work_per_image;
    if (!walk_shapes(p, in_chw, out_chw, &max_elems, &work_per_image)) {
        char reason[512];
        snprintf(reason, sizeof reason, "%s", cnn_last_error());
        return cnn_fail_null(cnn_last_status(), "%s (input %s)", reason, cnn_shape_str(x));
    }
    int64_t shape[4] = {N, out_chw[0], out_chw[1], out_chw[2]};
    cnn_tensor *out = cnn_alloc(x->ndim, batched ? shape : shape + 1);
    if (!out || N == 0) return out;
    cnn_tensor *tmp = NULL;
    const float *src = cnn_read_ptr(x, &tmp);
    if (!src) {
        cnn_release(out);
        return NULL;
    }
    const int64_t in_elems = in_chw[0] * in_chw[1] * in_chw[2];
    const int64_t out_elems = out_chw[0] * out_chw[1] * out_chw[2];
    float *dst = cnn_ptr(out);
    atomic_bool out_of_memory = false, interrupted = false;
    const bool parallel = N > 1 && (double)N * work_per_image >= AUG_PARALLEL_MIN;
#pragma omp parallel if (parallel)
    {
        float *scratch = malloc((size_t)(2 * max_elems) * sizeof(float));
        if (!scratch) out_of_memory = true;
        /* dynamic: a thread that loses its core to another process does not hold back the batch,
         * and the per-image seeding makes the result independent of who runs which image */
#pragma omp for schedule(dynamic, 4)
        for (int64_t i = 0; i < N; i++) {
            if (!scratch || out_of_memory || interrupted) continue;
            if ((i & 31) == 0 && cnn_interrupted()) {
                interrupted = true;
                continue;
            }
            run_image(p, src + i * in_elems, in_chw, dst + i * out_elems, scratch, max_elems, seed, i);
        }
        free(scratch);
    }
    cnn_release(tmp);
    if (out_of_memory || interrupted) {
        cnn_release(out);
        if (interrupted) return cnn_fail_null(CNN_ERR_INTERRUPTED, "augment: interrupted (input %s)", cnn_shape_str(x));
        return cnn_fail_null(CNN_ERR_MEMORY, "augment: out of memory for scratch images (input %s)", cnn_shape_str(x));
    }
    return out;
}
