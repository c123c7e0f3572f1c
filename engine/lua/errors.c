/* errors.c: see errors.h. */
#include "lua/errors.h"

#include <lauxlib.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "core/log.h"
#include "lua/budget.h"

void errors_where(lua_State *co, int level, char *buf, size_t len)
{
    lua_Debug ar;
    buf[0] = '\0';
    for (; lua_getstack(co, level, &ar); level++) {
        if (lua_getinfo(co, "Sl", &ar) && ar.currentline > 0) {
            snprintf(buf, len, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
    }
}

static bool lacks_position(lua_State *L, int idx)
{
    const char *msg = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
    return msg == NULL || strcmp(msg, "attempt to yield from outside a coroutine") == 0;
}

void errors_locate(lua_State *co, int level)
{
    char where[LUA_IDSIZE + 32];
    if (!lacks_position(co, -1))
        return;
    errors_where(co, level, where, sizeof where);
    if (lua_type(co, -1) == LUA_TSTRING)
        lua_pushfstring(co, "%s%s", where, lua_tostring(co, -1));
    else
        lua_pushfstring(co, "%s(error object is a %s value)", where, luaL_typename(co, -1));
    lua_remove(co, -2);
}

int errors_traceback(lua_State *L)
{
    errors_locate(L, 1);
    luaL_traceback(L, L, lua_tostring(L, -1), 1);
    return 1;
}

void errors_describe(const struct budget_limits *limits, lua_State *from, int status, char *buf, size_t len)
{
    const char *msg = lua_tostring(from, -1), *tb;
    if (status == LUA_ERRMEM) {
        snprintf(buf, len, "stopped: the scripts' memory limit of %lu MiB (script_memory) was reached",
                 (unsigned long)(limits->memory >> 20));
        return;
    }
    if (msg == NULL)
        msg = "(error object is not a string)";
    tb = strstr(msg, "\nstack traceback:");
    if (tb != NULL) {
        log_debug("%s", msg);
        snprintf(buf, len, "%.*s", (int)(tb - msg), msg);
    } else {
        snprintf(buf, len, "%s", msg);
    }
}
