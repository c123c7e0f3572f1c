/* budget.c: see budget.h.  The count hook runs every BUDGET_STEP
 * instructions and also reads the clock: a loop of library calls
 * (string.rep, patterns over large data) runs few instructions and much
 * time. */
#include "lua/budget.h"

#include <lauxlib.h>
#include <stdio.h>
#include <time.h>

#define BUDGET_STEP 10000      /* instructions between checks */

static long long monotonic_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* "50 million", or the number itself when it is not whole millions */
static const char *count_text(long n, char *buf, size_t len)
{
    if (n % 1000000 == 0)
        snprintf(buf, len, "%ld million", n / 1000000);
    else
        snprintf(buf, len, "%ld", n);
    return buf;
}

static long long used_ns(const struct budget *b)
{
    return b->used_ns + (b->slice_start_ns ? monotonic_ns() - b->slice_start_ns : 0);
}

static long long limit_ns(const struct budget *b)
{
    return b->limits->timeout_ms * 1000000LL;
}

/* Raises "file:line: stopped after ..." from inside the hook: level 0 is
 * then the function running the loop. */
static void stop(lua_State *L, struct budget *b, const char *why)
{
    b->exceeded = true;
    luaL_where(L, 0);
    lua_pushstring(L, why);
    lua_concat(L, 2);
    lua_error(L);
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    struct budget *b = *(struct budget **)lua_getextraspace(L);
    char why[160], count[40];
    (void)ar;
    if (b == NULL || b->exceeded)
        return;
    b->instructions_left -= BUDGET_STEP;
    if (b->instructions_left < 0) {
        snprintf(why, sizeof why, "stopped after %s instructions (script_instructions): a loop that never ends?",
                 count_text(b->limits->instructions, count, sizeof count));
        stop(L, b, why);
    }
    if (used_ns(b) > limit_ns(b)) {
        snprintf(why, sizeof why, "stopped after %ld ms (script_timeout): a loop that never ends, or slow "
                 "library calls on large data?", b->limits->timeout_ms);
        stop(L, b, why);
    }
}

void budget_arm(lua_State *L, struct budget *b, const struct budget_limits *limits)
{
    b->limits = limits;
    b->instructions_left = limits->instructions;
    b->used_ns = 0;
    b->slice_start_ns = 0;
    b->exceeded = false;
    *(struct budget **)lua_getextraspace(L) = b;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, BUDGET_STEP);
}

void budget_disarm(lua_State *L)
{
    lua_sethook(L, NULL, 0, 0);
    *(struct budget **)lua_getextraspace(L) = NULL;
}

void budget_slice_begin(struct budget *b)
{
    b->slice_start_ns = monotonic_ns();
}

void budget_slice_end(struct budget *b)
{
    if (b->slice_start_ns)
        b->used_ns += monotonic_ns() - b->slice_start_ns;
    b->slice_start_ns = 0;
}

bool budget_within(const struct budget *b, char *buf, size_t len)
{
    long long used = used_ns(b);
    if (used <= limit_ns(b))
        return true;
    snprintf(buf, len, "took %lld ms, over script_timeout (%ld ms): a pattern that backtracks, or a "
             "library call on large data?", used / 1000000, b->limits->timeout_ms);
    return false;
}
