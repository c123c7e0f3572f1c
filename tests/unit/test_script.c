/* The scripts' budgets: a hook that loops forever or allocates without
 * bound is stopped with a clear error, and the daemon's Lua state goes on
 * working for the next container. */
#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <unistd.h>

#include "check.h"
#include "core/config.h"
#include "lua/naming.h"
#include "lua/script.h"
#include "lua/task.h"

static char site[] = "/tmp/registrar-script-test-XXXXXX";

/* key() misbehaves when the container asks it to, through its env. */
static const char *site_script =
    "local registrar = require 'registrar'\n"
    "function key(service)\n"
    "  local mode = service.env.MODE\n"
    "  if mode == 'loop' then\n"
    "    while true do end\n"                      /* line 5 */
    "  elseif mode == 'hog' then\n"
    "    local t = {}\n"
    "    while true do t[#t + 1] = string.rep('x', 4096) .. #t end\n"
    "  elseif mode == 'raise' then\n"
    "    error('boom')\n"                          /* line 10 */
    "  elseif mode == 'table' then\n"
    "    error({})\n"                             /* line 12 */
    "  elseif mode == 'yield' then\n"
    "    coroutine.yield()\n"                     /* line 14 */
    "  elseif mode == 'slow' then\n"
    "    local s = ('x'):rep(100000)\n"
    "    while true do local t = s:rep(20) end\n"  /* line 17 */
    "  elseif mode == 'fill' then\n"          /* to the last few bytes, and keep it */
    "    HELD = {}\n"
    "    pcall(function() while true do HELD[#HELD + 1] = string.rep('y', 65536 + #HELD) end end)\n"
    "    collectgarbage()\n"
    "    local n = HELD\n"
    "    while true do n.next = {} n = n.next end\n"
    "  end\n"
    "  return registrar.default.key(service)\n"
    "end\n";

/* valgrind runs code some fifty times slower and doubles what a process
 * holds: tests/valgrind/unit.sh says so, and the checks of time and of
 * resident memory are left to the plain run. */
#ifdef __SANITIZE_ADDRESS__
#define ASAN_BUILD 1
#else
#define ASAN_BUILD 0
#endif

/* Under valgrind or ASan, filling 64 MiB may take longer than the 1 s
 * script_timeout: those runs give time a minute and leave its test to the
 * plain build. */
static bool under_valgrind, slow_build;

static struct script *load(struct config *c)
{
    /* the budgets as a user sets them: config keys, here through env */
    char *env[] = { "HOST=h1", "IPADDRESS=10.0.0.1", "SCRIPT_INSTRUCTIONS=2000000", "SCRIPT_MEMORY=64",
                    slow_build ? "SCRIPT_TIMEOUT=60000" : "SCRIPT_TIMEOUT=1000", NULL };
    char err[1024];
    struct script_options so = { .config = c };
    struct script *s;
    FILE *f = fdopen(mkstemp(site), "w");

    fputs(site_script, f);
    fclose(f);
    config_init(c);
    config_load_env(c, env, err, sizeof err);
    config_set(c, CK_SCRIPT, site, "test", err, sizeof err);
    config_set(c, CK_BACKEND, "file:///tmp/registrar-script-test.json", "test", err, sizeof err);
    if (config_finish(c, err, sizeof err) < 0) {
        fprintf(stderr, "config: %s\n", err);
        return NULL;
    }
    s = script_load(&so, err, sizeof err);
    if (s == NULL)
        fprintf(stderr, "script_load: %s\n", err);
    return s;
}

static cJSON *container(const char *mode)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"id\":\"abc123abc123abc\",\"name\":\"/c\",\"hostname\":\"abc123abc123\",\"state\":\"running\","
             "\"env\":{\"MODE\":\"%s\",\"NAME\":\"web\"},\"labels\":{},\"networks\":{},"
             "\"ports\":[{\"port\":80,\"proto\":\"tcp\",\"host_ip\":\"0.0.0.0\",\"host_port\":8080}]}", mode);
    return cJSON_Parse(json);
}

/* Runs naming; returns the error text ("" on success) in err. */
static int services(struct script *s, const char *mode, char *err, size_t len)
{
    cJSON *c = container(mode);
    struct naming_entry *e;
    int n, rc;
    err[0] = '\0';
    rc = naming_entries(s, c, &e, &n, err, len);
    if (rc == 0)
        naming_entries_free(s, e, n);
    cJSON_Delete(c);
    return rc < 0 ? -1 : n;
}

