/* registrar_http_stream.c: registrar.http.stream{...}, a response read
 * line by line as it arrives (etcd's watch).  The transfer outlives the
 * hook call that opened it: a backend keeps the stream between calls of
 * its watch().
 *
 *   local s, err = registrar.http.stream { url = ..., method = "POST", body = ... }
 *   -- once the response's headers are in: s.status
 *   local line, err = s:read(timeout_ms)   -- the next line, without "\n"
 *   s:close()
 *
 * curl hands data over inside its callbacks, where no Lua may run (a hook
 * could start or stop transfers there): data is buffered, and the waiting
 * coroutine is woken from a zero-delay loop timer. */
#include <lauxlib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/buffer.h"
#include "core/http.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "lua/modules.h"
#include "lua/registrar_http.h"
#include "lua/task.h"

#define STREAM_METATABLE "registrar.http.stream"
/* A line is buffered whole: past this the stream is cut. */
#define STREAM_MAX_LINE (64L << 20)

enum waiting { WAIT_NONE, WAIT_HEAD, WAIT_LINE };

struct stream {
    struct loop *lp;
    lua_State *L;               /* the state's main thread */
    struct http_transfer *x;    /* NULL once it ended or was closed */
    struct buffer data;         /* received and not read yet */
    size_t max_line;
    lua_State *reader;          /* the coroutine waiting, and for what */
    enum waiting wait;
    int self_ref;               /* the userdata, while stream() waits for the head */
    long status;
    bool head, ended;
    char *error;                /* why it ended; NULL: the server ended it */
    long long wake_timer, read_timer;
};

struct stream_ud {
    struct stream *s;
};

static void stream_free(struct stream *s)
{
    if (s->x != NULL)
        http_cancel(s->x);
    loop_timer_cancel(s->lp, s->wake_timer);
    loop_timer_cancel(s->lp, s->read_timer);
    if (s->self_ref != LUA_NOREF)
        luaL_unref(s->L, LUA_REGISTRYINDEX, s->self_ref);
    buffer_free(&s->data);
    free(s->error);
    free(s);
}

static void set_error(struct stream *s, const char *why)
{
    if (s->error == NULL)
        s->error = strdup(why);
}

/* ---- waking the reader, outside curl's callbacks ------------------------- */

static const char *line_end(const struct stream *s)
{
    return s->data.len ? memchr(s->data.data, '\n', s->data.len) : NULL;
}

/* Pushes the next line, or fail and why; how many values. */
static int push_line(lua_State *co, struct stream *s)
{
    const char *nl = line_end(s);
    size_t len, taken;
    if (nl == NULL && !s->ended)
        return 0;
    if (nl == NULL && s->data.len == 0) {
        luaL_pushfail(co);
        lua_pushstring(co, s->error ? s->error : "the server ended the stream");
        return 2;
    }
    len = nl ? (size_t)(nl - s->data.data) : s->data.len;   /* a last line without "\n" */
    taken = nl ? len + 1 : len;
    if (len > 0 && s->data.data[len - 1] == '\r')
        len--;
    lua_pushlstring(co, s->data.data, len);
    buffer_consume(&s->data, taken);    /* and lets a burst's bytes go */
    return 1;
}

/* What the reader waits for, if it is there: how many values pushed. */
static int push_answer(lua_State *co, struct stream *s)
{
    if (s->wait == WAIT_HEAD) {
        if (s->head) {
            lua_rawgeti(co, LUA_REGISTRYINDEX, s->self_ref);
            luaL_unref(co, LUA_REGISTRYINDEX, s->self_ref);
            s->self_ref = LUA_NOREF;
            return 1;
        }
        if (!s->ended)
            return 0;
        luaL_pushfail(co);
        lua_pushstring(co, s->error ? s->error : "the server closed the connection");
        return 2;
    }
    return push_line(co, s);
}

