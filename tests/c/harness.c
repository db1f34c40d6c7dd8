/* The runner: runs every registered test (or those whose name contains argv[1]) and ends with the
 * plain summary line "N passed, N failed". */
#include "harness.h"

#include <dirent.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cnn.h"

enum { MAX_TESTS = 4096 };
static struct {
    const char *name, *file;
    test_fn fn;
} tests[MAX_TESTS];
static int n_tests;
int harness_current_failed;

void harness_register(const char *name, const char *file, test_fn fn) {
    if (n_tests < MAX_TESTS) {
        tests[n_tests].name = name;
        tests[n_tests].file = file;
        tests[n_tests].fn = fn;
        n_tests++;
    }
}

void harness_fail(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "  %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    harness_current_failed = 1;
}

void harness_write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(data, 1, n, f);
    fclose(f);
}

unsigned char *harness_read_bytes(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc((size_t)size + 1);
    *n = data ? fread(data, 1, (size_t)size, f) : 0;
    fclose(f);
    return data;
}

char work_dir[64];

void make_work_dir(const char *tag) {
    snprintf(work_dir, sizeof work_dir, "/tmp/cnn_test_%s.XXXXXX", tag);
    if (!mkdtemp(work_dir)) work_dir[0] = 0;
}

const char *in_work_dir(const char *name) {
    static char buffers[8][256];
    static int next;
    char *p = buffers[next++ % 8];
    snprintf(p, sizeof buffers[0], "%s/%s", work_dir, name);
    return p;
}

int count_work_dir(void) {
    DIR *d = opendir(work_dir);
    int n = 0;
    struct dirent *entry;
    while (d && (entry = readdir(d))) n += strcmp(entry->d_name, ".") != 0 && strcmp(entry->d_name, "..") != 0;
    if (d) closedir(d);
    return n;
}

void remove_work_dir(void) {
    DIR *d = opendir(work_dir);
    if (!d) return;
    struct dirent *entry;
    while ((entry = readdir(d))) {
        if (strcmp(entry->d_name, ".") == 0 || strcmp(entry->d_name, "..") == 0) continue;
        const char *p = in_work_dir(entry->d_name);
        if (unlink(p) != 0) rmdir(p);
    }
    closedir(d);
    rmdir(work_dir);
}

float *read_all(const cnn_tensor *t) {
    float *out = malloc((size_t)(cnn_numel(t) + 1) * sizeof(float));
    if (out && cnn_read(t, out) != CNN_OK) {
        free(out);
        return NULL;
    }
    return out;
}

double max_rel_diff(const float *a, const double *b, long long n) {
    double worst = 0;
    for (long long i = 0; i < n; i++) {
        const double d = fabs(a[i] - b[i]) / (fabs(b[i]) > 1 ? fabs(b[i]) : 1);
        if (d > worst || isnan(d)) worst = isnan(d) ? INFINITY : d;
    }
    return worst;
}

int main(int argc, char **argv) {
    const char *filter = argc > 1 ? argv[1] : NULL;
    int passed = 0, failed = 0;
    for (int i = 0; i < n_tests; i++) {
        if (filter && !strstr(tests[i].name, filter)) continue;
        harness_current_failed = 0;
        cnn_clear_error();
        cnn_manual_seed(1234);
        tests[i].fn();
        if (harness_current_failed) {
            fprintf(stderr, "FAIL %s (%s)\n", tests[i].name, tests[i].file);
            failed++;
        } else {
            passed++;
        }
    }
    printf("C tests: %d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
