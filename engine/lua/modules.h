/* lua_registrar.h: the `registrar` Lua module. */
#ifndef REGISTRAR_LUA_REGISTRAR_H
#define REGISTRAR_LUA_REGISTRAR_H

#include <lua.h>

struct config;
struct http;
struct metrics;

int luaopen_registrar_json(lua_State *L);
int luaopen_registrar_base64(lua_State *L);
int luaopen_registrar_log(lua_State *L);
int luaopen_registrar_file(lua_State *L);

/* What the engine lends the module; any field may be NULL outside the
 * daemon (the standalone module used by busted specs has none). */
struct registrar_env {
    const struct config *config;
    struct http *http;
    struct metrics *metrics;
    long http_timeout_ms;
};

/* Builds the module table for the engine and stores it in package.loaded. */
void lua_registrar_install(lua_State *L, const struct registrar_env *env);

/* registrar.config as a table built from a config struct. */
void lua_registrar_push_config(lua_State *L, const struct config *c);

/* registrar.http.request: yields the calling coroutine (lua_http.c). */
int luaopen_registrar_http(lua_State *L, struct http *h, long default_timeout_ms);

/* registrar.metrics (metrics.c). */
int luaopen_registrar_metrics(lua_State *L, struct metrics *m);

/* The module as a plain Lua C library: `require "registrar"` from lua5.4,
 * for specs.  http.request raises; config and host are empty tables the
 * spec fills. */
int luaopen_registrar(lua_State *L);

#endif
