/* test_io.c - safetensors checkpoints (round trips, every kind of corrupt file, atomic replacement)
 * and IDX datasets (plain and gzip, truncated and corrupt). Each test works in its own temporary
 * directory and removes it afterwards. */
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "cnn.h"
#include "harness.h"

/* ---- scaffolding -------------------------------------------------------------------------------- */

static void put_le64(unsigned char *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (unsigned char)(v >> (8 * i));
}

/* A safetensors file with the given header text and data bytes. */
static void write_safetensors_raw(const char *path, const char *header, const void *data, size_t n) {
    size_t h = strlen(header);
    unsigned char *buf = malloc(8 + h + n + 1);
    put_le64(buf, h);
    memcpy(buf + 8, header, h);
    if (n) memcpy(buf + 8 + h, data, n);
    harness_write_bytes(path, buf, 8 + h + n);
    free(buf);
}

static int error_mentions(const char *text) { return strstr(cnn_last_error(), text) != NULL; }

/* Opening must fail with status and a message naming the file and holding fragment. */
static void expect_open_failure(const char *path, cnn_status status, const char *fragment) {
    cnn_safetensors *f = cnn_safetensors_open(path);
    CHECK(f == NULL);
    cnn_safetensors_close(f);
    CHECK(cnn_last_status() == status);
    CHECK(error_mentions(path));
    if (fragment && !error_mentions(fragment))
        harness_fail(__FILE__, __LINE__, "error '%s' does not mention '%s'", cnn_last_error(), fragment);
}

static int same_values(cnn_tensor *a, cnn_tensor *b) {
    if (cnn_ndim(a) != cnn_ndim(b)) return 0;
    for (int d = 0; d < cnn_ndim(a); d++)
        if (cnn_size(a, d) != cnn_size(b, d)) return 0;
    int64_t n = cnn_numel(a);
    float *va = malloc(sizeof(float) * (size_t)(n + 1)), *vb = malloc(sizeof(float) * (size_t)(n + 1));
    cnn_read(a, va);
    cnn_read(b, vb);
    int same = memcmp(va, vb, sizeof(float) * (size_t)n) == 0;
    free(va);
    free(vb);
    return same;
}

static cnn_tensor *tensor_2x3(void) {
    int64_t shape[2] = {2, 3};
    float v[6] = {1.5f, -2.25f, 3, 1e-30f, -0.0f, 65504};
    return cnn_from_data(2, shape, v);
}

/* ---- safetensors: round trips ------------------------------------------------------------------- */

TEST(io_safetensors_round_trip_with_views_and_scalar) {
    make_work_dir("io");
    const char *path = in_work_dir("model.safetensors");
    cnn_tensor *base = tensor_2x3();
    cnn_tensor *transposed = cnn_transpose(base, 0, 1);  /* 3x2, not contiguous */
    cnn_tensor *column = cnn_narrow(base, 1, 1, 2);      /* 2x2, not contiguous */
    cnn_tensor *scalar = cnn_scalar(42.5f);              /* 0-d */
    int64_t empty_shape[2] = {0, 4};
    cnn_tensor *empty = cnn_zeros(2, empty_shape);
    int64_t big_shape[1] = {3000};
    cnn_tensor *big = cnn_randn(1, big_shape);
    REQUIRE(transposed && column && scalar && empty && big);
    CHECK(!cnn_is_contiguous(transposed));
    const char *names[] = {"fc.weight", "fc.weight_t", "col", "step", "empty", "noise"};
    cnn_tensor *tensors[] = {base, transposed, column, scalar, empty, big};
    const char *metadata = "{\"epoch\":\"3\",\"model\":\"lenet\"}";
    CHECK(cnn_safetensors_save(path, 6, names, tensors, metadata) == CNN_OK);

    cnn_safetensors *f = cnn_safetensors_open(path);
    REQUIRE(f != NULL);
    CHECK(cnn_safetensors_count(f) == 6);
    for (int i = 0; i < 6; i++) {
        CHECK(strcmp(cnn_safetensors_name(f, i), names[i]) == 0); /* the order given */
        cnn_tensor *back = cnn_safetensors_get(f, names[i]);
        REQUIRE(back != NULL);
        CHECK(cnn_is_contiguous(back));
        if (!same_values(back, tensors[i]))
            harness_fail(__FILE__, __LINE__, "tensor %s differs", names[i]);
        cnn_release(back);
    }
    cnn_tensor *s = cnn_safetensors_get(f, "step");
    CHECK(s && cnn_ndim(s) == 0 && cnn_item(s) == 42.5f);
    cnn_release(s);
    CHECK(strcmp(cnn_safetensors_metadata(f), "{\"epoch\":\"3\",\"model\":\"lenet\"}") == 0);
    CHECK(cnn_safetensors_name(f, 6) == NULL && cnn_safetensors_name(f, -1) == NULL);
    CHECK(cnn_safetensors_get(f, "missing") == NULL);
    CHECK(cnn_last_status() == CNN_ERR_ARGUMENT && error_mentions("'missing'") && error_mentions(path));
    cnn_safetensors_close(f);
    for (int i = 0; i < 6; i++) cnn_release(tensors[i]);
    CHECK(count_work_dir() == 1); /* no temporary file left behind */
    remove_work_dir();
}

