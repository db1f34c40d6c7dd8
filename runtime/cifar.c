/* cifar.c - the binary batches of CIFAR-10 and CIFAR-100: fixed-size records of label bytes (one for
 * CIFAR-10; coarse then fine for CIFAR-100) followed by a 32x32 image as 1024 red, 1024 green and 1024
 * blue bytes, rows top to bottom - already the planar (3, 32, 32) layout of a tensor. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "internal.h"

enum { CIFAR_IMAGE_BYTES = 3 * 32 * 32 };

cnn_tensor *cnn_cifar_load(const char *path, int label_bytes, int label_index, cnn_tensor **labels) {
    const char *op = "cifar";
    if (labels) *labels = NULL;
    if (!path || !labels) return cnn_fail_null(CNN_ERR_ARGUMENT, "%s: path and labels must not be NULL", op);
    if (label_bytes < 1 || label_bytes > 2 || label_index < 0 || label_index >= label_bytes)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "%s: records have 1 or 2 label bytes; got %d, reading byte %d", op,
                             label_bytes, label_index);
    FILE *f = fopen(path, "rb");
    if (!f) return cnn_fail_null(CNN_ERR_IO, "%s: cannot open %s: %s", op, path, strerror(errno));
    struct stat info;
    if (fstat(fileno(f), &info) != 0 || !S_ISREG(info.st_mode)) {
        fclose(f);
        return cnn_fail_null(CNN_ERR_IO, "%s: %s is not a regular file", op, path);
    }
    const int64_t record = label_bytes + CIFAR_IMAGE_BYTES, size = (int64_t)info.st_size;
    if (size == 0 || size % record != 0) {
        fclose(f);
        return cnn_fail_null(CNN_ERR_FORMAT, "%s: %s is truncated or not a CIFAR batch: %lld bytes is not a whole "
                             "number of %lld-byte records (%d label byte%s + 3072 image bytes)", op, path,
                             (long long)size, (long long)record, label_bytes, label_bytes == 1 ? "" : "s");
    }
    const int64_t n = size / record;
    int64_t image_shape[4] = {n, 3, 32, 32}, label_shape[1] = {n};
    cnn_tensor *images = cnn_alloc(4, image_shape);
    cnn_tensor *targets = images ? cnn_alloc(1, label_shape) : NULL;
    unsigned char buffer[2 + CIFAR_IMAGE_BYTES];
    if (!targets) goto fail;
    float *x = cnn_ptr(images), *y = cnn_ptr(targets);
    for (int64_t i = 0; i < n; i++) {
        if (fread(buffer, 1, (size_t)record, f) != (size_t)record) {
            cnn_fail(CNN_ERR_IO, "%s: cannot read record %lld of %s: %s", op, (long long)i + 1, path,
                     ferror(f) ? strerror(errno) : "the file shrank while being read");
            goto fail;
        }
        y[i] = (float)buffer[label_index];
        const unsigned char *pixels = buffer + label_bytes;
        float *image = x + i * CIFAR_IMAGE_BYTES;
        for (int k = 0; k < CIFAR_IMAGE_BYTES; k++) image[k] = (float)pixels[k] / 255.0f;
        if ((i & 1023) == 1023 && cnn_interrupted()) {
            cnn_fail(CNN_ERR_INTERRUPTED, "%s: interrupted while reading %s", op, path);
            goto fail;
        }
    }
    fclose(f);
    *labels = targets;
    return images;
fail:
    fclose(f);
    cnn_release(images);
    cnn_release(targets);
    return NULL;
}
