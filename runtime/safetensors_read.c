/* safetensors_read.c - opening a safetensors file: the whole file is read once and every entry of
 * its header is checked before any tensor is handed out, so that a load either fully succeeds or
 * fails with a message naming the file and the offending tensor and field.
 *
 * Layout: an 8-byte little-endian header size H, H bytes of JSON
 *   {"__metadata__": {"k": "v", ...},
 *    "name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...}
 * and then the data buffer; offsets are relative to its first byte. The tensors must tile the buffer
 * exactly: no gaps, no overlaps, nothing after the last one. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "byte_order.h"
#include "internal.h"

typedef enum st_dtype {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL
} st_dtype;

static const struct {
    const char *name;
    int size; /* bytes per element */
} dtypes[] = {
    [ST_F32] = {"F32", 4}, [ST_F16] = {"F16", 2}, [ST_BF16] = {"BF16", 2}, [ST_F64] = {"F64", 8},
    [ST_I64] = {"I64", 8}, [ST_I32] = {"I32", 4}, [ST_I16] = {"I16", 2},  [ST_I8] = {"I8", 1},
    [ST_U8] = {"U8", 1},   [ST_BOOL] = {"BOOL", 1},
};
enum { N_DTYPES = sizeof dtypes / sizeof dtypes[0] };
static const char SUPPORTED_DTYPES[] = "F32, F16, BF16, F64, I64, I32, I16, I8, U8, BOOL";

typedef struct st_entry {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[CNN_MAX_DIMS];
    uint64_t begin, end; /* byte range in the data buffer */
} st_entry;

struct cnn_safetensors {
    char *path;
    unsigned char *file; /* the whole file */
    const unsigned char *data;
    uint64_t data_size;
    int count;
    st_entry *entries; /* in header order */
    int *by_name;      /* entry indices sorted by name, for lookup */
    char *metadata_json;
};

/* JSON numbers are doubles; integers up to 2^53 are exact, which bounds every offset and dim. */
static const double MAX_EXACT_INTEGER = 9007199254740992.0;

static bool is_non_negative_integer(const cJSON *item) {
    if (!cJSON_IsNumber(item)) return false;
    double v = item->valuedouble;
    return isfinite(v) && v >= 0 && v <= MAX_EXACT_INTEGER && v == floor(v);
}

/* "6x1x5x5", or "() (a scalar)" for a 0-d shape. */
static const char *shape_text(const st_entry *e) {
    return e->ndim == 0 ? "() (a scalar)" : cnn_dims_str(e->ndim, e->shape);
}

/* ---- reading the file ------------------------------------------------------------------------- */

static cnn_status read_whole_file(const char *path, unsigned char **bytes, size_t *size) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return cnn_fail(CNN_ERR_IO, "safetensors: cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        int err = errno;
        bool is_dir = S_ISDIR(st.st_mode);
        close(fd);
        return cnn_fail(CNN_ERR_IO, "safetensors: cannot read %s: %s", path,
                        is_dir ? "it is a directory" : err ? strerror(err) : "not a regular file");
    }
    size_t expected = (size_t)st.st_size;
    unsigned char *buf = malloc(expected ? expected : 1);
    if (!buf) {
        close(fd);
        return cnn_fail(CNN_ERR_MEMORY, "safetensors: cannot hold %s in memory (%zu bytes)", path,
                        expected);
    }
    /* Read in chunks so an interrupt is noticed on large checkpoints. A file that shrinks while
     * being read just ends early and then fails validation as truncated. */
    enum { CHUNK = 16 << 20 };
    size_t got = 0;
    while (got < expected) {
        if (cnn_interrupted()) {
            free(buf);
            close(fd);
            return cnn_fail(CNN_ERR_INTERRUPTED, "safetensors: interrupted while reading %s", path);
        }
        size_t want = expected - got < CHUNK ? expected - got : CHUNK;
        ssize_t n = read(fd, buf + got, want);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            int err = errno;
            free(buf);
            close(fd);
            return cnn_fail(CNN_ERR_IO, "safetensors: cannot read %s: %s", path, strerror(err));
        }
        if (n == 0) break;
        got += (size_t)n;
    }
    close(fd);
    *bytes = buf;
    *size = got;
    return CNN_OK;
}