TEST(io_safetensors_layout_is_little_endian_f32_with_padded_header) {
    make_work_dir("io");
    const char *path = in_work_dir("a.safetensors");
    cnn_tensor *t = tensor_2x3();
    cnn_tensor *s = cnn_scalar(-1);
    const char *names[] = {"a\"quoted\\name", "b"};
    cnn_tensor *ts[] = {t, s};
    REQUIRE(cnn_safetensors_save(path, 2, names, ts, NULL) == CNN_OK);
    size_t n = 0;
    unsigned char *bytes = harness_read_bytes(path, &n);
    REQUIRE(bytes != NULL && n >= 8);
    uint64_t header = 0;
    for (int i = 7; i >= 0; i--) header = header << 8 | bytes[i];
    CHECK(header % 8 == 0);
    CHECK(n == 8 + header + 7 * 4);
    CHECK(bytes[8] == '{');
    CHECK(bytes[8 + header - 1] == '}' || bytes[8 + header - 1] == ' ');
    char *text = strndup((const char *)bytes + 8, header);
    CHECK(strstr(text, "\"a\\\"quoted\\\\name\":"
                       "{\"dtype\":\"F32\",\"shape\":[2,3],\"data_offsets\":[0,24]}"));
    CHECK(strstr(text, "\"b\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[24,28]}"));
    CHECK(strstr(text, "__metadata__") == NULL);
    free(text);
    /* 1.5f = 0x3fc00000, stored low byte first */
    const unsigned char *data = bytes + 8 + header;
    CHECK(data[0] == 0x00 && data[1] == 0x00 && data[2] == 0xc0 && data[3] == 0x3f);
    /* -1.0f = 0xbf800000 */
    CHECK(data[24] == 0x00 && data[25] == 0x00 && data[26] == 0x80 && data[27] == 0xbf);
    free(bytes);
    cnn_safetensors *f = cnn_safetensors_open(path);
    REQUIRE(f != NULL);
    CHECK(strcmp(cnn_safetensors_metadata(f), "{}") == 0);
    CHECK(strcmp(cnn_safetensors_name(f, 0), "a\"quoted\\name") == 0);
    cnn_safetensors_close(f);
    cnn_release(t);
    cnn_release(s);
    remove_work_dir();
}

TEST(io_safetensors_saves_no_tensors) {
    make_work_dir("io");
    const char *path = in_work_dir("empty.safetensors");
    REQUIRE(cnn_safetensors_save(path, 0, NULL, NULL, "{}") == CNN_OK);
    cnn_safetensors *f = cnn_safetensors_open(path);
    REQUIRE(f != NULL);
    CHECK(cnn_safetensors_count(f) == 0);
    cnn_safetensors_close(f);
    remove_work_dir();
}

/* ---- safetensors: reading other dtypes ---------------------------------------------------------- */

