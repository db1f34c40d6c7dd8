/* Lua bindings of the fused optimizer steps and of gradient clipping.
 *
 * The steps are internals used by scripts/cnn/optim.lua, which owns the per-parameter state:
 *   cnn._sgd_step(params, momentum_buffers|nil, options, first_step, ids?)
 *   cnn._adam_step(params, exp_avg, exp_avg_sq, max_exp_avg_sq|nil, step, options, ids?)
 *   cnn._rmsprop_step(params, square_avg, momentum_buffers|nil, grad_avg|nil, options, ids?)
 * params and the state lists are Lua arrays of tensors (a state entry may be nil for a parameter
 * without a gradient); options is a table such as a parameter group (lr, momentum, betas = {b1, b2},
 * ...); ids optionally gives each parameter's 1-based position in its optimizer, used to name it in
 * errors. The shape and layout checks are repeated here, before the runtime's own, so that messages
 * name parameters by those Lua positions.
 *
 * The public function:
 *   cnn.clip_grad_norm(params, max_norm, norm_type = 2, error_if_nonfinite = false) -> total norm
 * params is a tensor or an array of tensors; norm_type is a number, math.huge or "inf". */
#include <math.h>
#include <string.h>

#include "lcnn.h"

/* The tensors of the Lua array at arg, as a C array kept alive by a userdata pushed on the stack.
 * A nil entry (allowed when allow_nil) becomes NULL. The array's length is checked against want
 * unless want is negative; the length is returned in *n. */
static cnn_tensor **check_tensor_list(lua_State *L, int arg, const char *fname, const char *list_name,
                                      int want, bool allow_nil, int *n) {
    luaL_checktype(L, arg, LUA_TTABLE);
    lua_Integer len = luaL_len(L, arg);
    if (want >= 0 && len != want)
        luaL_error(L, "%s: %s has %d entries but there are %d parameters", fname, list_name, (int)len, want);
    if (len > 0x7fffffff / (lua_Integer)sizeof(cnn_tensor *))
        luaL_error(L, "%s: %s is too long", fname, list_name);
    cnn_tensor **list = lua_newuserdatauv(L, (size_t)(len > 0 ? len : 1) * sizeof *list, 0);
    for (lua_Integer i = 1; i <= len; i++) {
        lua_geti(L, arg, i);
        if (lua_isnil(L, -1) && allow_nil) {
            list[i - 1] = NULL;
        } else {
            if (!lcnn_is_tensor(L, -1))
                luaL_error(L, "%s: %s[%d] is a %s, not a tensor", fname, list_name, (int)i, luaL_typename(L, -1));
            // The array keeps the userdata alive for the duration of the call.
            list[i - 1] = lcnn_check(L, -1);
        }
        lua_pop(L, 1);
    }
    *n = (int)len;
    return list;
}

/* Each parameter's position for messages: ids[i] when given, else i + 1. */
static int *check_ids(lua_State *L, int arg, const char *fname, int n) {
    int *ids = lua_newuserdatauv(L, (size_t)(n > 0 ? n : 1) * sizeof *ids, 0);
    bool given = !lua_isnoneornil(L, arg);
    if (given) luaL_checktype(L, arg, LUA_TTABLE);
    for (int i = 0; i < n; i++) {
        ids[i] = i + 1;
        if (!given) continue;
        lua_geti(L, arg, i + 1);
        int ok;
        lua_Integer id = lua_tointegerx(L, -1, &ok);
        if (!ok) luaL_error(L, "%s: ids[%d] must be an integer", fname, i + 1);
        ids[i] = (int)id;
        lua_pop(L, 1);
    }
    return ids;
}

static bool same_shape(const cnn_tensor *a, const cnn_tensor *b) {
    if (cnn_ndim(a) != cnn_ndim(b)) return false;
    for (int d = 0; d < cnn_ndim(a); d++)
        if (cnn_size(a, d) != cnn_size(b, d)) return false;
    return true;
}

static void check_params(lua_State *L, const char *fname, int n, cnn_tensor **params, const int *ids) {
    char shape[64];
    for (int i = 0; i < n; i++)
        if (!cnn_is_contiguous(params[i]))
            luaL_error(L, "%s: parameter %d (shape %s) is not contiguous; optimizers update contiguous "
                       "tensors only",
                       fname, ids[i], cnn_shape_string(params[i], shape, sizeof shape));
}

