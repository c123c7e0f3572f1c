/* lua_module.c: the entry point lua5.4 looks for in registrar.so. */
#include <lua.h>

#include "lua_registrar.h"

/* luaopen_registrar is defined in lua_registrar.c; this file only exists
 * so the module target has a source of its own. */
int registrar_module_anchor(void);
int registrar_module_anchor(void) { return 0; }