static void wake_reader(struct stream *s, lua_State *co, int nres)
{
    s->reader = NULL;
    s->wait = WAIT_NONE;
    loop_timer_cancel(s->lp, s->read_timer);
    s->read_timer = 0;
    task_wake(co, nres);
}

static long on_wake(struct loop *lp, void *arg)
{
    struct stream *s = arg;
    lua_State *co = s->reader;
    int nres;
    (void)lp;
    s->wake_timer = 0;
    if (co != NULL && (nres = push_answer(co, s)) > 0)
        wake_reader(s, co, nres);
    return LOOP_NOMORE;
}

static void wake_later(struct stream *s)
{
    if (s->reader != NULL && s->wake_timer == 0)
        s->wake_timer = loop_timer_add(s->lp, 0, on_wake, s);
}

static long on_read_timeout(struct loop *lp, void *arg)
{
    struct stream *s = arg;
    lua_State *co = s->reader;
    (void)lp;
    s->read_timer = 0;
    if (co != NULL) {
        luaL_pushfail(co);
        lua_pushliteral(co, "timeout");
        wake_reader(s, co, 2);
    }
    return LOOP_NOMORE;
}

/* ---- curl's side ------------------------------------------------------------ */

static void on_head(long status, void *arg)
{
    struct stream *s = arg;
    s->status = status;
    s->head = true;
    wake_later(s);
}

static int on_data(const char *data, size_t len, void *arg)
{
    struct stream *s = arg;
    if (s->data.len + len > s->max_line && line_end(s) == NULL) {
        set_error(s, "a line longer than max_body");
        return 1;               /* curl ends the transfer */
    }
    if (buffer_append(&s->data, data, len) < 0) {
        set_error(s, "out of memory");
        return 1;
    }
    wake_later(s);
    return 0;
}

static void on_done(struct http_transfer *x, const struct http_response *res, void *arg)
{
    struct stream *s = arg;
    (void)x;
    s->x = NULL;
    s->ended = true;
    if (res->curl_code != 0)
        set_error(s, res->error);
    wake_later(s);
}

/* ---- the Lua side -------------------------------------------------------------- */

static struct stream *check_stream(lua_State *L)
{
    struct stream_ud *ud = luaL_checkudata(L, 1, STREAM_METATABLE);
    if (ud->s == NULL)
        luaL_error(L, "registrar.http.stream: the stream is gone");
    return ud->s;
}

/* The task waiting on s was cancelled (a reload, shutdown): nobody waits
 * any more; a stream still waiting for its head has nobody to go to. */
static void cancel_wait(void *handle)
{
    struct stream *s = handle;
    if (s->wait == WAIT_HEAD && s->x != NULL) {
        http_cancel(s->x);
        s->x = NULL;
        s->ended = true;
        set_error(s, "cancelled");
    }
    s->reader = NULL;
    s->wait = WAIT_NONE;
    loop_timer_cancel(s->lp, s->read_timer);
    s->read_timer = 0;
}

static void wait_for(lua_State *L, struct stream *s, enum waiting what)
{
    s->reader = L;
    s->wait = what;
    task_wait(L, cancel_wait, s);
}

static int stream_read(lua_State *L)
{
    struct stream *s = check_stream(L);
    lua_Integer timeout = luaL_optinteger(L, 2, 0);
    int nres;
    if (s->reader != NULL)
        return luaL_error(L, "registrar.http.stream: another call is reading this stream");
    s->wait = WAIT_LINE;
    if ((nres = push_line(L, s)) > 0) {
        s->wait = WAIT_NONE;
        return nres;
    }
    s->wait = WAIT_NONE;
    if (!lua_isyieldable(L) || !task_owns(L))
        return luaL_error(L, "stream:read must be called from a backend hook, not from naming "
                             "or a coroutine of the script's own");
    wait_for(L, s, WAIT_LINE);
    if (timeout > 0)
        s->read_timer = loop_timer_add(s->lp, (long)timeout, on_read_timeout, s);
    return lua_yield(L, 0);
}

