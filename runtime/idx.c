/* idx.c - IDX files, the format of MNIST and Fashion-MNIST, gzip-compressed or plain.
 *
 * Layout (all big-endian): a magic number 00 00 <type> <ndim>, ndim 32-bit sizes, then the elements
 * in row-major order. Types: 08 u8, 09 i8, 0B i16, 0C i32, 0D f32, 0E f64. zlib's gzread reads
 * compressed and plain files alike.
 *
 * Images (3 dims N, H, W) become (N, 1, H, W); u8 images are divided by 255 when scale is set. Other
 * files keep their shape; 1-d files (labels) are never scaled. The data is read into a buffer that
 * grows as bytes arrive, so a header that promises more than the file holds is reported as truncation
 * instead of causing a huge allocation. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "byte_order.h"
#include "internal.h"

typedef struct idx_type {
    unsigned char code;
    const char *name;
    int size;
} idx_type;

static const idx_type idx_types[] = {
    {0x08, "u8", 1},  {0x09, "i8", 1},  {0x0B, "i16", 2},
    {0x0C, "i32", 4}, {0x0D, "f32", 4}, {0x0E, "f64", 8},
};

typedef struct idx_file {
    const char *path;
    gzFile gz;
    const idx_type *type;
    int ndim;
    int64_t dims[CNN_MAX_DIMS];
} idx_file;

/* Reads up to n bytes; returns how many arrived (short at the end of the data or on a gzip error). */
static size_t read_bytes(idx_file *f, void *buf, size_t n) {
    size_t got = 0;
    while (got < n) {
        unsigned want = n - got > (1u << 18) ? 1u << 18 : (unsigned)(n - got);
        int r = gzread(f->gz, (char *)buf + got, want);
        if (r <= 0) break;
        got += (size_t)r;
    }
    return got;
}

/* " (the gzip stream ends early)" and the like, or "" when the data simply ended. */
static const char *gzip_problem(idx_file *f, char *buf, size_t size) {
    int errnum = Z_OK;
    const char *msg = gzerror(f->gz, &errnum);
    if (errnum == Z_OK) return "";
    /* zlib prefixes its message with the path, which the caller's message already names */
    size_t path_length = strlen(f->path);
    if (strncmp(msg, f->path, path_length) == 0 && strncmp(msg + path_length, ": ", 2) == 0)
        msg += path_length + 2;
    if (errnum == Z_ERRNO) snprintf(buf, size, " (read error: %s)", strerror(errno));
    else snprintf(buf, size, " (gzip: %s)", msg);
    return buf;
}

/* A damaged compressed stream (bad checksum, invalid deflate data) rather than one that just ends:
 * reported as such, since zlib may drop the bytes it decoded in the failing call. */
static cnn_status fail_if_damaged(idx_file *f) {
    int errnum = Z_OK;
    gzerror(f->gz, &errnum);
    if (errnum == Z_OK || errnum == Z_BUF_ERROR) return CNN_OK;
    char why[128];
    return cnn_fail(CNN_ERR_FORMAT, "idx: %s is corrupt: its compressed stream is damaged%s", f->path,
                    gzip_problem(f, why, sizeof why));
}

