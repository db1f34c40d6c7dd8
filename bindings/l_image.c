/* Placeholder: this area's Lua functions are registered here. */
#include "lcnn.h"

void lcnn_open_image(lua_State *L) { (void)L; }
