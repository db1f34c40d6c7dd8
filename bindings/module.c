/* The Lua module cnn.core: shared argument helpers, memory accounting and the entry point that lets
 * every area register its functions. */
#include <string.h>

#include "lcnn.h"

/* ---- tensors on the Lua side ------------------------------------------------------------------ */
int lcnn_is_tensor(lua_State *L, int i) { return luaL_testudata(L, i, LCNN_TENSOR) != NULL; }

cnn_tensor *lcnn_check(lua_State *L, int i) {
    lcnn_tensor *u = luaL_testudata(L, i, LCNN_TENSOR);
    if (!u) {
        const char *got = luaL_typename(L, i);
        luaL_argerror(L, i, lua_pushfstring(L, "tensor expected, got %s", got));
    }
    if (!u->t) luaL_argerror(L, i, "tensor was closed (used after its <close> scope ended)");
    return u->t;
}

cnn_tensor *lcnn_opt(lua_State *L, int i) { return lua_isnoneornil(L, i) ? NULL : lcnn_check(L, i); }

cnn_tensor *lcnn_check_or_number(lua_State *L, int i) {
    if (lua_type(L, i) == LUA_TNUMBER) {
        cnn_tensor *t = cnn_scalar((float)lua_tonumber(L, i));
        if (!t) lcnn_error(L);
        lcnn_push(L, t);        /* anchored: collected after the call */
        lua_replace(L, i);      /* the argument slot now holds the tensor */
        return t;
    }
    return lcnn_check(L, i);
}

/* Full collections are triggered by tensor bytes, which Lua cannot see: a tensor whose last holder is
 * an unreachable userdata keeps its memory until the collector runs. A training step leaves its whole
 * graph of activations in that state, so the growth allowed between collections is what such garbage
 * may add to the peak. A collection runs once tensor memory has grown by the slack above its lowest
 * point since the last collection (memory freed meanwhile, by a backward pass or a <close> variable,
 * lowers the mark). The slack is 16 MiB, or an eighth of the memory in use when that is more; and
 * since a full collection costs time in proportion to the Lua heap, at least 8 bytes of tensor memory
 * per byte of Lua heap, which keeps collections a small cost beside the allocations that trigger
 * them. */
static const int64_t GC_SLACK_FLOOR = 16ll << 20;
static const int GC_SLACK_IN_USE_DIVISOR = 8;
static const int GC_SLACK_PER_LUA_BYTE = 8;
static int64_t gc_low_mark; /* lowest tensor memory seen since the last collection */

static int64_t gc_slack(lua_State *L, int64_t in_use) {
    int64_t slack = GC_SLACK_FLOOR;
    if (in_use / GC_SLACK_IN_USE_DIVISOR > slack) slack = in_use / GC_SLACK_IN_USE_DIVISOR;
    int64_t lua_heap = (int64_t)lua_gc(L, LUA_GCCOUNT) * 1024 + lua_gc(L, LUA_GCCOUNTB);
    if (lua_heap * GC_SLACK_PER_LUA_BYTE > slack) slack = lua_heap * GC_SLACK_PER_LUA_BYTE;
    return slack;
}

void lcnn_account(lua_State *L) {
    int64_t in_use = cnn_memory_in_use();
    if (in_use < gc_low_mark) gc_low_mark = in_use;
    const int64_t growth = in_use - gc_low_mark;
    if (growth <= GC_SLACK_FLOOR || growth <= gc_slack(L, gc_low_mark)) return; /* the floor first: cheap */
    lua_gc(L, LUA_GCCOLLECT);
    gc_low_mark = cnn_memory_in_use();
}

int lcnn_push(lua_State *L, cnn_tensor *t) {
    if (!t) return lcnn_error(L);
    /* The userdata is created before anything else can fail, so the reference is never leaked. */
    lcnn_tensor *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->t = t;
    luaL_setmetatable(L, LCNN_TENSOR);
    lcnn_account(L);
    return 1;
}

int lcnn_error(lua_State *L) {
    cnn_status st = cnn_last_status();
    luaL_where(L, 1);
    lua_pushstring(L, cnn_last_error()); /* copied before the runtime's buffer is cleared */
    lua_concat(L, 2);
    cnn_clear_error();
    if (st == CNN_ERR_INTERRUPTED) cnn_clear_interrupt();
    return lua_error(L);
}

void lcnn_check_status(lua_State *L, cnn_status status) {
    if (status != CNN_OK) lcnn_error(L);
}

/* ---- dims and shapes -------------------------------------------------------------------------- */
int lcnn_checkdim(lua_State *L, int i, int ndim) {
    lua_Integer d = luaL_checkinteger(L, i);
    int n = ndim > 0 ? ndim : 1;
    if (d == 0 || d > n || d < -n)
        luaL_argerror(L, i, lua_pushfstring(L, "dimension %d is out of range for a tensor with %d "
                                               "dimensions (dims are 1-based; -1 is the last)",
                                            (int)d, ndim));
    return d > 0 ? (int)d - 1 : (int)(d + n);
}

int lcnn_optdim(lua_State *L, int i, int ndim, int def0) {
    return lua_isnoneornil(L, i) ? def0 : lcnn_checkdim(L, i, ndim);
}

static int64_t check_size(lua_State *L, int i, const char *fname) {
    if (!lua_isinteger(L, -1)) {
        lua_Number v = lua_tonumber(L, -1);
        if (lua_type(L, -1) != LUA_TNUMBER || v != (lua_Number)(lua_Integer)v)
            luaL_error(L, "%s: sizes must be integers (got %s in position %d)", fname,
                       lua_type(L, -1) == LUA_TNUMBER ? lua_tostring(L, -1) : luaL_typename(L, -1), i);
    }
    lua_Integer v = lua_tointeger(L, -1);
    if (v < -1) luaL_error(L, "%s: size %d in position %d is negative", fname, (int)v, i);
    return (int64_t)v;
}

