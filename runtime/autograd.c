/* Reverse-mode autograd: recording nodes, and the backward pass over them.
 *
 * Every non-leaf tensor that needs a gradient owns exactly one node (its grad_fn). A node holds the
 * nodes of its computed inputs (through data-less stand-ins, see internal.h) and its leaf inputs, so
 * the graph lives exactly as long as the tensors computed from it, while an activation lives only as
 * long as someone holds it or a node saved it for backward. The backward pass orders the nodes
 * reachable from the root topologically (by an iterative depth-first search), then walks them from
 * the root, handing each node the gradient accumulated for its output and routing the input
 * gradients either to the input's own node or, for leaves, into leaf->grad. */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

static _Thread_local int grad_disabled; /* 0 means grad mode on, the default */

void cnn_set_grad_enabled(int enabled) { grad_disabled = !enabled; }
int cnn_is_grad_enabled(void) { return !grad_disabled; }

int cnn_requires_grad(const cnn_tensor *t) { return t->requires_grad; }
int cnn_is_leaf(const cnn_tensor *t) { return t->grad_fn == NULL; }
const char *cnn_grad_fn_name(const cnn_tensor *t) { return t->grad_fn ? t->grad_fn->name : NULL; }

cnn_status cnn_set_requires_grad(cnn_tensor *t, int requires_grad) {
    if (t->grad_fn)
        return cnn_fail(CNN_ERR_STATE,
                        "requires_grad: only leaf tensors can be marked; this %s tensor was computed by "
                        "'%s' (use detach() first)", cnn_shape_str(t), t->grad_fn->name);
    t->requires_grad = requires_grad != 0;
    return CNN_OK;
}

cnn_tensor *cnn_grad(cnn_tensor *t) {
    if (t->grad) cnn_retain(t->grad);
    return t->grad;
}

cnn_status cnn_set_grad(cnn_tensor *t, cnn_tensor *grad) {
    if (grad && !cnn_same_shape(t, grad))
        return cnn_fail(CNN_ERR_SHAPE, "grad: gradient of shape %s does not match tensor of shape %s",
                        cnn_shape_str(grad), cnn_shape_str(t));
    if (grad) cnn_retain(grad);
    cnn_release(t->grad);
    t->grad = grad;
    return CNN_OK;
}

cnn_tensor *cnn_detach(cnn_tensor *t) {
    return cnn_make_view(t, t->ndim, t->shape, t->stride, t->offset);
}

/* ---- recording -------------------------------------------------------------------------------- */
cnn_node *cnn_record(cnn_tensor *out, const char *name, cnn_backward_fn backward, int n_inputs,
                     cnn_tensor *const *inputs, bool *failed) {
    *failed = false;
    if (grad_disabled) return NULL;
    bool any = false;
    for (int i = 0; i < n_inputs; i++)
        if (inputs[i] && inputs[i]->requires_grad) any = true;
    if (!any) return NULL;
    cnn_node *node = calloc(1, sizeof *node);
    if (!node) {
        *failed = true;
        cnn_fail(CNN_ERR_MEMORY, "%s: out of memory recording the autograd graph", name);
        return NULL;
    }
    node->name = name;
    node->backward = backward;
    node->n_inputs = n_inputs;
    atomic_init(&node->refcount, 1);
    for (int i = 0; i < n_inputs; i++) {
        cnn_tensor *in = inputs[i];
        if (!in || !in->requires_grad) continue;
        if (in->grad_fn) {
            node->inputs[i] = cnn_shape_only(in);
            if (!node->inputs[i]) {
                *failed = true;
                cnn_node_release(node);
                return NULL;
            }
        } else {
            node->inputs[i] = in;
            cnn_retain(in);
        }
        node->needs_grad[i] = true;
    }
    out->grad_fn = node;
    out->requires_grad = true;
    return node;
}

bool cnn_node_save(cnn_node *node, cnn_tensor *t) {
    if (node->n_saved >= CNN_NODE_MAX_SAVED) {
        cnn_fail(CNN_ERR_STATE, "%s: too many saved tensors", node->name);
        return false;
    }
    cnn_tensor *alias = cnn_detach(t);
    if (!alias) return false;
    node->saved[node->n_saved++] = alias;
    return true;
}

