/* Lua bindings of convolution, pooling, padding and resampling:
 *   cnn.conv2d(input, weight, bias?, {stride=1, padding=0, dilation=1, groups=1})
 *   cnn.conv_transpose2d(input, weight, bias?, {stride, padding, output_padding, groups, dilation})
 *   cnn.max_pool2d(input, kernel, {stride=kernel, padding=0, dilation=1, ceil_mode=false})
 *   cnn.avg_pool2d(input, kernel, {stride=kernel, padding=0, ceil_mode=false, count_include_pad=true})
 *   cnn.adaptive_avg_pool2d(input, {oh, ow} | n)
 *   cnn.upsample(input, {scale=2 | size={h, w}, mode="nearest"|"bilinear"})
 *   cnn.pad(input, {l, r, t, b}, mode?, value?)
 * Sizes given as one number apply to both height and width. The bias may be left out entirely
 * (cnn.conv2d(x, w, {stride=2})). Unknown option names are errors, so a typo never goes unnoticed. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lcnn.h"

/* Raises an error unless the value at t is nil/none or a table whose keys are all in allowed. */
static void check_options(lua_State *L, int t, const char *fname, const char *const *allowed) {
    if (lua_isnoneornil(L, t)) return;
    if (lua_type(L, t) != LUA_TTABLE)
        luaL_error(L, "%s: options must be a table, got %s", fname, luaL_typename(L, t));
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1); /* the value */
        int known = 0;
        if (lua_type(L, -1) == LUA_TSTRING)
            for (const char *const *a = allowed; *a && !known; a++)
                known = strcmp(*a, lua_tostring(L, -1)) == 0;
        if (!known) {
            const char *key = luaL_tolstring(L, -1, NULL);
            luaL_Buffer b;
            luaL_buffinit(L, &b);
            for (const char *const *a = allowed; *a; a++) {
                if (a != allowed) luaL_addstring(&b, ", ");
                luaL_addstring(&b, *a);
            }
            luaL_pushresult(&b);
            luaL_error(L, "%s: unknown option '%s' (known options: %s)", fname, key, lua_tostring(L, -1));
        }
    }
}

/* The integer at index i (a number with an integral value, clamped to int32), or *ok = 0. */
static int32_t int32_at(lua_State *L, int i, int *ok) {
    lua_Integer v = lua_type(L, i) == LUA_TNUMBER ? lua_tointegerx(L, i, ok) : (*ok = 0);
    return (int32_t)(v > INT32_MAX ? INT32_MAX : v < INT32_MIN ? INT32_MIN : v);
}

/* A size argument (not an option): an integer or a pair {h, w} of them. */
static void check_pair_arg(lua_State *L, int i, const char *fname, const char *what, int32_t out[2]) {
    int ok;
    if (lua_type(L, i) == LUA_TNUMBER) {
        out[0] = out[1] = int32_at(L, i, &ok);
        if (!ok) luaL_error(L, "%s: %s must be an integer, got %s", fname, what, lua_tostring(L, i));
        return;
    }
    if (lua_type(L, i) == LUA_TTABLE && luaL_len(L, i) == 2) {
        for (int k = 0; k < 2; k++) {
            lua_geti(L, i, k + 1);
            out[k] = int32_at(L, -1, &ok);
            if (!ok)
                luaL_error(L, "%s: %s must hold integers, got %s", fname, what, luaL_tolstring(L, -1, NULL));
            lua_pop(L, 1);
        }
        return;
    }
    luaL_error(L, "%s: %s must be an integer or a pair {h, w}, got %s", fname, what, luaL_typename(L, i));
}

static int has_field(lua_State *L, int t, const char *name) {
    if (lua_isnoneornil(L, t)) return 0;
    int present = lua_getfield(L, t, name) != LUA_TNIL;
    lua_pop(L, 1);
    return present;
}

