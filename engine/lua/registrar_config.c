/* registrar_config.c: registrar.config, the merged configuration as a
 * read-only table, and registrar.host.  Outside the daemon (the module
 * busted loads) both are plain tables a spec fills. */
#include <lauxlib.h>

#include "core/config.h"
#include "core/log.h"
#include "lua/modules.h"
#include "lua/registrar_json.h"

static void set_string_field(lua_State *L, const char *name, const char *value)
{
    if (value == NULL)
        return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, name);
}

static void set_integer_field(lua_State *L, const char *name, lua_Integer value)
{
    lua_pushinteger(L, value);
    lua_setfield(L, -2, name);
}

void lua_registrar_push_config(lua_State *L, const struct config *c, bool secrets)
{
    lua_newtable(L);
    set_string_field(L, "docker", c->docker);
    set_integer_field(L, "interval", c->interval_ms);
    set_integer_field(L, "ttl", c->ttl_ms);
    set_string_field(L, "log_level", log_level_name(c->log_level));
    set_string_field(L, "hostname", c->hostname);
    set_string_field(L, "ipaddress", c->ipaddress);
    set_string_field(L, "prefix_stats", c->prefix_stats);
    set_string_field(L, "prefix_services", c->prefix_services);
    set_string_field(L, "prefix_hosts", c->prefix_hosts);
    lua_createtable(L, c->prefix_path_len, 0);
    for (int i = 0; i < c->prefix_path_len; i++) {
        lua_pushstring(L, c->prefix_path[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "prefix_path");
    set_string_field(L, "service_ttl", c->mode == MODE_TTL ? "ttl" : "prune");
    set_string_field(L, "backend", c->backend_shown);
    set_string_field(L, "naming", c->naming);
    set_string_field(L, "script", c->script);
    set_string_field(L, "health", c->health == HEALTH_IGNORE ? "ignore" : "require");
    set_string_field(L, "network", c->network);
    lua_pushboolean(L, c->explicit_only);
    lua_setfield(L, -2, "explicit");
    set_integer_field(L, "concurrency", c->concurrency);
    set_integer_field(L, "timeout", c->timeout_ms);
    set_string_field(L, "username", c->username);
    if (secrets) {
        set_string_field(L, "password", c->password);
        set_string_field(L, "token", c->token);
    }
    set_string_field(L, "ca_file", c->ca_file);
    set_string_field(L, "cert_file", c->cert_file);
    set_string_field(L, "key_file", c->key_file);
    if (c->statsd_host) {
        lua_newtable(L);
        set_string_field(L, "host", c->statsd_host);
        set_integer_field(L, "port", c->statsd_port);
        lua_setfield(L, -2, "statsd");
    }
    if (c->site)
        lua_json_push(L, c->site);
    else
        lua_newtable(L);
    lua_setfield(L, -2, "site");
}

static int readonly_newindex(lua_State *L)
{
    return luaL_error(L, "registrar.config is read-only (tried to set \"%s\")", luaL_tolstring(L, 2, NULL));
}

static int readonly_pairs(lua_State *L)
{
    lua_getglobal(L, "next");
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__index");
    lua_remove(L, -2);
    lua_pushnil(L);
    return 3;
}

/* Wraps the table on top in a read-only proxy. */
static void make_readonly(lua_State *L)
{
    lua_newtable(L);                 /* proxy */
    lua_createtable(L, 0, 3);        /* its metatable */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, readonly_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, readonly_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_setmetatable(L, -2);
    lua_remove(L, -2);
}

int registrar_config_open(lua_State *L, const struct registrar_env *env)
{
    if (env == NULL || env->config == NULL) {
        lua_newtable(L);
        return 1;
    }
    lua_registrar_push_config(L, env->config, false);
    make_readonly(L);
    return 1;
}

int registrar_host_open(lua_State *L, const struct registrar_env *env)
{
    lua_newtable(L);
    if (env != NULL && env->config != NULL) {
        set_string_field(L, "hostname", env->config->hostname);
        set_string_field(L, "ipaddress", env->config->ipaddress);
    }
    return 1;
}
