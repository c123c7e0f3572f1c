/* registrar_zk.c: registrar.zk, ZooKeeper for backend scripts.
 *
 *   local zk = registrar.zk.connect{hosts = "h:p,h:p", username =, password =,
 *                                   session_timeout = ms, timeout = ms}
 *   zk:create(path, data[, {ephemeral =, parents =}]) -> path
 *   zk:set(path, data[, version])   -> stat
 *   zk:get(path[, {watch =}])       -> data, stat
 *   zk:children(path[, {watch =}])  -> {names, sorted}
 *   zk:delete(path[, version])      -> true
 *   zk:exists(path[, {watch =}])    -> stat, or false
 *   zk:event()  -> {type = "created"|"deleted"|"changed"|"child"|"notwatching", path =}, the next
 *                  watch that fired; nil, why when the watches are gone (read again, arm anew)
 *   zk:id()  -> the session's id (0 while there is none);  zk:state() -> "connected", ...
 *
 * A failure is nil, message, code ("nonode", "nodeexists", "badversion",
 * "notempty", "noauth", "connectionloss", "timeout", ...).  As with
 * registrar.http, each call looks synchronous: the hook's coroutine
 * yields, core/zk.c brings the answer back to the loop, and on_done
 * resumes it.  The results are built on the main thread under lua_pcall
 * and moved over, so a full state fails that call instead of the daemon. */
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/zk.h"
#include "lua/modules.h"
#include "lua/task.h"

#define SESSION_MT "registrar.zk.session"
#define DEFAULT_SESSION_TIMEOUT_MS 12000

struct lsession {
    struct zk_session *s;
    long timeout_ms;            /* each call's */
    lua_State *waiting;         /* the hook in zk:event(), or NULL */
};

/* ---- answers --------------------------------------------------------------- */

static void push_stat(lua_State *L, const struct zk_stat *st)
{
    lua_createtable(L, 0, 11);
#define FIELD(name, value) (lua_pushinteger(L, (lua_Integer)(value)), lua_setfield(L, -2, name))
    FIELD("version", st->version);
    FIELD("cversion", st->cversion);
    FIELD("aversion", st->aversion);
    FIELD("ephemeral_owner", st->ephemeral_owner);
    FIELD("data_length", st->data_length);
    FIELD("num_children", st->num_children);
    FIELD("czxid", st->czxid);
    FIELD("mzxid", st->mzxid);
    FIELD("pzxid", st->pzxid);
    FIELD("ctime", st->ctime);
    FIELD("mtime", st->mtime);
#undef FIELD
}

static const struct zk_stat no_stat;

/* Under lua_pcall on the main thread: the call's results. */
static int push_result(lua_State *L)
{
    const struct zk_result *res = lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (res->rc != 0) {
        if (res->kind == ZK_EXISTS && strcmp(res->code, "nonode") == 0) {
            lua_pushboolean(L, 0);
            return 1;
        }
        luaL_pushfail(L);
        lua_pushstring(L, res->error);
        lua_pushstring(L, res->code);
        return 3;
    }
    switch (res->kind) {
    case ZK_CREATE:
        lua_pushlstring(L, res->data, res->len);
        return 1;
    case ZK_GET:
        lua_pushlstring(L, res->data, res->len);
        push_stat(L, res->has_stat ? &res->stat : &no_stat);
        return 2;
    case ZK_CHILDREN:
        lua_createtable(L, res->nchildren, 0);
        for (int i = 0; i < res->nchildren; i++) {
            lua_pushstring(L, res->children[i]);
            lua_rawseti(L, -2, i + 1);
        }
        return 1;
    case ZK_DELETE:
        lua_pushboolean(L, 1);
        return 1;
    case ZK_SET:
    case ZK_EXISTS:
        push_stat(L, res->has_stat ? &res->stat : &no_stat);
        return 1;
    }
    return 0;
}

/* fn(ud) under lua_pcall on the main thread, its results moved onto co
 * (which has room for 4): how many.  A full state makes it one nil, a
 * failure without a reason, instead of a panic. */
static int results_onto(lua_State *co, lua_CFunction fn, void *ud)
{
    lua_State *L;
    int base, n;
    lua_rawgeti(co, LUA_REGISTRYINDEX, LUA_RIDX_MAINTHREAD);
    L = lua_tothread(co, -1);
    lua_pop(co, 1);
    base = lua_gettop(L);
    lua_pushcfunction(L, fn);
    lua_pushlightuserdata(L, ud);
    n = lua_pcall(L, 1, LUA_MULTRET, 0) == LUA_OK ? lua_gettop(L) - base : -1;
    if (n < 0 || !lua_checkstack(co, n)) {
        lua_settop(L, base);
        luaL_pushfail(co);
        return 1;
    }
    lua_xmove(L, co, n);
    return n;
}