/* ---- checking the header ---------------------------------------------------------------------- */

static cnn_status parse_dtype(const cJSON *item, const char *name, const char *path, st_dtype *out) {
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(item, "dtype");
    if (!cJSON_IsString(dtype))
        return cnn_fail(CNN_ERR_FORMAT, "safetensors: tensor '%s' in %s has no \"dtype\" string",
                        name, path);
    for (int d = 0; d < N_DTYPES; d++) {
        if (strcmp(dtype->valuestring, dtypes[d].name) == 0) {
            *out = (st_dtype)d;
            return CNN_OK;
        }
    }
    return cnn_fail(CNN_ERR_FORMAT, "safetensors: tensor '%s' in %s has dtype '%s', which cannot be "
                    "read (known dtypes: %s)", name, path, dtype->valuestring, SUPPORTED_DTYPES);
}

static cnn_status parse_shape(const cJSON *item, const char *path, st_entry *e) {
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(item, "shape");
    if (!cJSON_IsArray(shape))
        return cnn_fail(CNN_ERR_FORMAT, "safetensors: tensor '%s' in %s has no \"shape\" array",
                        e->name, path);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > CNN_MAX_DIMS)
        return cnn_fail(CNN_ERR_FORMAT, "safetensors: tensor '%s' in %s has %d dims; at most %d are "
                        "supported", e->name, path, ndim, (int)CNN_MAX_DIMS);
    e->ndim = 0;
    const cJSON *dim;
    cJSON_ArrayForEach(dim, shape) {
        if (!is_non_negative_integer(dim))
            return cnn_fail(CNN_ERR_FORMAT, "safetensors: tensor '%s' in %s has shape entry %d that "
                            "is not a non-negative integer", e->name, path, e->ndim + 1);
        e->shape[e->ndim++] = (int64_t)dim->valuedouble;
    }
    return CNN_OK;
}

static cnn_status parse_offsets(const cJSON *item, const char *path, uint64_t data_size,
                                st_entry *e) {
    const cJSON *offsets = cJSON_GetObjectItemCaseSensitive(item, "data_offsets");
    if (!cJSON_IsArray(offsets) || cJSON_GetArraySize(offsets) != 2 ||
        !is_non_negative_integer(offsets->child) || !is_non_negative_integer(offsets->child->next))
        return cnn_fail(CNN_ERR_FORMAT, "safetensors: tensor '%s' in %s has no \"data_offsets\" "
                        "pair of non-negative integers", e->name, path);
    e->begin = (uint64_t)offsets->child->valuedouble;
    e->end = (uint64_t)offsets->child->next->valuedouble;
    if (e->begin > e->end)
        return cnn_fail(CNN_ERR_FORMAT, "safetensors: tensor '%s' in %s has data_offsets [%llu, %llu] "
                        "that end before they begin", e->name, path, (unsigned long long)e->begin,
                        (unsigned long long)e->end);
    /* numel x element size, refusing anything that overflows */
    uint64_t needed = (uint64_t)dtypes[e->dtype].size;
    bool overflow = false;
    for (int d = 0; d < e->ndim; d++)
        overflow |= __builtin_mul_overflow(needed, (uint64_t)e->shape[d], &needed);
    if (overflow || e->end - e->begin != needed) {
        char needs[64];
        if (overflow) snprintf(needs, sizeof needs, "more than 2^64");
        else snprintf(needs, sizeof needs, "%llu", (unsigned long long)needed);
        return cnn_fail(CNN_ERR_FORMAT, "safetensors: tensor '%s' in %s has data_offsets [%llu, %llu] "
                        "but shape %s of %s needs %s bytes", e->name, path,
                        (unsigned long long)e->begin, (unsigned long long)e->end, shape_text(e),
                        dtypes[e->dtype].name, needs);
    }
    if (e->end > data_size)
        return cnn_fail(CNN_ERR_FORMAT, "safetensors: tensor '%s' in %s has data_offsets [%llu, %llu] "
                        "beyond the end of the data buffer (%llu bytes; is the file truncated?)",
                        e->name, path, (unsigned long long)e->begin, (unsigned long long)e->end,
                        (unsigned long long)data_size);
    return CNN_OK;
}

