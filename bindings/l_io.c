/* l_io.c - files from Lua: safetensors checkpoints and IDX datasets. These are the low-level pieces
 * that cnn.save/cnn.load and cnn.data build on.
 *
 *   cnn.safetensors_save(path, {name = tensor, ...} | {{name, tensor}, ...}, metadata?)
 *       The name->tensor form is saved in sorted name order so that equal inputs give equal files;
 *       the list form keeps its order. metadata maps strings to strings (numbers are converted).
 *   cnn.safetensors_load(path) --> {name = tensor, ...}, {metadata key = value, ...}
 *       All or nothing: the file is fully checked before any tensor is made.
 *   cnn.idx_load(path, scale?) --> tensor
 *       Images (N, 1, H, W), divided by 255 when scale is true. 1-d files hold class labels 0..C-1
 *       and come back shifted to Lua's 1..C.
 *
 * C resources acquired here (an open file, a parsed JSON tree) live in a small userdata whose __gc
 * frees them, so that a Lua error raised halfway never leaks them. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "lcnn.h"

#define IO_BOX "cnn.io_resource"

typedef struct io_box {
    void *resource;
    void (*release)(void *resource);
} io_box;

static int io_box_gc(lua_State *L) {
    io_box *box = luaL_checkudata(L, 1, IO_BOX);
    if (box->resource) box->release(box->resource);
    box->resource = NULL;
    return 0;
}

/* Pushes an empty box; store the resource in it right after acquiring it. */
static io_box *push_box(lua_State *L, void (*release)(void *)) {
    io_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->resource = NULL;
    box->release = release;
    luaL_setmetatable(L, IO_BOX);
    return box;
}

/* Frees the box's resource now rather than at the next collection. */
static void close_box(io_box *box) {
    if (box->resource) box->release(box->resource);
    box->resource = NULL;
}

static void release_safetensors(void *f) { cnn_safetensors_close(f); }
static void release_json(void *json) { cJSON_Delete(json); }

/* ---- safetensors_save --------------------------------------------------------------------------- */

typedef struct named_tensor {
    const char *name;
    cnn_tensor *tensor;
} named_tensor;

static int by_name(const void *a, const void *b) {
    return strcmp(((const named_tensor *)a)->name, ((const named_tensor *)b)->name);
}

/* The tensors of argument 2 into a userdata array of n entries (left on the stack). The name strings
 * stay alive because the argument table refers to them. */
static named_tensor *collect_tensors(lua_State *L, int *n_out) {
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_Integer list_length = (lua_Integer)lua_rawlen(L, 2);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 2)) {
        n++;
        lua_pop(L, 1);
    }
    if (list_length > 0 && n != list_length)
        luaL_argerror(L, 2, "mixes a list of {name, tensor} pairs with name = tensor fields");
    named_tensor *items = lua_newuserdatauv(L, sizeof *items * (size_t)(n > 0 ? n : 1), 0);
    if (list_length > 0) {
        for (int i = 0; i < n; i++) {
            lua_rawgeti(L, 2, i + 1);
            int pair = lua_gettop(L);
            if (!lua_istable(L, pair))
                luaL_error(L, "safetensors_save: entry %d of the list must be a {name, tensor} pair, "
                           "not a %s", i + 1, luaL_typename(L, pair));
            lua_rawgeti(L, pair, 1);
            lua_rawgeti(L, pair, 2);
            if (lua_type(L, -2) != LUA_TSTRING || !lcnn_is_tensor(L, -1))
                luaL_error(L, "safetensors_save: entry %d of the list must be a {name, tensor} pair "
                           "(found {%s, %s})", i + 1, luaL_typename(L, -2), luaL_typename(L, -1));
            items[i].name = lua_tostring(L, -2);
            items[i].tensor = lcnn_check(L, -1);
            lua_pop(L, 3);
        }
    } else {
        int i = 0;
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_error(L, "safetensors_save: tensor names must be strings (found a %s key)",
                           luaL_typename(L, -2));
            if (!lcnn_is_tensor(L, -1))
                luaL_error(L, "safetensors_save: '%s' must be a tensor, not a %s", lua_tostring(L, -2),
                           luaL_typename(L, -1));
            items[i].name = lua_tostring(L, -2);
            items[i].tensor = lcnn_check(L, -1);
            i++;
            lua_pop(L, 1);
        }
        qsort(items, (size_t)n, sizeof *items, by_name);
    }
    *n_out = n;
    return items;
}

static void add_json_string(luaL_Buffer *b, const char *s, size_t len) {
    luaL_addchar(b, '"');
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            luaL_addchar(b, '\\');
            luaL_addchar(b, (char)c);
        } else if (c < 0x20) {
            char escaped[8];
            snprintf(escaped, sizeof escaped, "\\u%04x", c);
            luaL_addstring(b, escaped);
        } else {
            luaL_addchar(b, (char)c);
        }
    }
    luaL_addchar(b, '"');
}

