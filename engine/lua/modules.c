/* modules.c: the one list that assembles the `registrar` module, for the
 * engine's state and as the plain C library specs load into lua5.4. */
#include "lua/modules.h"

#include <lauxlib.h>
#include <lualib.h>

static const struct {
    const char *name;
    int (*open)(lua_State *L, const struct registrar_env *env);
} modules[] = {
    { "base64", registrar_base64_open },
    { "config", registrar_config_open },
    { "digest", registrar_digest_open },
    { "docker", registrar_docker_open },
    { "file", registrar_file_open },
    { "host", registrar_host_open },
    { "http", registrar_http_open },
    { "json", registrar_json_open },
    { "log", registrar_log_open },
    { "metrics", registrar_metrics_open },
    { "zk", registrar_zk_open },
};

static void push_module(lua_State *L, const struct registrar_env *env)
{
    lua_createtable(L, 0, (int)(sizeof modules / sizeof modules[0]) + 1);
    for (size_t i = 0; i < sizeof modules / sizeof modules[0]; i++) {
        modules[i].open(L, env);
        lua_setfield(L, -2, modules[i].name);
    }
    lua_newtable(L);
    lua_setfield(L, -2, "backends");   /* site scripts add schemes here */
}

void lua_registrar_install(lua_State *L, const struct registrar_env *env)
{
    push_module(L, env);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "registrar");
    lua_pop(L, 2);
}

int luaopen_registrar(lua_State *L)
{
    push_module(L, NULL);
    return 1;
}
