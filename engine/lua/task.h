/* task.h: a Lua function run as a coroutine that may wait on HTTP. */
#ifndef REGISTRAR_TASK_H
#define REGISTRAR_TASK_H

#include <lua.h>
#include <stdbool.h>

struct script;
struct task;
struct http_transfer;

/* ok: the function's results are on co's stack (nres of them).
 * !ok: err holds "file:line: message".  The task is freed after the call. */
typedef void task_done_fn(struct task *t, bool ok, lua_State *co, int nres, const char *err, void *arg);

/* A new task: push the function and its arguments on task_thread(t), then
 * call task_start.  The callback may run before task_start returns. */
struct task *task_new(struct script *s, task_done_fn *done, void *arg);
lua_State *task_thread(struct task *t);
void task_start(struct task *t, int nargs);

/* Tasks not yet finished, and stopping them all (shutdown, reload): their
 * HTTP transfers are cancelled and each callback runs with err "cancelled"
 * so it can free what it holds. */
int task_count(void);
void task_cancel_all(struct script *s);

/* For lua_http.c: is co a task's own coroutine (not one a script made)? */
bool task_owns(lua_State *co);
/* For lua_http.c: the coroutine co waits on transfer x / is woken with
 * nres values pushed on its stack. */
void task_wait(lua_State *co, struct http_transfer *x);
void task_wake(lua_State *co, int nres);

#endif
