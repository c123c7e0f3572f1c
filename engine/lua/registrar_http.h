/* registrar_http.h: what registrar.http.request and registrar.http.stream
 * share: reading the request table, and where they may be called. */
#ifndef REGISTRAR_LUA_REGISTRAR_HTTP_H
#define REGISTRAR_LUA_REGISTRAR_HTTP_H

#include <lua.h>

#include "core/http.h"

struct registrar_env;

#define MAX_HEADERS 32

struct lua_http_request {
    struct http_request req;
    struct http_tls tls;
    const char *headers[MAX_HEADERS + 1];
};

/* The request table at index 1, for fn (named in errors, which raise).
 * Its strings stay anchored on L's stack. */
void lua_http_read_request(lua_State *L, const char *fn, long default_timeout, struct lua_http_request *r);

/* Upvalue 1, the daemon's HTTP; raises when fn is called outside the
 * daemon or outside a backend hook's own coroutine. */
struct http *lua_http_check_context(lua_State *L, const char *fn);

/* Pushes registrar.http.stream (upvalues: the HTTP, the default timeout,
 * the metrics, as registrar.http.request has). */
void lua_http_stream_open(lua_State *L, const struct registrar_env *env);

#endif
