/* l_image.c - image files, resizing, grids, CIFAR batches and directory listings from Lua; cnn.image
 * (scripts/cnn/image.lua) and the dataset readers build on these:
 *
 *   cnn._image_load(path, channels?) --> C x H x W tensor in [0, 1]   (channels 0/nil: as stored)
 *   cnn._image_decode(bytes, channels?, name?) --> the same, from a string holding a file's contents
 *   cnn._image_save(path, image, quality?)       PNG/JPEG/BMP/TGA by extension; quality for JPEG (95)
 *   cnn._image_resize(image, h, w, mode?)        mode "bilinear" (default), "nearest" or "area"
 *   cnn._image_grid(batch, {nrow=8, padding=2, pad_value=0, normalize=false, scale_each=false,
 *                           range={low, high}})
 *   cnn._cifar_load(path, label_bytes, label_byte) --> images (N x 3 x 32 x 32), labels (N, 1-based)
 *   cnn._list_dir(path) --> {{name=, kind="file"|"directory"|"other"}, ...} sorted by name, without
 *                           "." and ".."; symbolic links are followed */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lcnn.h"

static int l_image_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int channels = (int)luaL_optinteger(L, 2, 0);
    return lcnn_push(L, cnn_image_load(path, channels));
}

static int l_image_decode(lua_State *L) {
    size_t n;
    const char *bytes = luaL_checklstring(L, 1, &n);
    int channels = (int)luaL_optinteger(L, 2, 0);
    const char *name = luaL_optstring(L, 3, "(memory)");
    return lcnn_push(L, cnn_image_decode(bytes, n, channels, name));
}

static int l_image_save(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    cnn_tensor *image = lcnn_check(L, 2);
    int quality = (int)luaL_optinteger(L, 3, 95);
    lcnn_check_status(L, cnn_image_save(path, image, quality));
    return 0;
}

static int l_image_resize(lua_State *L) {
    cnn_tensor *image = lcnn_check(L, 1);
    lua_Integer h = luaL_checkinteger(L, 2), w = luaL_checkinteger(L, 3);
    static const char *const modes[] = {"nearest", "bilinear", "area", NULL};
    int mode = luaL_checkoption(L, 4, "bilinear", modes);
    return lcnn_push(L, cnn_image_resize(image, (int64_t)h, (int64_t)w, (cnn_resize_mode)mode));
}

static int l_image_grid(lua_State *L) {
    cnn_tensor *batch = lcnn_check(L, 1);
    const char *fname = "image.grid";
    cnn_grid_options o = cnn_grid_defaults();
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        o.nrow = lcnn_opt_int_field(L, 2, fname, "nrow", o.nrow);
        o.padding = lcnn_opt_int_field(L, 2, fname, "padding", o.padding);
        o.pad_value = (float)lcnn_opt_number_field(L, 2, fname, "pad_value", 0);
        o.normalize = lcnn_opt_bool_field(L, 2, fname, "normalize", 0);
        o.scale_each = lcnn_opt_bool_field(L, 2, fname, "scale_each", 0);
        if (lua_getfield(L, 2, "range") != LUA_TNIL) {
            if (!lua_istable(L, -1)) return luaL_error(L, "%s: option 'range' must be a pair {low, high}", fname);
            for (int k = 0; k < 2; k++) {
                lua_geti(L, -1, k + 1);
                int isnum;
                o.range[k] = (float)lua_tonumberx(L, -1, &isnum);
                if (!isnum) return luaL_error(L, "%s: option 'range' must be a pair {low, high}", fname);
                lua_pop(L, 1);
            }
            o.use_range = 1;
        }
        lua_pop(L, 1);
    }
    return lcnn_push(L, cnn_image_grid(batch, &o));
}

static int l_cifar_load(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    int label_bytes = (int)luaL_checkinteger(L, 2);
    int label_byte = (int)luaL_checkinteger(L, 3);
    cnn_tensor *labels = NULL;
    cnn_tensor *images = cnn_cifar_load(path, label_bytes, label_byte - 1, &labels);
    if (!images) return lcnn_error(L);
    lcnn_push(L, images);
    cnn_tensor *shifted = cnn_add_scalar(labels, 1.0f); /* 0-based in the file, 1-based in Lua */
    cnn_release(labels);
    return lcnn_push(L, shifted) + 1;
}

/* ---- directory listing ------------------------------------------------------------------------------ */

#define DIR_BOX "cnn.dir_handle"

static int dir_box_gc(lua_State *L) {
    DIR **d = luaL_checkudata(L, 1, DIR_BOX);
    if (*d) closedir(*d);
    *d = NULL;
    return 0;
}

typedef struct dir_entry {
    const char *name; /* anchored in the scratch table of l_list_dir */
    const char *kind;
} dir_entry;

static int by_name(const void *a, const void *b) {
    return strcmp(((const dir_entry *)a)->name, ((const dir_entry *)b)->name);
}

static int l_list_dir(lua_State *L) {
    const char *path = luaL_checkstring(L, 1);
    DIR **d = lua_newuserdatauv(L, sizeof *d, 0); /* closed by __gc should an error interrupt the listing */
    *d = NULL;
    luaL_setmetatable(L, DIR_BOX);
    *d = opendir(path);
    if (!*d) return luaL_error(L, "list_dir: cannot open %s: %s", path, strerror(errno));
    lua_newtable(L); /* scratch: names and kinds alternate, keeping the strings alive */
    const int scratch = lua_gettop(L);
    int n = 0;
    struct dirent *entry;
    while ((entry = readdir(*d)) != NULL) {
        const char *name = entry->d_name;
        if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) continue;
        const char *full = lua_pushfstring(L, "%s/%s", path, name);
        struct stat info;
        const char *kind = "other";
        if (stat(full, &info) == 0) {
            if (S_ISDIR(info.st_mode)) kind = "directory";
            else if (S_ISREG(info.st_mode)) kind = "file";
        }
        lua_pop(L, 1);
        lua_pushstring(L, name);
        lua_rawseti(L, scratch, 2 * n + 1);
        lua_pushstring(L, kind);
        lua_rawseti(L, scratch, 2 * n + 2);
        n++;
    }
    closedir(*d);
    *d = NULL;
    dir_entry *entries = lua_newuserdatauv(L, sizeof *entries * (size_t)(n > 0 ? n : 1), 0);
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, scratch, 2 * i + 1);
        entries[i].name = lua_tostring(L, -1);
        lua_rawgeti(L, scratch, 2 * i + 2);
        entries[i].kind = lua_tostring(L, -1);
        lua_pop(L, 2);
    }
    /* byte-wise order, never the locale's */
    qsort(entries, (size_t)n, sizeof *entries, by_name);
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_createtable(L, 0, 2);
        lua_pushstring(L, entries[i].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, entries[i].kind);
        lua_setfield(L, -2, "kind");
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

static const luaL_Reg image_functions[] = {
    {"_image_load", l_image_load},
    {"_image_decode", l_image_decode},
    {"_image_save", l_image_save},
    {"_image_resize", l_image_resize},
    {"_image_grid", l_image_grid},
    {"_cifar_load", l_cifar_load},
    {"_list_dir", l_list_dir},
    {NULL, NULL},
};

void lcnn_open_image(lua_State *L) {
    if (luaL_newmetatable(L, DIR_BOX)) {
        lua_pushcfunction(L, dir_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, image_functions, 0);
}
