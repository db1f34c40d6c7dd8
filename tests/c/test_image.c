/* test_image.c - image files (PNG/BMP/TGA exact round trips for every channel layout, JPEG within a
 * tolerance, forced channel counts, truncated and corrupt files, bad save requests), resizing, grids
 * and CIFAR batches. Fixtures are written by the tests into a temporary directory. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cnn.h"
#include "harness.h"

/* (C, H, W) with values k / 255 that survive 8-bit files exactly. */
static cnn_tensor *byte_image(int64_t C, int64_t H, int64_t W, int salt) {
    int64_t shape[3] = {C, H, W};
    cnn_tensor *t = cnn_empty(3, shape);
    float *d = cnn_data(t);
    for (int64_t i = 0; i < C * H * W; i++) d[i] = (float)((i * 37 + salt) % 256) / 255.0f;
    return t;
}

static double max_difference(cnn_tensor *a, cnn_tensor *b) {
    if (!a || !b || cnn_numel(a) != cnn_numel(b)) return INFINITY;
    int64_t n = cnn_numel(a);
    float *x = malloc((size_t)n * sizeof(float)), *y = malloc((size_t)n * sizeof(float));
    cnn_read(a, x);
    cnn_read(b, y);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) worst = fmax(worst, fabs(x[i] - y[i]));
    free(x);
    free(y);
    return worst;
}

/* ---- files ------------------------------------------------------------------------------------------ */

TEST(image_lossless_round_trips) {
    make_work_dir("image");
    const char *names[3] = {"a.png", "a.bmp", "a.tga"};
    for (int f = 0; f < 3; f++) {
        for (int64_t C = 1; C <= 4; C++) {
            if (f == 1 && (C == 2 || C == 4)) continue; /* BMP keeps gray as RGB and has no gray + alpha */
            cnn_tensor *img = byte_image(C, 5, 7, (int)C);
            REQUIRE(cnn_image_save(in_work_dir(names[f]), img, 95) == CNN_OK);
            cnn_tensor *back = cnn_image_load(in_work_dir(names[f]), (int)C);
            CHECK(back && cnn_size(back, 0) == C && cnn_size(back, 1) == 5 && cnn_size(back, 2) == 7);
            CHECK(max_difference(img, back) == 0.0);
            cnn_release(back);
            cnn_release(img);
        }
    }
    /* PNG keeps the stored layout when no channel count is asked for */
    for (int64_t C = 1; C <= 4; C++) {
        cnn_tensor *img = byte_image(C, 3, 4, 9);
        cnn_image_save(in_work_dir("layout.png"), img, 95);
        cnn_tensor *back = cnn_image_load(in_work_dir("layout.png"), 0);
        CHECK(back && cnn_size(back, 0) == C);
        cnn_release(back);
        cnn_release(img);
    }
    CHECK(count_work_dir() == 4); /* no temporary files left behind */
    remove_work_dir();
}

TEST(image_jpeg_round_trip_within_tolerance) {
    make_work_dir("image");
    /* a smooth RGB gradient: JPEG's loss stays small */
    int64_t shape[3] = {3, 16, 16};
    cnn_tensor *img = cnn_empty(3, shape);
    float *d = cnn_data(img);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 16; y++)
            for (int x = 0; x < 16; x++) d[(c * 16 + y) * 16 + x] = (float)(x + y + 8 * c) / 62.0f;
    REQUIRE(cnn_image_save(in_work_dir("g.JPG"), img, 95) == CNN_OK); /* extensions in any case */
    cnn_tensor *back = cnn_image_load(in_work_dir("g.JPG"), 0);
    CHECK(back && cnn_size(back, 0) == 3);
    CHECK(max_difference(img, back) < 0.06);
    cnn_release(back);
    cnn_release(img);
    remove_work_dir();
}

