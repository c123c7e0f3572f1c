/* registrar_docker.c: registrar.docker, what a hook may ask of Docker:
 *
 *   registrar.docker.signal(container, "HUP") --> true | nil, why
 *
 * (container: a container table or its id).  It goes through the engine's
 * own Docker connection, never a shell; like registrar.http.request it
 * yields the hook's coroutine until Docker answers, so it may only be
 * called from a hook the engine runs as a task (changed, backend hooks). */
#include <ctype.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <string.h>

#include "core/http.h"
#include "docker/container.h"
#include "docker/session.h"
#include "lua/modules.h"
#include "lua/task.h"

static void on_signalled(struct http_transfer *x, const struct http_response *res, void *arg)
{
    lua_State *co = arg;
    (void)x;
    if (res->curl_code == 0 && res->status == 204) {
        lua_pushboolean(co, 1);
        task_wake(co, 1);
        return;
    }
    luaL_pushfail(co);
    if (res->curl_code != 0)
        lua_pushfstring(co, "Docker: %s", res->error);
    else if (res->status == 404)
        lua_pushliteral(co, "Docker: no such container");
    else if (res->status == 409)
        lua_pushliteral(co, "Docker: the container is not running");
    else
        lua_pushfstring(co, "Docker answered %d: %s", (int)res->status, res->body);
    task_wake(co, 2);
}

/* "HUP", "SIGHUP", "1": what Docker's kill takes. */
static bool signal_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 16)
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s))
            return false;
    return true;
}

static int docker_signal(lua_State *L)
{
    struct docker_session *s = lua_touserdata(L, lua_upvalueindex(1));
    const char *id, *sig = luaL_checkstring(L, 2);
    struct http_transfer *x;

    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "id");
        id = lua_tostring(L, -1);
    } else {
        id = lua_tostring(L, 1);
    }
    if (id == NULL || !container_id_valid(id))
        return luaL_argerror(L, 1, "a container table or a container id");
    if (!signal_name(sig))
        return luaL_argerror(L, 2, "a signal name or number, such as \"HUP\"");
    if (s == NULL)
        return luaL_error(L, "registrar.docker.signal works only inside the registrar daemon");
    if (!lua_isyieldable(L) || !task_owns(L))
        return luaL_error(L, "registrar.docker.signal must be called from changed() or a backend hook");
    x = docker_session_signal(s, id, sig, on_signalled, L);
    if (x == NULL) {
        luaL_pushfail(L);
        lua_pushliteral(L, "cannot start the request to Docker");
        return 2;
    }
    task_wait(L, http_cancel_handle, x);
    return lua_yield(L, 0);
}

int registrar_docker_open(lua_State *L, const struct registrar_env *env)
{
    lua_newtable(L);
    lua_pushlightuserdata(L, env ? env->docker : NULL);
    lua_pushcclosure(L, docker_signal, 1);
    lua_setfield(L, -2, "signal");
    return 1;
}
