/* l_augment.c - augmentation pipelines from Lua. cnn.aug (scripts/cnn/aug.lua) turns the user's
 * options into stage tables and builds pipelines with:
 *
 *   cnn._aug_pipeline{stage, ...} --> pipeline
 *       Each stage is a table {kind = "...", p = probability, ...fields of that kind}:
 *         affine        rotation, shift_x, shift_y, zoom_x, zoom_y, shear ({low, high} pairs),
 *                       shift_x_units, shift_y_units ("fraction" | "pixels" | "whole_pixels"),
 *                       zoom_same, flip_horizontal, flip_vertical (probabilities),
 *                       fill_mode ("nearest" | "constant" | "reflect" | "wrap"), cval,
 *                       sampling ("bilinear" | "nearest")
 *         flip          horizontal, vertical (probabilities)
 *         crop          size {h, w}, padding {left, right, top, bottom}, pad_mode ("constant" |
 *                       "reflect" | "replicate" | "circular"), pad_value, pad_if_needed
 *         resized_crop  size, scale, ratio, sampling
 *         color         brightness, contrast, saturation, hue (ranges)
 *         noise         mean, std, clip
 *         erasing       scale, ratio, value (number, list, or "random")
 *         normalize     mean, std (lists)
 *         channel_shift range
 *         standardize   center, scale
 *         gate          count (the next count stages run together with probability p)
 *   pipeline:apply(x, seed?) --> a new tensor; without a seed one is drawn from cnn.manual_seed's
 *       generator. x is (N, C, H, W) or (C, H, W).
 *   pipeline:output_shape{C, H, W} --> {C', H', W'}
 *   #pipeline --> the number of stages
 *
 * The userdata (metatable "cnn.AugPipeline") starts with the cnn_aug_pipeline pointer, so C code that
 * runs pipelines on its own threads can take it from a Lua value (it must keep the Lua value alive
 * meanwhile; a built pipeline is never modified). */
#include <string.h>

#include "lcnn.h"

#define AUG_PIPELINE "cnn.AugPipeline"

typedef struct lcnn_aug_pipeline {
    cnn_aug_pipeline *pipeline;
} lcnn_aug_pipeline;

static const char *const fname = "_aug_pipeline";

/* ---- reading stage tables ------------------------------------------------------------------------- */

/* Field name of the table at t as a {low, high} pair (a number v means {v, v}). */
static void read_range(lua_State *L, int t, const char *name, float out[2], float def_low, float def_high) {
    out[0] = def_low;
    out[1] = def_high;
    int type = lua_getfield(L, t, name);
    if (type == LUA_TNUMBER) {
        out[0] = out[1] = (float)lua_tonumber(L, -1);
    } else if (type == LUA_TTABLE) {
        for (int k = 0; k < 2; k++) {
            lua_geti(L, -1, k + 1);
            int isnum;
            lua_Number v = lua_tonumberx(L, -1, &isnum);
            if (!isnum) luaL_error(L, "%s: field '%s' must be a pair of numbers", fname, name);
            out[k] = (float)v;
            lua_pop(L, 1);
        }
    } else if (type != LUA_TNIL) {
        luaL_error(L, "%s: field '%s' must be a number or a pair, got %s", fname, name, luaL_typename(L, -1));
    }
    lua_pop(L, 1);
}