/* Drops what only backward needs; the node's name stays for error messages. */
static void node_release_state(cnn_node *node) {
    for (int i = 0; i < node->n_inputs; i++) {
        cnn_release(node->inputs[i]);
        node->inputs[i] = NULL;
    }
    for (int i = 0; i < node->n_saved; i++) {
        cnn_release(node->saved[i]);
        node->saved[i] = NULL;
    }
    node->n_saved = 0;
    if (node->ctx) {
        if (node->free_ctx) node->free_ctx(node->ctx);
        else free(node->ctx);
        node->ctx = NULL;
    }
    node->released = true;
}

void cnn_node_release(cnn_node *node) {
    if (!node || atomic_fetch_sub(&node->refcount, 1) != 1) return;
    node_release_state(node);
    cnn_release(node->grad_accum);
    free(node);
}

/* ---- backward ---------------------------------------------------------------------------------
 * Memory during backward is what a training step's peak is made of, so everything a node holds is let
 * go as soon as the node has run: the gradient accumulated for its output, and (unless the graph is
 * retained) its inputs and saved tensors. The engine holds a reference to every node of the pass, so
 * that releasing one node's inputs cannot free a node that has yet to run; a node is not touched
 * again once the engine has dropped it. */
typedef struct node_list {
    cnn_node **items;
    size_t len, cap;
} node_list;

static bool list_push(node_list *l, cnn_node *n) {
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        cnn_node **items = realloc(l->items, cap * sizeof *items);
        if (!items) return false;
        l->items = items;
        l->cap = cap;
    }
    l->items[l->len++] = n;
    return true;
}

/* Post-order DFS from root: the returned list has inputs before consumers, so walking it backwards
 * visits consumers first. The `order` field marks visits: 0 unvisited, -1 on the stack, >0 done.
 * Every node of the result is retained once. */
static cnn_status topo_sort(cnn_node *root, node_list *order) {
    node_list stack = {0};
    int64_t next = 1;
    cnn_status st = CNN_OK;
    if (!list_push(&stack, root)) st = CNN_ERR_MEMORY;
    root->order = -1;
    while (st == CNN_OK && stack.len > 0) {
        cnn_node *n = stack.items[stack.len - 1];
        bool pushed = false;
        for (int i = 0; i < n->n_inputs; i++) {
            cnn_tensor *in = n->inputs[i];
            if (!in || !in->grad_fn || in->grad_fn->order != 0) continue;
            in->grad_fn->order = -1;
            if (!list_push(&stack, in->grad_fn)) {
                in->grad_fn->order = 0;
                st = CNN_ERR_MEMORY;
                break;
            }
            pushed = true;
            break;
        }
        if (st != CNN_OK) break;
        if (!pushed) {
            if (!list_push(order, n)) {
                st = CNN_ERR_MEMORY;
                break;
            }
            stack.len--;
            n->order = next++;
            atomic_fetch_add(&n->refcount, 1);
        }
    }
    for (size_t k = 0; k < stack.len; k++) stack.items[k]->order = 0; /* left by a failure */
    if (stack.len == 0 && st != CNN_OK) root->order = 0;
    free(stack.items);
    if (st != CNN_OK) return cnn_fail(CNN_ERR_MEMORY, "backward: out of memory sorting the graph");
    return CNN_OK;
}

/* acc += *gp. When acc is still empty the gradient itself becomes the accumulator if nothing else
 * can see it (the only reference to a tensor that owns its whole contiguous storage); otherwise it is
 * copied, since adding into it later would change a tensor someone else holds. A moved gradient
 * leaves *gp NULL. */
static bool exclusively_owned(const cnn_tensor *g) {
    return atomic_load(&g->refcount) == 1 && atomic_load(&g->storage->refcount) == 1 && g->offset == 0 &&
           cnn_is_contiguous(g) && cnn_numel(g) == g->storage->numel && !g->grad_fn;
}

static cnn_status accumulate(cnn_tensor **acc, cnn_tensor **gp, const cnn_tensor *like,
                             const char *from) {
    cnn_tensor *g = *gp;
    if (!cnn_same_shape(g, like))
        return cnn_fail(CNN_ERR_SHAPE,
                        "backward: op '%s' produced a gradient of shape %s for an input of shape %s",
                        from, cnn_shape_str(g), cnn_shape_str(like));
    if (*acc) return cnn_add_(*acc, g, 1.0f);
    if (exclusively_owned(g)) {
        *acc = g;
        *gp = NULL;
        return CNN_OK;
    }
    *acc = cnn_clone(g);
    return *acc ? CNN_OK : cnn_last_status();
}