static void on_done(struct zk_op *op, const struct zk_result *res, void *arg)
{
    lua_State *co = arg;
    (void)op;
    if (!lua_checkstack(co, 4)) {
        task_wake(co, 0);
        return;
    }
    task_wake(co, results_onto(co, push_result, (void *)res));
}

static void cancel_op(void *op) { zk_cancel(op); }

/* ---- calls ------------------------------------------------------------------- */

static struct lsession *check_session(lua_State *L, const char *method)
{
    struct lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
    if (ls->s == NULL)
        luaL_error(L, "registrar.zk: %s on a closed session", method);
    return ls;
}

static void must_wait(lua_State *L, const char *method)
{
    if (!lua_isyieldable(L) || !task_owns(L))
        luaL_error(L, "registrar.zk: %s must be called from a backend hook, "
                      "not from naming or a coroutine of the script's own", method);
}

static int start(lua_State *L, struct lsession *ls, struct zk_request *req, const char *method)
{
    char err[512];
    struct zk_op *op;
    must_wait(L, method);
    req->timeout_ms = ls->timeout_ms;
    op = zk_start(ls->s, req, on_done, L, err, sizeof err);
    if (op == NULL) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        lua_pushliteral(L, "error");
        return 3;
    }
    task_wait(L, cancel_op, op);
    return lua_yield(L, 0);
}

static int opt_version(lua_State *L, int idx)
{
    lua_Integer v = luaL_optinteger(L, idx, -1);
    luaL_argcheck(L, v >= -1 && v <= 0x7fffffff, idx, "a version is -1 (any) or a znode's version");
    return (int)v;
}

static int zk_create(lua_State *L)
{
    struct lsession *ls = check_session(L, "create");
    struct zk_request req = { .kind = ZK_CREATE, .version = -1 };
    req.path = luaL_checkstring(L, 2);
    req.data = luaL_optlstring(L, 3, "", &req.len);
    if (!lua_isnoneornil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        lua_getfield(L, 4, "ephemeral");
        req.ephemeral = lua_toboolean(L, -1);
        lua_getfield(L, 4, "parents");
        req.parents = lua_toboolean(L, -1);
        lua_pop(L, 2);
    }
    return start(L, ls, &req, "create");
}

static int zk_set(lua_State *L)
{
    struct lsession *ls = check_session(L, "set");
    struct zk_request req = { .kind = ZK_SET };
    req.path = luaL_checkstring(L, 2);
    req.data = luaL_checklstring(L, 3, &req.len);
    req.version = opt_version(L, 4);
    return start(L, ls, &req, "set");
}

static int zk_delete(lua_State *L)
{
    struct lsession *ls = check_session(L, "delete");
    struct zk_request req = { .kind = ZK_DELETE };
    req.path = luaL_checkstring(L, 2);
    req.version = opt_version(L, 3);
    return start(L, ls, &req, "delete");
}

static int zk_read(lua_State *L, enum zk_kind kind, const char *method)
{
    struct lsession *ls = check_session(L, method);
    struct zk_request req = { .kind = kind, .version = -1 };
    req.path = luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        lua_getfield(L, 3, "watch");
        req.watch = lua_toboolean(L, -1);
        lua_pop(L, 1);
    }
    return start(L, ls, &req, method);
}

static int zk_get(lua_State *L) { return zk_read(L, ZK_GET, "get"); }
static int zk_children(lua_State *L) { return zk_read(L, ZK_CHILDREN, "children"); }
static int zk_exists(lua_State *L) { return zk_read(L, ZK_EXISTS, "exists"); }

/* ---- node events ---------------------------------------------------------- */

struct taken {
    int rc;                     /* zk_event_take's */
    struct zk_node_event ev;
    char why[256];
};

/* Under lua_pcall: what zk:event() returns for t. */
static int push_taken(lua_State *L)
{
    const struct taken *t = lua_touserdata(L, 1);
    lua_settop(L, 0);
    if (t->rc < 0) {
        luaL_pushfail(L);
        lua_pushstring(L, t->why);
        return 2;
    }
    lua_createtable(L, 0, 2);
    lua_pushstring(L, zk_event_type_name(t->ev.type));
    lua_setfield(L, -2, "type");
    lua_pushstring(L, t->ev.path);
    lua_setfield(L, -2, "path");
    return 1;
}

/* The results of the take onto co; the event's path is freed. */
static int move_taken(lua_State *co, struct taken *t)
{
    int n = results_onto(co, push_taken, t);
    free(t->ev.path);
    t->ev.path = NULL;
    return n;
}

/* ls stays alive meanwhile: the hook waiting holds it (self.zk). */
static void on_event_ready(void *arg)
{
    struct lsession *ls = arg;
    lua_State *co = ls->waiting;
    struct taken t = { 0 };
    ls->waiting = NULL;
    t.rc = zk_event_take(ls->s, &t.ev, t.why, sizeof t.why);
    if (t.rc == 0) {            /* cannot be: it called us for something */
        t.rc = -1;
        snprintf(t.why, sizeof t.why, "woken without an event");
    }
    if (!lua_checkstack(co, 4)) {
        free(t.ev.path);
        task_wake(co, 0);
        return;
    }
    task_wake(co, move_taken(co, &t));
}