/* Field name as one of names (index returned), or def when absent. */
static int read_choice(lua_State *L, int t, const char *name, const char *const names[], int def) {
    const char *s = lcnn_opt_string_field(L, t, fname, name, NULL);
    if (!s) return def;
    for (int i = 0; names[i]; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return luaL_error(L, "%s: field '%s' has the unknown value \"%s\"", fname, name, s);
}

/* Field name as a list of numbers (or one number) in a userdata buffer left on the stack. */
static float *read_numbers(lua_State *L, int t, const char *name, int *n) {
    int type = lua_getfield(L, t, name);
    int count = type == LUA_TNUMBER ? 1 : (type == LUA_TTABLE ? (int)luaL_len(L, -1) : 0);
    if (type != LUA_TNUMBER && type != LUA_TTABLE)
        luaL_error(L, "%s: field '%s' must be a number or a list of numbers, got %s", fname, name,
                   luaL_typename(L, -1));
    float *values = lua_newuserdatauv(L, sizeof(float) * (size_t)(count > 0 ? count : 1), 0);
    if (type == LUA_TNUMBER) {
        values[0] = (float)lua_tonumber(L, -2);
    } else {
        for (int i = 0; i < count; i++) {
            lua_geti(L, -2, i + 1);
            int isnum;
            lua_Number v = lua_tonumberx(L, -1, &isnum);
            if (!isnum) luaL_error(L, "%s: field '%s' must hold numbers (entry %d is not)", fname, name, i + 1);
            values[i] = (float)v;
            lua_pop(L, 1);
        }
    }
    lua_remove(L, -2);
    *n = count;
    return values;
}

static const char *const fill_modes[] = {"nearest", "constant", "reflect", "wrap", NULL};
static const char *const samplings[] = {"nearest", "bilinear", NULL};
static const char *const shift_units[] = {"fraction", "pixels", "whole_pixels", NULL};
static const char *const pad_modes[] = {"constant", "reflect", "replicate", "circular", NULL};

static cnn_status add_affine(lua_State *L, int t, cnn_aug_pipeline *p, float prob) {
    cnn_aug_affine o = cnn_aug_affine_defaults();
    read_range(L, t, "rotation", o.rotation, 0, 0);
    read_range(L, t, "shift_x", o.shift_x, 0, 0);
    read_range(L, t, "shift_y", o.shift_y, 0, 0);
    o.shift_x_units = read_choice(L, t, "shift_x_units", shift_units, CNN_SHIFT_PIXELS);
    o.shift_y_units = read_choice(L, t, "shift_y_units", shift_units, CNN_SHIFT_PIXELS);
    read_range(L, t, "zoom_x", o.zoom_x, 1, 1);
    read_range(L, t, "zoom_y", o.zoom_y, 1, 1);
    o.zoom_same = lcnn_opt_bool_field(L, t, fname, "zoom_same", 0);
    read_range(L, t, "shear", o.shear, 0, 0);
    o.flip_horizontal = (float)lcnn_opt_number_field(L, t, fname, "flip_horizontal", 0);
    o.flip_vertical = (float)lcnn_opt_number_field(L, t, fname, "flip_vertical", 0);
    o.fill_mode = read_choice(L, t, "fill_mode", fill_modes, CNN_FILL_NEAREST);
    o.cval = (float)lcnn_opt_number_field(L, t, fname, "cval", 0);
    o.sampling = read_choice(L, t, "sampling", samplings, CNN_SAMPLE_BILINEAR);
    return cnn_aug_add_affine(p, &o, prob);
}

static cnn_status add_crop(lua_State *L, int t, cnn_aug_pipeline *p) {
    cnn_aug_crop o;
    memset(&o, 0, sizeof o);
    lcnn_opt_pair_field(L, t, fname, "size", o.size, 0);
    int n;
    float *pad = read_numbers(L, t, "padding", &n);
    if (n != 4) luaL_error(L, "%s: crop padding must be {left, right, top, bottom}", fname);
    for (int k = 0; k < 4; k++) o.padding[k] = (int32_t)pad[k];
    lua_pop(L, 1);
    o.pad_mode = read_choice(L, t, "pad_mode", pad_modes, CNN_PAD_CONSTANT);
    o.pad_value = (float)lcnn_opt_number_field(L, t, fname, "pad_value", 0);
    o.pad_if_needed = lcnn_opt_bool_field(L, t, fname, "pad_if_needed", 0);
    return cnn_aug_add_crop(p, &o);
}

static cnn_status add_resized_crop(lua_State *L, int t, cnn_aug_pipeline *p) {
    cnn_aug_resized_crop o;
    memset(&o, 0, sizeof o);
    lcnn_opt_pair_field(L, t, fname, "size", o.size, 0);
    read_range(L, t, "scale", o.scale, 0.08f, 1.0f);
    read_range(L, t, "ratio", o.ratio, 3.0f / 4.0f, 4.0f / 3.0f);
    o.sampling = read_choice(L, t, "sampling", samplings, CNN_SAMPLE_BILINEAR);
    return cnn_aug_add_resized_crop(p, &o);
}

static cnn_status add_color(lua_State *L, int t, cnn_aug_pipeline *p, float prob) {
    cnn_aug_color o;
    read_range(L, t, "brightness", o.brightness, 1, 1);
    read_range(L, t, "contrast", o.contrast, 1, 1);
    read_range(L, t, "saturation", o.saturation, 1, 1);
    read_range(L, t, "hue", o.hue, 0, 0);
    return cnn_aug_add_color(p, &o, prob);
}

static cnn_status add_erasing(lua_State *L, int t, cnn_aug_pipeline *p, float prob) {
    cnn_aug_erasing o;
    memset(&o, 0, sizeof o);
    read_range(L, t, "scale", o.scale, 0.02f, 0.33f);
    read_range(L, t, "ratio", o.ratio, 0.3f, 3.3f);
    lua_getfield(L, t, "value");
    o.random_fill = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "random") == 0;
    int absent = lua_isnil(L, -1);
    lua_pop(L, 1);
    if (o.random_fill) return cnn_aug_add_erasing(p, &o, NULL, 0, prob);
    float zero = 0.0f;
    if (absent) return cnn_aug_add_erasing(p, &o, &zero, 1, prob);
    int n;
    float *values = read_numbers(L, t, "value", &n);
    return cnn_aug_add_erasing(p, &o, values, n, prob);
}

