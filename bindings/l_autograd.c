/* Autograd in Lua: x:requires_grad(), x.grad, loss:backward(), cnn.no_grad(fn), x:detach(). */
#include <string.h>

#include "lcnn.h"

/* Properties read through x.name (called from the tensor's __index for unknown string keys). */
int lcnn_autograd_property(lua_State *L, cnn_tensor *t, const char *key) {
    if (strcmp(key, "grad") == 0) {
        cnn_tensor *g = cnn_grad(t);
        if (!g) {
            lua_pushnil(L);
            return 1;
        }
        return lcnn_push(L, g);
    }
    if (strcmp(key, "grad_fn") == 0) {
        const char *name = cnn_grad_fn_name(t);
        if (name) lua_pushstring(L, name);
        else lua_pushnil(L);
        return 1;
    }
    if (strcmp(key, "is_leaf") == 0) {
        lua_pushboolean(L, cnn_is_leaf(t));
        return 1;
    }
    lua_pushnil(L);
    return 1;
}

/* x.grad = tensor | nil. Returns 0 for keys it does not handle. */
int lcnn_autograd_assign(lua_State *L, cnn_tensor *t, const char *key) {
    if (strcmp(key, "grad") != 0) return 0;
    lcnn_check_status(L, cnn_set_grad(t, lcnn_opt(L, 3)));
    return 1;
}

/* x:requires_grad(flag=true) -> x */
static int m_requires_grad(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    int flag = lua_isnoneornil(L, 2) ? 1 : lua_toboolean(L, 2);
    lcnn_check_status(L, cnn_set_requires_grad(t, flag));
    lua_settop(L, 1);
    return 1;
}

static int m_needs_grad(lua_State *L) {
    lua_pushboolean(L, cnn_requires_grad(lcnn_check(L, 1)));
    return 1;
}

/* loss:backward(grad?, {retain_graph=false}) */
static int m_backward(lua_State *L) {
    cnn_tensor *t = lcnn_check(L, 1);
    int opts = lua_istable(L, 2) && !lcnn_is_tensor(L, 2) ? 2 : 3;
    cnn_tensor *g = opts == 3 ? lcnn_opt(L, 2) : NULL;
    int retain = lcnn_opt_bool_field(L, opts, "backward", "retain_graph", 0);
    lcnn_check_status(L, cnn_backward(t, g, retain));
    return 0;
}

static int m_detach(lua_State *L) { return lcnn_push(L, cnn_detach(lcnn_check(L, 1))); }

static int m_zero_grad(lua_State *L) {
    lcnn_check_status(L, cnn_set_grad(lcnn_check(L, 1), NULL));
    return 0;
}

/* cnn.no_grad(fn, ...) runs fn with gradient recording off and returns its results; the previous
 * mode is restored even when fn raises. */
static int l_no_grad(lua_State *L) {
    luaL_checktype(L, 1, LUA_TFUNCTION);
    int was = cnn_is_grad_enabled();
    cnn_set_grad_enabled(0);
    int base = 0;
    int status = lua_pcall(L, lua_gettop(L) - 1, LUA_MULTRET, base);
    cnn_set_grad_enabled(was);
    if (status != LUA_OK) return lua_error(L);
    return lua_gettop(L);
}

static int l_set_grad_enabled(lua_State *L) {
    cnn_set_grad_enabled(lua_toboolean(L, 1));
    return 0;
}

static int l_is_grad_enabled(lua_State *L) {
    lua_pushboolean(L, cnn_is_grad_enabled());
    return 1;
}

static const luaL_Reg methods[] = {
    {"requires_grad", m_requires_grad}, {"needs_grad", m_needs_grad}, {"backward", m_backward},
    {"detach", m_detach}, {"zero_grad", m_zero_grad}, {NULL, NULL}};

static const luaL_Reg functions[] = {
    {"no_grad", l_no_grad}, {"set_grad_enabled", l_set_grad_enabled},
    {"is_grad_enabled", l_is_grad_enabled}, {"detach", m_detach}, {NULL, NULL}};

void lcnn_open_autograd(lua_State *L) {
    lcnn_add_methods(L, methods);
    luaL_setfuncs(L, functions, 0);
}