/* ---- convolutions ----------------------------------------------------------------------------- */
static const char *const conv2d_options[] = {"stride", "padding", "dilation", "groups", NULL};
static const char *const conv_transpose2d_options[] = {"stride", "padding",  "output_padding",
                                                       "groups", "dilation", NULL};

/* Arguments 3 and 4: (bias, options), (options) or (bias). Returns the bias; *opt gets the index of
 * the options table (possibly none). */
static cnn_tensor *bias_and_options(lua_State *L, const char *fname, int *opt) {
    if (lua_type(L, 3) == LUA_TTABLE) {
        if (!lua_isnoneornil(L, 4))
            luaL_error(L, "%s: options given twice (argument 3 is the options table; the bias comes first)",
                       fname);
        *opt = 3;
        return NULL;
    }
    *opt = 4;
    return lcnn_opt(L, 3);
}

/* padding: a number, a pair, or the strings "same" / "valid". */
static void read_padding(lua_State *L, int t, const char *fname, cnn_conv2d_options *o) {
    if (lua_isnoneornil(L, t)) return;
    if (lua_getfield(L, t, "padding") == LUA_TSTRING) {
        const char *s = lua_tostring(L, -1);
        if (strcmp(s, "same") == 0)
            o->padding_mode = CNN_PAD_SAME;
        else if (strcmp(s, "valid") == 0)
            o->padding_mode = CNN_PAD_VALID;
        else
            luaL_error(
                L, "%s: option 'padding' must be a number, a pair {h, w}, \"same\" or \"valid\", got \"%s\"",
                fname, s);
        lua_pop(L, 1);
        return;
    }
    lua_pop(L, 1);
    lcnn_opt_pair_field(L, t, fname, "padding", o->padding, 0);
}

static cnn_conv2d_options read_conv_options(lua_State *L, int t, const char *fname, int transposed) {
    check_options(L, t, fname, transposed ? conv_transpose2d_options : conv2d_options);
    cnn_conv2d_options o = cnn_conv2d_defaults();
    lcnn_opt_pair_field(L, t, fname, "stride", o.stride, 1);
    lcnn_opt_pair_field(L, t, fname, "dilation", o.dilation, 1);
    read_padding(L, t, fname, &o);
    o.groups = lcnn_opt_int_field(L, t, fname, "groups", 1);
    if (transposed) lcnn_opt_pair_field(L, t, fname, "output_padding", o.output_padding, 0);
    return o;
}

static int convolution(lua_State *L, const char *fname, int transposed) {
    cnn_tensor *input = lcnn_check(L, 1), *weight = lcnn_check(L, 2);
    int opt;
    cnn_tensor *bias = bias_and_options(L, fname, &opt);
    cnn_conv2d_options o = read_conv_options(L, opt, fname, transposed);
    return lcnn_push(L, transposed ? cnn_conv_transpose2d(input, weight, bias, &o)
                                   : cnn_conv2d(input, weight, bias, &o));
}

static int l_conv2d(lua_State *L) { return convolution(L, "conv2d", 0); }
static int l_conv_transpose2d(lua_State *L) { return convolution(L, "conv_transpose2d", 1); }

/* ---- pooling ---------------------------------------------------------------------------------- */
static const char *const max_pool_options[] = {"stride", "padding", "dilation", "ceil_mode", NULL};
static const char *const avg_pool_options[] = {"stride", "padding", "ceil_mode", "count_include_pad", NULL};

