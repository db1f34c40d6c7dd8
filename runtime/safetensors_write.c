/* safetensors_write.c - saving tensors as a safetensors file (format in safetensors_read.c).
 *
 * Every argument is checked before the file is touched. Tensors are stored as little-endian F32 in
 * the order given, each one's elements in row-major order (views are read through their strides);
 * the JSON header is padded with spaces to a multiple of 8 bytes so that the data buffer starts
 * aligned. The file is replaced atomically (atomic_file.h): a failed save leaves the old file as it
 * was. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "atomic_file.h"
#include "byte_order.h"
#include "internal.h"

static int by_name(const void *a, const void *b, void *names) {
    const char *const *n = names;
    return strcmp(n[*(const int *)a], n[*(const int *)b]);
}

static cnn_status check_names(const char *path, int n, const char *const *names,
                              cnn_tensor *const *tensors) {
    for (int i = 0; i < n; i++) {
        if (!names[i] || !*names[i])
            return cnn_fail(CNN_ERR_ARGUMENT, "safetensors: cannot save %s: tensor %d has an empty "
                            "name", path, i + 1);
        if (strcmp(names[i], "__metadata__") == 0)
            return cnn_fail(CNN_ERR_ARGUMENT, "safetensors: cannot save %s: the name '__metadata__' is "
                            "reserved for the metadata", path);
        if (!tensors[i])
            return cnn_fail(CNN_ERR_ARGUMENT, "safetensors: cannot save %s: tensor '%s' is missing",
                            path, names[i]);
    }
    int *order = malloc(sizeof(int) * (size_t)(n > 0 ? n : 1));
    if (!order) return cnn_fail(CNN_ERR_MEMORY, "safetensors: out of memory saving %s", path);
    for (int i = 0; i < n; i++) order[i] = i;
    qsort_r(order, (size_t)n, sizeof *order, by_name, (void *)names);
    cnn_status status = CNN_OK;
    for (int i = 1; i < n && status == CNN_OK; i++) {
        if (strcmp(names[order[i - 1]], names[order[i]]) == 0)
            status = cnn_fail(CNN_ERR_ARGUMENT, "safetensors: cannot save %s: the name '%s' is given "
                              "twice", path, names[order[i]]);
    }
    free(order);
    return status;
}

/* The metadata as a cJSON object (NULL and an error when it is not an object of strings). */
static cJSON *parse_metadata(const char *path, const char *metadata_json) {
    cJSON *meta = cJSON_ParseWithOpts(metadata_json, NULL, 1);
    if (!meta)
        return cnn_fail_null(CNN_ERR_ARGUMENT, "safetensors: cannot save %s: the metadata is not valid "
                             "JSON: %.200s", path, metadata_json);
    if (!cJSON_IsObject(meta)) {
        cJSON_Delete(meta);
        return cnn_fail_null(CNN_ERR_ARGUMENT, "safetensors: cannot save %s: the metadata must be a "
                             "JSON object of strings, not %.200s", path, metadata_json);
    }
    for (const cJSON *item = meta->child; item; item = item->next) {
        const char *problem = !cJSON_IsString(item) ? "a value that is not a string" : NULL;
        for (const cJSON *other = meta->child; other != item && !problem; other = other->next)
            if (strcmp(other->string, item->string) == 0) problem = "a second value";
        if (problem) {
            cnn_fail(CNN_ERR_ARGUMENT, "safetensors: cannot save %s: metadata key '%s' has %s", path,
                     item->string, problem);
            cJSON_Delete(meta);
            return NULL;
        }
    }
    return meta;
}

/* {"__metadata__": ..., name: {"dtype": "F32", "shape": [...], "data_offsets": [b, e]}, ...} as
 * compact JSON text (NULL and an error on failure). Takes over meta. */
