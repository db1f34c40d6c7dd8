/* image_io.c - image files in and out through stb_image and stb_image_write (the Debian libstb shared
 * library provides their implementation). Files hold 8-bit samples in rows of interleaved channels
 * (H, W, C); tensors are planar (C, H, W) floats in [0, 1].
 *
 * Files are read whole into memory first and decoded from there, so that "cannot open" (with the
 * system's reason) and "cannot decode" (with stb's reason) are told apart in error messages. Saving
 * encodes into memory and writes through atomic_file: a crash never leaves half an image behind. */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include "atomic_file.h"
#include "internal.h"

/* ---- loading --------------------------------------------------------------------------------------- */

/* The whole file in a malloc'ed buffer; NULL + error naming op and path. */
static unsigned char *read_whole_file(const char *op, const char *path, size_t *size) {
    FILE *f = fopen(path, "rb");
    if (!f) return cnn_fail_null(CNN_ERR_IO, "%s: cannot open %s: %s", op, path, strerror(errno));
    unsigned char *bytes = NULL;
    size_t used = 0, capacity = 0;
    for (;;) {
        if (used == capacity) {
            capacity = capacity ? 2 * capacity : 1 << 16;
            unsigned char *grown = realloc(bytes, capacity);
            if (!grown) {
                free(bytes);
                fclose(f);
                return cnn_fail_null(CNN_ERR_MEMORY, "%s: out of memory reading %s", op, path);
            }
            bytes = grown;
        }
        size_t got = fread(bytes + used, 1, capacity - used, f);
        used += got;
        if (got == 0) break;
    }
    int failed = ferror(f);
    int saved_errno = errno;
    fclose(f);
    if (failed) {
        free(bytes);
        return cnn_fail_null(CNN_ERR_IO, "%s: cannot read %s: %s", op, path, strerror(saved_errno));
    }
    *size = used;
    return bytes;
}

cnn_tensor *cnn_image_decode(const void *bytes, size_t n, int channels, const char *name) {
    const char *op = "image.load";
    if (!name) name = "(memory)";
    if (channels < 0 || channels > 4)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "%s: channels must be 0 (as stored) or 1..4, got %d (%s)", op,
                             channels, name);
    if (!bytes || n == 0) return cnn_fail_null(CNN_ERR_FORMAT, "%s: %s is empty", op, name);
    if (n > INT_MAX) return cnn_fail_null(CNN_ERR_FORMAT, "%s: %s is too large to decode (%zu bytes)", op, name, n);
    int w = 0, h = 0, stored = 0;
    unsigned char *pixels = stbi_load_from_memory(bytes, (int)n, &w, &h, &stored, channels);
    if (!pixels) {
        const char *reason = stbi_failure_reason();
        return cnn_fail_null(CNN_ERR_FORMAT, "%s: cannot decode %s: %s", op, name,
                             reason ? reason : "not a supported image");
    }
    const int64_t C = channels ? channels : stored;
    int64_t shape[3] = {C, h, w};
    cnn_tensor *t = cnn_alloc(3, shape);
    if (!t) {
        stbi_image_free(pixels);
        return NULL;
    }
    float *dst = cnn_ptr(t);
    const int64_t plane = (int64_t)h * w;
    for (int64_t c = 0; c < C; c++) {
        const unsigned char *src = pixels + c;
        float *out = dst + c * plane;
        for (int64_t i = 0; i < plane; i++) out[i] = (float)src[i * C] / 255.0f;
    }
    stbi_image_free(pixels);
    return t;
}

cnn_tensor *cnn_image_load(const char *path, int channels) {
    if (!path) return cnn_fail_null(CNN_ERR_ARGUMENT, "image.load: the path is NULL");
    size_t size = 0;
    unsigned char *bytes = read_whole_file("image.load", path, &size);
    if (!bytes) return NULL;
    cnn_tensor *t = cnn_image_decode(bytes, size, channels, path);
    free(bytes);
    return t;
}

/* ---- saving ---------------------------------------------------------------------------------------- */

typedef enum image_format { FORMAT_PNG, FORMAT_JPEG, FORMAT_BMP, FORMAT_TGA, FORMAT_UNKNOWN } image_format;

static image_format format_of(const char *path) {
    const char *slash = strrchr(path, '/');
    const char *dot = strrchr(slash ? slash : path, '.');
    if (!dot) return FORMAT_UNKNOWN;
    if (strcasecmp(dot, ".png") == 0) return FORMAT_PNG;
    if (strcasecmp(dot, ".jpg") == 0 || strcasecmp(dot, ".jpeg") == 0) return FORMAT_JPEG;
    if (strcasecmp(dot, ".bmp") == 0) return FORMAT_BMP;
    if (strcasecmp(dot, ".tga") == 0) return FORMAT_TGA;
    return FORMAT_UNKNOWN;
}

