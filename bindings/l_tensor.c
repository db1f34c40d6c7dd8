/* Tensors in Lua: creation, the userdata's metatable (indexing, printing, lifetime), metadata and
 * views. Lua is 1-based: dims, narrow starts and indices are shifted here. */
#include <stdlib.h>
#include <string.h>

#include "lcnn.h"

/* ---- creation from nested tables -------------------------------------------------------------- */
/* Walks the first element of each nesting level to find the shape. */
static int nested_shape(lua_State *L, int i, int64_t shape[CNN_MAX_DIMS]) {
    int nd = 0;
    lua_pushvalue(L, i);
    while (lua_type(L, -1) == LUA_TTABLE) {
        if (nd == CNN_MAX_DIMS) luaL_error(L, "tensor: nesting deeper than %d levels", CNN_MAX_DIMS);
        shape[nd++] = (int64_t)luaL_len(L, -1);
        if (shape[nd - 1] == 0) break;
        lua_geti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    return nd;
}

static void fill_nested(lua_State *L, int depth, int nd, const int64_t *shape, float **out,
                        char *path, size_t pathlen) {
    int64_t n = (int64_t)luaL_len(L, -1);
    if (n != shape[depth])
        luaL_error(L, "tensor: ragged nested table: element%s has %d entries, expected %d",
                   pathlen ? path : "s at the top level", (int)n, (int)shape[depth]);
    for (int64_t k = 1; k <= n; k++) {
        lua_geti(L, -1, k);
        size_t len = pathlen + (size_t)snprintf(path + pathlen, 256 - pathlen, "[%d]", (int)k);
        if (depth == nd - 1) {
            int isnum;
            lua_Number v = lua_tonumberx(L, -1, &isnum);
            if (!isnum || lua_type(L, -1) != LUA_TNUMBER)
                luaL_error(L, "tensor: element %s is a %s, expected a number", path, luaL_typename(L, -1));
            *(*out)++ = (float)v;
        } else {
            if (lua_type(L, -1) != LUA_TTABLE)
                luaL_error(L, "tensor: element %s is a %s, expected a table of %d entries", path,
                           luaL_typename(L, -1), (int)shape[depth + 1]);
            fill_nested(L, depth + 1, nd, shape, out, path, len);
        }
        path[pathlen] = '\0';
        lua_pop(L, 1);
    }
}

/* cnn.tensor(nested_table | number | tensor) */
static int l_tensor(lua_State *L) {
    if (lua_type(L, 1) == LUA_TNUMBER) return lcnn_push(L, cnn_scalar((float)lua_tonumber(L, 1)));
    if (lcnn_is_tensor(L, 1)) return lcnn_push(L, cnn_clone(lcnn_check(L, 1)));
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t shape[CNN_MAX_DIMS];
    int nd = nested_shape(L, 1, shape);
    cnn_tensor *t = cnn_empty(nd, shape);
    lcnn_push(L, t); /* owned by Lua before anything below can raise */
    float *p = cnn_data(t);
    char path[256] = "";
    lua_pushvalue(L, 1);
    if (cnn_numel(t) > 0 || nd == 1) fill_nested(L, 0, nd, shape, &p, path, 0);
    lua_pop(L, 1);
    return 1;
}

/* cnn.zeros / ones / empty / rand / randn(d1, d2, ...) or ({d1, d2, ...}): one Lua function per
 * creator, each a closure over its index in this table. */
static const struct {
    const char *name;
    cnn_tensor *(*make)(int ndim, const int64_t *shape);
} shape_creators[] = {
    {"zeros", cnn_zeros}, {"ones", cnn_ones},
    {"empty", cnn_zeros}, /* zeroed: Lua code never sees uninitialised memory */
    {"rand", cnn_rand}, {"randn", cnn_randn},
};

static int l_create(lua_State *L) {
    int k = (int)lua_tointeger(L, lua_upvalueindex(1));
    int64_t s[CNN_MAX_DIMS];
    int n = lcnn_checkshape(L, 1, s, shape_creators[k].name);
    return lcnn_push(L, shape_creators[k].make(n, s));
}

static int l_full(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t s[CNN_MAX_DIMS];
    int n = lcnn_checkshape(L, 1, s, "full");
    return lcnn_push(L, cnn_full(n, s, (float)luaL_checknumber(L, 2)));
}

/* cnn.uniform(shape_table, low, high) */
static int l_uniform(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int64_t s[CNN_MAX_DIMS];
    int n = lcnn_checkshape(L, 1, s, "uniform");
    return lcnn_push(L, cnn_uniform(n, s, (float)luaL_checknumber(L, 2), (float)luaL_checknumber(L, 3)));
}

/* cnn.arange(end) | cnn.arange(start, end, step?) -- end excluded */
static int l_arange(lua_State *L) {
    double start = 0, end, step = 1;
    if (lua_isnoneornil(L, 2)) {
        end = luaL_checknumber(L, 1);
    } else {
        start = luaL_checknumber(L, 1);
        end = luaL_checknumber(L, 2);
        step = luaL_optnumber(L, 3, 1);
    }
    return lcnn_push(L, cnn_arange(start, end, step));
}

/* ---- lifetime and printing ---------------------------------------------------------------------- */
static int m_gc(lua_State *L) {
    lcnn_tensor *u = luaL_checkudata(L, 1, LCNN_TENSOR);
    cnn_release(u->t);
    u->t = NULL;
    return 0;
}

static int m_tostring(lua_State *L) {
    lcnn_tensor *u = luaL_checkudata(L, 1, LCNN_TENSOR);
    if (!u->t) {
        lua_pushliteral(L, "[cnn.Tensor (closed)]");
        return 1;
    }
    char *s = cnn_format(u->t);
    if (!s) return luaL_error(L, "tostring: out of memory formatting a tensor");
    lua_pushstring(L, s);
    cnn_free_string(s);
    return 1;
}

static int m_len(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    lua_pushinteger(L, cnn_ndim(t) ? cnn_size(t, 0) : 0);
    return 1;
}

/* ---- metadata --------------------------------------------------------------------------------- */
static void push_shape(lua_State *L, cnn_tensor *t) {
    int nd = cnn_ndim(t);
    lua_createtable(L, nd, 0);
    for (int i = 0; i < nd; i++) {
        lua_pushinteger(L, cnn_size(t, i));
        lua_rawseti(L, -2, i + 1);
    }
}

static int m_shape(lua_State *L) {
    push_shape(L, lcnn_check(L, 1));
    return 1;
}

static int m_size(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    if (lua_isnoneornil(L, 2)) {
        push_shape(L, t);
        return 1;
    }
    lua_pushinteger(L, cnn_size(t, lcnn_checkdim(L, 2, cnn_ndim(t))));
    return 1;
}

static int m_stride(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    int nd = cnn_ndim(t);
    if (!lua_isnoneornil(L, 2)) {
        lua_pushinteger(L, cnn_stride(t, lcnn_checkdim(L, 2, nd)));
        return 1;
    }
    lua_createtable(L, nd, 0);
    for (int i = 0; i < nd; i++) {
        lua_pushinteger(L, cnn_stride(t, i));
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int m_dim(lua_State *L) {
    lua_pushinteger(L, cnn_ndim(lcnn_check(L, 1)));
    return 1;
}

static int m_numel(lua_State *L) {
    lua_pushinteger(L, cnn_numel(lcnn_check(L, 1)));
    return 1;
}

static int m_is_contiguous(lua_State *L) {
    lua_pushboolean(L, cnn_is_contiguous(lcnn_check(L, 1)));
    return 1;
}

static int m_item(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    if (cnn_numel(t) != 1)
        return luaL_error(L, "item: tensor of shape %s has %d elements, expected exactly one",
                          cnn_shape_string(t, (char[128]){0}, 128), (int)cnn_numel(t));
    lua_pushnumber(L, cnn_item(t));
    return 1;
}

/* Nested tables of numbers; a 0-d tensor gives a number. */
static void push_table(lua_State *L, cnn_tensor *t, const float *data, int d, int64_t *pos) {
    if (d == cnn_ndim(t)) {
        lua_pushnumber(L, data[(*pos)++]);
        return;
    }
    int64_t n = cnn_size(t, d);
    lua_createtable(L, (int)n, 0);
    for (int64_t k = 0; k < n; k++) {
        push_table(L, t, data, d + 1, pos);
        lua_rawseti(L, -2, k + 1);
    }
}

static int m_totable(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    luaL_checkstack(L, cnn_ndim(t) + 4, "totable");
    float *data = malloc((size_t)(cnn_numel(t) > 0 ? cnn_numel(t) : 1) * sizeof(float));
    if (!data) return luaL_error(L, "totable: out of memory");
    cnn_read(t, data);
    int64_t pos = 0;
    push_table(L, t, data, 0, &pos);
    free(data);
    return 1;
}

/* ---- views ------------------------------------------------------------------------------------ */
static int m_view(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    int64_t s[CNN_MAX_DIMS];
    int n = lcnn_checkshape(L, 2, s, "view");
    return lcnn_push(L, cnn_view(t, n, s));
}

static int m_reshape(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    int64_t s[CNN_MAX_DIMS];
    int n = lcnn_checkshape(L, 2, s, "reshape");
    return lcnn_push(L, cnn_reshape(t, n, s));
}

static int m_expand(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    int64_t s[CNN_MAX_DIMS];
    int n = lcnn_checkshape(L, 2, s, "expand");
    return lcnn_push(L, cnn_expand(t, n, s));
}

static int m_transpose(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    int nd = cnn_ndim(t);
    if (lua_isnoneornil(L, 2) && nd == 2) return lcnn_push(L, cnn_transpose(t, 0, 1));
    int a = lcnn_checkdim(L, 2, nd), b = lcnn_checkdim(L, 3, nd);
    return lcnn_push(L, cnn_transpose(t, a, b));
}

static int m_t(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    if (cnn_ndim(t) != 2)
        return luaL_error(L, "t: expects a 2-d tensor, got %d dimensions", cnn_ndim(t));
    return lcnn_push(L, cnn_transpose(t, 0, 1));
}

static int m_permute(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    int nd = cnn_ndim(t), dims[CNN_MAX_DIMS];
    int64_t raw[CNN_MAX_DIMS];
    int n = lcnn_checkshape(L, 2, raw, "permute");
    if (n != nd) return luaL_error(L, "permute: %d dimensions given for a tensor with %d", n, nd);
    for (int i = 0; i < n; i++) {
        if (raw[i] < 1 || raw[i] > nd)
            return luaL_error(L, "permute: dimension %d is out of range 1..%d", (int)raw[i], nd);
        dims[i] = (int)raw[i] - 1;
    }
    return lcnn_push(L, cnn_permute(t, n, dims));
}

/* x:narrow(dim, start, length) with a 1-based start */
static int m_narrow(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    int d = lcnn_checkdim(L, 2, cnn_ndim(t));
    lua_Integer start = luaL_checkinteger(L, 3), len = luaL_checkinteger(L, 4);
    if (start < 0) start += cnn_size(t, d) + 1; /* -1 is the last element */
    return lcnn_push(L, cnn_narrow(t, d, start - 1, len));
}

static int64_t index_arg(lua_State *L, int i, int64_t size) {
    lua_Integer k = luaL_checkinteger(L, i);
    if (k < 0) k += size + 1;
    if (k < 1 || k > size)
        luaL_argerror(L, i, lua_pushfstring(L, "index %d is out of range 1..%d", (int)luaL_checkinteger(L, i),
                                            (int)size));
    return k - 1;
}

static int m_select(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    if (cnn_ndim(t) == 0) return luaL_error(L, "select: cannot index a scalar tensor");
    int d = lcnn_checkdim(L, 2, cnn_ndim(t));
    return lcnn_push(L, cnn_select(t, d, index_arg(L, 3, cnn_size(t, d))));
}

static int m_squeeze(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    int d = lua_isnoneornil(L, 2) ? CNN_ALL_DIMS : lcnn_checkdim(L, 2, cnn_ndim(t));
    return lcnn_push(L, cnn_squeeze(t, d));
}

static int m_unsqueeze(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    return lcnn_push(L, cnn_unsqueeze(t, lcnn_checkdim(L, 2, cnn_ndim(t) + 1)));
}

static int m_flatten(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    int nd = cnn_ndim(t);
    int s = lcnn_optdim(L, 2, nd, 0), e = lcnn_optdim(L, 3, nd, nd ? nd - 1 : 0);
    return lcnn_push(L, cnn_flatten(t, s, e));
}

static int m_contiguous(lua_State *L) { return lcnn_push(L, cnn_contiguous(lcnn_check(L, 1))); }
static int m_clone(lua_State *L) { return lcnn_push(L, cnn_clone(lcnn_check(L, 1))); }

static int m_fill(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    lcnn_check_status(L, cnn_fill_(t, (float)luaL_checknumber(L, 2)));
    lua_settop(L, 1);
    return 1;
}

static int m_copy(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    lcnn_check_status(L, cnn_copy_(t, lcnn_check(L, 2)));
    lua_settop(L, 1);
    return 1;
}

/* cnn.cat({a, b, ...}, dim) */
static int l_cat(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    int n = (int)luaL_len(L, 1);
    if (n < 1) return luaL_error(L, "cat: needs a non-empty list of tensors");
    cnn_tensor **ts = lua_newuserdatauv(L, sizeof(cnn_tensor *) * (size_t)n, 0); /* freed by the GC */
    for (int i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        lcnn_tensor *u = luaL_testudata(L, -1, LCNN_TENSOR);
        if (!u || !u->t) return luaL_error(L, "cat: element %d is a %s, expected a tensor", i, luaL_typename(L, -1));
        ts[i - 1] = u->t;
        lua_pop(L, 1);
    }
    int d = lcnn_optdim(L, 2, cnn_ndim(ts[0]), 0);
    return lcnn_push(L, cnn_cat(n, ts, d));
}

/* ---- indexing: x[i] selects along the first dim (a number for 1-d tensors, as in Torch7);
 * x[i] = v writes a number or a tensor into that slice. Other keys go to methods and properties. */
int lcnn_autograd_property(lua_State *L, cnn_tensor *t, const char *key); /* l_autograd.c */
int lcnn_autograd_assign(lua_State *L, cnn_tensor *t, const char *key);

static int m_index(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        if (cnn_ndim(t) == 0) return luaL_error(L, "index: cannot index a scalar tensor");
        int64_t k = index_arg(L, 2, cnn_size(t, 0));
        if (cnn_ndim(t) == 1) {
            lua_pushnumber(L, cnn_data_read(t)[k * cnn_stride(t, 0)]);
            return 1;
        }
        return lcnn_push(L, cnn_select(t, 0, k));
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__methods");
    lua_pushvalue(L, 2);
    if (lua_rawget(L, -2) != LUA_TNIL) return 1;
    if (lua_type(L, 2) == LUA_TSTRING) return lcnn_autograd_property(L, t, lua_tostring(L, 2));
    lua_pushnil(L);
    return 1;
}

static int m_newindex(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    if (lua_type(L, 2) == LUA_TNUMBER) {
        if (cnn_ndim(t) == 0) return luaL_error(L, "index: cannot index a scalar tensor");
        int64_t k = index_arg(L, 2, cnn_size(t, 0));
        cnn_tensor *slice = cnn_select(t, 0, k);
        lcnn_push(L, slice);
        cnn_status st = lua_type(L, 3) == LUA_TNUMBER ? cnn_fill_(slice, (float)lua_tonumber(L, 3))
                                                     : cnn_copy_(slice, lcnn_check(L, 3));
        lcnn_check_status(L, st);
        return 0;
    }
    if (lua_type(L, 2) == LUA_TSTRING && lcnn_autograd_assign(L, t, lua_tostring(L, 2))) return 0;
    return luaL_error(L, "cannot set field '%s' of a tensor", luaL_tolstring(L, 2, NULL));
}

static int l_is_tensor(lua_State *L) {
    lua_pushboolean(L, lcnn_is_tensor(L, 1));
    return 1;
}

static const luaL_Reg metamethods[] = {
    {"__gc", m_gc}, {"__close", m_gc}, {"__tostring", m_tostring}, {"__len", m_len},
    {"__index", m_index}, {"__newindex", m_newindex}, {NULL, NULL}};

static const luaL_Reg methods[] = {
    {"shape", m_shape}, {"size", m_size}, {"stride", m_stride}, {"dim", m_dim}, {"numel", m_numel},
    {"is_contiguous", m_is_contiguous}, {"item", m_item}, {"totable", m_totable},
    {"view", m_view}, {"reshape", m_reshape}, {"expand", m_expand}, {"transpose", m_transpose},
    {"t", m_t}, {"permute", m_permute}, {"narrow", m_narrow}, {"select", m_select},
    {"squeeze", m_squeeze}, {"unsqueeze", m_unsqueeze}, {"flatten", m_flatten},
    {"contiguous", m_contiguous}, {"clone", m_clone}, {"fill", m_fill}, {"copy", m_copy},
    {NULL, NULL}};

static const luaL_Reg functions[] = {
    {"tensor", l_tensor}, {"full", l_full}, {"uniform", l_uniform}, {"arange", l_arange},
    {"cat", l_cat}, {"is_tensor", l_is_tensor}, {"reshape", m_reshape}, {"view", m_view},
    {"transpose", m_transpose}, {"permute", m_permute}, {"flatten", m_flatten},
    {"squeeze", m_squeeze}, {"unsqueeze", m_unsqueeze}, {NULL, NULL}};

void lcnn_open_tensor(lua_State *L) {
    luaL_newmetatable(L, LCNN_TENSOR);
    luaL_setfuncs(L, metamethods, 0);
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__methods");
    lua_pushliteral(L, "cnn.Tensor");
    lua_setfield(L, -2, "__name");
    lua_getfield(L, -1, "__methods");
    lua_setfield(L, -3, "Tensor"); /* cnn.Tensor: the method table, for users to extend */
    lua_pop(L, 1);
    luaL_setfuncs(L, functions, 0);
    for (size_t k = 0; k < sizeof shape_creators / sizeof shape_creators[0]; k++) {
        lua_pushinteger(L, (lua_Integer)k);
        lua_pushcclosure(L, l_create, 1);
        lua_setfield(L, -2, shape_creators[k].name);
    }
}