/* Every parameter with a gradient needs a contiguous state tensor of its own shape. */
static void check_state(lua_State *L, const char *fname, const char *state_name, int n, cnn_tensor **params,
                        cnn_tensor **state, const int *ids) {
    char a[64], b[64];
    for (int i = 0; i < n; i++) {
        cnn_tensor *g = cnn_grad(params[i]);
        bool has_grad = g != NULL;
        cnn_release(g);
        if (!has_grad) continue;
        if (!state[i]) luaL_error(L, "%s: parameter %d has no %s", fname, ids[i], state_name);
        if (!same_shape(params[i], state[i]))
            luaL_error(L, "%s: %s of parameter %d has shape %s but the parameter has shape %s", fname,
                       state_name, ids[i], cnn_shape_string(state[i], a, sizeof a),
                       cnn_shape_string(params[i], b, sizeof b));
        if (!cnn_is_contiguous(state[i]))
            luaL_error(L, "%s: %s of parameter %d (shape %s) is not contiguous", fname, state_name, ids[i],
                       cnn_shape_string(state[i], a, sizeof a));
    }
}

static float number_field(lua_State *L, int t, const char *fname, const char *name, double def) {
    return (float)lcnn_opt_number_field(L, t, fname, name, def);
}

/* cnn._sgd_step(params, momentum_buffers|nil, options, first_step, ids?) */
static int l_sgd_step(lua_State *L) {
    lua_settop(L, 5); // the temporary arrays go above the arguments
    const char *fname = "sgd";
    int n, nb;
    cnn_tensor **params = check_tensor_list(L, 1, fname, "params", -1, false, &n);
    luaL_checktype(L, 3, LUA_TTABLE);
    cnn_sgd_options o = {
        .lr = number_field(L, 3, fname, "lr", 0.01),
        .momentum = number_field(L, 3, fname, "momentum", 0),
        .dampening = number_field(L, 3, fname, "dampening", 0),
        .weight_decay = number_field(L, 3, fname, "weight_decay", 0),
        .nesterov = lcnn_opt_bool_field(L, 3, fname, "nesterov", 0),
        .maximize = lcnn_opt_bool_field(L, 3, fname, "maximize", 0),
    };
    int first_step = lua_toboolean(L, 4);
    const int *ids = check_ids(L, 5, fname, n);
    cnn_tensor **buffers = NULL;
    check_params(L, fname, n, params, ids);
    if (o.momentum != 0 && !lua_isnoneornil(L, 2)) {
        buffers = check_tensor_list(L, 2, fname, "momentum_buffers", n, true, &nb);
        check_state(L, fname, "momentum_buffer", n, params, buffers, ids);
    } else if (o.momentum != 0 && n > 0) {
        luaL_error(L, "%s: momentum %g needs momentum buffers", fname, o.momentum);
    }
    lcnn_check_status(L, cnn_sgd_step(n, params, buffers, &o, first_step));
    return 0;
}