/* The encoder's output, gathered in memory. */
typedef struct byte_sink {
    unsigned char *data;
    size_t size, capacity;
    bool failed;
} byte_sink;

static void sink_write(void *context, void *data, int size) {
    byte_sink *s = context;
    if (s->failed || size <= 0) return;
    if (s->size + (size_t)size > s->capacity) {
        size_t capacity = s->capacity ? s->capacity : 1 << 16;
        while (capacity < s->size + (size_t)size) capacity *= 2;
        unsigned char *grown = realloc(s->data, capacity);
        if (!grown) {
            s->failed = true;
            return;
        }
        s->data = grown;
        s->capacity = capacity;
    }
    memcpy(s->data + s->size, data, (size_t)size);
    s->size += (size_t)size;
}

static inline unsigned char to_byte(float v) {
    if (!(v > 0.0f)) return 0; /* also NaN */
    if (v >= 1.0f) return 255;
    return (unsigned char)(v * 255.0f + 0.5f);
}

cnn_status cnn_image_save(const char *path, cnn_tensor *image, int quality) {
    const char *op = "image.save";
    if (!path || !image) return cnn_fail(CNN_ERR_ARGUMENT, "%s: the path and the image must not be NULL", op);
    int64_t C, H, W;
    if (image->ndim == 2) {
        C = 1, H = image->shape[0], W = image->shape[1];
    } else if (image->ndim == 3 || (image->ndim == 4 && image->shape[0] == 1)) {
        const int first = image->ndim - 3;
        C = image->shape[first], H = image->shape[first + 1], W = image->shape[first + 2];
    } else {
        return cnn_fail(CNN_ERR_SHAPE, "%s: expected an image (C, H, W) or (H, W), got shape %s (for a batch, "
                        "save cnn.image.grid(batch))", op, cnn_shape_str(image));
    }
    if (C < 1 || C > 4)
        return cnn_fail(CNN_ERR_SHAPE, "%s: images have 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA) channels, "
                        "got shape %s", op, cnn_shape_str(image));
    if (H < 1 || W < 1 || H > 65535 || W > 65535)
        return cnn_fail(CNN_ERR_SHAPE, "%s: image sides must be 1..65535 pixels, got shape %s", op,
                        cnn_shape_str(image));
    const image_format format = format_of(path);
    if (format == FORMAT_UNKNOWN)
        return cnn_fail(CNN_ERR_ARGUMENT, "%s: cannot tell the format of %s from its extension (use .png, .jpg, "
                        ".jpeg, .bmp or .tga)", op, path);
    if (quality < 1 || quality > 100)
        return cnn_fail(CNN_ERR_ARGUMENT, "%s: JPEG quality must be 1..100, got %d", op, quality);

    cnn_tensor *tmp = NULL;
    const float *src = cnn_read_ptr(image, &tmp);
    if (!src) return cnn_last_status();
    const int64_t plane = H * W;
    unsigned char *pixels = malloc((size_t)(plane * C));
    if (!pixels) {
        cnn_release(tmp);
        return cnn_fail(CNN_ERR_MEMORY, "%s: out of memory for %s", op, cnn_shape_str(image));
    }
    for (int64_t c = 0; c < C; c++)
        for (int64_t i = 0; i < plane; i++) pixels[i * C + c] = to_byte(src[c * plane + i]);
    cnn_release(tmp);

    byte_sink sink = {0};
    int ok = 0;
    const int w = (int)W, h = (int)H, comp = (int)C;
    switch (format) {
    case FORMAT_PNG: ok = stbi_write_png_to_func(sink_write, &sink, w, h, comp, pixels, w * comp); break;
    case FORMAT_JPEG: ok = stbi_write_jpg_to_func(sink_write, &sink, w, h, comp, pixels, quality); break;
    case FORMAT_BMP: ok = stbi_write_bmp_to_func(sink_write, &sink, w, h, comp, pixels); break;
    case FORMAT_TGA: ok = stbi_write_tga_to_func(sink_write, &sink, w, h, comp, pixels); break;
    case FORMAT_UNKNOWN: break;
    }
    free(pixels);
    if (!ok || sink.failed || sink.size == 0) {
        free(sink.data);
        return cnn_fail(sink.failed ? CNN_ERR_MEMORY : CNN_ERR_FORMAT, "%s: cannot encode %s (%s)", op, path,
                        cnn_shape_str(image));
    }
    cnn_atomic_file f;
    cnn_status status = cnn_atomic_begin(&f, path, op);
    if (status == CNN_OK) {
        status = cnn_atomic_write(&f, sink.data, sink.size);
        if (status == CNN_OK) status = cnn_atomic_commit(&f);
        else cnn_atomic_abort(&f);
    }
    free(sink.data);
    return status;
}
