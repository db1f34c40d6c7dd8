/* harness.h - a minimal C unit-test harness. A test is `TEST(name) { ... }` in any tests/c file;
 * it registers itself before main runs. CHECK records a failure and goes on; REQUIRE stops the test. */
#ifndef HARNESS_H
#define HARNESS_H

#include <math.h>
#include <stdio.h>

#include <stddef.h>

typedef void (*test_fn)(void);
/* Whole-file helpers for tests that write fixtures: write_bytes ignores failures (the test's
 * later checks report them); read_bytes returns a malloc'd buffer (free it) or NULL. */
void harness_write_bytes(const char *path, const void *data, size_t n);
unsigned char *harness_read_bytes(const char *path, size_t *n);
/* A tensor's elements in row-major order (malloc'd; free them) or NULL. */
struct cnn_tensor;
float *read_all(const struct cnn_tensor *t);
/* Largest |a - b| relative to max(1, |b|) over n values (infinity when a NaN appears). */
double max_rel_diff(const float *a, const double *b, long long n);
/* One temporary directory at a time for tests that write files: make_work_dir creates
 * /tmp/cnn_test_<tag>.XXXXXX (work_dir then holds its path, "" on failure); in_work_dir gives
 * work_dir/name in one of 8 rotating buffers; count_work_dir counts its entries; remove_work_dir
 * empties it (files and empty subdirectories) and removes it. */
extern char work_dir[64];
void make_work_dir(const char *tag);
const char *in_work_dir(const char *name);
int count_work_dir(void);
void remove_work_dir(void);
void harness_register(const char *name, const char *file, test_fn fn);
void harness_fail(const char *file, int line, const char *fmt, ...);
extern int harness_current_failed;

#define TEST(name)                                                                   \
    static void test_##name(void);                                                   \
    __attribute__((constructor)) static void register_##name(void) {                 \
        harness_register(#name, __FILE__, test_##name);                              \
    }                                                                                \
    static void test_##name(void)

#define CHECK(cond)                                                                  \
    do {                                                                             \
        if (!(cond)) harness_fail(__FILE__, __LINE__, "CHECK(%s)", #cond);           \
    } while (0)
#define REQUIRE(cond)                                                                \
    do {                                                                             \
        if (!(cond)) {                                                               \
            harness_fail(__FILE__, __LINE__, "REQUIRE(%s)", #cond);                  \
            return;                                                                  \
        }                                                                            \
    } while (0)
#define CHECK_NEAR(a, b, tol)                                                        \
    do {                                                                             \
        double a_ = (a), b_ = (b);                                                   \
        if (!(fabs(a_ - b_) <= (tol)))                                               \
            harness_fail(__FILE__, __LINE__, "CHECK_NEAR(%s, %s): %.9g vs %.9g", #a, #b, \
                         a_, b_);                                                    \
    } while (0)

#endif