static char *build_header(const char *path, int n, const char *const *names,
                          cnn_tensor *const *tensors, cJSON *meta) {
    cJSON *root = cJSON_CreateObject();
    bool ok = root != NULL;
    if (meta) {
        if (ok) cJSON_AddItemToObject(root, "__metadata__", meta);
        else cJSON_Delete(meta);
    }
    /* Offsets are written as JSON numbers (doubles): exact up to 2^53 bytes. */
    double offset = 0;
    for (int i = 0; i < n && ok; i++) {
        cnn_tensor *t = tensors[i];
        double bytes = (double)cnn_numel(t) * 4.0;
        if (offset + bytes > 9007199254740992.0) {
            cJSON_Delete(root);
            return cnn_fail_null(CNN_ERR_ARGUMENT, "safetensors: cannot save %s: the tensors hold more "
                                 "than 2^53 bytes", path);
        }
        cJSON *entry = cJSON_AddObjectToObject(root, names[i]);
        cJSON *dtype = entry ? cJSON_AddStringToObject(entry, "dtype", "F32") : NULL;
        cJSON *shape = dtype ? cJSON_AddArrayToObject(entry, "shape") : NULL;
        cJSON *offsets = shape ? cJSON_AddArrayToObject(entry, "data_offsets") : NULL;
        ok = offsets != NULL;
        for (int d = 0; d < cnn_ndim(t) && ok; d++)
            ok = cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)cnn_size(t, d)));
        if (ok) ok = cJSON_AddItemToArray(offsets, cJSON_CreateNumber(offset));
        offset += bytes;
        if (ok) ok = cJSON_AddItemToArray(offsets, cJSON_CreateNumber(offset));
    }
    char *text = ok ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text) return cnn_fail_null(CNN_ERR_MEMORY, "safetensors: out of memory saving %s", path);
    return text;
}

/* The header size field, the header, and the spaces that pad it to a multiple of 8 bytes. */
static cnn_status write_header(cnn_atomic_file *file, const char *header) {
    size_t length = strlen(header);
    size_t padded = (length + 7) / 8 * 8;
    unsigned char size_field[8];
    cnn_store_le64(size_field, (uint64_t)padded);
    static const char spaces[8] = "        ";
    cnn_status status = cnn_atomic_write(file, size_field, sizeof size_field);
    if (status == CNN_OK) status = cnn_atomic_write(file, header, length);
    if (status == CNN_OK) status = cnn_atomic_write(file, spaces, padded - length);
    return status;
}

/* t's elements in row-major order as little-endian F32, in chunks so that an interrupt is noticed.
 * swap_buffer (CHUNK floats) is only used on big-endian hosts. */
enum { CHUNK = 1 << 20 }; /* elements */

static cnn_status write_tensor(cnn_atomic_file *file, cnn_tensor *t, unsigned char *swap_buffer) {
    cnn_tensor *copy = NULL;
    const float *values = cnn_read_ptr(t, &copy); /* (numel) */
    if (!values) return cnn_last_status();
    cnn_status status = CNN_OK;
    int64_t numel = cnn_numel(t);
    for (int64_t start = 0; start < numel && status == CNN_OK; start += CHUNK) {
        if (cnn_interrupted()) {
            status = cnn_fail(CNN_ERR_INTERRUPTED, "safetensors: interrupted while saving %s",
                              file->path);
            break;
        }
        int64_t count = numel - start < CHUNK ? numel - start : CHUNK;
        if (!swap_buffer) {
            status = cnn_atomic_write(file, values + start, (size_t)count * 4);
        } else {
            for (int64_t i = 0; i < count; i++)
                cnn_store_le32(swap_buffer + 4 * i, cnn_bits_from_float(values[start + i]));
            status = cnn_atomic_write(file, swap_buffer, (size_t)count * 4);
        }
    }
    cnn_release(copy);
    return status;
}

cnn_status cnn_safetensors_save(const char *path, int n, const char *const *names,
                                cnn_tensor *const *tensors, const char *metadata_json) {
    if (!path || !*path) return cnn_fail(CNN_ERR_ARGUMENT, "safetensors: save needs a file name");
    if (n < 0 || (n > 0 && (!names || !tensors)))
        return cnn_fail(CNN_ERR_ARGUMENT, "safetensors: cannot save %s: %d tensors requested without "
                        "names and tensors", path, n);
    cnn_status status = check_names(path, n, names, tensors);
    if (status != CNN_OK) return status;
    cJSON *meta = NULL;
    if (metadata_json && !(meta = parse_metadata(path, metadata_json))) return cnn_last_status();
    char *header = build_header(path, n, names, tensors, meta);
    if (!header) return cnn_last_status();

    unsigned char *swap_buffer = NULL;
    if (!cnn_host_is_little_endian() && !(swap_buffer = malloc((size_t)CHUNK * 4))) {
        free(header);
        return cnn_fail(CNN_ERR_MEMORY, "safetensors: out of memory saving %s", path);
    }
    cnn_atomic_file file;
    status = cnn_atomic_begin(&file, path, "safetensors");
    if (status == CNN_OK) status = write_header(&file, header);
    free(header);
    for (int i = 0; i < n && status == CNN_OK; i++)
        status = write_tensor(&file, tensors[i], swap_buffer);
    free(swap_buffer);
    if (status == CNN_OK) return cnn_atomic_commit(&file);
    if (file.fp) cnn_atomic_abort(&file);
    return status;
}
