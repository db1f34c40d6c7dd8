/* Arithmetic in Lua: operators with numbers on either side, unary math, comparisons, reductions
 * (1-based dims; index results are 1-based), matmul and linear. */
#include <math.h>

#include "lcnn.h"

/* ---- binary operators: a number on either side uses the scalar form --------------------------- */
typedef cnn_tensor *(*tensor_op)(cnn_tensor *, cnn_tensor *);

static int binary(lua_State *L, tensor_op op, const char *name) {
    int na = lua_type(L, 1) == LUA_TNUMBER, nb = lua_type(L, 2) == LUA_TNUMBER;
    if (na && nb) return luaL_error(L, "%s: one operand must be a tensor", name);
    if (!na && !lcnn_is_tensor(L, 1))
        return luaL_error(L, "%s: cannot combine a %s with a tensor", name, luaL_typename(L, 1));
    if (!nb && !lcnn_is_tensor(L, 2))
        return luaL_error(L, "%s: cannot combine a tensor with a %s", name, luaL_typename(L, 2));
    cnn_tensor *a = lcnn_check_or_number(L, 1), *b = lcnn_check_or_number(L, 2);
    return lcnn_push(L, op(a, b));
}

static int m_add(lua_State *L) {
    if (lua_type(L, 2) == LUA_TNUMBER && lcnn_is_tensor(L, 1))
        return lcnn_push(L, cnn_add_scalar(lcnn_check(L, 1), (float)lua_tonumber(L, 2)));
    if (lua_type(L, 1) == LUA_TNUMBER && lcnn_is_tensor(L, 2))
        return lcnn_push(L, cnn_add_scalar(lcnn_check(L, 2), (float)lua_tonumber(L, 1)));
    return binary(L, cnn_add, "add");
}

static int m_sub(lua_State *L) {
    if (lua_type(L, 2) == LUA_TNUMBER && lcnn_is_tensor(L, 1))
        return lcnn_push(L, cnn_add_scalar(lcnn_check(L, 1), -(float)lua_tonumber(L, 2)));
    if (lua_type(L, 1) == LUA_TNUMBER && lcnn_is_tensor(L, 2))
        return lcnn_push(L, cnn_rsub_scalar((float)lua_tonumber(L, 1), lcnn_check(L, 2)));
    return binary(L, cnn_sub, "sub");
}

static int m_mul(lua_State *L) {
    if (lua_type(L, 2) == LUA_TNUMBER && lcnn_is_tensor(L, 1))
        return lcnn_push(L, cnn_mul_scalar(lcnn_check(L, 1), (float)lua_tonumber(L, 2)));
    if (lua_type(L, 1) == LUA_TNUMBER && lcnn_is_tensor(L, 2))
        return lcnn_push(L, cnn_mul_scalar(lcnn_check(L, 2), (float)lua_tonumber(L, 1)));
    return binary(L, cnn_mul, "mul");
}

static int m_div(lua_State *L) {
    if (lua_type(L, 2) == LUA_TNUMBER && lcnn_is_tensor(L, 1))
        return lcnn_push(L, cnn_mul_scalar(lcnn_check(L, 1), 1.0f / (float)lua_tonumber(L, 2)));
    if (lua_type(L, 1) == LUA_TNUMBER && lcnn_is_tensor(L, 2))
        return lcnn_push(L, cnn_rdiv_scalar((float)lua_tonumber(L, 1), lcnn_check(L, 2)));
    return binary(L, cnn_div, "div");
}

static int m_pow(lua_State *L) {
    if (lua_type(L, 2) == LUA_TNUMBER && lcnn_is_tensor(L, 1)) {
        float e = (float)lua_tonumber(L, 2);
        cnn_tensor *a = lcnn_check(L, 1);
        return lcnn_push(L, e == 2.0f ? cnn_unary(a, CNN_SQUARE) : cnn_pow_scalar(a, e));
    }
    if (lua_type(L, 1) == LUA_TNUMBER && lcnn_is_tensor(L, 2))
        return lcnn_push(L, cnn_rpow_scalar((float)lua_tonumber(L, 1), lcnn_check(L, 2)));
    return binary(L, cnn_pow, "pow");
}

static int m_unm(lua_State *L) { return lcnn_push(L, cnn_unary(lcnn_check(L, 1), CNN_NEG)); }
static int m_maximum(lua_State *L) { return binary(L, cnn_maximum, "maximum"); }
static int m_minimum(lua_State *L) { return binary(L, cnn_minimum, "minimum"); }