TEST(io_safetensors_converts_every_dtype) {
    make_work_dir("io");
    const char *path = in_work_dir("dtypes.safetensors");
    unsigned char data[256];
    size_t at = 0;
    /* F16: 1, -2, 0.5, smallest subnormal 2^-24, 65504, inf */
    const uint16_t f16[6] = {0x3C00, 0xC000, 0x3800, 0x0001, 0x7BFF, 0x7C00};
    for (int i = 0; i < 6; i++, at += 2) data[at] = f16[i] & 0xff, data[at + 1] = f16[i] >> 8;
    /* BF16: 1, -3.5 */
    const uint16_t bf16[2] = {0x3F80, 0xC060};
    for (int i = 0; i < 2; i++, at += 2) data[at] = bf16[i] & 0xff, data[at + 1] = bf16[i] >> 8;
    /* F64: 0.1, -1e300 (becomes -inf as float) */
    double f64[2] = {0.1, -1e300};
    for (int i = 0; i < 2; i++, at += 8) {
        uint64_t bits;
        memcpy(&bits, &f64[i], 8);
        put_le64(data + at, bits);
    }
    /* I64: -5, 2^40 */
    put_le64(data + at, (uint64_t)(int64_t)-5), at += 8;
    put_le64(data + at, (uint64_t)1 << 40), at += 8;
    /* I32: -70000 */
    uint32_t i32 = (uint32_t)-70000;
    for (int b = 0; b < 4; b++) data[at++] = (unsigned char)(i32 >> (8 * b));
    /* I16: -300, I8: -7, U8: 200, BOOL: 0, 1 */
    const uint16_t i16 = (uint16_t)-300;
    data[at++] = (unsigned char)(i16 & 0xff), data[at++] = (unsigned char)(i16 >> 8);
    data[at++] = (unsigned char)(int8_t)-7;
    data[at++] = 200;
    data[at++] = 0, data[at++] = 1;
    const char *header =
        "{\"h\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[0,12]},"
        "\"bf\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[12,16]},"
        "\"d\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[16,32]},"
        "\"l\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[32,48]},"
        "\"i\":{\"dtype\":\"I32\",\"shape\":[],\"data_offsets\":[48,52]},"
        "\"s\":{\"dtype\":\"I16\",\"shape\":[1],\"data_offsets\":[52,54]},"
        "\"c\":{\"dtype\":\"I8\",\"shape\":[1],\"data_offsets\":[54,55]},"
        "\"u\":{\"dtype\":\"U8\",\"shape\":[1,1],\"data_offsets\":[55,56]},"
        "\"b\":{\"dtype\":\"BOOL\",\"shape\":[2],\"data_offsets\":[56,58]}}";
    REQUIRE(at == 58);
    write_safetensors_raw(path, header, data, at);
    cnn_safetensors *f = cnn_safetensors_open(path);
    if (!f) fprintf(stderr, "  %s\n", cnn_last_error());
    REQUIRE(f != NULL);
    float v[8];
    cnn_tensor *t = cnn_safetensors_get(f, "h");
    REQUIRE(t && cnn_ndim(t) == 2 && cnn_size(t, 1) == 3);
    cnn_read(t, v);
    CHECK(v[0] == 1 && v[1] == -2 && v[2] == 0.5f && v[3] == 0x1p-24f && v[4] == 65504 && isinf(v[5]));
    cnn_release(t);
    t = cnn_safetensors_get(f, "bf");
    cnn_read(t, v);
    CHECK(v[0] == 1 && v[1] == -3.5f);
    cnn_release(t);
    t = cnn_safetensors_get(f, "d");
    cnn_read(t, v);
    CHECK(v[0] == 0.1f && isinf(v[1]) && v[1] < 0);
    cnn_release(t);
    t = cnn_safetensors_get(f, "l");
    cnn_read(t, v);
    CHECK(v[0] == -5 && v[1] == 0x1p40f);
    cnn_release(t);
    t = cnn_safetensors_get(f, "i");
    CHECK(t && cnn_ndim(t) == 0 && cnn_item(t) == -70000);
    cnn_release(t);
    const char *singles[] = {"s", "c", "u"};
    const float expected[] = {-300, -7, 200};
    for (int k = 0; k < 3; k++) {
        t = cnn_safetensors_get(f, singles[k]);
        CHECK(t && cnn_item(t) == expected[k]);
        cnn_release(t);
    }
    t = cnn_safetensors_get(f, "b");
    cnn_read(t, v);
    CHECK(v[0] == 0 && v[1] == 1);
    cnn_release(t);
    cnn_safetensors_close(f);
    remove_work_dir();
}

/* ---- safetensors: corrupt files ----------------------------------------------------------------- */

TEST(io_safetensors_rejects_truncated_files_at_every_cut) {
    make_work_dir("io");
    const char *good = in_work_dir("good.safetensors");
    cnn_tensor *t = tensor_2x3();
    const char *names[] = {"w"};
    REQUIRE(cnn_safetensors_save(good, 1, names, &t, "{\"k\":\"v\"}") == CNN_OK);
    size_t n = 0;
    unsigned char *bytes = harness_read_bytes(good, &n);
    REQUIRE(bytes && n > 40);
    size_t header = n - 8 - 24;
    const size_t cuts[] = {0, 3, 7, 8, 9, 8 + header / 2, 8 + header - 1, 8 + header, 8 + header + 1,
                           n - 4, n - 1};
    const char *cut_path = in_work_dir("cut.safetensors");
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        harness_write_bytes(cut_path, bytes, cuts[i]);
        cnn_safetensors *f = cnn_safetensors_open(cut_path);
        if (f) harness_fail(__FILE__, __LINE__, "a file cut at byte %zu was accepted", cuts[i]);
        cnn_safetensors_close(f);
        CHECK(cnn_last_status() == CNN_ERR_FORMAT);
        CHECK(error_mentions(cut_path));
    }
    /* the exact messages at the interesting cuts */
    harness_write_bytes(cut_path, bytes, 5);
    expect_open_failure(cut_path, CNN_ERR_FORMAT, "is truncated: it has 5 bytes");
    harness_write_bytes(cut_path, bytes, 8 + header - 1);
    expect_open_failure(cut_path, CNN_ERR_FORMAT, "only");
    harness_write_bytes(cut_path, bytes, n - 4);
    expect_open_failure(cut_path, CNN_ERR_FORMAT, "beyond the end of the data buffer (20 bytes");
    /* one byte too many is corrupt as well: the data must be exactly covered */
    bytes[n] = 0;
    harness_write_bytes(cut_path, bytes, n + 1);
    expect_open_failure(cut_path, CNN_ERR_FORMAT, "has 25 bytes but its tensors cover only 24");
    free(bytes);
    cnn_release(t);
    remove_work_dir();
}

