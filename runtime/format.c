/* Human-readable tensors: values aligned in columns, abbreviated with "..." when large (the first
 * and last EDGE entries of each dimension), followed by a footer such as [cnn.Tensor float32 3x3]. */
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* Unsummarised tensors have at most SUMMARISE_ABOVE elements, so no dim shows more entries. */
enum { SUMMARISE_ABOVE = 1000, EDGE = 3, MAX_SHOWN = SUMMARISE_ABOVE + 2 * EDGE + 2 };

typedef struct text {
    char *buf;
    size_t len, cap;
    bool failed;
} text;

static void put(text *t, const char *fmt, ...) {
    if (t->failed) return;
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = vsnprintf(t->buf + t->len, t->cap - t->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            t->failed = true;
            return;
        }
        if (t->len + (size_t)n < t->cap) {
            t->len += (size_t)n;
            return;
        }
        size_t cap = (t->cap + (size_t)n + 1) * 2;
        char *b = realloc(t->buf, cap);
        if (!b) {
            t->failed = true;
            return;
        }
        t->buf = b;
        t->cap = cap;
    }
}

typedef struct number_style {
    int width;
    char fmt[16];
} number_style;

/* One format for all shown values: integers when every value is whole, fixed point for moderate
 * magnitudes, scientific otherwise. */
static number_style choose_style(const float *v, int64_t n) {
    bool whole = true;
    double maxabs = 0, minabs = INFINITY;
    for (int64_t i = 0; i < n; i++) {
        double x = v[i];
        if (!isfinite(x)) continue;
        if (x != floor(x)) whole = false;
        if (fabs(x) > maxabs) maxabs = fabs(x);
        if (x != 0 && fabs(x) < minabs) minabs = fabs(x);
    }
    number_style s;
    if (whole && maxabs < 1e9) snprintf(s.fmt, sizeof s.fmt, "%%.0f");
    else if (maxabs < 1e5 && (minabs >= 1e-4 || minabs == INFINITY)) snprintf(s.fmt, sizeof s.fmt, "%%.4f");
    else snprintf(s.fmt, sizeof s.fmt, "%%.4e");
    s.width = 1;
    char tmp[64];
    for (int64_t i = 0; i < n; i++) {
        int w = snprintf(tmp, sizeof tmp, s.fmt, (double)v[i]);
        if (w > s.width) s.width = w;
    }
    return s;
}

/* Element at a full index. */
static float at(const cnn_tensor *t, const int64_t *idx) {
    int64_t off = 0;
    for (int d = 0; d < t->ndim; d++) off += idx[d] * t->stride[d];
    return cnn_ptr(t)[off];
}

/* Indices shown along a dim of size n: all, or the edges. Returns the count; -1 marks "...". */
static int shown(int64_t n, bool summarise, int64_t *out) {
    int k = 0;
    if (!summarise || n <= 2 * EDGE) {
        for (int64_t i = 0; i < n; i++) out[k++] = i;
    } else {
        for (int64_t i = 0; i < EDGE; i++) out[k++] = i;
        out[k++] = -1;
        for (int64_t i = n - EDGE; i < n; i++) out[k++] = i;
    }
    return k;
}

static void put_value(text *tx, const number_style *s, float v) {
    char tmp[64];
    if (isnan(v)) snprintf(tmp, sizeof tmp, "nan");
    else if (isinf(v)) snprintf(tmp, sizeof tmp, v > 0 ? "inf" : "-inf");
    else snprintf(tmp, sizeof tmp, s->fmt, (double)v);
    put(tx, "%*s", s->width, tmp);
}

/* The last two dims (or the only one) at the leading index idx[0..ndim-3]. */
static void put_matrix(text *tx, const cnn_tensor *t, int64_t *idx, const number_style *s, bool summ) {
    int nd = t->ndim;
    int64_t rows_idx[MAX_SHOWN], cols_idx[MAX_SHOWN];
    int64_t rows = nd >= 2 ? t->shape[nd - 2] : 1, cols = t->shape[nd - 1];
    int nr = shown(rows, summ, rows_idx), nc = shown(cols, summ, cols_idx);
    for (int r = 0; r < nr; r++) {
        if (rows_idx[r] < 0) {
            put(tx, " ...\n");
            continue;
        }
        if (nd >= 2) idx[nd - 2] = rows_idx[r];
        put(tx, " ");
        for (int c = 0; c < nc; c++) {
            if (cols_idx[c] < 0) {
                put(tx, " ...");
                continue;
            }
            idx[nd - 1] = cols_idx[c];
            if (c) put(tx, " ");
            put_value(tx, s, at(t, idx));
        }
        put(tx, "\n");
    }
}

static void put_slices(text *tx, const cnn_tensor *t, int64_t *idx, int d, const number_style *s,
                       bool summ) {
    if (d >= t->ndim - 2) {
        if (t->ndim > 2) {
            put(tx, "(");
            for (int i = 0; i < t->ndim - 2; i++) put(tx, "%lld,", (long long)idx[i] + 1);
            put(tx, ".,.) =\n");
        }
        put_matrix(tx, t, idx, s, summ);
        if (t->ndim > 2) put(tx, "\n");
        return;
    }
    int64_t sel[MAX_SHOWN];
    int k = shown(t->shape[d], summ, sel);
    for (int i = 0; i < k; i++) {
        if (sel[i] < 0) {
            put(tx, "...\n\n");
            continue;
        }
        idx[d] = sel[i];
        put_slices(tx, t, idx, d + 1, s, summ);
    }
}

char *cnn_format(const cnn_tensor *t) {
    text tx = {0};
    int64_t n = cnn_numel(t);
    bool summ = n > SUMMARISE_ABOVE;
    /* the style is chosen from the shown values only */
    float sample[4096];
    int64_t ns = 0;
    if (n > 0 && t->ndim == 0) sample[ns++] = cnn_ptr(t)[0];
    else if (n > 0) {
        int64_t idx[CNN_MAX_DIMS] = {0};
        int64_t total = summ ? 0 : n;
        if (!summ) {
            for (int64_t i = 0; i < total && ns < 4096; i++) {
                sample[ns++] = at(t, idx);
                for (int d = t->ndim - 1; d >= 0; d--) {
                    if (++idx[d] < t->shape[d]) break;
                    idx[d] = 0;
                }
            }
        } else { /* corners and a stride through the data */
            int64_t step = n / 4000 + 1;
            for (int64_t i = 0; i < n && ns < 4096; i += step) {
                int64_t rem = i;
                for (int d = t->ndim - 1; d >= 0; d--) {
                    idx[d] = rem % t->shape[d];
                    rem /= t->shape[d];
                }
                sample[ns++] = at(t, idx);
            }
        }
    }
    number_style s = choose_style(sample, ns);
    if (t->ndim == 0) {
        put_value(&tx, &s, cnn_ptr(t)[0]);
        put(&tx, "\n");
    } else if (n > 0) {
        int64_t idx[CNN_MAX_DIMS] = {0};
        put_slices(&tx, t, idx, 0, &s, summ);
    }
    put(&tx, "[cnn.Tensor float32 %s%s%s%s]", t->ndim ? cnn_shape_str(t) : "scalar",
        t->grad_fn ? ", grad_fn=" : "", t->grad_fn ? t->grad_fn->name : "",
        (!t->grad_fn && t->requires_grad) ? ", requires_grad" : "");
    if (tx.failed) {
        free(tx.buf);
        return NULL;
    }
    return tx.buf;
}

void cnn_free_string(char *s) { free(s); }