int lcnn_checkshape(lua_State *L, int i, int64_t shape[CNN_MAX_DIMS], const char *fname) {
    int n;
    if (lua_type(L, i) == LUA_TTABLE) {
        n = (int)luaL_len(L, i);
        if (n > CNN_MAX_DIMS) luaL_error(L, "%s: %d dimensions given, at most %d are supported", fname, n, CNN_MAX_DIMS);
        for (int k = 1; k <= n; k++) {
            lua_geti(L, i, k);
            shape[k - 1] = check_size(L, k, fname);
            lua_pop(L, 1);
        }
        return n;
    }
    int top = lua_gettop(L);
    n = 0;
    for (int k = i; k <= top && lua_type(L, k) == LUA_TNUMBER; k++) {
        if (n == CNN_MAX_DIMS) luaL_error(L, "%s: more than %d dimensions given", fname, CNN_MAX_DIMS);
        lua_pushvalue(L, k);
        shape[n] = check_size(L, n + 1, fname);
        lua_pop(L, 1);
        n++;
    }
    return n;
}

/* ---- option tables ---------------------------------------------------------------------------- */
static int push_field(lua_State *L, int t, const char *name) {
    if (lua_isnoneornil(L, t)) return 0;
    if (lua_type(L, t) != LUA_TTABLE) luaL_error(L, "options must be a table, got %s", luaL_typename(L, t));
    if (lua_getfield(L, t, name) == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    return 1;
}

int lcnn_opt_int_field(lua_State *L, int t, const char *fname, const char *name, int def) {
    if (!push_field(L, t, name)) return def;
    int isint;
    lua_Integer v = lua_tointegerx(L, -1, &isint);
    if (!isint) luaL_error(L, "%s: option '%s' must be an integer, got %s", fname, name, luaL_typename(L, -1));
    lua_pop(L, 1);
    return (int)v;
}

double lcnn_opt_number_field(lua_State *L, int t, const char *fname, const char *name, double def) {
    if (!push_field(L, t, name)) return def;
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "%s: option '%s' must be a number, got %s", fname, name, luaL_typename(L, -1));
    double v = lua_tonumber(L, -1);
    lua_pop(L, 1);
    return v;
}

int lcnn_opt_bool_field(lua_State *L, int t, const char *fname, const char *name, int def) {
    if (!push_field(L, t, name)) return def;
    if (lua_type(L, -1) != LUA_TBOOLEAN)
        luaL_error(L, "%s: option '%s' must be a boolean, got %s", fname, name, luaL_typename(L, -1));
    int v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

void lcnn_opt_pair_field(lua_State *L, int t, const char *fname, const char *name, int32_t out[2], int def) {
    out[0] = out[1] = def;
    if (!push_field(L, t, name)) return;
    int whole;
    lua_Integer single = lua_tointegerx(L, -1, &whole); /* also 4/2: a float with an integer value */
    if (lua_type(L, -1) == LUA_TNUMBER && whole) {
        out[0] = out[1] = (int32_t)single;
    } else if (lua_type(L, -1) == LUA_TTABLE && luaL_len(L, -1) == 2) {
        for (int k = 0; k < 2; k++) {
            lua_geti(L, -1, k + 1);
            int isint;
            lua_Integer v = lua_tointegerx(L, -1, &isint);
            if (!isint) luaL_error(L, "%s: option '%s' must hold integers", fname, name);
            out[k] = (int32_t)v;
            lua_pop(L, 1);
        }
    } else {
        luaL_error(L, "%s: option '%s' must be an integer or a pair {h, w}, got %s", fname, name,
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

const char *lcnn_opt_string_field(lua_State *L, int t, const char *fname, const char *name, const char *def) {
    if (!push_field(L, t, name)) return def;
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "%s: option '%s' must be a string, got %s", fname, name, luaL_typename(L, -1));
    const char *s = lua_tostring(L, -1);
    lua_pop(L, 1); /* the string stays alive as a field of the table */
    return s;
}

cnn_tensor *lcnn_opt_tensor_field(lua_State *L, int t, const char *fname, const char *name) {
    if (!push_field(L, t, name)) return NULL;
    lcnn_tensor *u = luaL_testudata(L, -1, LCNN_TENSOR);
    if (!u || !u->t) luaL_error(L, "%s: option '%s' must be a tensor, got %s", fname, name, luaL_typename(L, -1));
    lua_pop(L, 1); /* anchored by the table */
    return u->t;
}

/* ---- registration ----------------------------------------------------------------------------- */
void lcnn_add_methods(lua_State *L, const luaL_Reg *methods) {
    luaL_getmetatable(L, LCNN_TENSOR);
    lua_getfield(L, -1, "__methods");
    luaL_setfuncs(L, methods, 0);
    lua_pop(L, 2);
}

int luaopen_cnn_core(lua_State *L) {
    lua_newtable(L);
    lcnn_open_tensor(L); /* first: creates the tensor metatable the others add methods to */
    lcnn_open_math(L);
    lcnn_open_autograd(L);
    lcnn_open_conv(L);
    lcnn_open_layers(L);
    lcnn_open_optim(L);
    lcnn_open_io(L);
    lcnn_open_util(L);
    lcnn_open_augment(L);
    lcnn_open_image(L);
    lcnn_open_prefetch(L);
    lcnn_open_interrupt(L);
    return 1;
}