/* ---- unary ------------------------------------------------------------------------------------ */
#define UNARY(fname, OP) \
    static int fname(lua_State *L) { return lcnn_push(L, cnn_unary(lcnn_check(L, 1), OP)); }
UNARY(m_exp, CNN_EXP)
UNARY(m_log, CNN_LOG)
UNARY(m_sqrt, CNN_SQRT)
UNARY(m_abs, CNN_ABS)
UNARY(m_relu, CNN_RELU)
UNARY(m_sigmoid, CNN_SIGMOID)
UNARY(m_tanh, CNN_TANH)
UNARY(m_sin, CNN_SIN)
UNARY(m_cos, CNN_COS)
UNARY(m_square, CNN_SQUARE)
UNARY(m_rsqrt, CNN_RSQRT)
UNARY(m_sign, CNN_SIGN)
UNARY(m_softplus, CNN_SOFTPLUS)
UNARY(m_silu, CNN_SILU)
UNARY(m_gelu, CNN_GELU)
UNARY(m_floor, CNN_FLOOR)
UNARY(m_ceil, CNN_CEIL)
UNARY(m_round, CNN_ROUND)
UNARY(m_reciprocal, CNN_RECIPROCAL)
UNARY(m_log1p, CNN_LOG1P)
UNARY(m_expm1, CNN_EXPM1)
UNARY(m_neg, CNN_NEG)

static int m_leaky_relu(lua_State *L) {
    return lcnn_push(L, cnn_leaky_relu(lcnn_check(L, 1), (float)luaL_optnumber(L, 2, 0.01)));
}

static int m_elu(lua_State *L) {
    return lcnn_push(L, cnn_elu(lcnn_check(L, 1), (float)luaL_optnumber(L, 2, 1.0)));
}

static int m_clamp(lua_State *L) {
    float lo = lua_isnoneornil(L, 2) ? -INFINITY : (float)luaL_checknumber(L, 2);
    float hi = lua_isnoneornil(L, 3) ? INFINITY : (float)luaL_checknumber(L, 3);
    return lcnn_push(L, cnn_clamp(lcnn_check(L, 1), lo, hi));
}

/* ---- comparisons (1/0 tensors) and where ------------------------------------------------------ */
static int compare(lua_State *L, cnn_compare_op op) {
    cnn_tensor *a = lcnn_check(L, 1), *b = lcnn_check_or_number(L, 2);
    return lcnn_push(L, cnn_compare(a, b, op));
}
static int m_eq(lua_State *L) { return compare(L, CNN_EQ); }
static int m_ne(lua_State *L) { return compare(L, CNN_NE); }
static int m_lt(lua_State *L) { return compare(L, CNN_LT); }
static int m_le(lua_State *L) { return compare(L, CNN_LE); }
static int m_gt(lua_State *L) { return compare(L, CNN_GT); }
static int m_ge(lua_State *L) { return compare(L, CNN_GE); }

static int l_where(lua_State *L) {
    cnn_tensor *c = lcnn_check(L, 1), *a = lcnn_check_or_number(L, 2), *b = lcnn_check_or_number(L, 3);
    return lcnn_push(L, cnn_where(c, a, b));
}

/* ---- reductions ------------------------------------------------------------------------------- */
static int dim_arg(lua_State *L, int i, cnn_tensor *t) {
    return lua_isnoneornil(L, i) ? CNN_ALL_DIMS : lcnn_checkdim(L, i, cnn_ndim(t));
}

static int m_sum(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    return lcnn_push(L, cnn_sum(t, dim_arg(L, 2, t), lua_toboolean(L, 3)));
}

static int m_mean(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    return lcnn_push(L, cnn_mean(t, dim_arg(L, 2, t), lua_toboolean(L, 3)));
}

/* x:std(dim?, keepdim?, unbiased=true) */
static int spread(lua_State *L, bool is_std) {
    cnn_tensor *t = lcnn_check(L, 1);
    int correction = lua_isnoneornil(L, 4) || lua_toboolean(L, 4) ? 1 : 0;
    int dim = dim_arg(L, 2, t), keep = lua_toboolean(L, 3);
    return lcnn_push(L, is_std ? cnn_std(t, dim, keep, correction) : cnn_var(t, dim, keep, correction));
}
static int m_std(lua_State *L) { return spread(L, true); }
static int m_var(lua_State *L) { return spread(L, false); }

