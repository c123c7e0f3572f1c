/* registrar_base64.c: registrar.base64, standard alphabet with padding, as etcd's
 * v3 JSON gateway wants keys and values. */
#include <lauxlib.h>
#include <string.h>

#include "lua/modules.h"

static const char alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int b64_encode(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    char *out = luaL_buffinitsize(L, &b, (n + 2) / 3 * 4);
    size_t o = 0;

    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)s[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)s[i + 1] << 8;
        if (i + 2 < n)
            v |= s[i + 2];
        out[o++] = alphabet[(v >> 18) & 63];
        out[o++] = alphabet[(v >> 12) & 63];
        out[o++] = i + 1 < n ? alphabet[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? alphabet[v & 63] : '=';
    }
    luaL_pushresultsize(&b, o);
    return 1;
}

static int sextet(unsigned char c)
{
    const char *p = c ? strchr(alphabet, c) : NULL;
    return p ? (int)(p - alphabet) : -1;
}

/* Returns nil, message on bad input: it comes from a registry. */
static int b64_decode(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    luaL_Buffer b;
    unsigned v = 0;
    int bits = 0;
    size_t i;

    luaL_buffinit(L, &b);
    for (i = 0; i < n && s[i] != '='; i++) {
        int d = sextet(s[i]);
        if (d < 0) {
            luaL_pushfail(L);
            lua_pushfstring(L, "invalid base64 at byte %d", (int)i + 1);
            return 2;
        }
        v = (v << 6) | (unsigned)d;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            luaL_addchar(&b, (char)((v >> bits) & 0xff));
        }
    }
    for (; i < n; i++) {
        if (s[i] != '=') {
            luaL_pushfail(L);
            lua_pushfstring(L, "invalid base64 at byte %d", (int)i + 1);
            return 2;
        }
    }
    luaL_pushresult(&b);
    return 1;
}

static const luaL_Reg base64_functions[] = {
    { "encode", b64_encode },
    { "decode", b64_decode },
    { NULL, NULL },
};

int registrar_base64_open(lua_State *L, const struct registrar_env *env)
{
    (void)env;
    luaL_newlib(L, base64_functions);
    return 1;
}