static cnn_status add_normalize(lua_State *L, int t, cnn_aug_pipeline *p) {
    int n_mean, n_std;
    float *mean = read_numbers(L, t, "mean", &n_mean);
    float *std = read_numbers(L, t, "std", &n_std);
    if (n_mean != n_std && n_mean != 1 && n_std != 1)
        luaL_error(L, "normalize: %d means but %d standard deviations", n_mean, n_std);
    int n = n_mean > n_std ? n_mean : n_std;
    float *both = lua_newuserdatauv(L, sizeof(float) * 2 * (size_t)(n > 0 ? n : 1), 0);
    for (int i = 0; i < n; i++) {
        both[i] = mean[n_mean == 1 ? 0 : i];
        both[n + i] = std[n_std == 1 ? 0 : i];
    }
    return cnn_aug_add_normalize(p, both, both + n, n);
}

static void add_stage(lua_State *L, int t, cnn_aug_pipeline *p, int index) {
    if (!lua_istable(L, t)) luaL_error(L, "%s: stage %d must be a table, got %s", fname, index, luaL_typename(L, t));
    const char *kind = lcnn_opt_string_field(L, t, fname, "kind", NULL);
    if (!kind) luaL_error(L, "%s: stage %d has no kind", fname, index);
    float prob = (float)lcnn_opt_number_field(L, t, fname, "p", 1.0);
    int top = lua_gettop(L);
    cnn_status status;
    if (strcmp(kind, "affine") == 0) {
        status = add_affine(L, t, p, prob);
    } else if (strcmp(kind, "flip") == 0) {
        status = cnn_aug_add_flip(p, (float)lcnn_opt_number_field(L, t, fname, "horizontal", 0),
                                  (float)lcnn_opt_number_field(L, t, fname, "vertical", 0));
    } else if (strcmp(kind, "crop") == 0) {
        status = add_crop(L, t, p);
    } else if (strcmp(kind, "resized_crop") == 0) {
        status = add_resized_crop(L, t, p);
    } else if (strcmp(kind, "color") == 0) {
        status = add_color(L, t, p, prob);
    } else if (strcmp(kind, "noise") == 0) {
        status = cnn_aug_add_noise(p, (float)lcnn_opt_number_field(L, t, fname, "mean", 0),
                                   (float)lcnn_opt_number_field(L, t, fname, "std", 0),
                                   lcnn_opt_bool_field(L, t, fname, "clip", 0), prob);
    } else if (strcmp(kind, "erasing") == 0) {
        status = add_erasing(L, t, p, prob);
    } else if (strcmp(kind, "normalize") == 0) {
        status = add_normalize(L, t, p);
    } else if (strcmp(kind, "channel_shift") == 0) {
        status = cnn_aug_add_channel_shift(p, (float)lcnn_opt_number_field(L, t, fname, "range", 0), prob);
    } else if (strcmp(kind, "standardize") == 0) {
        status = cnn_aug_add_standardize(p, lcnn_opt_bool_field(L, t, fname, "center", 0),
                                         lcnn_opt_bool_field(L, t, fname, "scale", 0));
    } else if (strcmp(kind, "gate") == 0) {
        status = cnn_aug_add_gate(p, prob, lcnn_opt_int_field(L, t, fname, "count", 0));
    } else {
        luaL_error(L, "%s: stage %d has the unknown kind \"%s\"", fname, index, kind);
        return;
    }
    lua_settop(L, top);
    lcnn_check_status(L, status);
}