static long resident_kib(void)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f != NULL) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static void test_naming_budgets(struct script *s)
{
    char err[1024], where[600];

    CHECK(services(s, "none", err, sizeof err) == 1);

    CHECK(services(s, "loop", err, sizeof err) < 0);
    snprintf(where, sizeof where, "%s:5: stopped after 2 million instructions", site);
    CHECK_HAS(err, where);
    CHECK(services(s, "none", err, sizeof err) == 1);     /* the state still works */

    CHECK(services(s, "hog", err, sizeof err) < 0);
    CHECK_HAS(err, "memory limit of 64 MiB (script_memory) was reached");
    CHECK(script_memory_used(s) < (32UL << 20));          /* and was given back, */
    if (!slow_build)            /* valgrind and ASan keep freed memory back */
        CHECK(resident_kib() < 40 * 1024);                /* to the system too */
    CHECK(services(s, "none", err, sizeof err) == 1);

    CHECK(services(s, "raise", err, sizeof err) < 0);
    snprintf(where, sizeof where, "%s:10: boom", site);
    CHECK_STR(err, where);
}

/* A loop of library calls runs few instructions and much time. */
static void test_naming_time(struct script *s)
{
    char err[1024], where[600];
    CHECK(services(s, "slow", err, sizeof err) < 0);
    snprintf(where, sizeof where, "%s:17: stopped after 1000 ms (script_timeout)", site);
    CHECK_HAS(err, where);
    CHECK(services(s, "none", err, sizeof err) == 1);
}

/* Errors that carry no position still say where they were raised. */
static void test_error_positions(struct script *s)
{
    char err[1024], where[600];
    CHECK(services(s, "table", err, sizeof err) < 0);
    snprintf(where, sizeof where, "%s:12: (error object is a table value)", site);
    CHECK_STR(err, where);
    CHECK(services(s, "yield", err, sizeof err) < 0);
    snprintf(where, sizeof where, "%s:14: attempt to yield from outside a coroutine", site);
    CHECK_STR(err, where);
}

/* A state a script filled to its limit and keeps full: the next container
 * cannot even be handed to naming.  That costs the container, not the
 * daemon (it once aborted: the push ran outside any protected call). */
static void test_full_state(struct script *s)
{
    char err[1024];
    CHECK(services(s, "fill", err, sizeof err) < 0);
    CHECK_HAS(err, "memory limit of 64 MiB (script_memory) was reached");
    CHECK(services(s, "none", err, sizeof err) < 0);
    CHECK_HAS(err, "memory limit of 64 MiB (script_memory) was reached");
    /* the script holds it all: only letting go of it helps */
    lua_pushnil(script_state(s));
    lua_setglobal(script_state(s), "HELD");
    CHECK(services(s, "none", err, sizeof err) == 1);
}

struct outcome {
    bool done, ok;
    char err[512];
};

static void on_done(struct task *t, bool ok, lua_State *co, int nres, const char *err, void *arg)
{
    struct outcome *o = arg;
    (void)t;
    (void)co;
    (void)nres;
    o->done = true;
    o->ok = ok;
    snprintf(o->err, sizeof o->err, "%s", err ? err : "");
}

/* Backend hooks run as coroutines: each gets its own budget. */
static void test_task_budget(struct script *s)
{
    struct outcome o = { 0 };
    struct task *t = task_new(script_state(s), script_limits(s), on_done, &o);
    lua_State *co = task_thread(t);

    CHECK(luaL_loadstring(co, "local n = 0\nwhile true do n = n + 1 end") == LUA_OK);
    task_start(t, 0);
    CHECK(o.done);
    CHECK(!o.ok);
    CHECK_HAS(o.err, ":2: stopped after 2 million instructions");
    CHECK(task_count() == 0);

    memset(&o, 0, sizeof o);
    t = task_new(script_state(s), script_limits(s), on_done, &o);
    co = task_thread(t);
    luaL_loadstring(co, "return 1 + 1");
    task_start(t, 0);
    CHECK(o.done && o.ok);
}

int main(void)
{
    under_valgrind = getenv("REGISTRAR_UNDER_VALGRIND") != NULL;
    slow_build = under_valgrind || ASAN_BUILD;
    struct config c;
    struct script *s = load(&c);
    CHECK(s != NULL);
    if (s != NULL) {
        test_naming_budgets(s);
        if (!slow_build)
            test_naming_time(s);
        test_error_positions(s);
        test_full_state(s);
        test_task_budget(s);
        script_free(s);
    }
    config_free(&c);
    unlink(site);
    return CHECK_DONE();
}
