/* What the autograd graph keeps alive, measured with the tensor byte counter: a node lets go of its
 * output's gradient and its saved tensors as soon as its backward has run, and the graph itself holds
 * no activation that no backward needs. These bounds are what keeps a training step's peak memory
 * near the activations it must save. Also how the allocator's cache serves a request with a block
 * of another size.
 *
 * The probe op below is built on the runtime's internal node API (internal.h) so that a measurement
 * can be taken in the middle of a backward pass: it is the identity, and its backward records the
 * bytes in use when it runs. */
#include "cnn.h"
#include "harness.h"
#include "internal.h"

enum { CHAIN = 12 };
static const int64_t big_shape[1] = {1 << 20}; /* 4 MiB per tensor */
static const int64_t big_bytes = (int64_t)(1 << 20) * (int64_t)sizeof(float);

static int64_t in_use_at_probe;

static cnn_status probe_backward(cnn_node *node, cnn_tensor *grad_output, cnn_tensor **grad_inputs) {
    CNN_UNUSED(node);
    in_use_at_probe = cnn_memory_in_use();
    cnn_retain(grad_output);
    grad_inputs[0] = grad_output;
    return CNN_OK;
}

/* The identity as a recorded op: a view of x whose backward runs probe_backward. */
static cnn_tensor *probe(cnn_tensor *x) {
    cnn_tensor *out = cnn_detach(x);
    if (!out) return NULL;
    bool failed;
    cnn_record(out, "probe", probe_backward, 1, &x, &failed);
    if (failed) {
        cnn_release(out);
        return NULL;
    }
    return out;
}

/* The cache is emptied first so that every block of the test has exactly the size asked for (a cached
 * block up to twice as large may otherwise serve a request, and the counter sees the block). */
static cnn_tensor *big_leaf(float value) {
    cnn_empty_cache();
    cnn_tensor *x = cnn_full(1, big_shape, value);
    if (x) cnn_set_requires_grad(x, 1);
    return x;
}

/* h = op(op(...op(h)...)) CHAIN times; every intermediate is released as soon as it is consumed, as
 * a script's temporaries are. Takes over h. */
static cnn_tensor *chain(cnn_tensor *h, cnn_unary_op op) {
    for (int k = 0; k < CHAIN && h; k++) {
        cnn_tensor *next = cnn_unary(h, op);
        cnn_release(h);
        h = next;
    }
    return h;
}

TEST(backward_frees_each_gradient_and_saved_tensor_once_its_node_ran) {
    cnn_tensor *x = big_leaf(0.5f);
    REQUIRE(x);
    const int64_t before = cnn_memory_in_use();
    cnn_tensor *h = chain(probe(x), CNN_TANH); /* each tanh saves its 4 MiB output */
    REQUIRE(h);
    CHECK(cnn_memory_in_use() - before >= CHAIN * big_bytes);
    cnn_tensor *loss = cnn_sum(h, CNN_ALL_DIMS, 0);
    REQUIRE(loss);
    in_use_at_probe = -1;
    CHECK(cnn_backward(loss, NULL, 0) == CNN_OK);
    /* When the probe (the last node) runs, every tanh has run: what is left is h, which the test
     * holds, and the gradient flowing into the probe. Keeping the tanh nodes' gradients or saved
     * outputs until the end of the pass would hold 2 * CHAIN tensors here. */
    CHECK(in_use_at_probe >= 0);
    CHECK(in_use_at_probe - before <= 3 * big_bytes);
    cnn_tensor *g = cnn_grad(x);
    REQUIRE(g);
    float expected = 1.0f;
    float v = 0.5f;
    for (int k = 0; k < CHAIN; k++) { /* d tanh(v) = 1 - tanh(v)^2, along the chain */
        v = tanhf(v);
        expected *= 1.0f - v * v;
    }
    CHECK_NEAR(cnn_data(g)[0], expected, 1e-5 * fabs(expected) + 1e-12);
    CHECK_NEAR(cnn_data(g)[(1 << 20) - 1], expected, 1e-5 * fabs(expected) + 1e-12);
    cnn_release(g);
    cnn_release(loss);
    cnn_release(h);
    CHECK(cnn_memory_in_use() - before == big_bytes); /* x's gradient */
    cnn_release(x);
}

