/* task.c: backend hooks run as coroutines.  A hook that calls
 * registrar.http.request yields here; the transfer's completion resumes
 * it.  So a script reads as straight-line code while many registrations
 * are under way, and a slow registry never blocks the loop.
 *
 * One place resumes coroutines: it arms the budget (per thread: a debug
 * hook belongs to one coroutine), and on failure takes the traceback from
 * the coroutine before resetting it. */
#include "lua/task.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>

#include "core/http.h"
#include "core/log.h"
#include "lua/script.h"

struct task {
    struct script *s;
    lua_State *co;
    int co_ref;                 /* keeps the thread alive */
    struct script_budget budget;
    task_done_fn *done;
    void *arg;
    struct http_transfer *waiting;
    struct task *prev, *next;
};

static struct task *live;       /* all unfinished tasks */
static int nlive;

int task_count(void) { return nlive; }

struct task *task_new(struct script *s, task_done_fn *done, void *arg)
{
    lua_State *L = script_state(s);
    struct task *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    t->s = s;
    t->done = done;
    t->arg = arg;
    t->co = lua_newthread(L);
    t->co_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    t->next = live;
    if (live)
        live->prev = t;
    live = t;
    nlive++;
    script_arm_budget(s, t->co, &t->budget);
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
    lua_resetthread(t->co);
    script_unref(t->s, t->co_ref);
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
    lua_State *L = script_state(t->s);
    char err[1024];
    /* the coroutine's stack is intact until reset: take its traceback */
    if (status != LUA_ERRMEM) {
        script_error_text(t->co, 0);
        luaL_traceback(L, t->co, lua_tostring(t->co, -1), 0);
        script_describe_error(t->s, L, status, err, sizeof err);
        lua_pop(L, 1);
    } else {
        script_describe_error(t->s, t->co, status, err, sizeof err);
    }
    finish(t, false, 0, err);
    lua_gc(L, LUA_GCCOLLECT);
}

static void resume(struct task *t, int nargs)
{
    int nres = 0, status;
    char err[300], where[LUA_IDSIZE + 32];

    script_budget_slice_begin(&t->budget);
    status = lua_resume(t->co, script_state(t->s), nargs, &nres);
    script_budget_slice_end(&t->budget);
    if (status == LUA_YIELD) {
        if (t->waiting == NULL) {
            /* a bare coroutine.yield() would leave the task hanging forever */
            lua_pop(t->co, nres);
            script_where(t->co, 0, where, sizeof where);
            lua_pushfstring(t->co, "%sa backend hook yielded without waiting on registrar.http", where);
            finish_failed(t, LUA_ERRRUN);
        }
        return;
    }
    if (status != LUA_OK) {
        finish_failed(t, status);
        return;
    }
    if (!script_budget_within(&t->budget, err, sizeof err)) {
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

void task_wait(lua_State *co, struct http_transfer *x)
{
    struct task *t = task_of(co);
    if (t != NULL)
        t->waiting = x;
}

void task_wake(lua_State *co, int nres)
{
    struct task *t = task_of(co);
    if (t == NULL)
        return;
    t->waiting = NULL;
    resume(t, nres);
}

void task_cancel_all(struct script *s)
{
    struct task *t = live, *next;
    for (; t != NULL; t = next) {
        next = t->next;
        if (t->s != s)
            continue;
        if (t->waiting)
            http_cancel(t->waiting);
        if (t->done)
            t->done(t, false, t->co, 0, "cancelled", t->arg);
        task_free(t);
    }
}
