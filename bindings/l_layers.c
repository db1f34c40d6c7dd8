/* l_layers.c - Lua bindings of softmax, batch norm, dropout and the losses.
 *
 * Class labels arrive 1-based from Lua (1..C, and ignore_index in the same terms) and are shifted to
 * the runtime's 0-based classes here; they are checked first so that a bad label is reported as the
 * user wrote it. */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "lcnn.h"

/* Index i as an options table: an absent/nil argument becomes an empty table. */
static int check_options(lua_State *L, int i) {
    if (lua_isnoneornil(L, i)) {
        lua_settop(L, i);
        lua_newtable(L);
        lua_replace(L, i);
    } else {
        luaL_checktype(L, i, LUA_TTABLE);
    }
    return i;
}

static cnn_reduction opt_reduction(lua_State *L, int t, const char *fname) {
    const char *r = lcnn_opt_string_field(L, t, fname, "reduction", "mean");
    if (strcmp(r, "mean") == 0) return CNN_REDUCE_MEAN;
    if (strcmp(r, "sum") == 0) return CNN_REDUCE_SUM;
    if (strcmp(r, "none") == 0) return CNN_REDUCE_NONE;
    luaL_error(L, "%s: reduction must be \"mean\", \"sum\" or \"none\", got \"%s\"", fname, r);
    return CNN_REDUCE_MEAN;
}

/* ---- softmax ------------------------------------------------------------------------------------ */

/* The dim argument at 2, 1-based, defaulting to the last dim; a 0-d tensor counts as 1-d. */
static int softmax_dim(lua_State *L, cnn_tensor *x) {
    int ndim = cnn_ndim(x) > 0 ? cnn_ndim(x) : 1;
    return lcnn_optdim(L, 2, ndim, ndim - 1);
}

static int l_softmax(lua_State *L) {
    cnn_tensor *x = lcnn_check(L, 1);
    return lcnn_push(L, cnn_softmax(x, softmax_dim(L, x)));
}

static int l_log_softmax(lua_State *L) {
    cnn_tensor *x = lcnn_check(L, 1);
    return lcnn_push(L, cnn_log_softmax(x, softmax_dim(L, x)));
}

/* ---- batch norm and dropout --------------------------------------------------------------------- */

/* cnn.batch_norm(input, running_mean, running_var, weight?, bias?, options?): the options table may
 * also come right after the last tensor given, e.g. batch_norm(x, rm, rv, {training=true}). */
static int l_batch_norm(lua_State *L) {
    const char *fname = "batch_norm";
    cnn_tensor *input = lcnn_check(L, 1);
    cnn_tensor *running_mean = lcnn_opt(L, 2), *running_var = lcnn_opt(L, 3);
    int opts = 6;
    if (lua_istable(L, 4)) opts = 4;
    else if (lua_istable(L, 5)) opts = 5;
    cnn_tensor *weight = opts > 4 ? lcnn_opt(L, 4) : NULL;
    cnn_tensor *bias = opts > 5 ? lcnn_opt(L, 5) : NULL;
    int t = check_options(L, opts);
    int training = lcnn_opt_bool_field(L, t, fname, "training", 0);
    double momentum = lcnn_opt_number_field(L, t, fname, "momentum", 0.1);
    double eps = lcnn_opt_number_field(L, t, fname, "eps", 1e-5);
    return lcnn_push(L, cnn_batch_norm(input, running_mean, running_var, weight, bias, training,
                                       (float)momentum, (float)eps));
}

/* cnn.dropout(input, p = 0.5, training = true, channelwise = false) */
static int l_dropout(lua_State *L) {
    cnn_tensor *input = lcnn_check(L, 1);
    double p = luaL_optnumber(L, 2, 0.5);
    int training = lua_isnoneornil(L, 3) ? 1 : lua_toboolean(L, 3);
    int channelwise = lua_toboolean(L, 4);
    return lcnn_push(L, cnn_dropout(input, (float)p, training, channelwise));
}

/* ---- classification losses ---------------------------------------------------------------------- */

/* A 0-based copy of the 1-based labels at index arg, after checking that each is an integer in
 * 1..C or the (1-based) ignore_index. The copy is a new runtime tensor owned by the caller. */
static cnn_tensor *zero_based_labels(lua_State *L, const char *fname, cnn_tensor *scores,
                                     cnn_tensor *labels, int has_ignore, lua_Integer ignore) {
    int64_t classes = cnn_ndim(scores) == 1 ? cnn_size(scores, 0)
                      : cnn_ndim(scores) >= 2 ? cnn_size(scores, 1) : 0;
    int64_t n = cnn_numel(labels);
    float *values = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof(float), 0);
    lcnn_check_status(L, cnn_read(labels, values));
    char shape[64], msg[256];
    for (int64_t i = 0; i < n; i++) {
        float v = values[i];
        if (has_ignore && v == (float)ignore) {
            values[i] = (float)(ignore - 1);
            continue;
        }
        /* luaL_error knows no %g or %lld: the message is formatted here */
        if (v != floorf(v)) {
            snprintf(msg, sizeof msg, "%s: label %g at element %lld is not an integer class label 1..%lld",
                     fname, (double)v, (long long)i + 1, (long long)classes);
            luaL_error(L, "%s", msg);
        }
        if (classes > 0 && (v < 1.0f || v > (float)classes)) {
            snprintf(msg, sizeof msg, "%s: label %g at element %lld is out of range 1..%lld (scores %s)",
                     fname, (double)v, (long long)i + 1, (long long)classes,
                     cnn_shape_string(scores, shape, sizeof shape));
            luaL_error(L, "%s", msg);
        }
        values[i] = v - 1.0f;
    }
    int64_t dims[CNN_MAX_DIMS];
    int ndim = cnn_ndim(labels);
    for (int d = 0; d < ndim; d++) dims[d] = cnn_size(labels, d);
    cnn_tensor *shifted = cnn_from_data(ndim, dims, values);
    lua_pop(L, 1);
    if (!shifted) lcnn_error(L);
    return shifted;
}

