/* registrar_digest.c: registrar.digest(s), 16 hex digits (FNV-1a, 64
 * bits) that change when s does.  For noticing changes (a backend that
 * cannot store a whole document compares digests), not for security. */
#include <lauxlib.h>
#include <stdio.h>

#include "lua/modules.h"

static int digest(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    unsigned long long h = 14695981039346656037ULL;
    char hex[17];
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    snprintf(hex, sizeof hex, "%016llx", h);
    lua_pushstring(L, hex);
    return 1;
}

int registrar_digest_open(lua_State *L, const struct registrar_env *env)
{
    (void)env;
    lua_pushcfunction(L, digest);
    return 1;
}