TEST(image_forced_channels) {
    make_work_dir("image");
    cnn_tensor *gray = byte_image(1, 2, 3, 1);
    cnn_image_save(in_work_dir("g.png"), gray, 95);
    cnn_tensor *rgb = cnn_image_load(in_work_dir("g.png"), 3);
    REQUIRE(rgb && cnn_size(rgb, 0) == 3);
    float *d = cnn_data(rgb), *g = cnn_data(gray);
    int replicated = 1;
    for (int i = 0; i < 6; i++) replicated &= d[i] == g[i] && d[6 + i] == g[i] && d[12 + i] == g[i];
    CHECK(replicated);
    cnn_tensor *rgba = cnn_image_load(in_work_dir("g.png"), 4);
    CHECK(rgba && cnn_size(rgba, 0) == 4 && cnn_data(rgba)[18] == 1.0f); /* opaque alpha */
    /* RGB to gray uses a luma (stb: (77 R + 150 G + 29 B) / 256) */
    const float red[3] = {1, 0, 0};
    int64_t shape[3] = {3, 1, 1};
    cnn_tensor *r = cnn_from_data(3, shape, red);
    cnn_image_save(in_work_dir("r.png"), r, 95);
    cnn_tensor *r_gray = cnn_image_load(in_work_dir("r.png"), 1);
    CHECK(r_gray && cnn_size(r_gray, 0) == 1 && fabsf(cnn_data(r_gray)[0] - 76.0f / 255.0f) <= 1.0f / 255.0f);
    CHECK(cnn_image_load(in_work_dir("r.png"), 5) == NULL && strstr(cnn_last_error(), "channels"));
    cnn_release(r_gray);
    cnn_release(r);
    cnn_release(rgba);
    cnn_release(rgb);
    cnn_release(gray);
    remove_work_dir();
}

TEST(image_truncated_and_corrupt_files_are_errors) {
    make_work_dir("image");
    cnn_tensor *img = byte_image(3, 20, 20, 3);
    const char *names[3] = {"t.png", "t.bmp", "t.jpg"};
    for (int f = 0; f < 3; f++) {
        REQUIRE(cnn_image_save(in_work_dir(names[f]), img, 90) == CNN_OK);
        size_t n = 0;
        unsigned char *bytes = harness_read_bytes(in_work_dir(names[f]), &n);
        REQUIRE(bytes);
        /* every prefix must give either an error or a whole image, never a crash */
        for (size_t cut = 0; cut < n; cut += n / 23 + 1) {
            harness_write_bytes(in_work_dir("cut"), bytes, cut);
            cnn_tensor *t = cnn_image_load(in_work_dir("cut"), 0);
            if (t) CHECK(cnn_size(t, 1) == 20 && cnn_size(t, 2) == 20);
            else CHECK(strstr(cnn_last_error(), in_work_dir("cut")) != NULL);
            cnn_release(t);
        }
        /* a broken header */
        bytes[1] ^= 0x55;
        harness_write_bytes(in_work_dir("bad"), bytes, n);
        CHECK(cnn_image_load(in_work_dir("bad"), 0) == NULL && strstr(cnn_last_error(), "cannot decode") &&
              strstr(cnn_last_error(), "bad"));
        free(bytes);
    }
    /* a PNG cut in half names the file and stb's reason */
    size_t n = 0;
    unsigned char *png = harness_read_bytes(in_work_dir("t.png"), &n);
    harness_write_bytes(in_work_dir("half.png"), png, n / 2);
    free(png);
    CHECK(cnn_image_load(in_work_dir("half.png"), 0) == NULL);
    CHECK(strstr(cnn_last_error(), "half.png") && strstr(cnn_last_error(), "cannot decode"));
    harness_write_bytes(in_work_dir("empty.png"), "", 0);
    CHECK(cnn_image_load(in_work_dir("empty.png"), 0) == NULL && strstr(cnn_last_error(), "empty"));
    CHECK(cnn_image_load(in_work_dir("missing.png"), 0) == NULL && strstr(cnn_last_error(), "cannot open") &&
          strstr(cnn_last_error(), "No such file"));
    CHECK(cnn_image_decode("GIF89a", 6, 0, "tiny.gif") == NULL && strstr(cnn_last_error(), "tiny.gif"));
    cnn_release(img);
    remove_work_dir();
}

