/* augment_geometric.c - the affine warp (rotation, shift, shear, zoom, flips) and exact flips.
 *
 * The warp follows Keras' ImageDataGenerator.apply_affine_transform: in (row, column) coordinates the
 * output pixel p pulls from the input position  o + R T S Z (p - o),  o being the image centre
 * (H/2 - 0.5, W/2 - 0.5), R a rotation, T a shift, S Keras' shear [[1, -sin s], [0, cos s]] and Z the
 * zoom diag(zy, zx); flips apply to the warped image. Two conventions are fixed here because Keras
 * leaves them to chance (its ranges are symmetric): a positive angle turns the content
 * counter-clockwise (as torchvision and scipy.ndimage.rotate), a positive shift moves it right/down. */
#include <string.h>

#include "augment.h"

aug_edge aug_edge_of_fill(cnn_fill_mode mode) {
    switch (mode) {
    case CNN_FILL_CONSTANT: return AUG_EDGE_CONSTANT;
    case CNN_FILL_REFLECT: return AUG_EDGE_SYMMETRIC;
    case CNN_FILL_WRAP: return AUG_EDGE_WRAP;
    case CNN_FILL_NEAREST: break;
    }
    return AUG_EDGE_CLAMP;
}

cnn_aug_affine cnn_aug_affine_defaults(void) {
    cnn_aug_affine o;
    memset(&o, 0, sizeof o);
    o.zoom_x[0] = o.zoom_x[1] = 1.0f;
    o.zoom_y[0] = o.zoom_y[1] = 1.0f;
    o.shift_x_units = o.shift_y_units = CNN_SHIFT_PIXELS;
    o.fill_mode = CNN_FILL_NEAREST;
    o.sampling = CNN_SAMPLE_BILINEAR;
    return o;
}

/* ---- resampling -------------------------------------------------------------------------------- */

/* Positions this close to the edge count as on it: a shift of 0.4f x 5 pixels lands at 2.00000003,
 * and rounding noise must not turn an edge pixel into the fill value. */
#define EDGE_TOLERANCE 1e-4

static inline bool outside(double y, double x, int64_t h, int64_t w) {
    return !(y >= -EDGE_TOLERANCE && y <= (double)(h - 1) + EDGE_TOLERANCE && x >= -EDGE_TOLERANCE &&
             x <= (double)(w - 1) + EDGE_TOLERANCE);
}

void aug_resample(const aug_window *in, aug_image out, const double m[6], aug_edge edge, float cval,
                  cnn_sampling sampling) {
    const int64_t h = in->h, w = in->w, C = in->C;
    const int64_t rs = in->row_stride, ps = in->plane_stride, out_plane = out.H * out.W;
    /* Inside [0, h-1] x [0, w-1] (give or take the tolerance) a constant edge never reads a fill
     * value: only a neighbour of (almost) zero weight can fall outside, and clamping it is harmless. */
    const aug_edge tap_edge = edge == AUG_EDGE_CONSTANT ? AUG_EDGE_CLAMP : edge;
    for (int64_t r = 0; r < out.H; r++) {
        for (int64_t q = 0; q < out.W; q++) {
            const double y = m[0] * (double)r + m[1] * (double)q + m[2];
            const double x = m[3] * (double)r + m[4] * (double)q + m[5];
            float *dst = out.data + r * out.W + q;
            if (edge == AUG_EDGE_CONSTANT && outside(y, x, h, w)) {
                for (int64_t c = 0; c < C; c++) dst[c * out_plane] = cval;
                continue;
            }
            if (sampling == CNN_SAMPLE_NEAREST) {
                /* scipy's order 0 rounds half up */
                int64_t iy = aug_edge_index((int64_t)floor(y + 0.5), h, tap_edge);
                int64_t ix = aug_edge_index((int64_t)floor(x + 0.5), w, tap_edge);
                const float *src = in->data + iy * rs + ix;
                for (int64_t c = 0; c < C; c++) dst[c * out_plane] = src[c * ps];
                continue;
            }
            const double fy = floor(y), fx = floor(x);
            const float wy = (float)(y - fy), wx = (float)(x - fx);
            int64_t y0 = (int64_t)fy, x0 = (int64_t)fx, y1 = y0 + 1, x1 = x0 + 1;
            if (y0 < 0 || y1 >= h || x0 < 0 || x1 >= w) {
                y0 = aug_edge_index(y0, h, tap_edge);
                y1 = aug_edge_index(y1, h, tap_edge);
                x0 = aug_edge_index(x0, w, tap_edge);
                x1 = aug_edge_index(x1, w, tap_edge);
            }
            const float *a = in->data + y0 * rs + x0, *b = in->data + y0 * rs + x1;
            const float *c_ = in->data + y1 * rs + x0, *d = in->data + y1 * rs + x1;
            for (int64_t c = 0; c < C; c++) {
                const int64_t k = c * ps;
                float top = a[k] + wx * (b[k] - a[k]);
                float bottom = c_[k] + wx * (d[k] - c_[k]);
                dst[c * out_plane] = top + wy * (bottom - top);
            }
        }
    }
}