static int by_string(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Argument 3 (a table of strings, or nil) as JSON text pushed on the stack, keys sorted; NULL for
 * nil. */
static const char *metadata_json(lua_State *L) {
    if (lua_isnoneornil(L, 3)) return NULL;
    luaL_checktype(L, 3, LUA_TTABLE);
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "safetensors_save: metadata keys must be strings (found a %s key)",
                       luaL_typename(L, -2));
        int type = lua_type(L, -1);
        if (type != LUA_TSTRING && type != LUA_TNUMBER)
            luaL_error(L, "safetensors_save: metadata '%s' must be a string or a number, not a %s",
                       lua_tostring(L, -2), luaL_typename(L, -1));
        n++;
        lua_pop(L, 1);
    }
    const char **keys = lua_newuserdatauv(L, sizeof *keys * (size_t)(n > 0 ? n : 1), 0);
    int i = 0;
    lua_pushnil(L);
    while (lua_next(L, 3)) {
        keys[i++] = lua_tostring(L, -2);
        lua_pop(L, 1);
    }
    qsort(keys, (size_t)n, sizeof *keys, by_string);
    /* The values as strings (numbers in Lua's own format), anchored in a table: while the buffer
     * below is open nothing else may be pushed, since the buffer keeps its storage on the stack. */
    lua_createtable(L, n, 0);
    int values = lua_gettop(L);
    for (i = 0; i < n; i++) {
        lua_getfield(L, 3, keys[i]);
        luaL_tolstring(L, -1, NULL);
        lua_rawseti(L, values, i + 1);
        lua_pop(L, 1);
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addchar(&b, '{');
    for (i = 0; i < n; i++) {
        if (i > 0) luaL_addchar(&b, ',');
        add_json_string(&b, keys[i], strlen(keys[i]));
        luaL_addchar(&b, ':');
        lua_rawgeti(L, values, i + 1);
        size_t len;
        const char *value = lua_tolstring(L, -1, &len);
        lua_pop(L, 1); /* still referenced by the values table */
        add_json_string(&b, value, len);
    }
    luaL_addchar(&b, '}');
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

static int l_safetensors_save(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    lua_settop(L, 3); /* the metadata argument stays at 3 as scratch values are pushed above it */
    int n = 0;
    named_tensor *items = collect_tensors(L, &n);
    const char *metadata = metadata_json(L);
    const char **names = lua_newuserdatauv(L, sizeof *names * (size_t)(n > 0 ? n : 1), 0);
    cnn_tensor **tensors = lua_newuserdatauv(L, sizeof *tensors * (size_t)(n > 0 ? n : 1), 0);
    for (int i = 0; i < n; i++) {
        names[i] = items[i].name;
        tensors[i] = items[i].tensor;
    }
    lcnn_check_status(L, cnn_safetensors_save(path, n, names, tensors, metadata));
    return 0;
}

/* ---- safetensors_load --------------------------------------------------------------------------- */

/* Pushes the metadata JSON object (already checked to hold strings) as a Lua table. */
static void push_metadata(lua_State *L, const char *json) {
    io_box *box = push_box(L, release_json);
    cJSON *root = cJSON_Parse(json);
    if (!root) luaL_error(L, "safetensors_load: cannot read the metadata");
    box->resource = root;
    lua_newtable(L);
    for (const cJSON *item = root->child; item; item = item->next) {
        if (!cJSON_IsString(item)) continue;
        lua_pushstring(L, item->valuestring);
        lua_setfield(L, -2, item->string);
    }
    close_box(box);
    lua_remove(L, -2);
}

static int l_safetensors_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    io_box *box = push_box(L, release_safetensors);
    cnn_safetensors *f = cnn_safetensors_open(path);
    if (!f) return lcnn_error(L);
    box->resource = f;
    int count = cnn_safetensors_count(f);
    lua_createtable(L, 0, count);
    for (int i = 0; i < count; i++) {
        const char *name = cnn_safetensors_name(f, i);
        lcnn_push(L, cnn_safetensors_get(f, name));
        lua_setfield(L, -2, name);
    }
    push_metadata(L, cnn_safetensors_metadata(f));
    close_box(box);
    return 2;
}

/* ---- idx_load ----------------------------------------------------------------------------------- */

static int l_idx_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int scale = lua_toboolean(L, 2);
    cnn_tensor *t = cnn_idx_load(path, scale);
    if (t && cnn_ndim(t) == 1) {
        /* labels: 0-based in the file, 1-based in Lua */
        cnn_tensor *shifted = cnn_add_scalar(t, 1.0f);
        cnn_release(t);
        t = shifted;
    }
    return lcnn_push(L, t);
}

static const luaL_Reg io_functions[] = {
    {"safetensors_save", l_safetensors_save},
    {"safetensors_load", l_safetensors_load},
    {"idx_load", l_idx_load},
    {NULL, NULL},
};

void lcnn_open_io(lua_State *L) {
    if (luaL_newmetatable(L, IO_BOX)) {
        lua_pushcfunction(L, io_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, io_functions, 0);
}