TEST(image_save_rejects_bad_requests) {
    make_work_dir("image");
    cnn_tensor *img = byte_image(3, 4, 4, 0);
    CHECK(cnn_image_save(in_work_dir("x.gif"), img, 95) == CNN_ERR_ARGUMENT && strstr(cnn_last_error(), "x.gif"));
    CHECK(cnn_image_save(in_work_dir("x.jpg"), img, 0) == CNN_ERR_ARGUMENT && strstr(cnn_last_error(), "quality"));
    int64_t five[3] = {5, 2, 2}, batch[4] = {2, 3, 2, 2}, line[1] = {4};
    cnn_tensor *t5 = cnn_zeros(3, five), *tb = cnn_zeros(4, batch), *t1 = cnn_zeros(1, line);
    CHECK(cnn_image_save(in_work_dir("x.png"), t5, 95) == CNN_ERR_SHAPE && strstr(cnn_last_error(), "5x2x2"));
    CHECK(cnn_image_save(in_work_dir("x.png"), tb, 95) == CNN_ERR_SHAPE && strstr(cnn_last_error(), "grid"));
    CHECK(cnn_image_save(in_work_dir("x.png"), t1, 95) == CNN_ERR_SHAPE);
    CHECK(cnn_image_save(in_work_dir("no/such/dir/x.png"), img, 95) != CNN_OK);
    CHECK(count_work_dir() == 0);
    /* values outside [0, 1] are clamped; 2-d tensors are gray images */
    int64_t hw[2] = {1, 3};
    const float v[3] = {-1.0f, 0.5f, 7.0f};
    cnn_tensor *plane = cnn_from_data(2, hw, v);
    REQUIRE(cnn_image_save(in_work_dir("p.png"), plane, 95) == CNN_OK);
    cnn_tensor *back = cnn_image_load(in_work_dir("p.png"), 0);
    CHECK(back && cnn_size(back, 0) == 1 && cnn_data(back)[0] == 0.0f && cnn_data(back)[2] == 1.0f &&
          fabsf(cnn_data(back)[1] - 128.0f / 255.0f) < 1e-6f);
    cnn_release(back);
    cnn_release(plane);
    cnn_release(t1);
    cnn_release(tb);
    cnn_release(t5);
    cnn_release(img);
    remove_work_dir();
}

/* ---- resize and grid ----------------------------------------------------------------------------------- */

TEST(image_resize_area_and_others) {
    /* 4x4 -> 2x2 averages 2x2 blocks */
    float v[16];
    for (int i = 0; i < 16; i++) v[i] = (float)i;
    int64_t shape[2] = {4, 4};
    cnn_tensor *x = cnn_from_data(2, shape, v);
    cnn_tensor *y = cnn_image_resize(x, 2, 2, CNN_RESIZE_AREA);
    REQUIRE(y && cnn_ndim(y) == 2);
    const float blocks[4] = {2.5f, 4.5f, 10.5f, 12.5f};
    float out[4];
    cnn_read(y, out);
    CHECK(fabsf(out[0] - blocks[0]) < 1e-5f && fabsf(out[1] - blocks[1]) < 1e-5f &&
          fabsf(out[2] - blocks[2]) < 1e-5f && fabsf(out[3] - blocks[3]) < 1e-5f);
    cnn_release(y);
    /* 3 -> 2 along a row: each output covers 1.5 pixels */
    const float row[3] = {3, 6, 9};
    int64_t rshape[3] = {1, 1, 3};
    cnn_tensor *r = cnn_from_data(3, rshape, row);
    y = cnn_image_resize(r, 1, 2, CNN_RESIZE_AREA);
    REQUIRE(y);
    CHECK(fabsf(cnn_data(y)[0] - 4.0f) < 1e-5f && fabsf(cnn_data(y)[1] - 8.0f) < 1e-5f);
    cnn_release(y);
    /* nearest and bilinear are upsample2d's */
    cnn_tensor *up = cnn_image_resize(x, 8, 6, CNN_RESIZE_BILINEAR);
    cnn_tensor *planar = cnn_unsqueeze(x, 0);
    cnn_tensor *expected = cnn_upsample2d(planar, 8, 6, CNN_UPSAMPLE_BILINEAR);
    CHECK(up && cnn_ndim(up) == 2 && max_difference(up, expected) == 0.0);
    cnn_release(expected);
    cnn_release(planar);
    cnn_release(up);
    CHECK(cnn_image_resize(x, 0, 3, CNN_RESIZE_AREA) == NULL && strstr(cnn_last_error(), "4x4"));
    CHECK(cnn_image_resize(r, 2, 2, (cnn_resize_mode)7) == NULL);
    cnn_release(r);
    cnn_release(x);
}