static cnn_pool2d_options read_pool_options(lua_State *L, const char *fname, int is_max) {
    int32_t kernel[2];
    check_pair_arg(L, 2, fname, "kernel", kernel);
    check_options(L, 3, fname, is_max ? max_pool_options : avg_pool_options);
    cnn_pool2d_options o = cnn_pool2d_defaults(kernel[0], kernel[1]);
    if (has_field(L, 3, "stride")) {
        lcnn_opt_pair_field(L, 3, fname, "stride", o.stride, 0);
        /* the runtime reads 0 as "equal to the kernel"; an explicit 0 is a mistake */
        if (o.stride[0] < 1 || o.stride[1] < 1)
            luaL_error(L, "%s: option 'stride' must be positive, got %dx%d", fname, o.stride[0], o.stride[1]);
    }
    lcnn_opt_pair_field(L, 3, fname, "padding", o.padding, 0);
    if (is_max) lcnn_opt_pair_field(L, 3, fname, "dilation", o.dilation, 1);
    o.ceil_mode = lcnn_opt_bool_field(L, 3, fname, "ceil_mode", 0);
    if (!is_max) o.count_include_pad = lcnn_opt_bool_field(L, 3, fname, "count_include_pad", 1);
    return o;
}

static int l_max_pool2d(lua_State *L) {
    cnn_tensor *input = lcnn_check(L, 1);
    cnn_pool2d_options o = read_pool_options(L, "max_pool2d", 1);
    return lcnn_push(L, cnn_max_pool2d(input, &o));
}

static int l_avg_pool2d(lua_State *L) {
    cnn_tensor *input = lcnn_check(L, 1);
    cnn_pool2d_options o = read_pool_options(L, "avg_pool2d", 0);
    return lcnn_push(L, cnn_avg_pool2d(input, &o));
}

static int l_adaptive_avg_pool2d(lua_State *L) {
    cnn_tensor *input = lcnn_check(L, 1);
    int32_t size[2];
    check_pair_arg(L, 2, "adaptive_avg_pool2d", "output size", size);
    return lcnn_push(L, cnn_adaptive_avg_pool2d(input, size[0], size[1]));
}

/* ---- resampling and padding ------------------------------------------------------------------- */
static const char *const upsample_options[] = {"scale", "size", "mode", NULL};