TEST(io_safetensors_rejects_header_size_beyond_file) {
    make_work_dir("io");
    const char *path = in_work_dir("big_header.safetensors");
    unsigned char buf[16];
    put_le64(buf, 1000);
    memcpy(buf + 8, "{}      ", 8);
    harness_write_bytes(path, buf, 16);
    expect_open_failure(path, CNN_ERR_FORMAT, "says its header has 1000 bytes but only 8 bytes follow");
    put_le64(buf, UINT64_MAX);
    harness_write_bytes(path, buf, 16);
    expect_open_failure(path, CNN_ERR_FORMAT, "18446744073709551615 bytes");
    remove_work_dir();
}

TEST(io_safetensors_rejects_invalid_headers) {
    make_work_dir("io");
    const char *path = in_work_dir("bad.safetensors");
    unsigned char data[600] = {0};
    static const struct {
        const char *header;
        size_t data_size;
        const char *message;
    } cases[] = {
        {"{\"a\": {\"dtype\": \"F32\",", 0, "is not valid JSON"},
        {"", 0, "is not valid JSON"},
        {"[1, 2]", 0, "is not a JSON object"},
        {"{} x", 0, "has text after its JSON object"},
        {"{\"a\": 5}", 0, "entry 'a' in"},
        {"{\"a\":{\"dtype\":\"Q4\",\"shape\":[1],\"data_offsets\":[0,4]}}", 4,
         "tensor 'a' in %s has dtype 'Q4', which cannot be read"},
        {"{\"a\":{\"dtype\":7,\"shape\":[1],\"data_offsets\":[0,4]}}", 4, "has no \"dtype\" string"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,4]}}", 4, "has no \"shape\" array"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4,
         "shape entry 1 that is not a non-negative integer"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1, 1.5],\"data_offsets\":[0,4]}}", 4, "shape entry 2"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}", 4,
         "has 9 dims; at most 8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4, "no \"data_offsets\" pair"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", 4, "no \"data_offsets\" pair"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,-4]}}", 4, "no \"data_offsets\" pair"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,0]}}", 4, "end before they begin"},
        {"{\"conv1.weight\":{\"dtype\":\"F32\",\"shape\":[6,1,5,5],\"data_offsets\":[0,96]}}", 96,
         "safetensors: tensor 'conv1.weight' in %s has data_offsets [0, 96] but shape 6x1x5x5 of F32 "
         "needs 600 bytes"},
        {"{\"a\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[0,12]}}", 12,
         "shape 3 of F16 needs 6 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,4]}}", 4,
         "needs more than 2^64 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 8,
         "has data_offsets [0, 16] beyond the end of the data buffer (8 bytes"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12,
         "tensors 'a' and 'b' in %s overlap: data_offsets [0, 8] and [4, 12]"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8, "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}", 20,
         "bytes [8, 12) of the data buffer in %s belong to no tensor"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8, "bytes [0, 4)"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", 12,
         "has 12 bytes but its tensors cover only 8"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", 8,
         "tensor name 'a' appears twice"},
        {"{\"__metadata__\":{\"epoch\":3}}", 0,
         "__metadata__ in %s has key 'epoch' whose value is not a string"},
        {"{\"__metadata__\":[\"x\"]}", 0, "__metadata__ in %s is not a JSON object"},
        {"{\"__metadata__\":{},\"__metadata__\":{}}", 0, "__metadata__ appears twice"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_safetensors_raw(path, cases[i].header, data, cases[i].data_size);
        char expected[512];
        snprintf(expected, sizeof expected, cases[i].message, path);
        cnn_safetensors *f = cnn_safetensors_open(path);
        cnn_safetensors_close(f);
        if (f || cnn_last_status() != CNN_ERR_FORMAT || !error_mentions(expected) ||
            !error_mentions(path))
            harness_fail(__FILE__, __LINE__, "case %zu (%s): %s; expected a format error with '%s'", i,
                         cases[i].header, f ? "accepted" : cnn_last_error(), expected);
    }
    remove_work_dir();
}