static cnn_status read_header(idx_file *f) {
    unsigned char magic[4];
    char why[128];
    size_t got = read_bytes(f, magic, 4);
    if (fail_if_damaged(f) != CNN_OK) return CNN_ERR_FORMAT;
    if (got < 4)
        return cnn_fail(CNN_ERR_FORMAT, "idx: %s is truncated: it has %zu bytes, fewer than the 4-byte "
                        "magic number%s", f->path, got, gzip_problem(f, why, sizeof why));
    f->type = NULL;
    for (size_t i = 0; i < sizeof idx_types / sizeof idx_types[0]; i++)
        if (magic[2] == idx_types[i].code) f->type = &idx_types[i];
    f->ndim = magic[3];
    if (magic[0] != 0 || magic[1] != 0 || !f->type || f->ndim < 1 || f->ndim > CNN_MAX_DIMS - 1)
        return cnn_fail(CNN_ERR_FORMAT, "idx: %s is not an IDX file: it starts with %02x %02x %02x %02x "
                        "where 00 00 <type 08/09/0b/0c/0d/0e> <1..%d dims> was expected", f->path,
                        magic[0], magic[1], magic[2], magic[3], (int)CNN_MAX_DIMS - 1);
    unsigned char sizes[4 * CNN_MAX_DIMS];
    got = read_bytes(f, sizes, 4 * (size_t)f->ndim);
    if (fail_if_damaged(f) != CNN_OK) return CNN_ERR_FORMAT;
    if (got < 4 * (size_t)f->ndim)
        return cnn_fail(CNN_ERR_FORMAT, "idx: %s is truncated: its header announces %d dims but ends "
                        "after %zu of their %d size bytes%s", f->path, f->ndim, got, 4 * f->ndim,
                        gzip_problem(f, why, sizeof why));
    for (int d = 0; d < f->ndim; d++) f->dims[d] = cnn_load_be32(sizes + 4 * d);
    return CNN_OK;
}

static const char *record_noun(const idx_file *f) {
    return f->ndim == 3 ? "images" : f->ndim == 1 ? "labels" : "records";
}

/* All the elements, into a buffer that grows as the data arrives. */
static cnn_status read_data(idx_file *f, unsigned char **out, uint64_t expected) {
    size_t capacity = expected < (1u << 20) ? (size_t)expected : 1u << 20;
    unsigned char *buf = malloc(capacity ? capacity : 1);
    size_t got = 0;
    cnn_status status = CNN_OK;
    if (!buf) status = cnn_fail(CNN_ERR_MEMORY, "idx: out of memory reading %s", f->path);
    while (status == CNN_OK && got < expected) {
        if (cnn_interrupted()) {
            status = cnn_fail(CNN_ERR_INTERRUPTED, "idx: interrupted while reading %s", f->path);
            break;
        }
        if (got == capacity) {
            size_t grown = capacity * 2 < expected ? capacity * 2 : (size_t)expected;
            unsigned char *bigger = realloc(buf, grown);
            if (!bigger) {
                status = cnn_fail(CNN_ERR_MEMORY, "idx: out of memory reading %s (%llu bytes of data)",
                                  f->path, (unsigned long long)expected);
                break;
            }
            buf = bigger;
            capacity = grown;
        }
        size_t want = capacity - got;
        size_t n = read_bytes(f, buf + got, want);
        got += n;
        if (n < want) break; /* the data ended */
    }
    if (status == CNN_OK) status = fail_if_damaged(f);
    if (status == CNN_OK && got < expected) {
        char why[160];
        uint64_t record_bytes = f->dims[0] ? expected / (uint64_t)f->dims[0] : 1;
        status = cnn_fail(CNN_ERR_FORMAT, "idx: %s is truncated: header says %s but data ends after "
                          "%llu %s%s", f->path, cnn_dims_str(f->ndim, f->dims),
                          (unsigned long long)(got / record_bytes), record_noun(f),
                          gzip_problem(f, why, sizeof why));
    }
    if (status == CNN_OK) {
        unsigned char extra;
        if (read_bytes(f, &extra, 1) == 1)
            status = cnn_fail(CNN_ERR_FORMAT, "idx: %s has more data than its header says: %s of %s "
                              "ends at byte %llu of the data, but more follows", f->path,
                              cnn_dims_str(f->ndim, f->dims), f->type->name,
                              (unsigned long long)expected);
    }
    /* the checksum at the end of a gzip stream is checked once its data has been read */
    if (status == CNN_OK) status = fail_if_damaged(f);
    int errnum = Z_OK;
    if (status == CNN_OK && (gzerror(f->gz, &errnum), errnum == Z_BUF_ERROR))
        status = cnn_fail(CNN_ERR_FORMAT, "idx: %s is truncated: all %s values were read but the "
                          "gzip checksum after them is cut off", f->path,
                          cnn_dims_str(f->ndim, f->dims));
    if (status != CNN_OK) {
        free(buf);
        return status;
    }
    *out = buf;
    return CNN_OK;
}