static int class_loss(lua_State *L, const char *fname, bool smoothing) {
    cnn_tensor *scores = lcnn_check(L, 1);
    cnn_tensor *labels = lcnn_check(L, 2);
    int t = check_options(L, 3);
    cnn_class_loss_options o = cnn_class_loss_defaults();
    o.reduction = opt_reduction(L, t, fname);
    o.class_weight = lcnn_opt_tensor_field(L, t, fname, "weight");
    if (smoothing)
        o.label_smoothing = (float)lcnn_opt_number_field(L, t, fname, "label_smoothing", 0.0);
    lua_getfield(L, t, "ignore_index");
    int has_ignore = !lua_isnil(L, -1);
    lua_pop(L, 1);
    lua_Integer ignore = has_ignore ? lcnn_opt_int_field(L, t, fname, "ignore_index", 0) : 0;
    if (has_ignore) o.ignore_index = (int32_t)(ignore - 1);
    cnn_tensor *targets = zero_based_labels(L, fname, scores, labels, has_ignore, ignore);
    cnn_tensor *loss = smoothing ? cnn_cross_entropy(scores, targets, &o)
                                 : cnn_nll_loss(scores, targets, &o);
    cnn_release(targets);
    return lcnn_push(L, loss);
}

/* cnn.cross_entropy(logits, labels, {label_smoothing=0, ignore_index=nil, weight=nil, reduction="mean"}) */
static int l_cross_entropy(lua_State *L) { return class_loss(L, "cross_entropy", true); }

/* cnn.nll_loss(log_probs, labels, {ignore_index=nil, weight=nil, reduction="mean"}) */
static int l_nll_loss(lua_State *L) { return class_loss(L, "nll_loss", false); }

/* ---- regression and binary losses --------------------------------------------------------------- */

typedef cnn_tensor *(*distance_loss_fn)(cnn_tensor *, cnn_tensor *, cnn_reduction);

/* fname(input, target, {reduction="mean"}) */
static int distance_loss(lua_State *L, const char *fname, distance_loss_fn loss) {
    cnn_tensor *input = lcnn_check(L, 1), *target = lcnn_check(L, 2);
    cnn_reduction r = opt_reduction(L, check_options(L, 3), fname);
    return lcnn_push(L, loss(input, target, r));
}

static int l_mse_loss(lua_State *L) { return distance_loss(L, "mse_loss", cnn_mse_loss); }

static int l_l1_loss(lua_State *L) { return distance_loss(L, "l1_loss", cnn_l1_loss); }

/* cnn.bce_loss(probs, target, {weight=nil, reduction="mean"}) and
 * cnn.bce_with_logits(logits, target, {weight=nil, pos_weight=nil, reduction="mean"}) */
static int binary_loss(lua_State *L, const char *fname, bool from_logits) {
    cnn_tensor *input = lcnn_check(L, 1), *target = lcnn_check(L, 2);
    int t = check_options(L, 3);
    cnn_reduction r = opt_reduction(L, t, fname);
    cnn_tensor *weight = lcnn_opt_tensor_field(L, t, fname, "weight");
    if (!from_logits) return lcnn_push(L, cnn_bce_loss(input, target, weight, r));
    cnn_tensor *pos_weight = lcnn_opt_tensor_field(L, t, fname, "pos_weight");
    return lcnn_push(L, cnn_bce_with_logits(input, target, weight, pos_weight, r));
}

static int l_bce_loss(lua_State *L) { return binary_loss(L, "bce_loss", false); }

static int l_bce_with_logits(lua_State *L) { return binary_loss(L, "bce_with_logits", true); }

static const luaL_Reg layer_functions[] = {
    {"softmax", l_softmax},
    {"log_softmax", l_log_softmax},
    {"batch_norm", l_batch_norm},
    {"dropout", l_dropout},
    {"cross_entropy", l_cross_entropy},
    {"nll_loss", l_nll_loss},
    {"mse_loss", l_mse_loss},
    {"l1_loss", l_l1_loss},
    {"bce_loss", l_bce_loss},
    {"bce_with_logits", l_bce_with_logits},
    {NULL, NULL},
};

static const luaL_Reg layer_methods[] = {
    {"softmax", l_softmax},
    {"log_softmax", l_log_softmax},
    {NULL, NULL},
};

void lcnn_open_layers(lua_State *L) {
    luaL_setfuncs(L, layer_functions, 0);
    lcnn_add_methods(L, layer_methods);
}