TEST(io_safetensors_accepts_zero_sized_tensors_and_padding) {
    make_work_dir("io");
    const char *path = in_work_dir("zero.safetensors");
    float one = 3;
    write_safetensors_raw(path,
                          "{\"e\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]},"
                          "\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                          "\"z\":{\"dtype\":\"U8\",\"shape\":[0],\"data_offsets\":[4,4]}}   \n ",
                          &one, 4);
    cnn_safetensors *f = cnn_safetensors_open(path);
    if (!f) fprintf(stderr, "  %s\n", cnn_last_error());
    REQUIRE(f != NULL);
    cnn_tensor *e = cnn_safetensors_get(f, "e");
    CHECK(e && cnn_numel(e) == 0 && cnn_size(e, 1) == 3);
    cnn_tensor *x = cnn_safetensors_get(f, "x");
    CHECK(x && cnn_item(x) == 3);
    cnn_release(e);
    cnn_release(x);
    cnn_safetensors_close(f);
    remove_work_dir();
}

TEST(io_safetensors_missing_file_is_an_io_error) {
    make_work_dir("io");
    const char *path = in_work_dir("nothing-here.safetensors");
    expect_open_failure(path, CNN_ERR_IO, strerror(ENOENT));
    expect_open_failure(work_dir, CNN_ERR_IO, "directory");
    remove_work_dir();
}

/* ---- safetensors: saving refuses bad arguments and never damages the old file ------------------- */

static void check_file_is(const char *path, const unsigned char *bytes, size_t n) {
    size_t m = 0;
    unsigned char *now = harness_read_bytes(path, &m);
    CHECK(now != NULL && m == n && memcmp(now, bytes, n) == 0);
    free(now);
}

