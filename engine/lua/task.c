/* task.c: backend hooks run as coroutines.  A hook that calls
 * registrar.http.request or a registrar.zk method yields here; the
 * completion resumes it.  So a script reads as straight-line code while many registrations
 * are under way, and a slow registry never blocks the loop. */
#include "lua/task.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>

#include "lua/budget.h"
#include "lua/errors.h"

struct task {
    lua_State *L;               /* the state's main thread */
    lua_State *co;
    int co_ref;                 /* keeps the thread alive */
    const struct budget_limits *limits;
    struct budget budget;
    task_done_fn *done;
    void *arg;
    task_cancel_fn *cancel;     /* with waiting: what the coroutine waits on */
    void *waiting;
    struct task *prev, *next;
};

static struct task *live;       /* all unfinished tasks */
static int nlive;

int task_count(void) { return nlive; }

/* Making a thread allocates: under lua_pcall, so a full state says so
 * instead of aborting the daemon. */
static int new_thread(lua_State *L)
{
    struct task *t = lua_touserdata(L, 1);
    t->co = lua_newthread(L);
    t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

struct task *task_new(lua_State *L, const struct budget_limits *limits, task_done_fn *done, void *arg)
{
    struct task *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    lua_pushcfunction(L, new_thread);
    lua_pushlightuserdata(L, t);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        lua_pop(L, 1);
        free(t);
        return NULL;
    }
    t->L = L;
    t->limits = limits;
    t->done = done;
    t->arg = arg;
    t->next = live;
    if (live)
        live->prev = t;
    live = t;
    nlive++;
    budget_arm(t->co, &t->budget, limits);
    return t;
}

lua_State *task_thread(struct task *t) { return t->co; }

static void task_free(struct task *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        live = t->next;
    if (t->next)
        t->next->prev = t->prev;
    nlive--;
    lua_resetthread(t->co);     /* runs pending __close handlers */
    luaL_unref(t->L, LUA_REGISTRYINDEX, t->co_ref);
    free(t);
}

/* The callback, then the task is gone. */
static void finish(struct task *t, bool ok, int nres, const char *err)
{
    if (t->done)
        t->done(t, ok, t->co, nres, err, t->arg);
    task_free(t);
}

static void finish_failed(struct task *t, int status)
{
    lua_State *L = t->L;
    char err[1024];
    /* the coroutine's stack is intact until reset: take its traceback */
    if (status != LUA_ERRMEM && lua_checkstack(t->L, 4)) {
        errors_locate(t->co, 0);
        luaL_traceback(t->L, t->co, lua_tostring(t->co, -1), 0);
        errors_describe(t->limits, t->L, status, err, sizeof err);
        lua_pop(t->L, 1);
    } else {
        errors_describe(t->limits, t->co, status, err, sizeof err);
    }
    finish(t, false, 0, err);
    lua_gc(L, LUA_GCCOLLECT);   /* t is gone */
}

static void resume(struct task *t, int nargs)
{
    int nres = 0, status;
    char err[300], where[LUA_IDSIZE + 32];

    budget_slice_begin(&t->budget);
    status = lua_resume(t->co, t->L, nargs, &nres);
    budget_slice_end(&t->budget);
    if (status == LUA_YIELD) {
        if (t->waiting == NULL) {
            /* a bare coroutine.yield() would leave the task hanging forever */
            lua_pop(t->co, nres);
            errors_where(t->co, 0, where, sizeof where);
            lua_pushfstring(t->co, "%sa backend hook yielded without waiting on registrar.http or registrar.zk", where);
            finish_failed(t, LUA_ERRRUN);
        }
        return;
    }
    if (status != LUA_OK) {
        finish_failed(t, status);
        return;
    }
    if (!budget_within(&t->budget, err, sizeof err)) {
        finish(t, false, 0, err);
        return;
    }
    finish(t, true, nres, NULL);
}

void task_start(struct task *t, int nargs)
{
    resume(t, nargs);
}

static struct task *task_of(lua_State *co)
{
    for (struct task *t = live; t != NULL; t = t->next)
        if (t->co == co)
            return t;
    return NULL;
}

bool task_owns(lua_State *co) { return task_of(co) != NULL; }

void task_wait(lua_State *co, task_cancel_fn *cancel, void *handle)
{
    struct task *t = task_of(co);
    if (t != NULL) {
        t->cancel = cancel;
        t->waiting = handle;
    }
}

void task_wake(lua_State *co, int nres)
{
    struct task *t = task_of(co);
    if (t == NULL)
        return;
    t->waiting = NULL;
    t->cancel = NULL;
    resume(t, nres);
}

void task_cancel_all(lua_State *L)
{
    struct task *t = live, *next;
    for (; t != NULL; t = next) {
        next = t->next;
        if (t->L != L)
            continue;
        if (t->waiting && t->cancel)
            t->cancel(t->waiting);
        if (t->done)
            t->done(t, false, t->co, 0, "cancelled", t->arg);
        task_free(t);
    }
}
