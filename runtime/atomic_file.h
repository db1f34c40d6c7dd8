/* atomic_file.h - replacing a file so that readers only ever see the old contents or the complete new
 * ones, never a half-written file, even across a crash or a power cut.
 *
 * The new contents go to a temporary file in the same directory (rename is atomic only within one
 * file system), which is flushed and fsynced before it is renamed over the destination; the directory
 * is then fsynced so that the rename itself is durable. On any failure the temporary file is removed
 * and the destination is left untouched.
 *
 *   cnn_atomic_file f;
 *   if (cnn_atomic_begin(&f, path, "safetensors") != CNN_OK) return cnn_last_status();
 *   if (cnn_atomic_write(&f, bytes, n) != CNN_OK) { cnn_atomic_abort(&f); return ...; }
 *   return cnn_atomic_commit(&f);   // also cleans up on failure
 */
#ifndef CNN_ATOMIC_FILE_H
#define CNN_ATOMIC_FILE_H

#include <stdio.h>

#include "cnn.h"

typedef struct cnn_atomic_file {
    FILE *fp;
    char *path;      /* the destination */
    char *temp_path; /* the file being written, removed unless the commit succeeds */
    const char *op;  /* names the caller in error messages ("safetensors") */
} cnn_atomic_file;

/* Creates the temporary file next to path. On failure f holds nothing to clean up. */
cnn_status cnn_atomic_begin(cnn_atomic_file *f, const char *path, const char *op);
/* Appends n bytes. On failure the caller still calls cnn_atomic_abort. */
cnn_status cnn_atomic_write(cnn_atomic_file *f, const void *data, size_t n);
/* Makes the new contents durable and moves them over path. Cleans up whether or not it succeeds. */
cnn_status cnn_atomic_commit(cnn_atomic_file *f);
/* Removes the temporary file; path is not touched. Safe to call after a failed commit. */
void cnn_atomic_abort(cnn_atomic_file *f);

#endif /* CNN_ATOMIC_FILE_H */
