/* The runtime starts thread pools (OpenMP, OpenBLAS) that outlive any single call. If the object
 * holding it were unloaded while those threads exist (Lua unloads C modules when a state closes,
 * LuaJIT when an ffi.load handle is collected), the threads would run unmapped code and crash the
 * process at exit. So the object containing the runtime pins itself in memory the first time it
 * allocates a tensor (not in a constructor: an object still being loaded cannot be pinned yet). */
#include <dlfcn.h>
#include <pthread.h>

#include "internal.h"

static pthread_once_t pinned = PTHREAD_ONCE_INIT;

static void pin_this_object(void) {
    Dl_info info;
    if (dladdr((void *)&pin_this_object, &info) && info.dli_fname)
        dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

void cnn_pin_library(void) { pthread_once(&pinned, pin_this_object); }
