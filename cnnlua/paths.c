/* paths.c - where the Lua half of cnn lives, and loading it.
 *
 * The C core is linked into the program and registered in package.preload, so `require "cnn.core"`
 * never searches the disk. The Lua library (scripts/cnn/) is found next to the program:
 * build/cnnlua runs the scripts of the tree it was built in, without LUA_PATH set. CNNLUA_PATH
 * names another scripts directory. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lualib.h>

#include "cnnlua.h"
#include "lcnn.h"

/* The directory holding the running executable, or "" when it cannot be found. */
static void executable_dir(char *dir, size_t size) {
    ssize_t n = readlink("/proc/self/exe", dir, size - 1);
    if (n <= 0) {
        dir[0] = '\0';
        return;
    }
    dir[n] = '\0';
    char *slash = strrchr(dir, '/');
    if (slash == dir)
        slash[1] = '\0'; /* the program sits in / */
    else if (slash)
        *slash = '\0';
    else
        dir[0] = '\0';
}

/* Pushes the scripts directory, or nothing and returns 0 when there is none to add. */
static int push_scripts_dir(lua_State *L) {
    const char *override = getenv("CNNLUA_PATH");
    if (override && *override) {
        lua_pushstring(L, override);
        return 1;
    }
    char dir[PATH_MAX];
    executable_dir(dir, sizeof dir);
    if (!*dir) return 0;
    char scripts[PATH_MAX + 16];
    snprintf(scripts, sizeof scripts, "%s/../scripts", dir);
    char resolved[PATH_MAX];
    /* A clean path reads better in "module not found" messages; keep the raw one if it is absent. */
    lua_pushstring(L, realpath(scripts, resolved) ? resolved : scripts);
    return 1;
}

static void prepend_package_path(lua_State *L) {
    if (!push_scripts_dir(L)) return;
    const char *dir = lua_tostring(L, -1);
    lua_getglobal(L, LUA_LOADLIBNAME);
    lua_getfield(L, -1, "path");
    const char *old = lua_tostring(L, -1);
    lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;%s", dir, dir, old ? old : "");
    lua_setfield(L, -3, "path");
    lua_pop(L, 3); /* old path, package, dir */
}

int cnnlua_open_cnn(lua_State *L) {
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    lua_pushcfunction(L, luaopen_cnn_core);
    lua_setfield(L, -2, "cnn.core");
    lua_pop(L, 1);
    prepend_package_path(L);

    lua_getglobal(L, "require");
    lua_pushliteral(L, "cnn");
    int status = cnnlua_docall(L, 1, 1);
    if (status == LUA_OK) lua_setglobal(L, "cnn");
    return status;
}
