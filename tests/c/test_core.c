/* The tensor core through the public C API: lifetime, views, broadcasting, reductions, matmul,
 * autograd, errors and memory accounting. */
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "cnn.h"
#include "harness.h"
#include "thread_pinning.h"

static cnn_tensor *make(int ndim, const int64_t *shape, const float *data) {
    return cnn_from_data(ndim, shape, data);
}

static int equals(cnn_tensor *t, const float *expected, int64_t n, float tol) {
    if (!t || cnn_numel(t) != n) return 0;
    float buf[256];
    if (n > 256 || cnn_read(t, buf) != CNN_OK) return 0;
    for (int64_t i = 0; i < n; i++)
        if (fabsf(buf[i] - expected[i]) > tol) return 0;
    return 1;
}

TEST(memory_returns_to_baseline_after_release) {
    int64_t before = cnn_memory_in_use();
    int64_t shape[2] = {100, 100};
    cnn_tensor *a = cnn_ones(2, shape);
    cnn_tensor *v = cnn_transpose(a, 0, 1);
    CHECK(cnn_memory_in_use() >= before + 100 * 100 * 4);
    cnn_release(a); /* the view keeps the storage alive */
    CHECK(cnn_data(v)[0] == 1.0f);
    cnn_release(v);
    CHECK(cnn_memory_in_use() == before);
}

TEST(views_share_storage_and_strides) {
    int64_t shape[2] = {2, 3};
    float d[6] = {1, 2, 3, 4, 5, 6};
    cnn_tensor *a = make(2, shape, d);
    cnn_tensor *t = cnn_transpose(a, 0, 1);
    REQUIRE(t);
    CHECK(cnn_size(t, 0) == 3 && cnn_stride(t, 0) == 1 && cnn_stride(t, 1) == 3);
    CHECK(!cnn_is_contiguous(t));
    float expect[6] = {1, 4, 2, 5, 3, 6};
    CHECK(equals(t, expect, 6, 0));
    cnn_tensor *row = cnn_select(a, 0, 1);
    CHECK(cnn_fill_(row, 0) == CNN_OK);
    float after[6] = {1, 2, 3, 0, 0, 0};
    CHECK(equals(a, after, 6, 0));
    cnn_release(row);
    cnn_release(t);
    cnn_release(a);
}

TEST(broadcast_add_and_sum_to) {
    int64_t sa[2] = {3, 1}, sb[1] = {4};
    float da[3] = {0, 10, 20}, db[4] = {1, 2, 3, 4};
    cnn_tensor *a = make(2, sa, da), *b = make(1, sb, db);
    cnn_tensor *c = cnn_add(a, b);
    REQUIRE(c);
    CHECK(cnn_ndim(c) == 2 && cnn_size(c, 0) == 3 && cnn_size(c, 1) == 4);
    float expect[12] = {1, 2, 3, 4, 11, 12, 13, 14, 21, 22, 23, 24};
    CHECK(equals(c, expect, 12, 0));
    cnn_tensor *back = cnn_sum_to(c, 2, sa);
    float sums[3] = {10, 50, 90};
    CHECK(equals(back, sums, 3, 0));
    cnn_release(back);
    cnn_release(c);
    cnn_release(a);
    cnn_release(b);
}

TEST(matmul_batched_matches_hand_computation) {
    int64_t sa[3] = {2, 2, 2}, sb[2] = {2, 1};
    float da[8] = {1, 2, 3, 4, 5, 6, 7, 8}, db[2] = {1, -1};
    cnn_tensor *a = make(3, sa, da), *b = make(2, sb, db);
    cnn_tensor *c = cnn_matmul(a, b);
    float expect[4] = {-1, -1, -1, -1};
    CHECK(equals(c, expect, 4, 0));
    CHECK(cnn_ndim(c) == 3 && cnn_size(c, 2) == 1);
    cnn_release(c);
    cnn_release(a);
    cnn_release(b);
}

TEST(autograd_through_the_c_api) {
    int64_t s[1] = {3};
    float d[3] = {1, 2, 3};
    cnn_tensor *w = make(1, s, d);
    REQUIRE(cnn_set_requires_grad(w, 1) == CNN_OK);
    cnn_tensor *sq = cnn_mul(w, w);           /* w^2 */
    cnn_tensor *e = cnn_unary(w, CNN_EXP);     /* e^w */
    cnn_tensor *s1 = cnn_add(sq, e);
    cnn_tensor *loss = cnn_sum(s1, CNN_ALL_DIMS, 0);
    REQUIRE(loss);
    CHECK(strcmp(cnn_grad_fn_name(loss), "sum") == 0);
    REQUIRE(cnn_backward(loss, NULL, 0) == CNN_OK);
    cnn_tensor *g = cnn_grad(w);
    float expect[3] = {2 + expf(1), 4 + expf(2), 6 + expf(3)};
    CHECK(equals(g, expect, 3, 1e-4f));
    /* a second backward through the freed graph is an error, not a crash */
    CHECK(cnn_backward(loss, NULL, 0) == CNN_ERR_STATE);
    CHECK(strstr(cnn_last_error(), "second time") != NULL);
    cnn_release(g);
    cnn_release(loss);
    cnn_release(s1);
    cnn_release(e);
    cnn_release(sq);
    cnn_release(w);
}