/* Keeps "__metadata__" as compact JSON text after checking it maps strings to strings. */
static cnn_status parse_metadata(const cJSON *meta, const char *path, char **json) {
    if (!cJSON_IsObject(meta))
        return cnn_fail(CNN_ERR_FORMAT, "safetensors: __metadata__ in %s is not a JSON object", path);
    const cJSON *item;
    cJSON_ArrayForEach(item, meta) {
        if (!cJSON_IsString(item))
            return cnn_fail(CNN_ERR_FORMAT, "safetensors: __metadata__ in %s has key '%s' whose value "
                            "is not a string", path, item->string);
    }
    *json = cJSON_PrintUnformatted(meta);
    return *json ? CNN_OK : cnn_fail(CNN_ERR_MEMORY, "safetensors: out of memory reading %s", path);
}

static int by_name_order(const void *a, const void *b, void *entries) {
    const st_entry *e = entries;
    return strcmp(e[*(const int *)a].name, e[*(const int *)b].name);
}

static int by_offset_order(const void *a, const void *b, void *entries) {
    const st_entry *x = (const st_entry *)entries + *(const int *)a;
    const st_entry *y = (const st_entry *)entries + *(const int *)b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static void sort_indices(int *idx, int n, st_entry *entries,
                         int (*order)(const void *, const void *, void *)) {
    for (int i = 0; i < n; i++) idx[i] = i;
    qsort_r(idx, (size_t)n, sizeof *idx, order, entries);
}

/* Names unique; byte ranges tiling [0, data_size) with no gap and no overlap. */
static cnn_status check_layout(cnn_safetensors *f) {
    st_entry *e = f->entries;
    int n = f->count;
    sort_indices(f->by_name, n, e, by_name_order);
    for (int i = 1; i < n; i++) {
        if (strcmp(e[f->by_name[i - 1]].name, e[f->by_name[i]].name) == 0)
            return cnn_fail(CNN_ERR_FORMAT, "safetensors: tensor name '%s' appears twice in %s",
                            e[f->by_name[i]].name, f->path);
    }
    int *by_offset = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    if (!by_offset) return cnn_fail(CNN_ERR_MEMORY, "safetensors: out of memory reading %s", f->path);
    sort_indices(by_offset, n, e, by_offset_order);
    uint64_t covered = 0;
    cnn_status status = CNN_OK;
    for (int i = 0; i < n && status == CNN_OK; i++) {
        const st_entry *cur = &e[by_offset[i]];
        if (cur->begin < covered) {
            const st_entry *prev = &e[by_offset[i - 1]];
            status = cnn_fail(CNN_ERR_FORMAT, "safetensors: tensors '%s' and '%s' in %s overlap: "
                              "data_offsets [%llu, %llu] and [%llu, %llu]", prev->name, cur->name,
                              f->path, (unsigned long long)prev->begin,
                              (unsigned long long)prev->end, (unsigned long long)cur->begin,
                              (unsigned long long)cur->end);
        } else if (cur->begin > covered) {
            status = cnn_fail(CNN_ERR_FORMAT, "safetensors: bytes [%llu, %llu) of the data buffer in "
                              "%s belong to no tensor (the next one, '%s', starts at %llu)",
                              (unsigned long long)covered, (unsigned long long)cur->begin, f->path,
                              cur->name, (unsigned long long)cur->begin);
        }
        covered = cur->end;
    }
    free(by_offset);
    if (status == CNN_OK && covered != f->data_size)
        status = cnn_fail(CNN_ERR_FORMAT, "safetensors: the data buffer of %s has %llu bytes but its "
                          "tensors cover only %llu", f->path, (unsigned long long)f->data_size,
                          (unsigned long long)covered);
    return status;
}

static cnn_status parse_header(cnn_safetensors *f, const char *text, size_t length) {
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, length, &end, 0);
    if (!root) {
        size_t at = end && end >= text && end <= text + length ? (size_t)(end - text) : 0;
        return cnn_fail(CNN_ERR_FORMAT, "safetensors: the header of %s is not valid JSON (error near "
                        "byte %zu of %zu)", f->path, at, length);
    }
    cnn_status status = CNN_OK;
    /* Anything after the object may only be the padding writers add. */
    for (const char *p = end; p && p < text + length && status == CNN_OK; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            status = cnn_fail(CNN_ERR_FORMAT, "safetensors: the header of %s has text after its JSON "
                              "object (at byte %zu)", f->path, (size_t)(p - text));
    }
    if (status == CNN_OK && !cJSON_IsObject(root))
        status = cnn_fail(CNN_ERR_FORMAT, "safetensors: the header of %s is not a JSON object", f->path);
    int n = 0;
    const cJSON *item;
    if (status == CNN_OK) {
        cJSON_ArrayForEach(item, root) n += strcmp(item->string, "__metadata__") != 0;
        f->entries = calloc((size_t)(n > 0 ? n : 1), sizeof *f->entries);
        f->by_name = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
        if (!f->entries || !f->by_name)
            status = cnn_fail(CNN_ERR_MEMORY, "safetensors: out of memory reading %s", f->path);
    }
    if (status == CNN_OK) {
        cJSON_ArrayForEach(item, root) {
            if (strcmp(item->string, "__metadata__") == 0) {
                if (f->metadata_json)
                    status = cnn_fail(CNN_ERR_FORMAT, "safetensors: __metadata__ appears twice in %s",
                                      f->path);
                else
                    status = parse_metadata(item, f->path, &f->metadata_json);
            } else {
                st_entry *e = &f->entries[f->count];
                e->name = strdup(item->string);
                if (!e->name) {
                    status = cnn_fail(CNN_ERR_MEMORY, "safetensors: out of memory reading %s", f->path);
                    break;
                }
                f->count++;
                if (!cJSON_IsObject(item))
                    status = cnn_fail(CNN_ERR_FORMAT, "safetensors: entry '%s' in %s is not an object "
                                      "with dtype, shape and data_offsets", e->name, f->path);
                if (status == CNN_OK) status = parse_dtype(item, e->name, f->path, &e->dtype);
                if (status == CNN_OK) status = parse_shape(item, f->path, e);
                if (status == CNN_OK) status = parse_offsets(item, f->path, f->data_size, e);
            }
            if (status != CNN_OK) break;
        }
    }
    cJSON_Delete(root);
    if (status == CNN_OK) status = check_layout(f);
    return status;
}