/* ---- the affine warp ----------------------------------------------------------------------------- */

/* cos/sin of whole quarter turns come out as 6e-17 instead of 0; snapping keeps 90-degree rotations
 * exact permutations of the pixels. */
static double snap(double v) {
    if (fabs(v) < 1e-12) return 0.0;
    if (fabs(v - 1.0) < 1e-12) return 1.0;
    if (fabs(v + 1.0) < 1e-12) return -1.0;
    return v;
}

static double draw_shift(aug_rng *r, const float range[2], int32_t units, int64_t size) {
    if (units == CNN_SHIFT_WHOLE_PIXELS) {
        const double lo = ceil(range[0]), hi = floor(range[1]), u = aug_uniform(r);
        return hi < lo ? 0.0 : lo + floor(u * (hi - lo + 1.0));
    }
    const double v = aug_in_range(r, range);
    return units == CNN_SHIFT_FRACTION ? v * (double)size : v;
}

void aug_run_affine(const aug_stage *s, aug_image in, aug_image out, aug_rng *r) {
    const cnn_aug_affine *o = &s->u.affine;
    const double deg = M_PI / 180.0;
    const double theta = aug_in_range(r, o->rotation) * deg;
    const double dx = draw_shift(r, o->shift_x, o->shift_x_units, in.W);
    const double dy = draw_shift(r, o->shift_y, o->shift_y_units, in.H);
    const double shear = aug_in_range(r, o->shear) * deg;
    const double zx = aug_in_range(r, o->zoom_x);
    const double zy = o->zoom_same ? zx : aug_in_range(r, o->zoom_y);
    const bool flip_h = aug_chance(r, o->flip_horizontal), flip_v = aug_chance(r, o->flip_vertical);

    if (theta == 0.0 && dx == 0.0 && dy == 0.0 && shear == 0.0 && zx == 1.0 && zy == 1.0 && !flip_h &&
        !flip_v) {
        memcpy(out.data, in.data, (size_t)(in.C * in.H * in.W) * sizeof(float));
        return;
    }
    /* R turns counter-clockwise for theta > 0 in (row, column) coordinates with rows going down */
    const double cr = snap(cos(theta)), sr = snap(sin(theta));
    const double R[2][2] = {{cr, sr}, {-sr, cr}};
    const double S[2][2] = {{1.0, -snap(sin(shear))}, {0.0, snap(cos(shear))}};
    double RS[2][2], A[2][2];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++) RS[i][j] = R[i][0] * S[0][j] + R[i][1] * S[1][j];
    for (int i = 0; i < 2; i++) {
        A[i][0] = RS[i][0] * zy;
        A[i][1] = RS[i][1] * zx;
    }
    /* the shift T pulls from p - (dy, dx), seen through R */
    const double t0 = -(R[0][0] * dy + R[0][1] * dx), t1 = -(R[1][0] * dy + R[1][1] * dx);
    const double oy = (double)in.H / 2.0 - 0.5, ox = (double)in.W / 2.0 - 0.5;
    double m[6] = {A[0][0], A[0][1], oy + t0 - (A[0][0] * oy + A[0][1] * ox),
                   A[1][0], A[1][1], ox + t1 - (A[1][0] * oy + A[1][1] * ox)};
    /* a flip replaces r by (H-1-r) or q by (W-1-q) before the warp */
    if (flip_v) {
        m[2] += m[0] * (double)(out.H - 1);
        m[5] += m[3] * (double)(out.H - 1);
        m[0] = -m[0];
        m[3] = -m[3];
    }
    if (flip_h) {
        m[2] += m[1] * (double)(out.W - 1);
        m[5] += m[4] * (double)(out.W - 1);
        m[1] = -m[1];
        m[4] = -m[4];
    }
    const aug_window window = {in.data, in.C, in.H, in.W, in.W, in.H * in.W};
    aug_resample(&window, out, m, aug_edge_of_fill((cnn_fill_mode)o->fill_mode), o->cval,
                 (cnn_sampling)o->sampling);
}

/* ---- exact flips --------------------------------------------------------------------------------- */

void aug_run_flip(const aug_stage *s, aug_image in, aug_image out, aug_rng *r) {
    const bool flip_h = aug_chance(r, s->u.flip.horizontal), flip_v = aug_chance(r, s->u.flip.vertical);
    const int64_t H = in.H, W = in.W;
    for (int64_t c = 0; c < in.C; c++) {
        for (int64_t y = 0; y < H; y++) {
            const float *src = in.data + (c * H + (flip_v ? H - 1 - y : y)) * W;
            float *dst = out.data + (c * H + y) * W;
            if (flip_h) {
                for (int64_t x = 0; x < W; x++) dst[x] = src[W - 1 - x];
            } else {
                memcpy(dst, src, (size_t)W * sizeof(float));
            }
        }
    }
}
