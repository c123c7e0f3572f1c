/* registrar_http.c: registrar.http.request{...}.  To the script it is a plain
 * call returning a response; underneath, the hook's coroutine yields and
 * http.c drives the transfer on the loop with everything else. */
#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

#include "core/http.h"
#include "core/metrics.h"
#include "lua/modules.h"
#include "lua/registrar_http.h"
#include "lua/task.h"

/* A registry's answer is read whole into the scripts' memory: past this
 * it is refused (a request may ask for more with max_body). */
#define HTTP_MAX_REGISTRY_BODY (256L << 20)

static void push_headers(lua_State *L, const char *raw, size_t len)
{
    const char *p = raw, *end = raw + len;
    lua_newtable(L);
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p)), *colon;
        const char *line_end = eol ? eol : end;
        if (line_end > p && line_end[-1] == '\r')
            line_end--;
        colon = line_end > p ? memchr(p, ':', (size_t)(line_end - p)) : NULL;
        if (colon != NULL && strncmp(p, "HTTP/", 5) != 0) {
            const char *v = colon + 1;
            luaL_Buffer name;
            while (v < line_end && (*v == ' ' || *v == '\t'))
                v++;
            luaL_buffinit(L, &name);
            for (const char *c = p; c < colon; c++)
                luaL_addchar(&name, (char)((*c >= 'A' && *c <= 'Z') ? *c + 32 : *c));
            luaL_pushresult(&name);
            lua_pushlstring(L, v, (size_t)(line_end - v));
            lua_settable(L, -3);
        }
        p = eol ? eol + 1 : end;
    }
}

static void on_done(struct http_transfer *x, const struct http_response *res, void *arg)
{
    lua_State *co = arg;
    (void)x;
    if (res->curl_code != 0) {
        luaL_pushfail(co);
        lua_pushstring(co, res->error);
        task_wake(co, 2);
        return;
    }
    lua_createtable(co, 0, 3);
    lua_pushinteger(co, res->status);
    lua_setfield(co, -2, "status");
    lua_pushlstring(co, res->body, res->body_len);
    lua_setfield(co, -2, "body");
    push_headers(co, res->headers, res->headers_len);
    lua_setfield(co, -2, "headers");
    task_wake(co, 1);
}

static const char *opt_string(lua_State *L, int idx, const char *field)
{
    const char *s;
    lua_getfield(L, idx, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "registrar.http.request: field '%s' must be a string, not a %s", field,
                   luaL_typename(L, -1));
    s = lua_tostring(L, -1);
    lua_pop(L, 1);              /* still anchored by the request table */
    return s;
}

/* "Name: value" strings for curl, kept alive on the Lua stack. */
static int collect_headers(lua_State *L, int idx, const char **out)
{
    int n = 0;
    lua_getfield(L, idx, "headers");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    luaL_checktype(L, -1, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (n == MAX_HEADERS)
            luaL_error(L, "registrar.http.request: more than %d headers", MAX_HEADERS);
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "registrar.http.request: headers must map names to strings");
        out[n++] = lua_pushfstring(L, "%s: %s", lua_tostring(L, -2), lua_tostring(L, -1));
        lua_insert(L, idx + 1);   /* keep the string alive below our work area */
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    out[n] = NULL;
    return n;
}

static void read_tls(lua_State *L, int idx, struct http_tls *tls)
{
    lua_getfield(L, idx, "tls");
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    tls->ca_file = opt_string(L, lua_gettop(L), "ca_file");
    tls->cert_file = opt_string(L, lua_gettop(L), "cert_file");
    tls->key_file = opt_string(L, lua_gettop(L), "key_file");
    lua_getfield(L, -1, "insecure");
    tls->insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_insert(L, idx + 1);       /* anchors the strings */
}

void lua_http_read_request(lua_State *L, const char *fn, long default_timeout, struct lua_http_request *r)
{
    struct http_request *req = &r->req;
    size_t body_len = 0;

    memset(r, 0, sizeof *r);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    luaL_checkstack(L, MAX_HEADERS + 16, fn);
    req->url = opt_string(L, 1, "url");
    if (req->url == NULL)
        luaL_error(L, "%s: 'url' is required", fn);
    req->method = opt_string(L, 1, "method");
    req->unix_socket = opt_string(L, 1, "unix_socket");
    req->userpwd = opt_string(L, 1, "userpwd");
    lua_getfield(L, 1, "body");
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "%s: 'body' must be a string", fn);
        req->body = lua_tolstring(L, -1, &body_len);
        req->body_len = body_len;
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "max_body");
    if (lua_isnil(L, -1))
        req->max_body = HTTP_MAX_REGISTRY_BODY;
    else if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) <= 0)
        luaL_error(L, "%s: 'max_body' must be a positive number of bytes", fn);
    else
        req->max_body = (size_t)lua_tointeger(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "timeout");
    req->timeout_ms = lua_isnil(L, -1) ? default_timeout : (long)luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    /* a long poll may wait minutes for its answer, not for its server */
    req->connect_timeout_ms = req->timeout_ms > 0 && req->timeout_ms < default_timeout ? req->timeout_ms
                                                                                      : default_timeout;
    collect_headers(L, 1, r->headers);
    req->headers = r->headers;
    read_tls(L, 1, &r->tls);
    req->tls = &r->tls;
}

/* The daemon's HTTP, or an error naming fn: outside the daemon (a spec
 * replaces it) or outside a backend hook's own coroutine. */
struct http *lua_http_check_context(lua_State *L, const char *fn)
{
    struct http *h = lua_touserdata(L, lua_upvalueindex(1));
    if (h == NULL)
        luaL_error(L, "%s works only inside the registrar daemon (a spec replaces it)", fn);
    if (!lua_isyieldable(L) || !task_owns(L))
        luaL_error(L, "%s must be called from a backend hook, not from naming or a coroutine "
                      "of the script's own", fn);
    return h;
}

static int http_request(lua_State *L)
{
    struct http *h = lua_http_check_context(L, "registrar.http.request");
    long default_timeout = (long)lua_tointeger(L, lua_upvalueindex(2));
    struct lua_http_request r;
    struct http_transfer *x;

    lua_http_read_request(L, "registrar.http.request", default_timeout, &r);
    metrics_count(lua_touserdata(L, lua_upvalueindex(3)), "registry.requests", 1);
    x = http_start(h, &r.req, on_done, L);
    if (x == NULL) {
        luaL_pushfail(L);
        lua_pushfstring(L, "cannot start a request to %s", r.req.url);
        return 2;
    }
    task_wait(L, http_cancel_handle, x);
    return lua_yield(L, 0);
}

int registrar_http_open(lua_State *L, const struct registrar_env *env)
{
    lua_newtable(L);
    lua_pushlightuserdata(L, env ? env->http : NULL);
    lua_pushinteger(L, env && env->http_timeout_ms > 0 ? env->http_timeout_ms : 5000);
    lua_pushlightuserdata(L, env ? env->metrics : NULL);
    lua_pushcclosure(L, http_request, 3);
    lua_setfield(L, -2, "request");
    lua_http_stream_open(L, env);
    lua_setfield(L, -2, "stream");
    return 1;
}