/* scale: a positive number or a pair of them; the output is floor(size * scale) as in PyTorch. */
static void read_scale(lua_State *L, int t, double scale[2]) {
    lua_getfield(L, t, "scale");
    if (lua_type(L, -1) == LUA_TNUMBER) {
        scale[0] = scale[1] = lua_tonumber(L, -1);
    } else if (lua_type(L, -1) == LUA_TTABLE && luaL_len(L, -1) == 2) {
        for (int k = 0; k < 2; k++) {
            lua_geti(L, -1, k + 1);
            if (lua_type(L, -1) != LUA_TNUMBER)
                luaL_error(L, "upsample: option 'scale' must hold numbers, got %s", luaL_typename(L, -1));
            scale[k] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
    } else {
        luaL_error(L, "upsample: option 'scale' must be a number or a pair {h, w}, got %s",
                   luaL_typename(L, -1));
    }
    lua_pop(L, 1);
    if (!(scale[0] > 0 && scale[1] > 0 && isfinite(scale[0]) && isfinite(scale[1]))) {
        char buf[64]; /* lua_pushfstring knows no %g */
        snprintf(buf, sizeof buf, "%g x %g", scale[0], scale[1]);
        luaL_error(L, "upsample: option 'scale' must be positive and finite, got %s", buf);
    }
}

static int l_upsample(lua_State *L) {
    cnn_tensor *input = lcnn_check(L, 1);
    check_options(L, 2, "upsample", upsample_options);
    const char *mode_name = lcnn_opt_string_field(L, 2, "upsample", "mode", "nearest");
    cnn_upsample_mode mode;
    if (strcmp(mode_name, "nearest") == 0)
        mode = CNN_UPSAMPLE_NEAREST;
    else if (strcmp(mode_name, "bilinear") == 0)
        mode = CNN_UPSAMPLE_BILINEAR;
    else
        return luaL_error(L, "upsample: option 'mode' must be \"nearest\" or \"bilinear\", got \"%s\"",
                          mode_name);
    const int ndim = cnn_ndim(input);
    if (ndim < 2) return luaL_error(L, "upsample: expected a 3-d or 4-d input but got %d dimensions", ndim);
    const int64_t h = cnn_size(input, ndim - 2), w = cnn_size(input, ndim - 1);
    int64_t out[2];
    const int by_size = has_field(L, 2, "size"), by_scale = has_field(L, 2, "scale");
    if (by_size && by_scale)
        return luaL_error(L, "upsample: give either option 'size' or option 'scale', not both");
    if (by_size) {
        int32_t size[2];
        lcnn_opt_pair_field(L, 2, "upsample", "size", size, 0);
        out[0] = size[0], out[1] = size[1];
    } else {
        double scale[2] = {2, 2};
        if (by_scale) read_scale(L, 2, scale);
        const double oh = floor((double)h * scale[0]), ow = floor((double)w * scale[1]);
        if (oh > 1e12 || ow > 1e12)
            return luaL_error(L, "upsample: option 'scale' gives an output far too large");
        out[0] = (int64_t)oh, out[1] = (int64_t)ow;
    }
    return lcnn_push(L, cnn_upsample2d(input, out[0], out[1], mode));
}

static int l_pad(lua_State *L) {
    cnn_tensor *input = lcnn_check(L, 1);
    int32_t pads[4] = {0, 0, 0, 0};
    int ok;
    if (lua_type(L, 2) == LUA_TNUMBER) {
        pads[0] = pads[1] = pads[2] = pads[3] = int32_at(L, 2, &ok);
        if (!ok) return luaL_error(L, "pad: pads must be integers, got %s", lua_tostring(L, 2));
    } else {
        const lua_Integer n = lua_type(L, 2) == LUA_TTABLE ? luaL_len(L, 2) : -1;
        if (n != 2 && n != 4)
            return luaL_error(
                L, "pad: pads must be a table {left, right} or {left, right, top, bottom}, got %s",
                n < 0 ? luaL_typename(L, 2) : lua_pushfstring(L, "a table of %d values", (int)n));
        for (int k = 0; k < n; k++) {
            lua_geti(L, 2, k + 1);
            pads[k] = int32_at(L, -1, &ok);
            if (!ok)
                return luaL_error(L, "pad: pads must be integers, got %s in position %d",
                                  luaL_tolstring(L, -1, NULL), k + 1);
            lua_pop(L, 1);
        }
    }
    static const char *const modes[] = {"constant", "reflect", "replicate", "circular", NULL};
    if (!lua_isnoneornil(L, 3) && lua_type(L, 3) != LUA_TSTRING)
        return luaL_error(L, "pad: mode must be a string (constant, reflect, replicate or circular), got %s",
                          luaL_typename(L, 3));
    const char *mode_name = luaL_optstring(L, 3, "constant");
    int mode = -1;
    for (int k = 0; modes[k]; k++)
        if (strcmp(modes[k], mode_name) == 0) mode = k;
    if (mode < 0)
        return luaL_error(L, "pad: mode must be constant, reflect, replicate or circular, got \"%s\"",
                          mode_name);
    float value = 0;
    if (!lua_isnoneornil(L, 4)) {
        if (lua_type(L, 4) != LUA_TNUMBER)
            return luaL_error(L, "pad: value must be a number, got %s", luaL_typename(L, 4));
        if (mode != CNN_PAD_CONSTANT)
            return luaL_error(L, "pad: a fill value only applies to mode \"constant\", not \"%s\"",
                              mode_name);
        value = (float)lua_tonumber(L, 4);
    }
    return lcnn_push(L, cnn_pad2d(input, pads, (cnn_pad_mode)mode, value));
}

static const luaL_Reg conv_functions[] = {
    {"conv2d", l_conv2d},
    {"conv_transpose2d", l_conv_transpose2d},
    {"max_pool2d", l_max_pool2d},
    {"avg_pool2d", l_avg_pool2d},
    {"adaptive_avg_pool2d", l_adaptive_avg_pool2d},
    {"upsample", l_upsample},
    {"pad", l_pad},
    {NULL, NULL},
};

void lcnn_open_conv(lua_State *L) { luaL_setfuncs(L, conv_functions, 0); }