/* Ends the transfer; a call waiting in read() gets nil, "closed". */
static int stream_close(lua_State *L)
{
    struct stream *s = check_stream(L);
    if (s->x != NULL) {
        http_cancel(s->x);
        s->x = NULL;
        s->ended = true;
        set_error(s, "closed");
    }
    s->data.len = 0;
    wake_later(s);
    return 0;
}

static int stream_index(lua_State *L)
{
    struct stream *s = check_stream(L);
    const char *field = luaL_checkstring(L, 2);
    if (strcmp(field, "status") == 0) {
        lua_pushinteger(L, s->status);
        return 1;
    }
    if (strcmp(field, "open") == 0) {
        lua_pushboolean(L, !s->ended);
        return 1;
    }
    luaL_getmetafield(L, 1, "methods");
    lua_getfield(L, -1, field);
    return 1;
}

/* Lua never runs inside curl's callbacks, so the transfer can go here. */
static int stream_gc(lua_State *L)
{
    struct stream_ud *ud = luaL_checkudata(L, 1, STREAM_METATABLE);
    if (ud->s != NULL && ud->s->reader == NULL)
        stream_free(ud->s);
    ud->s = NULL;
    return 0;
}

static int http_stream(lua_State *L)
{
    struct http *h = lua_http_check_context(L, "registrar.http.stream");
    long default_timeout = (long)lua_tointeger(L, lua_upvalueindex(2));
    struct lua_http_request r;
    struct stream_ud *ud;
    struct stream *s;

    lua_http_read_request(L, "registrar.http.stream", default_timeout, &r);
    s = calloc(1, sizeof *s);
    ud = lua_newuserdatauv(L, sizeof *ud, 0);
    ud->s = NULL;
    luaL_setmetatable(L, STREAM_METATABLE);
    if (s == NULL)
        return luaL_error(L, "out of memory");
    ud->s = s;
    s->lp = http_loop(h);
    lua_rawgeti(L, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    s->L = lua_tothread(L, -1);
    lua_pop(L, 1);
    s->self_ref = LUA_NOREF;
    s->max_line = r.req.max_body < STREAM_MAX_LINE ? r.req.max_body : STREAM_MAX_LINE;
    r.req.connect_timeout_ms = r.req.timeout_ms;   /* reaching the server is bounded ... */
    r.req.timeout_ms = 0;                           /* ... the stream itself is not */
    r.req.max_body = 0;
    r.req.on_head = on_head;
    r.req.on_data = on_data;
    metrics_count(lua_touserdata(L, lua_upvalueindex(3)), "registry.requests", 1);
    s->x = http_start(h, &r.req, on_done, s);
    if (s->x == NULL) {
        luaL_pushfail(L);
        lua_pushfstring(L, "cannot start a request to %s", r.req.url);
        return 2;
    }
    s->self_ref = luaL_ref(L, LUA_REGISTRYINDEX);   /* the userdata, until the head */
    wait_for(L, s, WAIT_HEAD);
    return lua_yield(L, 0);
}

void lua_http_stream_open(lua_State *L, const struct registrar_env *env)
{
    static const luaL_Reg methods[] = { { "read", stream_read }, { "close", stream_close }, { NULL, NULL } };
    if (luaL_newmetatable(L, STREAM_METATABLE)) {
        lua_pushcfunction(L, stream_index);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, stream_gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, stream_gc);
        lua_setfield(L, -2, "__close");
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "methods");
    }
    lua_pop(L, 1);
    lua_pushlightuserdata(L, env ? env->http : NULL);
    lua_pushinteger(L, env && env->http_timeout_ms > 0 ? env->http_timeout_ms : 5000);
    lua_pushlightuserdata(L, env ? env->metrics : NULL);
    lua_pushcclosure(L, http_stream, 3);
}