static cnn_status run_node(cnn_node *n) {
    if (n->released)
        return cnn_fail(CNN_ERR_STATE,
                        "backward: trying to go through the graph a second time (op '%s'); its saved "
                        "tensors were freed. Call backward with retain_graph=true the first time.",
                        n->name);
    cnn_tensor *grads[CNN_NODE_MAX_INPUTS] = {0};
    cnn_status st = n->backward(n, n->grad_accum, grads);
    /* The output's gradient is consumed: it goes before the inputs' gradients are accumulated. */
    cnn_release(n->grad_accum);
    n->grad_accum = NULL;
    for (int i = 0; i < n->n_inputs && st == CNN_OK; i++) {
        cnn_tensor *in = n->inputs[i];
        if (!in || !n->needs_grad[i] || !grads[i]) continue;
        if (in->grad_fn) st = accumulate(&in->grad_fn->grad_accum, &grads[i], in, n->name);
        else if (in->requires_grad) st = accumulate(&in->grad, &grads[i], in, n->name);
        cnn_release(grads[i]);
        grads[i] = NULL;
    }
    for (int i = 0; i < n->n_inputs; i++) cnn_release(grads[i]);
    return st;
}

/* Ends a node's part in one backward pass; the node may be freed by the last line. */
static void finish_node(cnn_node *n, bool release_state) {
    cnn_release(n->grad_accum);
    n->grad_accum = NULL;
    n->order = 0;
    if (release_state) node_release_state(n);
    cnn_node_release(n);
}

cnn_status cnn_backward(cnn_tensor *root, cnn_tensor *grad, int retain_graph) {
    if (!root->requires_grad)
        return cnn_fail(CNN_ERR_STATE,
                        "backward: the %s tensor does not require grad (no parameter it depends on has "
                        "requires_grad set, or it was computed under no_grad)", cnn_shape_str(root));
    cnn_tensor *seed;
    if (grad) {
        if (!cnn_same_shape(grad, root))
            return cnn_fail(CNN_ERR_SHAPE, "backward: gradient of shape %s does not match output %s",
                            cnn_shape_str(grad), cnn_shape_str(root));
        seed = cnn_clone(grad);
    } else {
        if (cnn_numel(root) != 1)
            return cnn_fail(CNN_ERR_SHAPE,
                            "backward: output has shape %s; a gradient must be given unless the output "
                            "has one element (e.g. call sum() or mean() first)", cnn_shape_str(root));
        seed = cnn_ones(root->ndim, root->shape);
    }
    if (!seed) return cnn_last_status();

    int was_enabled = cnn_is_grad_enabled();
    cnn_set_grad_enabled(0);
    cnn_status st = CNN_OK;
    if (!root->grad_fn) { /* backward on a leaf: d root / d root */
        st = accumulate(&root->grad, &seed, root, "leaf");
        cnn_release(seed);
        cnn_set_grad_enabled(was_enabled);
        return st;
    }

    node_list order = {0};
    st = topo_sort(root->grad_fn, &order);
    if (st == CNN_OK) {
        cnn_release(root->grad_fn->grad_accum);
        root->grad_fn->grad_accum = seed;
    } else {
        cnn_release(seed);
    }
    for (size_t k = order.len; k-- > 0;) {
        cnn_node *n = order.items[k];
        if (st == CNN_OK && cnn_interrupted()) st = cnn_fail(CNN_ERR_INTERRUPTED, "backward: interrupted");
        /* a node no gradient reached has nothing to propagate */
        if (st == CNN_OK && n->grad_accum) st = run_node(n);
        finish_node(n, !retain_graph && st == CNN_OK);
    }
    free(order.items);
    cnn_set_grad_enabled(was_enabled);
    return st;
}

cnn_tensor *cnn_reduce_grad_to(cnn_tensor *grad, const cnn_tensor *like) {
    if (cnn_same_shape(grad, like)) {
        cnn_retain(grad);
        return grad;
    }
    return cnn_sum_to(grad, like->ndim, like->shape);
}
