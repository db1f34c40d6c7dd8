/* Utilities: seeding and generator state, threads, a monotonic timer, memory in use, version. */
#include <time.h>

#include "lcnn.h"

#define TIMER "cnn.Timer"

static int l_manual_seed(lua_State *L) {
    cnn_manual_seed((uint64_t)luaL_checkinteger(L, 1));
    return 0;
}

/* The generator state as four integers (their 64-bit patterns), for checkpoints. */
static int l_get_rng_state(lua_State *L) {
    uint64_t s[4];
    cnn_rng_get_state(s);
    lua_createtable(L, 4, 0);
    for (int i = 0; i < 4; i++) {
        lua_pushinteger(L, (lua_Integer)s[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static int l_set_rng_state(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    uint64_t s[4];
    for (int i = 0; i < 4; i++) {
        lua_geti(L, 1, i + 1);
        int ok;
        s[i] = (uint64_t)lua_tointegerx(L, -1, &ok);
        if (!ok) return luaL_error(L, "set_rng_state: expects a table of 4 integers (entry %d is %s)", i + 1,
                                   luaL_typename(L, -1));
        lua_pop(L, 1);
    }
    cnn_rng_set_state(s);
    return 0;
}

static int l_set_num_threads(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    luaL_argcheck(L, n >= 1, 1, "the thread count must be at least 1");
    cnn_set_num_threads((int)n);
    return 0;
}

static int l_get_num_threads(lua_State *L) {
    lua_pushinteger(L, cnn_get_num_threads());
    return 1;
}

static int l_memory_in_use(lua_State *L) {
    lua_pushinteger(L, cnn_memory_in_use());
    return 1;
}

static int l_memory_cached(lua_State *L) {
    lua_pushinteger(L, cnn_memory_cached());
    return 1;
}

static int l_empty_cache(lua_State *L) {
    cnn_empty_cache();
    return 0;
}

/* ---- timer ------------------------------------------------------------------------------------ */
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int l_timer(lua_State *L) {
    double *start = lua_newuserdatauv(L, sizeof(double), 0);
    *start = now();
    luaL_setmetatable(L, TIMER);
    return 1;
}

static int timer_elapsed(lua_State *L) {
    double *start = luaL_checkudata(L, 1, TIMER);
    lua_pushnumber(L, now() - *start);
    return 1;
}

static int timer_reset(lua_State *L) {
    double *start = luaL_checkudata(L, 1, TIMER);
    *start = now();
    lua_settop(L, 1);
    return 1;
}

static int timer_tostring(lua_State *L) {
    double *start = luaL_checkudata(L, 1, TIMER);
    lua_pushfstring(L, "cnn.Timer (%f s)", now() - *start);
    return 1;
}

static const luaL_Reg timer_methods[] = {{"elapsed", timer_elapsed}, {"reset", timer_reset}, {NULL, NULL}};

static const luaL_Reg functions[] = {
    {"manual_seed", l_manual_seed}, {"get_rng_state", l_get_rng_state},
    {"set_rng_state", l_set_rng_state}, {"set_num_threads", l_set_num_threads},
    {"get_num_threads", l_get_num_threads}, {"memory_in_use", l_memory_in_use}, {"memory_cached", l_memory_cached},
    {"empty_cache", l_empty_cache}, {"timer", l_timer},
    {NULL, NULL}};

void lcnn_open_util(lua_State *L) {
    luaL_newmetatable(L, TIMER);
    lua_newtable(L);
    luaL_setfuncs(L, timer_methods, 0);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, timer_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pop(L, 1);
    luaL_setfuncs(L, functions, 0);
    lua_pushstring(L, cnn_version());
    lua_setfield(L, -2, "version");
}