/* betas = {beta1, beta2} */
static void read_betas(lua_State *L, int t, const char *fname, float *beta1, float *beta2) {
    *beta1 = 0.9f;
    *beta2 = 0.999f;
    if (lua_getfield(L, t, "betas") != LUA_TNIL) {
        if (!lua_istable(L, -1)) luaL_error(L, "%s: betas must be a table {beta1, beta2}", fname);
        lua_geti(L, -1, 1);
        lua_geti(L, -2, 2);
        if (!lua_isnumber(L, -2) || !lua_isnumber(L, -1))
            luaL_error(L, "%s: betas must be a table of two numbers {beta1, beta2}", fname);
        *beta1 = (float)lua_tonumber(L, -2);
        *beta2 = (float)lua_tonumber(L, -1);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
}

/* cnn._adam_step(params, exp_avg, exp_avg_sq, max_exp_avg_sq|nil, step, options, ids?) */
static int l_adam_step(lua_State *L) {
    lua_settop(L, 7); // the temporary arrays go above the arguments
    const char *fname = "adam";
    int n, n1;
    cnn_tensor **params = check_tensor_list(L, 1, fname, "params", -1, false, &n);
    lua_Integer step = luaL_checkinteger(L, 5);
    luaL_checktype(L, 6, LUA_TTABLE);
    cnn_adam_options o = {
        .lr = number_field(L, 6, fname, "lr", 1e-3),
        .eps = number_field(L, 6, fname, "eps", 1e-8),
        .weight_decay = number_field(L, 6, fname, "weight_decay", 0),
        .decoupled_weight_decay = lcnn_opt_bool_field(L, 6, fname, "decoupled_weight_decay", 0),
        .amsgrad = lcnn_opt_bool_field(L, 6, fname, "amsgrad", 0),
        .maximize = lcnn_opt_bool_field(L, 6, fname, "maximize", 0),
    };
    read_betas(L, 6, fname, &o.beta1, &o.beta2);
    const int *ids = check_ids(L, 7, fname, n);
    check_params(L, fname, n, params, ids);
    cnn_tensor **exp_avg = check_tensor_list(L, 2, fname, "exp_avg", n, true, &n1);
    cnn_tensor **exp_avg_sq = check_tensor_list(L, 3, fname, "exp_avg_sq", n, true, &n1);
    check_state(L, fname, "exp_avg", n, params, exp_avg, ids);
    check_state(L, fname, "exp_avg_sq", n, params, exp_avg_sq, ids);
    cnn_tensor **max_exp_avg_sq = NULL;
    if (o.amsgrad) {
        if (lua_isnoneornil(L, 4) && n > 0) luaL_error(L, "%s: amsgrad needs max_exp_avg_sq", fname);
        if (n > 0) {
            max_exp_avg_sq = check_tensor_list(L, 4, fname, "max_exp_avg_sq", n, true, &n1);
            check_state(L, fname, "max_exp_avg_sq", n, params, max_exp_avg_sq, ids);
        }
    }
    lcnn_check_status(L, cnn_adam_step(n, params, exp_avg, exp_avg_sq, max_exp_avg_sq, (int64_t)step, &o));
    return 0;
}

/* cnn._rmsprop_step(params, square_avg, momentum_buffers|nil, grad_avg|nil, options, ids?) */
static int l_rmsprop_step(lua_State *L) {
    lua_settop(L, 6); // the temporary arrays go above the arguments
    const char *fname = "rmsprop";
    int n, n1;
    cnn_tensor **params = check_tensor_list(L, 1, fname, "params", -1, false, &n);
    luaL_checktype(L, 5, LUA_TTABLE);
    cnn_rmsprop_options o = {
        .lr = number_field(L, 5, fname, "lr", 1e-2),
        .alpha = number_field(L, 5, fname, "alpha", 0.99),
        .eps = number_field(L, 5, fname, "eps", 1e-8),
        .weight_decay = number_field(L, 5, fname, "weight_decay", 0),
        .momentum = number_field(L, 5, fname, "momentum", 0),
        .centered = lcnn_opt_bool_field(L, 5, fname, "centered", 0),
        .maximize = lcnn_opt_bool_field(L, 5, fname, "maximize", 0),
    };
    const int *ids = check_ids(L, 6, fname, n);
    check_params(L, fname, n, params, ids);
    cnn_tensor **square_avg = check_tensor_list(L, 2, fname, "square_avg", n, true, &n1);
    check_state(L, fname, "square_avg", n, params, square_avg, ids);
    cnn_tensor **buffers = NULL, **grad_avg = NULL;
    if (o.momentum > 0 && n > 0) {
        if (lua_isnoneornil(L, 3)) luaL_error(L, "%s: momentum %g needs momentum buffers", fname, o.momentum);
        buffers = check_tensor_list(L, 3, fname, "momentum_buffers", n, true, &n1);
        check_state(L, fname, "momentum_buffer", n, params, buffers, ids);
    }
    if (o.centered && n > 0) {
        if (lua_isnoneornil(L, 4)) luaL_error(L, "%s: centered needs grad_avg", fname);
        grad_avg = check_tensor_list(L, 4, fname, "grad_avg", n, true, &n1);
        check_state(L, fname, "grad_avg", n, params, grad_avg, ids);
    }
    lcnn_check_status(L, cnn_rmsprop_step(n, params, square_avg, buffers, grad_avg, &o));
    return 0;
}

/* cnn.clip_grad_norm(params, max_norm, norm_type = 2, error_if_nonfinite = false) -> total norm */
static int l_clip_grad_norm(lua_State *L) {
    lua_settop(L, 4); // the temporary arrays go above the arguments
    const char *fname = "clip_grad_norm";
    int n;
    cnn_tensor **params;
    if (lcnn_is_tensor(L, 1)) {
        params = lua_newuserdatauv(L, sizeof *params, 0);
        params[0] = lcnn_check(L, 1);
        n = 1;
    } else {
        if (!lua_istable(L, 1)) luaL_argerror(L, 1, "a tensor or an array of tensors expected");
        params = check_tensor_list(L, 1, fname, "params", -1, false, &n);
    }
    double max_norm = luaL_checknumber(L, 2);
    double norm_type = 2;
    if (lua_type(L, 3) == LUA_TSTRING) {
        const char *s = lua_tostring(L, 3);
        if (strcmp(s, "inf") != 0) luaL_argerror(L, 3, "norm_type must be a number or \"inf\"");
        norm_type = INFINITY;
    } else {
        norm_type = luaL_optnumber(L, 3, 2);
    }
    int error_if_nonfinite = lua_toboolean(L, 4);
    cnn_clear_error();
    double total = cnn_clip_grad_norm(n, params, max_norm, norm_type, error_if_nonfinite);
    if (isnan(total) && cnn_last_status() != CNN_OK) return lcnn_error(L);
    lua_pushnumber(L, total);
    return 1;
}

static const luaL_Reg optim_functions[] = {
    {"_sgd_step", l_sgd_step},
    {"_adam_step", l_adam_step},
    {"_rmsprop_step", l_rmsprop_step},
    {"clip_grad_norm", l_clip_grad_norm},
    {NULL, NULL},
};

void lcnn_open_optim(lua_State *L) { luaL_setfuncs(L, optim_functions, 0); }
