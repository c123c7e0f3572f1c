/* budget.h: what one hook call may spend: Lua instructions, time running
 * (a coroutine waiting on the registry uses none) and, for the whole
 * state, memory.  A call over its budget is stopped with an error that
 * names its file:line and the setting to change. */
#ifndef REGISTRAR_LUA_BUDGET_H
#define REGISTRAR_LUA_BUDGET_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

/* The settings: script_instructions, script_timeout, script_memory. */
struct budget_limits {
    long instructions;
    long timeout_ms;
    size_t memory;
};

struct budget {
    const struct budget_limits *limits;
    long instructions_left;
    long long used_ns;          /* in earlier slices (a task resumes many times) */
    long long slice_start_ns;   /* 0 while not running */
    bool exceeded;
};

/* Arms b on L (a debug hook is per thread: each coroutine gets its own). */
void budget_arm(lua_State *L, struct budget *b, const struct budget_limits *limits);
void budget_disarm(lua_State *L);

/* Around each run of a hook's code: a call, or one resume of a task. */
void budget_slice_begin(struct budget *b);
void budget_slice_end(struct budget *b);

/* One library call cannot be interrupted while it runs: false, with the
 * reason in buf, when b ran over its time anyway. */
bool budget_within(const struct budget *b, char *buf, size_t len);

#endif
