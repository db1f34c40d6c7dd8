/* l_prefetch.c - batch prefetching threads from Lua (used by cnn.data.loader with workers > 0):
 *
 *   local pf = cnn._prefetch(x, y_or_nil, {order = {rows, 1-based} or nil, batch_size = 64,
 *                            drop_last = false, skip = 0, pipeline = aug_pipeline or nil,
 *                            seeds = {one integer per batch} or nil, workers = 2, capacity = 0})
 *   pf:next()    --> x, y (y nil without labels), or nil after the last batch
 *   pf:close()   --> stops and joins the workers, frees waiting batches (also __close and __gc)
 *   #pf          --> batches in the epoch
 *   cnn._prefetch_workers() --> worker threads running in the process
 *
 * The userdata keeps the pipeline's Lua value (a user value) so that the pipeline outlives the
 * workers that run it. */
#include <stdlib.h>

#include "lcnn.h"

#define PREFETCH "cnn.Prefetch"
#define AUG_PIPELINE "cnn.AugPipeline"
static const char *const fname = "_prefetch";

typedef struct lcnn_prefetch {
    cnn_prefetch *p;
} lcnn_prefetch;

/* The pipeline userdata of the aug bindings starts with the pipeline pointer. */
typedef struct lcnn_aug_pipeline_view {
    cnn_aug_pipeline *pipeline;
} lcnn_aug_pipeline_view;

/* Integers of the list field name (or NULL when absent); n receives the length. The array is owned
 * by a userdata left on the stack, so a Lua error never leaks it. */
static int64_t *integer_list(lua_State *L, int t, const char *name, int64_t *n, int64_t shift) {
    *n = 0;
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_pushnil(L); /* keeps the stack layout the same either way */
        return NULL;
    }
    if (!lua_istable(L, -1)) luaL_error(L, "%s: %s must be a list of integers, got a %s", fname, name, luaL_typename(L, -1));
    const int list = lua_gettop(L);
    const lua_Integer len = luaL_len(L, list);
    int64_t *values = lua_newuserdatauv(L, (size_t)(len > 0 ? len : 1) * sizeof *values, 0);
    for (lua_Integer i = 1; i <= len; i++) {
        int isint = 0;
        lua_geti(L, list, i);
        lua_Integer v = lua_tointegerx(L, -1, &isint);
        if (!isint) luaL_error(L, "%s: %s[%d] must be an integer", fname, name, (int)i);
        values[i - 1] = (int64_t)v - shift;
        lua_pop(L, 1);
    }
    lua_remove(L, list);
    *n = len;
    return values;
}

static int l_prefetch(lua_State *L) {
    cnn_tensor *x = lcnn_check(L, 1);
    cnn_tensor *y = lcnn_opt(L, 2);
    luaL_checktype(L, 3, LUA_TTABLE);
    cnn_prefetch_options o = {0};
    o.batch_size = lcnn_opt_int_field(L, 3, fname, "batch_size", 64);
    o.drop_last = lcnn_opt_bool_field(L, 3, fname, "drop_last", 0);
    o.first_batch = lcnn_opt_int_field(L, 3, fname, "skip", 0);
    o.workers = lcnn_opt_int_field(L, 3, fname, "workers", 0);
    o.capacity = lcnn_opt_int_field(L, 3, fname, "capacity", 0);
    int64_t n_order = 0, n_seeds = 0;
    o.order = integer_list(L, 3, "order", &n_order, 1);
    o.n_rows = n_order;
    uint64_t *seeds = (uint64_t *)integer_list(L, 3, "seeds", &n_seeds, 0);
    o.seeds = seeds;
    lua_getfield(L, 3, "pipeline");
    const int pipeline_index = lua_gettop(L);
    if (!lua_isnil(L, pipeline_index)) {
        lcnn_aug_pipeline_view *view = luaL_testudata(L, pipeline_index, AUG_PIPELINE);
        if (!view) return luaL_error(L, "%s: pipeline must be an augmentation pipeline (transform:pipeline())", fname);
        o.pipeline = view->pipeline;
    }
    if (o.batch_size >= 1) {
        const int64_t rows = o.order ? o.n_rows : (cnn_ndim(x) > 0 ? cnn_size(x, 0) : 0);
        const int64_t batches = o.drop_last ? rows / o.batch_size : (rows + o.batch_size - 1) / o.batch_size;
        if (seeds && n_seeds < batches)
            return luaL_error(L, "%s: seeds holds %d values for %d batches", fname, (int)n_seeds, (int)batches);
    }
    lcnn_prefetch *box = lua_newuserdatauv(L, sizeof *box, 1);
    box->p = NULL;
    luaL_setmetatable(L, PREFETCH);
    lua_pushvalue(L, pipeline_index);
    lua_setiuservalue(L, -2, 1);
    box->p = cnn_prefetch_new(x, y, &o);
    if (!box->p) return lcnn_error(L);
    return 1;
}

static lcnn_prefetch *check_prefetch(lua_State *L) { return luaL_checkudata(L, 1, PREFETCH); }

static int prefetch_close(lua_State *L) {
    lcnn_prefetch *box = check_prefetch(L);
    cnn_prefetch_free(box->p);
    box->p = NULL;
    return 0;
}

static int prefetch_next(lua_State *L) {
    lcnn_prefetch *box = check_prefetch(L);
    if (!box->p) return luaL_error(L, "prefetch: the prefetcher is closed");
    cnn_tensor *x, *y;
    lcnn_check_status(L, cnn_prefetch_next(box->p, &x, &y));
    if (!x) {
        lua_pushnil(L);
        return 1;
    }
    lua_settop(L, 1);
    /* y first into the stack so that a failing push of x cannot leak it */
    if (y) lcnn_push(L, y); else lua_pushnil(L);
    lcnn_push(L, x);
    lua_insert(L, -2);
    return 2;
}

static int prefetch_len(lua_State *L) {
    lcnn_prefetch *box = check_prefetch(L);
    lua_pushinteger(L, box->p ? cnn_prefetch_batches(box->p) : 0);
    return 1;
}

static int l_prefetch_workers(lua_State *L) {
    lua_pushinteger(L, cnn_prefetch_live_workers());
    return 1;
}

void lcnn_open_prefetch(lua_State *L) {
    static const luaL_Reg methods[] = {{"next", prefetch_next}, {"close", prefetch_close}, {NULL, NULL}};
    if (luaL_newmetatable(L, PREFETCH)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, prefetch_close);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, prefetch_close);
        lua_setfield(L, -2, "__close");
        lua_pushcfunction(L, prefetch_len);
        lua_setfield(L, -2, "__len");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_prefetch);
    lua_setfield(L, -2, "_prefetch");
    lua_pushcfunction(L, l_prefetch_workers);
    lua_setfield(L, -2, "_prefetch_workers");
}