/* ---- the pipeline userdata ------------------------------------------------------------------------ */

static lcnn_aug_pipeline *check_pipeline(lua_State *L, int i) { return luaL_checkudata(L, i, AUG_PIPELINE); }

static int l_aug_pipeline(lua_State *L) {
    luaL_checktype(L, 1, LUA_TTABLE);
    lcnn_aug_pipeline *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->pipeline = NULL;
    luaL_setmetatable(L, AUG_PIPELINE);
    box->pipeline = cnn_aug_pipeline_new();
    if (!box->pipeline) return lcnn_error(L);
    lua_Integer n = luaL_len(L, 1);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_geti(L, 1, i);
        add_stage(L, lua_gettop(L), box->pipeline, (int)i);
        lua_pop(L, 1);
    }
    return 1;
}

static int pipeline_gc(lua_State *L) {
    lcnn_aug_pipeline *box = check_pipeline(L, 1);
    cnn_aug_pipeline_free(box->pipeline);
    box->pipeline = NULL;
    return 0;
}

static int pipeline_apply(lua_State *L) {
    lcnn_aug_pipeline *box = check_pipeline(L, 1);
    cnn_tensor *x = lcnn_check(L, 2);
    uint64_t seed;
    if (lua_isnoneornil(L, 3)) {
        seed = cnn_aug_random_seed();
    } else {
        int isint;
        lua_Integer s = lua_tointegerx(L, 3, &isint);
        if (!isint) return luaL_argerror(L, 3, "the seed must be an integer");
        seed = (uint64_t)s;
    }
    return lcnn_push(L, cnn_aug_apply(box->pipeline, x, seed));
}

static int pipeline_output_shape(lua_State *L) {
    lcnn_aug_pipeline *box = check_pipeline(L, 1);
    luaL_checktype(L, 2, LUA_TTABLE);
    int64_t in[3], out[3];
    for (int k = 0; k < 3; k++) {
        lua_geti(L, 2, k + 1);
        int isint;
        in[k] = (int64_t)lua_tointegerx(L, -1, &isint);
        if (!isint) return luaL_argerror(L, 2, "expected {C, H, W}");
        lua_pop(L, 1);
    }
    lcnn_check_status(L, cnn_aug_output_shape(box->pipeline, in, out));
    lua_createtable(L, 3, 0);
    for (int k = 0; k < 3; k++) {
        lua_pushinteger(L, (lua_Integer)out[k]);
        lua_rawseti(L, -2, k + 1);
    }
    return 1;
}

static int pipeline_len(lua_State *L) {
    lua_pushinteger(L, cnn_aug_pipeline_length(check_pipeline(L, 1)->pipeline));
    return 1;
}

static int pipeline_tostring(lua_State *L) {
    lua_pushfstring(L, "cnn.AugPipeline (%d stages)", cnn_aug_pipeline_length(check_pipeline(L, 1)->pipeline));
    return 1;
}

static const luaL_Reg pipeline_methods[] = {
    {"apply", pipeline_apply},
    {"output_shape", pipeline_output_shape},
    {NULL, NULL},
};

static const luaL_Reg pipeline_meta[] = {
    {"__gc", pipeline_gc},
    {"__len", pipeline_len},
    {"__tostring", pipeline_tostring},
    {NULL, NULL},
};

static const luaL_Reg augment_functions[] = {
    {"_aug_pipeline", l_aug_pipeline},
    {NULL, NULL},
};

void lcnn_open_augment(lua_State *L) {
    if (luaL_newmetatable(L, AUG_PIPELINE)) {
        luaL_setfuncs(L, pipeline_meta, 0);
        luaL_newlib(L, pipeline_methods);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    luaL_setfuncs(L, augment_functions, 0);
}
