/* Deferred Ctrl-C for loops that must stop at a clean point: cnn.defer_interrupts(true) makes the
 * first interrupt a request that cnn.take_interrupt() reports, instead of an error raised wherever
 * the program happens to be (in the middle of an optimizer step, say). A second interrupt stops at
 * once as usual. Inside cnnlua this covers Ctrl-C; under stock lua only cnn_interrupt() from C. */
#include "lcnn.h"

/* cnn.defer_interrupts(on) -> whether deferral was on before */
static int l_defer_interrupts(lua_State *L) {
    luaL_checkany(L, 1);
    lua_pushboolean(L, cnn_set_interrupt_deferral(lua_toboolean(L, 1)));
    return 1;
}

/* cnn.take_interrupt() -> true once per interrupt that arrived while deferral was on */
static int l_take_interrupt(lua_State *L) {
    lua_pushboolean(L, cnn_take_deferred_interrupt());
    return 1;
}

/* cnn._interrupt(): what Ctrl-C does, for tests and for Lua code that wants to stop a run */
static int l_interrupt(lua_State *L) {
    cnn_interrupt();
    return 0;
}

static const luaL_Reg functions[] = {
    {"defer_interrupts", l_defer_interrupts}, {"take_interrupt", l_take_interrupt}, {"_interrupt", l_interrupt},
    {NULL, NULL}};

void lcnn_open_interrupt(lua_State *L) { luaL_setfuncs(L, functions, 0); }
