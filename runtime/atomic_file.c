/* atomic_file.c - write a temporary file next to the destination, fsync it, rename it over the
 * destination, fsync the directory (see atomic_file.h for why each step is there). */
#include "atomic_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "internal.h"

/* Distinguishes temporary names made by several threads of one process. */
static atomic_uint temp_counter;

/* The directory part of path ("." when there is none); a new string. */
static char *directory_of(const char *path) {
    const char *slash = strrchr(path, '/');
    if (!slash) return strdup(".");
    if (slash == path) return strdup("/");
    return strndup(path, (size_t)(slash - path));
}

static void clear(cnn_atomic_file *f) {
    free(f->path);
    free(f->temp_path);
    f->fp = NULL;
    f->path = NULL;
    f->temp_path = NULL;
}

cnn_status cnn_atomic_begin(cnn_atomic_file *f, const char *path, const char *op) {
    f->fp = NULL;
    f->path = NULL;
    f->temp_path = NULL;
    f->op = op;
    if (!path || !*path) return cnn_fail(CNN_ERR_ARGUMENT, "%s: the file name is empty", op);
    const char *slash = strrchr(path, '/');
    const char *base = slash ? slash + 1 : path;
    if (!*base) return cnn_fail(CNN_ERR_IO, "%s: cannot write %s: it names a directory", op, path);

    f->path = strdup(path);
    char *dir = directory_of(path);
    if (!f->path || !dir) {
        free(dir);
        clear(f);
        return cnn_fail(CNN_ERR_MEMORY, "%s: out of memory while saving %s", op, path);
    }
    /* A hidden name in the same directory: same file system, so the rename is atomic. O_EXCL makes
     * a name collision (another writer, a leftover) a retry rather than a shared file. */
    int fd = -1, err = 0;
    for (int attempt = 0; attempt < 100 && fd < 0; attempt++) {
        free(f->temp_path);
        if (asprintf(&f->temp_path, "%s/.%s.%ld.%u.tmp", dir, base, (long)getpid(),
                     atomic_fetch_add(&temp_counter, 1)) < 0) {
            f->temp_path = NULL;
            err = ENOMEM;
            break;
        }
        fd = open(f->temp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        err = fd < 0 ? errno : 0;
        if (fd < 0 && err != EEXIST) break;
    }
    if (fd >= 0) f->fp = fdopen(fd, "wb");
    if (!f->fp) {
        if (fd >= 0) {
            err = errno;
            close(fd);
            unlink(f->temp_path);
        }
        cnn_fail(CNN_ERR_IO, "%s: cannot write %s: cannot create a file in %s: %s", op, path,
                 dir, strerror(err));
        free(dir);
        clear(f);
        return CNN_ERR_IO;
    }
    free(dir);
    return CNN_OK;
}

cnn_status cnn_atomic_write(cnn_atomic_file *f, const void *data, size_t n) {
    if (n == 0) return CNN_OK;
    if (fwrite(data, 1, n, f->fp) != n)
        return cnn_fail(CNN_ERR_IO, "%s: cannot write %s: %s", f->op, f->path, strerror(errno));
    return CNN_OK;
}

void cnn_atomic_abort(cnn_atomic_file *f) {
    if (f->fp) fclose(f->fp);
    if (f->temp_path) unlink(f->temp_path);
    clear(f);
}

/* Makes the directory entry of the rename durable. File systems that cannot sync a directory say
 * EINVAL; there is nothing more to do on those. */
static int sync_directory(const char *path) {
    char *dir = directory_of(path);
    if (!dir) return ENOMEM;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(dir);
    if (fd < 0) return errno;
    int err = fsync(fd) == 0 || errno == EINVAL ? 0 : errno;
    close(fd);
    return err;
}

cnn_status cnn_atomic_commit(cnn_atomic_file *f) {
    const char *step = "cannot write";
    int err = 0;
    errno = 0;
    if (fflush(f->fp) != 0 || ferror(f->fp)) {
        err = errno ? errno : EIO;
    } else if (fsync(fileno(f->fp)) != 0) {
        err = errno;
    }
    /* fclose reports write-back errors that fflush may not have seen. */
    if (fclose(f->fp) != 0 && !err) err = errno;
    f->fp = NULL;
    if (!err && rename(f->temp_path, f->path) != 0) {
        err = errno;
        step = "cannot replace";
    }
    if (err) {
        cnn_fail(CNN_ERR_IO, "%s: %s %s: %s", f->op, step, f->path, strerror(err));
        cnn_atomic_abort(f);
        return CNN_ERR_IO;
    }
    /* The rename happened; only its durability is in question from here on. */
    err = sync_directory(f->path);
    if (err) cnn_fail(CNN_ERR_IO, "%s: wrote %s but could not sync its directory: %s", f->op,
                      f->path, strerror(err));
    clear(f);
    return err ? CNN_ERR_IO : CNN_OK;
}