/* n big-endian elements of type -> floats; u8 values divided by 255 when scale_u8 is set (a
 * division, not a multiplication by 1/255, so the values match other frameworks bit for bit). */
static void convert_to_float(float *out, const unsigned char *src, int64_t n, unsigned char code,
                             bool scale_u8) {
    switch (code) {
    case 0x08:
        if (scale_u8) for (int64_t i = 0; i < n; i++) out[i] = (float)src[i] / 255.0f;
        else for (int64_t i = 0; i < n; i++) out[i] = (float)src[i];
        break;
    case 0x09:
        for (int64_t i = 0; i < n; i++) out[i] = (float)(int8_t)src[i];
        break;
    case 0x0B:
        for (int64_t i = 0; i < n; i++) out[i] = (float)(int16_t)cnn_load_be16(src + 2 * i);
        break;
    case 0x0C:
        for (int64_t i = 0; i < n; i++) out[i] = (float)(int32_t)cnn_load_be32(src + 4 * i);
        break;
    case 0x0D:
        for (int64_t i = 0; i < n; i++) out[i] = cnn_float_from_bits(cnn_load_be32(src + 4 * i));
        break;
    case 0x0E:
        for (int64_t i = 0; i < n; i++) out[i] = (float)cnn_double_from_bits(cnn_load_be64(src + 8 * i));
        break;
    }
}

static cnn_tensor *load_open_file(idx_file *f, int scale) {
    if (read_header(f) != CNN_OK) return NULL;
    uint64_t bytes = (uint64_t)f->type->size;
    bool overflow = false;
    for (int d = 0; d < f->ndim; d++)
        overflow |= __builtin_mul_overflow(bytes, (uint64_t)f->dims[d], &bytes);
    if (overflow || bytes > (uint64_t)SIZE_MAX / 2)
        return cnn_fail_null(CNN_ERR_FORMAT, "idx: %s has an impossible header: %s elements of %s",
                             f->path, cnn_dims_str(f->ndim, f->dims), f->type->name);
    unsigned char *data = NULL;
    if (read_data(f, &data, bytes) != CNN_OK) return NULL;

    int64_t shape[CNN_MAX_DIMS]; /* images (N, H, W) -> (N, 1, H, W) */
    int ndim = 0;
    for (int d = 0; d < f->ndim; d++) {
        shape[ndim++] = f->dims[d];
        if (f->ndim == 3 && d == 0) shape[ndim++] = 1;
    }
    cnn_tensor *t = cnn_alloc(ndim, shape);
    if (t) {
        convert_to_float(cnn_ptr(t), data, cnn_numel(t), f->type->code, scale && f->ndim >= 2);
    }
    free(data);
    return t;
}

cnn_tensor *cnn_idx_load(const char *path, int scale) {
    if (!path) return cnn_fail_null(CNN_ERR_ARGUMENT, "idx: no path given");
    struct stat st;
    if (stat(path, &st) != 0)
        return cnn_fail_null(CNN_ERR_IO, "idx: cannot open %s: %s", path, strerror(errno));
    if (S_ISDIR(st.st_mode))
        return cnn_fail_null(CNN_ERR_IO, "idx: cannot read %s: it is a directory", path);
    errno = 0;
    idx_file f = {.path = path, .gz = gzopen(path, "rb")};
    if (!f.gz)
        return cnn_fail_null(CNN_ERR_IO, "idx: cannot open %s: %s", path,
                             errno ? strerror(errno) : "out of memory");
    cnn_tensor *t = load_open_file(&f, scale);
    gzclose(f.gz);
    return t;
}
