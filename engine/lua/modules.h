/* modules.h: the `registrar` Lua module, as leaves: one file per
 * registrar.X, each knowing nothing of the others, assembled by the one
 * list in modules.c (as Lua's linit.c assembles its libraries). */
#ifndef REGISTRAR_LUA_MODULES_H
#define REGISTRAR_LUA_MODULES_H

#include <lua.h>
#include <stdbool.h>

struct config;
struct docker_session;
struct http;
struct metrics;
struct zk;

/* What the engine lends the modules.  NULL outside the daemon: the
 * standalone module busted loads has no config, HTTP, ZooKeeper or
 * metrics. */
struct registrar_env {
    const struct config *config;
    struct http *http;
    struct metrics *metrics;
    long http_timeout_ms;       /* also each registrar.zk call's */
    struct docker_session *docker;  /* NULL: registrar.docker raises */
    struct zk *zk;
};

/* Each pushes the value registrar.<name> holds. */
int registrar_base64_open(lua_State *L, const struct registrar_env *env);
int registrar_config_open(lua_State *L, const struct registrar_env *env);
int registrar_digest_open(lua_State *L, const struct registrar_env *env);
int registrar_docker_open(lua_State *L, const struct registrar_env *env);
int registrar_file_open(lua_State *L, const struct registrar_env *env);
int registrar_host_open(lua_State *L, const struct registrar_env *env);
int registrar_http_open(lua_State *L, const struct registrar_env *env);
int registrar_json_open(lua_State *L, const struct registrar_env *env);
int registrar_log_open(lua_State *L, const struct registrar_env *env);
int registrar_metrics_open(lua_State *L, const struct registrar_env *env);
int registrar_zk_open(lua_State *L, const struct registrar_env *env);

/* Builds the module table for the engine and stores it in package.loaded. */
void lua_registrar_install(lua_State *L, const struct registrar_env *env);

/* The configuration as a table: registrar.config without secrets, or
 * with password and token, for the backend's open(uri, config). */
void lua_registrar_push_config(lua_State *L, const struct config *c, bool secrets);

/* The module as a plain Lua C library: `require "registrar"` from lua5.4,
 * for specs.  http.request and zk.connect raise; config and host are empty
 * tables the spec fills. */
int luaopen_registrar(lua_State *L);

#endif