/* Shifts 0-based index values to Lua's 1-based ones. */
static int push_indices(lua_State *L, cnn_tensor *idx) {
    if (!idx) return lcnn_error(L);
    cnn_tensor *one_based = cnn_add_scalar(idx, 1.0f);
    cnn_release(idx);
    return lcnn_push(L, one_based);
}

/* x:max() -> 0-d tensor; x:max(dim, keepdim?) -> values, 1-based indices */
static int extreme(lua_State *L, bool is_max) {
    cnn_tensor *t = lcnn_check(L, 1);
    if (lua_isnoneornil(L, 2))
        return lcnn_push(L, is_max ? cnn_max(t, CNN_ALL_DIMS, 0, NULL) : cnn_min(t, CNN_ALL_DIMS, 0, NULL));
    int d = lcnn_checkdim(L, 2, cnn_ndim(t));
    cnn_tensor *idx = NULL;
    cnn_tensor *v = is_max ? cnn_max(t, d, lua_toboolean(L, 3), &idx) : cnn_min(t, d, lua_toboolean(L, 3), &idx);
    lcnn_push(L, v);
    push_indices(L, idx);
    return 2;
}
static int m_max(lua_State *L) { return extreme(L, true); }
static int m_min(lua_State *L) { return extreme(L, false); }

static int m_argmax(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    return push_indices(L, cnn_argmax(t, dim_arg(L, 2, t), lua_toboolean(L, 3)));
}

static int m_argmin(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    return push_indices(L, cnn_argmin(t, dim_arg(L, 2, t), lua_toboolean(L, 3)));
}

/* ---- products --------------------------------------------------------------------------------- */
static int m_matmul(lua_State *L) { return lcnn_push(L, cnn_matmul(lcnn_check(L, 1), lcnn_check(L, 2))); }

static int l_linear(lua_State *L) {
    return lcnn_push(L, cnn_linear(lcnn_check(L, 1), lcnn_check(L, 2), lcnn_opt(L, 3)));
}

static const luaL_Reg operators[] = {
    {"__add", m_add}, {"__sub", m_sub}, {"__mul", m_mul}, {"__div", m_div}, {"__pow", m_pow},
    {"__unm", m_unm}, {NULL, NULL}};

/* Methods, also exported as module functions (cnn.exp(x) == x:exp()). */
static const luaL_Reg methods[] = {
    {"add", m_add}, {"sub", m_sub}, {"mul", m_mul}, {"div", m_div}, {"pow", m_pow},
    {"maximum", m_maximum}, {"minimum", m_minimum},
    {"exp", m_exp}, {"log", m_log}, {"sqrt", m_sqrt}, {"abs", m_abs}, {"relu", m_relu},
    {"sigmoid", m_sigmoid}, {"tanh", m_tanh}, {"sin", m_sin}, {"cos", m_cos}, {"square", m_square},
    {"rsqrt", m_rsqrt}, {"sign", m_sign}, {"softplus", m_softplus}, {"silu", m_silu}, {"gelu", m_gelu},
    {"floor", m_floor}, {"ceil", m_ceil}, {"round", m_round}, {"reciprocal", m_reciprocal},
    {"log1p", m_log1p}, {"expm1", m_expm1}, {"neg", m_neg}, {"leaky_relu", m_leaky_relu},
    {"elu", m_elu}, {"clamp", m_clamp},
    {"eq", m_eq}, {"ne", m_ne}, {"lt", m_lt}, {"le", m_le}, {"gt", m_gt}, {"ge", m_ge},
    {"sum", m_sum}, {"mean", m_mean}, {"std", m_std}, {"var", m_var}, {"max", m_max}, {"min", m_min},
    {"argmax", m_argmax}, {"argmin", m_argmin}, {"matmul", m_matmul}, {NULL, NULL}};

void lcnn_open_math(lua_State *L) {
    luaL_getmetatable(L, LCNN_TENSOR);
    luaL_setfuncs(L, operators, 0);
    lua_pop(L, 1);
    lcnn_add_methods(L, methods);
    luaL_setfuncs(L, methods, 0);
    lua_pushcfunction(L, l_where);
    lua_setfield(L, -2, "where");
    lua_pushcfunction(L, l_linear);
    lua_setfield(L, -2, "linear");
}
