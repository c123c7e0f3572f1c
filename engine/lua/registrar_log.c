/* registrar_log.c: registrar.log, the daemon's log for scripts:
 * log.info(fmt, ...) formats as string.format does. */
#include <lauxlib.h>

#include "core/log.h"
#include "lua/modules.h"

static const char *format_args(lua_State *L)
{
    if (lua_gettop(L) <= 1)
        return luaL_tolstring(L, 1, NULL);
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_insert(L, 1);
    lua_pop(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return lua_tostring(L, -1);
}

static int log_at(lua_State *L, enum log_level level)
{
    if (log_enabled(level))
        log_msg(level, "%s", format_args(L));
    return 0;
}

static int log_debug_fn(lua_State *L) { return log_at(L, LOG_DEBUG); }
static int log_info_fn(lua_State *L) { return log_at(L, LOG_INFO); }
static int log_warn_fn(lua_State *L) { return log_at(L, LOG_WARN); }
static int log_error_fn(lua_State *L) { return log_at(L, LOG_ERROR); }

static int log_enabled_fn(lua_State *L)
{
    enum log_level level;
    if (log_level_parse(luaL_checkstring(L, 1), &level) < 0)
        return luaL_argerror(L, 1, "not a log level");
    lua_pushboolean(L, log_enabled(level));
    return 1;
}

int registrar_log_open(lua_State *L, const struct registrar_env *env)
{
    (void)env;
    static const luaL_Reg fns[] = {
        { "debug", log_debug_fn }, { "info", log_info_fn },
        { "warn", log_warn_fn }, { "error", log_error_fn },
        { "enabled", log_enabled_fn }, { NULL, NULL },
    };
    luaL_newlib(L, fns);
    return 1;
}
