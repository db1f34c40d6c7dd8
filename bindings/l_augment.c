/* Placeholder: this area's Lua functions are registered here. */
#include "lcnn.h"

void lcnn_open_augment(lua_State *L) { (void)L; }