TEST(graph_memory_is_freed_with_the_output) {
    int64_t before = cnn_memory_in_use();
    int64_t s[2] = {64, 64};
    cnn_tensor *w = cnn_randn(2, s);
    cnn_set_requires_grad(w, 1);
    cnn_tensor *y = w;
    cnn_retain(y);
    for (int i = 0; i < 50; i++) {
        cnn_tensor *next = cnn_unary(y, CNN_TANH);
        cnn_release(y);
        y = next;
    }
    CHECK(cnn_memory_in_use() > before + 50 * 64 * 64 * 4);
    cnn_release(y);
    cnn_release(w);
    CHECK(cnn_memory_in_use() == before);
}

TEST(errors_are_returned_not_raised) {
    int64_t s23[2] = {2, 3}, s22[2] = {2, 2};
    cnn_tensor *a = cnn_zeros(2, s23), *b = cnn_zeros(2, s22);
    CHECK(cnn_add(a, b) == NULL);
    CHECK(cnn_last_status() == CNN_ERR_SHAPE);
    CHECK(strstr(cnn_last_error(), "2x3") && strstr(cnn_last_error(), "2x2"));
    CHECK(cnn_matmul(a, a) == NULL);
    CHECK(cnn_select(a, 5, 0) == NULL);
    CHECK(cnn_narrow(a, 1, 2, 5) == NULL);
    int64_t bad[1] = {7};
    CHECK(cnn_view(a, 1, bad) == NULL);
    int64_t neg[2] = {-2, 3};
    CHECK(cnn_zeros(2, neg) == NULL);
    CHECK(cnn_backward(a, NULL, 0) == CNN_ERR_STATE);
    CHECK(isnan(cnn_item(a)));
    cnn_release(a);
    cnn_release(b);
}

TEST(inplace_on_parameters_is_refused_in_grad_mode) {
    int64_t s[1] = {2};
    cnn_tensor *w = cnn_ones(1, s);
    cnn_set_requires_grad(w, 1);
    CHECK(cnn_fill_(w, 0) == CNN_ERR_STATE);
    cnn_set_grad_enabled(0);
    CHECK(cnn_fill_(w, 0) == CNN_OK);
    cnn_set_grad_enabled(1);
    cnn_release(w);
}

TEST(rng_state_round_trips) {
    uint64_t st[4];
    cnn_manual_seed(99);
    cnn_rng_get_state(st);
    double a = cnn_rng_uniform(), b = cnn_rng_normal();
    cnn_rng_set_state(st);
    CHECK(cnn_rng_uniform() == a);
    CHECK(cnn_rng_normal() == b);
}

TEST(format_abbreviates_and_has_footer) {
    int64_t s[2] = {50, 50};
    cnn_tensor *t = cnn_zeros(2, s);
    char *text = cnn_format(t);
    REQUIRE(text);
    CHECK(strstr(text, "[cnn.Tensor float32 50x50]") != NULL);
    CHECK(strstr(text, "...") != NULL);
    cnn_free_string(text);
    cnn_release(t);
}

TEST(interrupt_deferral_records_the_first_and_escalates_on_the_second) {
    cnn_clear_interrupt();
    CHECK(cnn_set_interrupt_deferral(1) == 0);
    cnn_interrupt();
    CHECK(cnn_interrupt_pending() == 0); /* running operations are not stopped */
    CHECK(cnn_take_deferred_interrupt() == 1);
    CHECK(cnn_take_deferred_interrupt() == 0); /* taken once */
    cnn_interrupt();
    cnn_interrupt();
    CHECK(cnn_interrupt_pending() != 0); /* a second one stops at once */
    cnn_clear_interrupt();
    cnn_interrupt();
    CHECK(cnn_set_interrupt_deferral(0) == 1);
    CHECK(cnn_take_deferred_interrupt() == 0); /* turning deferral off forgets a recorded one */
    cnn_interrupt();
    CHECK(cnn_interrupt_pending() != 0); /* without deferral: at once */
    cnn_clear_interrupt();
}

/* ---- thread pinning ------------------------------------------------------------------------------- */

static void *count_own_cpus(void *out) {
    cpu_set_t set;
    *(int *)out = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : -1;
    return NULL;
}

TEST(pinning_leaves_loader_threads_their_cpus) {
    cnn_pin_team(2); /* pins now, or did in an earlier test */
    const char *list = getenv("CNN_UNPINNED_CPUS");
    if (!list) return; /* nothing pinned: a single CPU, or a placement chosen by the user */
    int cpus = 1;
    for (const char *p = list; *p; p++) cpus += *p == ',';
    CHECK(cpus >= 2);
    cpu_set_t now;
    REQUIRE(sched_getaffinity(0, sizeof now, &now) == 0);
    CHECK(CPU_COUNT(&now) == 1); /* the calling thread is thread 0 of the team */
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    cnn_unpinned_thread_attr(&attr);
    pthread_t thread;
    int seen = 0;
    REQUIRE(pthread_create(&thread, &attr, count_own_cpus, &seen) == 0);
    pthread_join(thread, NULL);
    pthread_attr_destroy(&attr);
    CHECK(seen == cpus);
}
