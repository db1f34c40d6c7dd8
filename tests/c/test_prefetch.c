/* test_prefetch.c - batch prefetching threads: order and content equal a direct gather for every
 * worker count, augmentation equals cnn_aug_apply with the batch's seed, stopping while workers are
 * blocked on a full ring, interrupts, errors and memory returning to its baseline. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cnn.h"
#include "harness.h"

enum { ROWS = 37, C = 1, H = 6, W = 5, PIXELS = C * H * W };

/* x (ROWS, C, H, W) with row r filled with r * 100 + pixel; y (ROWS) = r + 0.5 */
static void make_dataset(cnn_tensor **x, cnn_tensor **y) {
    static float xs[ROWS * PIXELS], ys[ROWS];
    for (int r = 0; r < ROWS; r++) {
        for (int k = 0; k < PIXELS; k++) xs[r * PIXELS + k] = (float)(r * 100 + k);
        ys[r] = (float)r + 0.5f;
    }
    int64_t xshape[4] = {ROWS, C, H, W}, yshape[1] = {ROWS};
    *x = cnn_from_data(4, xshape, xs);
    *y = cnn_from_data(1, yshape, ys);
}

static void shuffled_order(int64_t *order, unsigned seed) {
    for (int i = 0; i < ROWS; i++) order[i] = i;
    for (int i = ROWS - 1; i > 0; i--) {
        seed = seed * 1103515245u + 12345u;
        int j = (int)((seed >> 8) % (unsigned)(i + 1));
        int64_t t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* Serves every batch and checks it against the rows of order. */
static void check_epoch(int workers, int drop_last, int64_t batch_size) {
    cnn_tensor *x, *y;
    make_dataset(&x, &y);
    int64_t order[ROWS];
    shuffled_order(order, 7u);
    cnn_prefetch_options o = {.order = order, .n_rows = ROWS, .batch_size = batch_size, .drop_last = drop_last,
                              .workers = workers};
    cnn_prefetch *p = cnn_prefetch_new(x, y, &o);
    REQUIRE(p != NULL);
    const int64_t expected = drop_last ? ROWS / batch_size : (ROWS + batch_size - 1) / batch_size;
    CHECK(cnn_prefetch_batches(p) == expected);
    int64_t served = 0, rows = 0;
    for (;;) {
        cnn_tensor *bx, *by;
        REQUIRE(cnn_prefetch_next(p, &bx, &by) == CNN_OK);
        if (!bx) break;
        const int64_t n = cnn_size(bx, 0);
        CHECK(cnn_ndim(bx) == 4 && cnn_size(bx, 1) == C && cnn_size(bx, 2) == H && cnn_size(bx, 3) == W);
        CHECK(cnn_size(by, 0) == n);
        const float *px = cnn_data(bx), *py = cnn_data(by);
        for (int64_t i = 0; i < n; i++) {
            const int64_t row = order[rows + i];
            CHECK(py[i] == (float)row + 0.5f);
            CHECK(memcmp(px + i * PIXELS, (const float *)cnn_data(x) + row * PIXELS, PIXELS * sizeof(float)) == 0);
        }
        rows += n;
        served++;
        cnn_release(bx);
        cnn_release(by);
    }
    CHECK(served == expected);
    CHECK(rows == (drop_last ? expected * batch_size : ROWS));
    cnn_tensor *bx, *by; /* after the end: still the end */
    CHECK(cnn_prefetch_next(p, &bx, &by) == CNN_OK && bx == NULL);
    cnn_prefetch_free(p);
    cnn_release(x);
    cnn_release(y);
}

TEST(prefetch_batches_equal_a_direct_gather) {
    const int64_t before = cnn_memory_in_use();
    for (int workers = 0; workers <= 3; workers++) {
        check_epoch(workers, 0, 8);
        check_epoch(workers, 1, 8);
        check_epoch(workers, 0, 64);
        check_epoch(workers, 0, 1);
    }
    CHECK(cnn_prefetch_live_workers() == 0);
    CHECK(cnn_memory_in_use() == before);
}

TEST(prefetch_augments_each_batch_with_its_seed) {
    const int64_t before = cnn_memory_in_use();
    cnn_tensor *x, *y;
    make_dataset(&x, &y);
    cnn_aug_pipeline *pipe = cnn_aug_pipeline_new();
    cnn_aug_affine a = cnn_aug_affine_defaults();
    a.rotation[0] = -30;
    a.rotation[1] = 30;
    a.flip_horizontal = 0.5f;
    REQUIRE(cnn_aug_add_affine(pipe, &a, 1.0f) == CNN_OK);
    uint64_t seeds[5] = {11, 22, 33, 44, 55};
    for (int workers = 0; workers <= 2; workers++) {
        cnn_prefetch_options o = {.batch_size = 8, .pipeline = pipe, .seeds = seeds, .workers = workers};
        cnn_prefetch *p = cnn_prefetch_new(x, NULL, &o);
        REQUIRE(p != NULL);
        for (int b = 0; b < 5; b++) {
            cnn_tensor *bx, *by;
            REQUIRE(cnn_prefetch_next(p, &bx, &by) == CNN_OK);
            REQUIRE(bx != NULL);
            CHECK(by == NULL);
            const int64_t n = b < 4 ? 8 : ROWS - 32;
            cnn_tensor *rows = cnn_narrow(x, 0, b * 8, n);
            cnn_tensor *direct = cnn_aug_apply(pipe, rows, seeds[b]);
            REQUIRE(direct != NULL);
            CHECK(cnn_numel(direct) == cnn_numel(bx));
            CHECK(memcmp(cnn_data(direct), cnn_data(bx), (size_t)cnn_numel(bx) * sizeof(float)) == 0);
            cnn_release(direct);
            cnn_release(rows);
            cnn_release(bx);
        }
        cnn_prefetch_free(p);
    }
    cnn_aug_pipeline_free(pipe);
    cnn_release(x);
    cnn_release(y);
    CHECK(cnn_memory_in_use() == before);
}

TEST(prefetch_stops_workers_blocked_on_a_full_ring) {
    const int64_t before = cnn_memory_in_use();
    cnn_tensor *x, *y;
    make_dataset(&x, &y);
    cnn_prefetch_options o = {.batch_size = 2, .workers = 3, .capacity = 2};
    cnn_prefetch *p = cnn_prefetch_new(x, y, &o);
    REQUIRE(p != NULL);
    CHECK(cnn_prefetch_live_workers() == 3);
    /* let the workers fill the ring and block */
    struct timespec pause = {0, 30 * 1000 * 1000L};
    nanosleep(&pause, NULL);
    cnn_tensor *bx, *by;
    REQUIRE(cnn_prefetch_next(p, &bx, &by) == CNN_OK && bx != NULL);
    CHECK(((const float *)cnn_data(by))[0] == 0.5f);
    cnn_release(bx);
    cnn_release(by);
    nanosleep(&pause, NULL);
    cnn_prefetch_free(p); /* two batches wait in the ring, workers wait for a free slot */
    CHECK(cnn_prefetch_live_workers() == 0);
    cnn_release(x);
    cnn_release(y);
    CHECK(cnn_memory_in_use() == before);
}

TEST(prefetch_interrupt_and_errors) {
    const int64_t before = cnn_memory_in_use();
    cnn_tensor *x, *y;
    make_dataset(&x, &y);
    cnn_prefetch_options o = {.batch_size = 4, .workers = 2};
    cnn_prefetch *p = cnn_prefetch_new(x, y, &o);
    REQUIRE(p != NULL);
    cnn_interrupt();
    cnn_tensor *bx, *by;
    CHECK(cnn_prefetch_next(p, &bx, &by) == CNN_ERR_INTERRUPTED && bx == NULL);
    CHECK(strstr(cnn_last_error(), "interrupted") != NULL);
    cnn_clear_interrupt();
    REQUIRE(cnn_prefetch_next(p, &bx, &by) == CNN_OK && bx != NULL); /* goes on once cleared */
    cnn_release(bx);
    cnn_release(by);
    cnn_prefetch_free(p);

    /* bad arguments are errors, not crashes */
    int64_t bad_order[2] = {0, ROWS};
    cnn_prefetch_options bad = {.order = bad_order, .n_rows = 2, .batch_size = 1, .workers = 1};
    CHECK(cnn_prefetch_new(x, y, &bad) == NULL);
    CHECK(strstr(cnn_last_error(), "outside 0..36") != NULL);
    cnn_prefetch_options zero = {.batch_size = 0};
    CHECK(cnn_prefetch_new(x, y, &zero) == NULL);
    CHECK(strstr(cnn_last_error(), "batch_size") != NULL);
    int64_t short_shape[1] = {3};
    cnn_tensor *short_y = cnn_zeros(1, short_shape);
    cnn_prefetch_options ok = {.batch_size = 4, .workers = 1};
    CHECK(cnn_prefetch_new(x, short_y, &ok) == NULL);
    CHECK(strstr(cnn_last_error(), "one value per sample") != NULL);
    cnn_release(short_y);
    /* a pipeline that does not fit the images fails at creation */
    cnn_aug_pipeline *pipe = cnn_aug_pipeline_new();
    cnn_aug_crop crop = {.size = {10, 10}};
    REQUIRE(cnn_aug_add_crop(pipe, &crop) == CNN_OK);
    cnn_prefetch_options cropped = {.batch_size = 4, .workers = 2, .pipeline = pipe};
    CHECK(cnn_prefetch_new(x, y, &cropped) == NULL);
    CHECK(strstr(cnn_last_error(), "random_crop") != NULL);
    cnn_aug_pipeline_free(pipe);
    CHECK(cnn_prefetch_live_workers() == 0);
    cnn_release(x);
    cnn_release(y);
    CHECK(cnn_memory_in_use() == before);
}
