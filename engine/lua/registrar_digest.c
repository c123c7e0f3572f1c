/* registrar_digest.c: registrar.digest(s), 16 hex digits (FNV-1a, 64
 * bits) that change when s does.  For noticing changes (a backend that
 * cannot store a whole document compares digests), not for security. */
#include <lauxlib.h>

#include "core/digest.h"
#include "lua/modules.h"

static int digest(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    char hex[DIGEST_HEX_LEN + 1];
    digest_fnv(s, n, hex);
    lua_pushstring(L, hex);
    return 1;
}

int registrar_digest_open(lua_State *L, const struct registrar_env *env)
{
    (void)env;
    lua_pushcfunction(L, digest);
    return 1;
}
