/* cnn.h - include this from C. It pulls in the standard types that cnn_api.h uses and then the API
 * itself, which is kept free of preprocessor lines so LuaJIT's ffi.cdef can read it unchanged. */
#ifndef CNN_H
#define CNN_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "cnn_api.h"

#ifdef __cplusplus
}
#endif

#endif /* CNN_H */