/* ---- the public functions --------------------------------------------------------------------- */

void cnn_safetensors_close(cnn_safetensors *f) {
    if (!f) return;
    for (int i = 0; i < f->count; i++) free(f->entries[i].name);
    free(f->entries);
    free(f->by_name);
    free(f->metadata_json);
    free(f->file);
    free(f->path);
    free(f);
}

cnn_safetensors *cnn_safetensors_open(const char *path) {
    if (!path) return cnn_fail_null(CNN_ERR_ARGUMENT, "safetensors: no path given");
    cnn_safetensors *f = calloc(1, sizeof *f);
    if (f) f->path = strdup(path);
    if (!f || !f->path) {
        cnn_safetensors_close(f);
        return cnn_fail_null(CNN_ERR_MEMORY, "safetensors: out of memory opening %s", path);
    }
    size_t size = 0;
    cnn_status status = read_whole_file(path, &f->file, &size);
    if (status == CNN_OK && size < 8)
        status = cnn_fail(CNN_ERR_FORMAT, "safetensors: %s is truncated: it has %zu bytes, fewer than "
                          "the 8-byte header size that starts the format", path, size);
    uint64_t header_size = status == CNN_OK ? cnn_load_le64(f->file) : 0;
    if (status == CNN_OK && header_size > size - 8)
        status = cnn_fail(CNN_ERR_FORMAT, "safetensors: %s says its header has %llu bytes but only "
                          "%zu bytes follow the header size (truncated, or not a safetensors file)",
                          path, (unsigned long long)header_size, size - 8);
    if (status == CNN_OK) {
        f->data = f->file + 8 + header_size;
        f->data_size = size - 8 - header_size;
        status = parse_header(f, (const char *)f->file + 8, (size_t)header_size);
    }
    if (status == CNN_OK && !f->metadata_json) {
        f->metadata_json = strdup("{}");
        if (!f->metadata_json)
            status = cnn_fail(CNN_ERR_MEMORY, "safetensors: out of memory opening %s", path);
    }
    if (status != CNN_OK) {
        cnn_safetensors_close(f);
        return NULL;
    }
    return f;
}