TEST(graph_holds_no_activation_that_backward_does_not_need) {
    cnn_tensor *x = big_leaf(2.0f);
    REQUIRE(x);
    const int64_t before = cnn_memory_in_use();
    /* neg saves nothing: its input's memory is free to go once the script lets go of it */
    cnn_tensor *h = chain(probe(x), CNN_NEG);
    REQUIRE(h);
    CHECK(cnn_memory_in_use() - before == big_bytes);
    /* relu keeps its output (its mask), not its input */
    cnn_tensor *r = cnn_unary(h, CNN_RELU);
    cnn_release(h);
    REQUIRE(r);
    CHECK(cnn_memory_in_use() - before == big_bytes);
    cnn_tensor *loss = cnn_sum(r, CNN_ALL_DIMS, 0);
    REQUIRE(loss);
    CHECK(cnn_backward(loss, NULL, 1) == CNN_OK); /* retained: a second pass is allowed */
    CHECK(cnn_backward(loss, NULL, 0) == CNN_OK);
    cnn_tensor *g = cnn_grad(x);
    REQUIRE(g);
    CHECK(cnn_data(g)[0] == 2.0f && cnn_data(g)[12345] == 2.0f); /* two passes of d relu(x) = 1 */
    cnn_release(g);
    CHECK(cnn_backward(loss, NULL, 0) == CNN_ERR_STATE); /* the graph was freed by the last pass */
    cnn_clear_error();
    cnn_release(loss);
    cnn_release(r);
    cnn_release(x);
    CHECK(cnn_memory_in_use() == before - big_bytes);
}

TEST(graph_outlives_released_intermediates_until_backward) {
    /* Two branches share the probe's output; the script keeps only the final sum. Every node must stay
     * alive through the stand-ins until its turn in backward. */
    cnn_tensor *x = big_leaf(1.0f);
    REQUIRE(x);
    cnn_tensor *p = probe(x);
    cnn_tensor *a = p ? cnn_unary(p, CNN_EXP) : NULL;
    cnn_tensor *b = p ? cnn_mul_scalar(p, 3.0f) : NULL;
    cnn_release(p);
    cnn_tensor *s = a && b ? cnn_add(a, b) : NULL;
    cnn_release(a);
    cnn_release(b);
    cnn_tensor *loss = s ? cnn_sum(s, CNN_ALL_DIMS, 0) : NULL;
    cnn_release(s);
    REQUIRE(loss);
    CHECK(cnn_backward(loss, NULL, 0) == CNN_OK);
    cnn_tensor *g = cnn_grad(x);
    REQUIRE(g);
    CHECK_NEAR(cnn_data(g)[7], expf(1.0f) + 3.0f, 1e-5);
    cnn_release(g);
    cnn_release(loss);
    cnn_release(x);
}

TEST(cached_block_serves_a_request_of_at_least_half_its_size) {
    cnn_empty_cache();
    const int64_t block_floats = 1 << 18, block = block_floats * (int64_t)sizeof(float); /* 1 MiB */
    cnn_tensor *t = cnn_empty(1, &block_floats);
    REQUIRE(t);
    cnn_release(t);
    CHECK(cnn_memory_cached() == block);
    const int64_t before = cnn_memory_in_use();
    const int64_t too_small = block_floats / 2 - 1024; /* the block would be more than twice the size */
    cnn_tensor *small = cnn_empty(1, &too_small);
    REQUIRE(small);
    CHECK(cnn_memory_cached() == block);
    const int64_t three_quarters = block_floats / 4 * 3;
    cnn_tensor *fits = cnn_empty(1, &three_quarters);
    REQUIRE(fits);
    CHECK(cnn_memory_cached() == 0);
    CHECK(cnn_memory_in_use() - before == (int64_t)(too_small * sizeof(float)) + block); /* whole block */
    cnn_release(fits);
    cnn_release(small);
    CHECK(cnn_memory_in_use() == before);
    cnn_empty_cache();
}
