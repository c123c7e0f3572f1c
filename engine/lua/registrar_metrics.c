/* registrar_metrics.c: registrar.metrics, the engine's metrics for
 * scripts (kept in-process, and sent to statsd when it is set). */
#include <lauxlib.h>

#include "core/metrics.h"
#include "lua/modules.h"

static struct metrics *lua_metrics(lua_State *L)
{
    return lua_touserdata(L, lua_upvalueindex(1));
}

static int l_increment(lua_State *L)
{
    metrics_count(lua_metrics(L), luaL_checkstring(L, 1), (long)luaL_optinteger(L, 2, 1));
    return 0;
}

static int l_gauge(lua_State *L)
{
    metrics_gauge(lua_metrics(L), luaL_checkstring(L, 1), luaL_checknumber(L, 2));
    return 0;
}

static int l_timing(lua_State *L)
{
    metrics_timing(lua_metrics(L), luaL_checkstring(L, 1), luaL_checknumber(L, 2));
    return 0;
}

static int l_value(lua_State *L)
{
    lua_pushnumber(L, metrics_value(lua_metrics(L), luaL_checkstring(L, 1)));
    return 1;
}

int registrar_metrics_open(lua_State *L, const struct registrar_env *env)
{
    static const luaL_Reg fns[] = {
        { "increment", l_increment }, { "gauge", l_gauge },
        { "timing", l_timing }, { "value", l_value }, { NULL, NULL },
    };
    luaL_newlibtable(L, fns);
    lua_pushlightuserdata(L, env ? env->metrics : NULL);
    luaL_setfuncs(L, fns, 1);
    return 1;
}