int cnn_safetensors_count(const cnn_safetensors *f) { return f ? f->count : 0; }

const char *cnn_safetensors_name(const cnn_safetensors *f, int i) {
    if (!f || i < 0 || i >= f->count) return NULL;
    return f->entries[i].name;
}

const char *cnn_safetensors_metadata(const cnn_safetensors *f) { return f ? f->metadata_json : NULL; }

static const st_entry *find_entry(const cnn_safetensors *f, const char *name) {
    int lo = 0, hi = f->count - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const st_entry *e = &f->entries[f->by_name[mid]];
        int c = strcmp(name, e->name);
        if (c == 0) return e;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

/* IEEE half precision -> single; every half value, subnormals included, is exact in a float. */
static float half_to_float(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exponent = (h >> 10) & 0x1f, mantissa = h & 0x3ff;
    if (exponent == 0) {
        float magnitude = (float)mantissa * 0x1p-24f; /* zero or subnormal */
        return sign ? -magnitude : magnitude;
    }
    if (exponent == 31) return cnn_float_from_bits(sign | 0x7f800000u | mantissa << 13);
    return cnn_float_from_bits(sign | (exponent + 112) << 23 | mantissa << 13);
}

/* n elements of dtype at src (little-endian) -> n floats at out. */
static void convert_to_float(float *out, const unsigned char *src, int64_t n, st_dtype dtype) {
    switch (dtype) {
    case ST_F32:
        if (cnn_host_is_little_endian()) memcpy(out, src, (size_t)n * 4);
        else for (int64_t i = 0; i < n; i++) out[i] = cnn_float_from_bits(cnn_load_le32(src + 4 * i));
        break;
    case ST_F16:
        for (int64_t i = 0; i < n; i++) out[i] = half_to_float(cnn_load_le16(src + 2 * i));
        break;
    case ST_BF16: /* the upper half of a float32 */
        for (int64_t i = 0; i < n; i++)
            out[i] = cnn_float_from_bits((uint32_t)cnn_load_le16(src + 2 * i) << 16);
        break;
    case ST_F64:
        for (int64_t i = 0; i < n; i++) out[i] = (float)cnn_double_from_bits(cnn_load_le64(src + 8 * i));
        break;
    case ST_I64:
        for (int64_t i = 0; i < n; i++) out[i] = (float)(int64_t)cnn_load_le64(src + 8 * i);
        break;
    case ST_I32:
        for (int64_t i = 0; i < n; i++) out[i] = (float)(int32_t)cnn_load_le32(src + 4 * i);
        break;
    case ST_I16:
        for (int64_t i = 0; i < n; i++) out[i] = (float)(int16_t)cnn_load_le16(src + 2 * i);
        break;
    case ST_I8:
        for (int64_t i = 0; i < n; i++) out[i] = (float)(int8_t)src[i];
        break;
    case ST_U8:
        for (int64_t i = 0; i < n; i++) out[i] = (float)src[i];
        break;
    case ST_BOOL:
        for (int64_t i = 0; i < n; i++) out[i] = src[i] ? 1.0f : 0.0f;
        break;
    }
}

cnn_tensor *cnn_safetensors_get(const cnn_safetensors *f, const char *name) {
    if (!f || !name) return cnn_fail_null(CNN_ERR_ARGUMENT, "safetensors: get needs a file and a name");
    const st_entry *e = find_entry(f, name);
    if (!e) return cnn_fail_null(CNN_ERR_ARGUMENT, "safetensors: no tensor '%s' in %s", name, f->path);
    cnn_tensor *t = cnn_alloc(e->ndim, e->shape);
    if (!t) return NULL;
    convert_to_float(cnn_ptr(t), f->data + e->begin, cnn_numel(t), e->dtype);
    return t;
}