static void cancel_event_wait(void *arg)
{
    struct lsession *ls = arg;
    if (ls->s != NULL)
        zk_event_cancel(ls->s);
    ls->waiting = NULL;
}

static int zk_event(lua_State *L)
{
    struct lsession *ls = check_session(L, "event");
    struct taken t = { 0 };
    lua_settop(L, 1);
    t.rc = zk_event_take(ls->s, &t.ev, t.why, sizeof t.why);
    if (t.rc != 0)
        return move_taken(L, &t);
    must_wait(L, "event");
    if (ls->waiting != NULL || !zk_event_wait(ls->s, on_event_ready, ls)) {
        luaL_pushfail(L);
        lua_pushliteral(L, "another hook waits for this session's events already");
        return 2;
    }
    ls->waiting = L;
    task_wait(L, cancel_event_wait, ls);
    return lua_yield(L, 0);
}

static int zk_id(lua_State *L)
{
    struct lsession *ls = check_session(L, "id");
    lua_pushinteger(L, (lua_Integer)zk_session_id(ls->s));
    return 1;
}

static int zk_state(lua_State *L)
{
    struct lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
    lua_pushstring(L, ls->s ? zk_session_state(ls->s) : "closed");
    return 1;
}

/* The session is shared (core/zk.h): this only lets go of it. */
static int zk_release(lua_State *L)
{
    struct lsession *ls = luaL_checkudata(L, 1, SESSION_MT);
    if (ls->waiting != NULL)   /* closed under a hook that waits: it waits on nothing now */
        cancel_event_wait(ls);
    if (ls->s != NULL)
        zk_session_put(ls->s);
    ls->s = NULL;
    return 0;
}

static const char *opt_field(lua_State *L, const char *field)
{
    const char *s;
    lua_getfield(L, 1, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "registrar.zk.connect: field '%s' must be a string, not a %s", field, luaL_typename(L, -1));
    s = lua_tostring(L, -1);
    lua_pop(L, 1);              /* anchored by the table */
    return s;
}

static long opt_ms(lua_State *L, const char *field, long dflt)
{
    lua_Integer v;
    lua_getfield(L, 1, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return dflt;
    }
    v = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
    if (v <= 0 || v > 24L * 3600 * 1000)
        luaL_error(L, "registrar.zk.connect: '%s' must be a positive number of milliseconds", field);
    lua_pop(L, 1);
    return (long)v;
}

static int zk_connect(lua_State *L)
{
    struct zk *z = lua_touserdata(L, lua_upvalueindex(1));
    long default_timeout = (long)lua_tointeger(L, lua_upvalueindex(2));
    const char *hosts, *user, *password;
    long session_timeout, timeout;
    struct lsession *ls;
    struct zk_session *s;
    char err[512];

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (z == NULL)
        return luaL_error(L, "registrar.zk.connect works only inside the registrar daemon (a spec replaces it)");
    hosts = opt_field(L, "hosts");
    if (hosts == NULL || hosts[0] == '\0')
        return luaL_error(L, "registrar.zk.connect: 'hosts' (\"host:port,host:port\") is required");
    user = opt_field(L, "username");
    password = opt_field(L, "password");
    session_timeout = opt_ms(L, "session_timeout", DEFAULT_SESSION_TIMEOUT_MS);
    timeout = opt_ms(L, "timeout", default_timeout);
    ls = lua_newuserdatauv(L, sizeof *ls, 0);
    ls->s = NULL;
    ls->waiting = NULL;
    ls->timeout_ms = timeout;
    luaL_setmetatable(L, SESSION_MT);
    s = zk_session_get(z, hosts, user, password, (int)session_timeout, err, sizeof err);
    if (s == NULL) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    ls->s = s;
    return 1;
}

int registrar_zk_open(lua_State *L, const struct registrar_env *env)
{
    static const luaL_Reg methods[] = {
        { "create", zk_create }, { "set", zk_set }, { "get", zk_get }, { "children", zk_children },
        { "delete", zk_delete }, { "exists", zk_exists }, { "event", zk_event }, { "id", zk_id },
        { "state", zk_state },
        { NULL, NULL },
    };
    if (luaL_newmetatable(L, SESSION_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, zk_release);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, zk_release);
        lua_setfield(L, -2, "__close");
    }
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushlightuserdata(L, env ? env->zk : NULL);
    lua_pushinteger(L, env && env->http_timeout_ms > 0 ? env->http_timeout_ms : 5000);
    lua_pushcclosure(L, zk_connect, 2);
    lua_setfield(L, -2, "connect");
    return 1;
}
