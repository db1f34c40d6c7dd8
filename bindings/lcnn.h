/* lcnn.h - what the Lua binding files share: the tensor userdata, argument helpers and the
 * registration hooks of each area. The bindings hold no numerics: they check and convert arguments,
 * call the runtime and turn its errors into Lua errors.
 *
 * Lua is 1-based: dims and indices arriving from Lua are converted with lcnn_checkdim/lcnn_checkindex,
 * and index-valued results (argmax, labels) are shifted by one on the way out. */
#ifndef LCNN_H
#define LCNN_H

#include <stdbool.h>

#include <lauxlib.h>
#include <lua.h>

#include "cnn.h"

#define LCNN_TENSOR "cnn.Tensor"

/* The userdata holds one reference to a runtime tensor. */
typedef struct lcnn_tensor {
    cnn_tensor *t;
} lcnn_tensor;

/* Argument i must be a tensor. */
cnn_tensor *lcnn_check(lua_State *L, int i);
/* Tensor or nil/none (NULL). */
cnn_tensor *lcnn_opt(lua_State *L, int i);
/* Tensor, or a number turned into a 0-d tensor that is released when the Lua call ends (it is
 * anchored as a userdata on the stack). */
cnn_tensor *lcnn_check_or_number(lua_State *L, int i);
int lcnn_is_tensor(lua_State *L, int i);
/* Pushes t as a new userdata, taking over the caller's reference. t == NULL raises the runtime's
 * last error as a Lua error. Also tells the collector about tensor memory (see lcnn_account). */
int lcnn_push(lua_State *L, cnn_tensor *t);
/* Raises the runtime's last error; use as `return lcnn_error(L)`. */
int lcnn_error(lua_State *L);
/* Raises the runtime's last error when status is not CNN_OK. */
void lcnn_check_status(lua_State *L, cnn_status status);
/* Runs a full collection when tensor memory grew past the threshold since the last one, so that the
 * collector sees the C-side bytes Lua cannot. */
void lcnn_account(lua_State *L);

/* 1-based (negative counts from the end) dim argument i for a tensor of ndim dims -> 0-based. */
int lcnn_checkdim(lua_State *L, int i, int ndim);
int lcnn_optdim(lua_State *L, int i, int ndim, int def0);
/* Reads a shape given either as varargs of integers starting at i or as one table at i. */
int lcnn_checkshape(lua_State *L, int i, int64_t shape[CNN_MAX_DIMS], const char *fname);

/* Options tables: the value of field name in the table at index t (absent or nil -> def). A pair
 * accepts a number (both values) or a {a, b} table. Wrong types raise errors naming fname.field. */
int lcnn_opt_int_field(lua_State *L, int t, const char *fname, const char *name, int def);
double lcnn_opt_number_field(lua_State *L, int t, const char *fname, const char *name, double def);
int lcnn_opt_bool_field(lua_State *L, int t, const char *fname, const char *name, int def);
void lcnn_opt_pair_field(lua_State *L, int t, const char *fname, const char *name, int32_t out[2],
                         int def);
/* The field as a string, or def; the result is valid while the table is on the stack. */
const char *lcnn_opt_string_field(lua_State *L, int t, const char *fname, const char *name,
                                  const char *def);
cnn_tensor *lcnn_opt_tensor_field(lua_State *L, int t, const char *fname, const char *name);

/* Adds functions to the method table shared by all tensors (x:name(...)). */
void lcnn_add_methods(lua_State *L, const luaL_Reg *methods);

/* Each area registers its functions into the module table at the top of the stack. */
void lcnn_open_tensor(lua_State *L);   /* creation, views, metamethods, printing */
void lcnn_open_math(lua_State *L);     /* elementwise, reductions, matmul */
void lcnn_open_autograd(lua_State *L); /* backward, no_grad, requires_grad, grad */
void lcnn_open_conv(lua_State *L);     /* conv2d, conv_transpose2d, pooling, upsample, pad */
void lcnn_open_layers(lua_State *L);   /* softmax, batch_norm, dropout, losses */
void lcnn_open_optim(lua_State *L);    /* fused optimizer steps, clip_grad_norm */
void lcnn_open_io(lua_State *L);       /* safetensors, idx */
void lcnn_open_util(lua_State *L);     /* timer, threads, seed, memory */
void lcnn_open_augment(lua_State *L);  /* batch augmentation kernels */
void lcnn_open_image(lua_State *L);    /* image files, resize, grids */
void lcnn_open_prefetch(lua_State *L); /* loader worker threads */
void lcnn_open_interrupt(lua_State *L); /* deferred Ctrl-C */

int luaopen_cnn_core(lua_State *L);

#endif /* LCNN_H */