TEST(io_safetensors_save_rejects_bad_arguments_and_keeps_the_old_file) {
    make_work_dir("io");
    const char *path = in_work_dir("keep.safetensors");
    cnn_tensor *a = tensor_2x3();
    cnn_tensor *b = cnn_scalar(1);
    const char *names[] = {"a", "b"};
    cnn_tensor *ts[] = {a, b};
    REQUIRE(cnn_safetensors_save(path, 2, names, ts, NULL) == CNN_OK);
    size_t n = 0;
    unsigned char *old = harness_read_bytes(path, &n);
    REQUIRE(old != NULL);

    static const struct {
        const char *names[2];
        const char *metadata;
        const char *message;
    } cases[] = {
        {{"w", "w"}, NULL, "the name 'w' is given twice"},
        {{"w", ""}, NULL, "tensor 2 has an empty name"},
        {{"__metadata__", "x"}, NULL, "'__metadata__' is reserved"},
        {{"a", "b"}, "{\"epoch\": 3}", "metadata key 'epoch' has a value that is not a string"},
        {{"a", "b"}, "[\"x\"]", "must be a JSON object of strings"},
        {{"a", "b"}, "{\"x\": \"1\"} trailing", "is not valid JSON"},
        {{"a", "b"}, "{\"x\": \"1\", \"x\": \"2\"}", "metadata key 'x' has a second value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cnn_status status = cnn_safetensors_save(path, 2, cases[i].names, ts, cases[i].metadata);
        if (status != CNN_ERR_ARGUMENT || !error_mentions(cases[i].message) || !error_mentions(path))
            harness_fail(__FILE__, __LINE__, "case %zu: status %d, '%s'", i, (int)status,
                         cnn_last_error());
        check_file_is(path, old, n);
    }
    cnn_tensor *with_null[] = {a, NULL};
    CHECK(cnn_safetensors_save(path, 2, names, with_null, NULL) == CNN_ERR_ARGUMENT);
    CHECK(error_mentions("tensor 'b' is missing"));
    check_file_is(path, old, n);
    CHECK(count_work_dir() == 1);
    free(old);
    cnn_release(a);
    cnn_release(b);
    remove_work_dir();
}

TEST(io_safetensors_failed_write_leaves_the_old_file_and_no_temporary) {
    make_work_dir("io");
    const char *path = in_work_dir("keep.safetensors");
    cnn_tensor *small = tensor_2x3();
    const char *names[] = {"w"};
    REQUIRE(cnn_safetensors_save(path, 1, names, &small, NULL) == CNN_OK);
    size_t n = 0;
    unsigned char *old = harness_read_bytes(path, &n);
    REQUIRE(old != NULL);

    /* A file size limit makes the write fail halfway through the data, as a full disk would. */
    int64_t big_shape[1] = {100000};
    cnn_tensor *big = cnn_ones(1, big_shape);
    struct rlimit saved;
    getrlimit(RLIMIT_FSIZE, &saved);
    struct rlimit limited = saved;
    limited.rlim_cur = 64 * 1024;
    void (*old_handler)(int) = signal(SIGXFSZ, SIG_IGN);
    REQUIRE(setrlimit(RLIMIT_FSIZE, &limited) == 0);
    cnn_status status = cnn_safetensors_save(path, 1, names, &big, NULL);
    setrlimit(RLIMIT_FSIZE, &saved);
    signal(SIGXFSZ, old_handler);
    CHECK(status == CNN_ERR_IO);
    CHECK(error_mentions("cannot write") && error_mentions(path));
    check_file_is(path, old, n);
    CHECK(count_work_dir() == 1);

    /* A directory in the way: nothing is written anywhere. */
    const char *dir = in_work_dir("subdir");
    REQUIRE(mkdir(dir, 0755) == 0);
    CHECK(cnn_safetensors_save(dir, 1, names, &small, NULL) == CNN_ERR_IO);
    CHECK(error_mentions("cannot replace") && error_mentions(dir));
    struct stat st;
    CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
    CHECK(count_work_dir() == 2);

    /* A directory that does not exist, and a path through a regular file. */
    const char *nowhere = in_work_dir("no/such/dir/x.safetensors");
    CHECK(cnn_safetensors_save(nowhere, 1, names, &small, NULL) == CNN_ERR_IO);
    CHECK(error_mentions("no/such/dir") && error_mentions(strerror(ENOENT)));
    CHECK(cnn_safetensors_save(in_work_dir("keep.safetensors/x"), 1, names, &small, NULL) == CNN_ERR_IO);
    CHECK(cnn_safetensors_save(in_work_dir("ends-with-slash/"), 1, names, &small, NULL) == CNN_ERR_IO);
    CHECK(cnn_safetensors_save("", 1, names, &small, NULL) == CNN_ERR_ARGUMENT);
    check_file_is(path, old, n);
    CHECK(count_work_dir() == 2);

    /* And a successful save still replaces it. */
    CHECK(cnn_safetensors_save(path, 1, names, &big, NULL) == CNN_OK);
    cnn_safetensors *f = cnn_safetensors_open(path);
    cnn_tensor *back = f ? cnn_safetensors_get(f, "w") : NULL;
    CHECK(back && cnn_numel(back) == 100000);
    cnn_release(back);
    cnn_safetensors_close(f);
    free(old);
    cnn_release(small);
    cnn_release(big);
    remove_work_dir();
}

/* ---- IDX ---------------------------------------------------------------------------------------- */

static void put_be32(unsigned char *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (unsigned char)(v >> (24 - 8 * i));
}

/* An IDX file: type code, dims, then the raw payload, optionally gzip-compressed. */
static size_t idx_bytes(unsigned char *buf, unsigned char type, int ndim, const uint32_t *dims,
                        const void *payload, size_t n) {
    buf[0] = 0, buf[1] = 0, buf[2] = type, buf[3] = (unsigned char)ndim;
    for (int d = 0; d < ndim; d++) put_be32(buf + 4 + 4 * d, dims[d]);
    memcpy(buf + 4 + 4 * ndim, payload, n);
    return 4 + 4 * (size_t)ndim + n;
}

static void write_gz(const char *path, const void *data, size_t n) {
    gzFile gz = gzopen(path, "wb");
    if (!gz) return;
    gzwrite(gz, data, (unsigned)n);
    gzclose(gz);
}

static const unsigned char images_3x2x2[12] = {0, 255, 51, 102, 1, 2, 3, 4, 250, 251, 252, 253};

TEST(io_idx_loads_images_and_labels_plain_and_gzip) {
    make_work_dir("io");
    unsigned char buf[256];
    const uint32_t image_dims[3] = {3, 2, 2};
    size_t n = idx_bytes(buf, 0x08, 3, image_dims, images_3x2x2, 12);
    harness_write_bytes(in_work_dir("images-idx3-ubyte"), buf, n);
    write_gz(in_work_dir("images-idx3-ubyte.gz"), buf, n);
    const char *files[] = {in_work_dir("images-idx3-ubyte"), in_work_dir("images-idx3-ubyte.gz")};
    for (int k = 0; k < 2; k++) {
        cnn_tensor *scaled = cnn_idx_load(files[k], 1);
        cnn_tensor *raw = cnn_idx_load(files[k], 0);
        REQUIRE(scaled && raw);
        CHECK(cnn_ndim(scaled) == 4 && cnn_size(scaled, 0) == 3 && cnn_size(scaled, 1) == 1 &&
              cnn_size(scaled, 2) == 2 && cnn_size(scaled, 3) == 2);
        float v[12], r[12];
        cnn_read(scaled, v);
        cnn_read(raw, r);
        for (int i = 0; i < 12; i++) {
            CHECK(v[i] == (float)images_3x2x2[i] / 255.0f);
            CHECK(r[i] == images_3x2x2[i]);
        }
        CHECK(v[1] == 1.0f && v[0] == 0.0f);
        cnn_release(scaled);
        cnn_release(raw);
    }
    const unsigned char labels[5] = {0, 9, 3, 3, 7};
    const uint32_t label_dims[1] = {5};
    n = idx_bytes(buf, 0x08, 1, label_dims, labels, 5);
    write_gz(in_work_dir("labels.gz"), buf, n);
    cnn_tensor *y = cnn_idx_load(in_work_dir("labels.gz"), 1); /* labels are never scaled */
    REQUIRE(y != NULL);
    CHECK(cnn_ndim(y) == 1 && cnn_size(y, 0) == 5);
    float v[5];
    cnn_read(y, v);
    for (int i = 0; i < 5; i++) CHECK(v[i] == labels[i]);
    cnn_release(y);
    remove_work_dir();
}

TEST(io_idx_reads_wider_element_types_big_endian) {
    make_work_dir("io");
    unsigned char buf[256], payload[64];
    const uint32_t dims[2] = {2, 1};
    /* i16: -2, 300 */
    payload[0] = 0xff, payload[1] = 0xfe, payload[2] = 0x01, payload[3] = 0x2c;
    harness_write_bytes(in_work_dir("i16"), buf, idx_bytes(buf, 0x0B, 2, dims, payload, 4));
    /* i32: -70000, 5 */
    put_be32(payload, (uint32_t)-70000), put_be32(payload + 4, 5);
    harness_write_bytes(in_work_dir("i32"), buf, idx_bytes(buf, 0x0C, 2, dims, payload, 8));
    /* f32: 1.5 (0x3fc00000), -0.25 (0xbe800000) */
    put_be32(payload, 0x3fc00000), put_be32(payload + 4, 0xbe800000);
    harness_write_bytes(in_work_dir("f32"), buf, idx_bytes(buf, 0x0D, 2, dims, payload, 8));
    /* f64: 2.5 (0x4004000000000000), -1 (0xbff0000000000000) */
    put_be32(payload, 0x40040000), put_be32(payload + 4, 0);
    put_be32(payload + 8, 0xbff00000), put_be32(payload + 12, 0);
    harness_write_bytes(in_work_dir("f64"), buf, idx_bytes(buf, 0x0E, 2, dims, payload, 16));
    /* i8: -3, 4 */
    payload[0] = 0xfd, payload[1] = 4;
    harness_write_bytes(in_work_dir("i8"), buf, idx_bytes(buf, 0x09, 2, dims, payload, 2));
    const char *names[] = {"i16", "i32", "f32", "f64", "i8"};
    const float expected[][2] = {{-2, 300}, {-70000, 5}, {1.5f, -0.25f}, {2.5f, -1}, {-3, 4}};
    for (int k = 0; k < 5; k++) {
        cnn_tensor *t = cnn_idx_load(in_work_dir(names[k]), 1);
        if (!t) fprintf(stderr, "  %s\n", cnn_last_error());
        REQUIRE(t != NULL);
        CHECK(cnn_ndim(t) == 2 && cnn_size(t, 0) == 2 && cnn_size(t, 1) == 1);
        float v[2];
        cnn_read(t, v);
        if (v[0] != expected[k][0] || v[1] != expected[k][1])
            harness_fail(__FILE__, __LINE__, "%s: got %g %g", names[k], v[0], v[1]);
        cnn_release(t);
    }
    remove_work_dir();
}

static void expect_idx_failure(const char *path, cnn_status status, const char *fragment) {
    cnn_tensor *t = cnn_idx_load(path, 1);
    CHECK(t == NULL);
    cnn_release(t);
    if (cnn_last_status() != status || !error_mentions(path) || !error_mentions(fragment))
        harness_fail(__FILE__, __LINE__, "%s: status %d '%s', expected '%s'", path,
                     (int)cnn_last_status(), cnn_last_error(), fragment);
}

TEST(io_idx_reports_truncated_and_corrupt_files) {
    make_work_dir("io");
    unsigned char buf[256];
    const uint32_t dims[3] = {3, 2, 2};
    size_t n = idx_bytes(buf, 0x08, 3, dims, images_3x2x2, 12);
    /* cut in the middle of the second image */
    harness_write_bytes(in_work_dir("cut"), buf, n - 6);
    expect_idx_failure(in_work_dir("cut"), CNN_ERR_FORMAT, "is truncated: header says 3x2x2 but data ends "
                       "after 1 images");
    write_gz(in_work_dir("cut.gz"), buf, n - 6);
    expect_idx_failure(in_work_dir("cut.gz"), CNN_ERR_FORMAT, "header says 3x2x2 but data ends after 1 images");
    harness_write_bytes(in_work_dir("header-only"), buf, 10);
    expect_idx_failure(in_work_dir("header-only"), CNN_ERR_FORMAT, "announces 3 dims but ends after 6");
    harness_write_bytes(in_work_dir("tiny"), buf, 2);
    expect_idx_failure(in_work_dir("tiny"), CNN_ERR_FORMAT, "fewer than the 4-byte magic number");
    /* a gzip stream cut short: the compressed bytes themselves end early */
    unsigned char big_payload[4000];
    for (int i = 0; i < 4000; i++) big_payload[i] = (unsigned char)(i * 7919 >> 3);
    const uint32_t big_dims[3] = {10, 20, 20};
    unsigned char big[4100];
    size_t big_n = idx_bytes(big, 0x08, 3, big_dims, big_payload, 4000);
    write_gz(in_work_dir("full.gz"), big, big_n);
    size_t gz_n = 0;
    unsigned char *gz = harness_read_bytes(in_work_dir("full.gz"), &gz_n);
    REQUIRE(gz && gz_n > 100);
    harness_write_bytes(in_work_dir("short.gz"), gz, gz_n / 2);
    expect_idx_failure(in_work_dir("short.gz"), CNN_ERR_FORMAT, "is truncated: header says 10x20x20");
    /* the checksum cut off after complete data */
    harness_write_bytes(in_work_dir("no-checksum.gz"), gz, gz_n - 3);
    expect_idx_failure(in_work_dir("no-checksum.gz"), CNN_ERR_FORMAT,
                       "all 10x20x20 values were read but the gzip checksum");
    /* a flipped bit in the checksum, found only after all the data was read */
    gz[gz_n - 6] ^= 1;
    harness_write_bytes(in_work_dir("checksum.gz"), gz, gz_n);
    expect_idx_failure(in_work_dir("checksum.gz"), CNN_ERR_FORMAT, "is corrupt: its compressed stream");
    gz[gz_n - 6] ^= 1;
    /* corrupt compressed data */
    for (size_t i = 20; i < gz_n - 8; i += 3) gz[i] ^= 0x5a;
    harness_write_bytes(in_work_dir("garbled.gz"), gz, gz_n);
    expect_idx_failure(in_work_dir("garbled.gz"), CNN_ERR_FORMAT, "is corrupt: its compressed stream");
    free(gz);
    /* wrong magic, unknown type, too much data, missing file, a directory */
    harness_write_bytes(in_work_dir("text"), "hello world, not idx", 20);
    expect_idx_failure(in_work_dir("text"), CNN_ERR_FORMAT, "is not an IDX file: it starts with 68 65 6c 6c");
    buf[2] = 0x07;
    harness_write_bytes(in_work_dir("type7"), buf, n);
    expect_idx_failure(in_work_dir("type7"), CNN_ERR_FORMAT, "00 00 07 03");
    buf[2] = 0x08;
    buf[n] = 42;
    harness_write_bytes(in_work_dir("long"), buf, n + 1);
    expect_idx_failure(in_work_dir("long"), CNN_ERR_FORMAT, "has more data than its header says");
    expect_idx_failure(in_work_dir("absent.gz"), CNN_ERR_IO, strerror(ENOENT));
    expect_idx_failure(work_dir, CNN_ERR_IO, "directory");
    /* a header promising a huge file is truncation, not a huge allocation */
    const uint32_t huge[3] = {4000000000u, 4000000000u, 4000000000u};
    harness_write_bytes(in_work_dir("huge"), buf, idx_bytes(buf, 0x08, 3, huge, images_3x2x2, 12));
    expect_idx_failure(in_work_dir("huge"), CNN_ERR_FORMAT, "impossible header: 4000000000x4000000000x");
    const uint32_t large[3] = {1000000, 100, 100};
    harness_write_bytes(in_work_dir("large"), buf, idx_bytes(buf, 0x08, 3, large, images_3x2x2, 12));
    expect_idx_failure(in_work_dir("large"), CNN_ERR_FORMAT,
                       "header says 1000000x100x100 but data ends after 0 images");
    remove_work_dir();
}

TEST(io_idx_loads_fashion_mnist_test_set_when_installed) {
    const char *images = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    const char *labels = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    if (access(images, R_OK) != 0 || access(labels, R_OK) != 0) {
        fprintf(stderr, "  note: dataset-fashion-mnist is not installed; skipped\n");
        return;
    }
    cnn_tensor *x = cnn_idx_load(images, 1);
    cnn_tensor *y = cnn_idx_load(labels, 0);
    REQUIRE(x && y);
    CHECK(cnn_ndim(x) == 4 && cnn_size(x, 0) == 10000 && cnn_size(x, 1) == 1 && cnn_size(x, 2) == 28 &&
          cnn_size(x, 3) == 28);
    CHECK(cnn_ndim(y) == 1 && cnn_size(y, 0) == 10000);
    const float *px = cnn_data(x), *py = cnn_data(y);
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < cnn_numel(x); i++) {
        lo = px[i] < lo ? px[i] : lo;
        hi = px[i] > hi ? px[i] : hi;
    }
    CHECK(lo == 0 && hi == 1);
    int counts[10] = {0};
    int bad = 0;
    for (int i = 0; i < 10000; i++) {
        if (py[i] >= 0 && py[i] <= 9 && py[i] == (int)py[i]) counts[(int)py[i]]++;
        else bad++;
    }
    CHECK(bad == 0);
    for (int c = 0; c < 10; c++) CHECK(counts[c] == 1000); /* the test split is balanced */
    cnn_release(x);
    cnn_release(y);
}
