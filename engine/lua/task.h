/* task.h: a Lua function run as a coroutine that may wait (on HTTP, on
 * ZooKeeper).  The
 * only place that resumes a coroutine: it arms the budget, and on failure
 * takes the traceback from the coroutine before resetting it. */
#ifndef REGISTRAR_LUA_TASK_H
#define REGISTRAR_LUA_TASK_H

#include <lua.h>
#include <stdbool.h>

struct budget_limits;
struct task;

/* ok: the function's results are on co's stack (nres of them).
 * !ok: err holds "file:line: message".  The task is freed after the call. */
typedef void task_done_fn(struct task *t, bool ok, lua_State *co, int nres, const char *err, void *arg);

/* A new task on the state L: push the function and its arguments on
 * task_thread(t), then call task_start.  Push only what cannot fail (a C
 * function, light userdata): outside a resume nothing is protected.  The
 * callback may run before task_start returns.  NULL when out of memory. */
struct task *task_new(lua_State *L, const struct budget_limits *limits, task_done_fn *done, void *arg);
lua_State *task_thread(struct task *t);
void task_start(struct task *t, int nargs);

/* Tasks not yet finished, and stopping those of one state (shutdown,
 * reload): what each waits on is cancelled and each callback runs with
 * err "cancelled" so it can free what it holds. */
int task_count(void);
void task_cancel_all(lua_State *L);

/* Stops what a task waits on, so that its completion never comes: called
 * when the task is cancelled while it waits. */
typedef void task_cancel_fn(void *handle);

/* For the modules that wait (registrar.http, registrar.zk): is co a task's
 * own coroutine (not one a script made)?  co waits on handle, which
 * cancel(handle) stops / co is woken with nres values pushed.  After the
 * wake or the cancel the task forgets the handle. */
bool task_owns(lua_State *co);
void task_wait(lua_State *co, task_cancel_fn *cancel, void *handle);
void task_wake(lua_State *co, int nres);

#endif