TEST(image_grid_layout) {
    int64_t shape[4] = {5, 1, 2, 3};
    cnn_tensor *batch = cnn_empty(4, shape);
    float *d = cnn_data(batch);
    for (int i = 0; i < 30; i++) d[i] = (float)(i / 6 + 1); /* image k is filled with k + 1 */
    cnn_grid_options o = cnn_grid_defaults();
    o.nrow = 2;
    o.padding = 1;
    o.pad_value = -1.0f;
    cnn_tensor *g = cnn_image_grid(batch, &o);
    /* 2 columns, 3 rows: (3 * (2 + 1) + 1) x (2 * (3 + 1) + 1) */
    REQUIRE(g && cnn_size(g, 0) == 1 && cnn_size(g, 1) == 10 && cnn_size(g, 2) == 9);
    float *p = cnn_data(g);
    CHECK(p[0] == -1.0f);                    /* corner padding */
    CHECK(p[1 * 9 + 1] == 1.0f);             /* image 1 at (1, 1) */
    CHECK(p[1 * 9 + 5] == 2.0f);             /* image 2 at (1, 5) */
    CHECK(p[4 * 9 + 1] == 3.0f);             /* image 3 at (4, 1) */
    CHECK(p[7 * 9 + 1] == 5.0f);             /* image 5 at (7, 1) */
    CHECK(p[7 * 9 + 5] == -1.0f);            /* no image 6 */
    cnn_release(g);
    o.normalize = 1; /* batch range 1..5 -> 0..1 */
    g = cnn_image_grid(batch, &o);
    CHECK(g && cnn_data(g)[1 * 9 + 1] == 0.0f && cnn_data(g)[7 * 9 + 1] == 1.0f &&
          fabsf(cnn_data(g)[1 * 9 + 5] - 0.25f) < 1e-6f);
    cnn_release(g);
    o.nrow = 0;
    CHECK(cnn_image_grid(batch, &o) == NULL && strstr(cnn_last_error(), "nrow"));
    cnn_release(batch);
}

/* ---- CIFAR --------------------------------------------------------------------------------------------- */

TEST(cifar_batches) {
    make_work_dir("image");
    enum { RECORD = 1 + 3072 };
    unsigned char *bytes = malloc(3 * RECORD);
    for (int r = 0; r < 3; r++) {
        bytes[r * RECORD] = (unsigned char)(r * 4); /* labels 0, 4, 8 */
        for (int k = 0; k < 3072; k++) bytes[r * RECORD + 1 + k] = (unsigned char)((k + r) % 256);
    }
    harness_write_bytes(in_work_dir("data_batch_1.bin"), bytes, 3 * RECORD);
    cnn_tensor *labels = NULL;
    cnn_tensor *x = cnn_cifar_load(in_work_dir("data_batch_1.bin"), 1, 0, &labels);
    REQUIRE(x && labels);
    CHECK(cnn_size(x, 0) == 3 && cnn_size(x, 1) == 3 && cnn_size(x, 2) == 32 && cnn_size(x, 3) == 32);
    CHECK(cnn_data(labels)[0] == 0.0f && cnn_data(labels)[1] == 4.0f && cnn_data(labels)[2] == 8.0f);
    /* red plane first, rows top to bottom: image 2, green channel, row 0, column 5 is byte 1024 + 5 + 2 */
    CHECK(cnn_data(x)[2 * 3072 + 1024 + 5] == (float)((1024 + 5 + 2) % 256) / 255.0f);
    cnn_release(labels);
    cnn_release(x);
    /* two label bytes (CIFAR-100): byte 1 is the fine label */
    harness_write_bytes(in_work_dir("train.bin"), bytes, 3 * RECORD - 3); /* 3 records of 3074 bytes */
    CHECK(cnn_cifar_load(in_work_dir("train.bin"), 2, 1, &labels) == NULL);
    harness_write_bytes(in_work_dir("train.bin"), bytes, 2 * 3074);
    x = cnn_cifar_load(in_work_dir("train.bin"), 2, 1, &labels);
    REQUIRE(x && labels && cnn_size(x, 0) == 2);
    CHECK(cnn_data(labels)[0] == 0.0f && cnn_data(labels)[1] == (float)bytes[3074 + 1]);
    cnn_release(labels);
    cnn_release(x);
    /* a truncated file names itself and the record size */
    harness_write_bytes(in_work_dir("short.bin"), bytes, 2 * RECORD + 100);
    CHECK(cnn_cifar_load(in_work_dir("short.bin"), 1, 0, &labels) == NULL && labels == NULL);
    CHECK(strstr(cnn_last_error(), "short.bin") && strstr(cnn_last_error(), "truncated") &&
          strstr(cnn_last_error(), "3073"));
    harness_write_bytes(in_work_dir("empty.bin"), bytes, 0);
    CHECK(cnn_cifar_load(in_work_dir("empty.bin"), 1, 0, &labels) == NULL);
    CHECK(cnn_cifar_load(in_work_dir("nothing.bin"), 1, 0, &labels) == NULL && strstr(cnn_last_error(), "cannot open"));
    CHECK(cnn_cifar_load(in_work_dir("data_batch_1.bin"), 3, 0, &labels) == NULL);
    free(bytes);
    remove_work_dir();
}
