/* script.c: the Lua state.  Loads scripts in a fixed order (naming, site,
 * backend), resolves the naming hooks once, and runs the naming pipeline
 * for one container at a time under a budget.  Policy lives in the
 * scripts; this file only loads them and reports their faults well. */
#include "lua/script.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <limits.h>
#include <malloc.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "lua/registrar_json.h"
#include "lua/modules.h"

struct script {
    lua_State *L;
    size_t mem_used, mem_limit;
    long instruction_budget;
    long timeout_ms;
    int pipeline_ref;
    int backend_ref;
};

#define BUDGET_STEP 10000      /* instructions between budget checks */

/* ---- memory cap ------------------------------------------------------- */

/* The allocator refuses growth past the limit; Lua turns that into a
 * memory error for the script that asked, and the daemon goes on. */
static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct script *s = ud;
    size_t old = ptr ? osize : 0;
    void *p;
    if (nsize == 0) {
        free(ptr);
        s->mem_used -= old;
        return NULL;
    }
    if (nsize > old && s->mem_limit && s->mem_used + (nsize - old) > s->mem_limit)
        return NULL;
    p = realloc(ptr, nsize);
    if (p != NULL)
        s->mem_used = s->mem_used - old + nsize;
    return p;
}

size_t script_memory_used(const struct script *s) { return s->mem_used; }
lua_State *script_state(struct script *s) { return s->L; }
int script_backend_module(struct script *s) { return s->backend_ref; }

/* ---- budget: instructions and time ----------------------------------- */

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

static long long budget_used_ns(const struct script_budget *b)
{
    return b->used_ns + (b->slice_start_ns ? monotonic_ns() - b->slice_start_ns : 0);
}

/* Every BUDGET_STEP instructions.  The clock is read here too: a loop of
 * library calls (string.rep, a pattern that backtracks) runs few
 * instructions and much time. */
static void budget_hook(lua_State *L, lua_Debug *ar)
{
    struct script_budget *b = *(struct script_budget **)lua_getextraspace(L);
    char text[40];
    (void)ar;
    if (b == NULL || b->exceeded)
        return;
    b->instructions_left -= BUDGET_STEP;
    if (b->instructions_left < 0) {
        b->exceeded = true;
        /* level 0: inside a hook that is the function running the loop */
        luaL_where(L, 0);
        lua_pushfstring(L, "stopped after %s instructions (script_instructions): a loop that never ends?",
                        count_text(b->limit, text, sizeof text));
        lua_concat(L, 2);
        lua_error(L);
    }
    if (budget_used_ns(b) > b->limit_ns) {
        b->exceeded = true;
        luaL_where(L, 0);
        lua_pushfstring(L, "stopped after %d ms (script_timeout): a loop that never ends, or slow "
                        "library calls on large data?", (int)(b->limit_ns / 1000000));
        lua_concat(L, 2);
        lua_error(L);
    }
}

/* A debug hook is per thread: each coroutine gets its own. */
void script_arm_budget(struct script *s, lua_State *L, struct script_budget *b)
{
    b->limit = s->instruction_budget;
    b->instructions_left = s->instruction_budget;
    b->limit_ns = s->timeout_ms * 1000000LL;
    b->used_ns = 0;
    b->slice_start_ns = 0;
    b->exceeded = false;
    *(struct script_budget **)lua_getextraspace(L) = b;
    lua_sethook(L, budget_hook, LUA_MASKCOUNT, BUDGET_STEP);
}

void script_budget_slice_begin(struct script_budget *b)
{
    b->slice_start_ns = monotonic_ns();
}

void script_budget_slice_end(struct script_budget *b)
{
    if (b->slice_start_ns)
        b->used_ns += monotonic_ns() - b->slice_start_ns;
    b->slice_start_ns = 0;
}

bool script_budget_within(const struct script_budget *b, char *buf, size_t len)
{
    long long used = budget_used_ns(b);
    if (used <= b->limit_ns)
        return true;
    snprintf(buf, len, "took %lld ms, over script_timeout (%lld ms): a pattern that backtracks, or a "
             "library call on large data?", used / 1000000, b->limit_ns / 1000000);
    return false;
}

static void disarm_budget(lua_State *L)
{
    lua_sethook(L, NULL, 0, 0);
    *(struct script_budget **)lua_getextraspace(L) = NULL;
}

/* ---- errors ------------------------------------------------------------ */

void script_where(lua_State *co, int level, char *buf, size_t len)
{
    lua_Debug ar;
    buf[0] = '\0';
    for (; lua_getstack(co, level, &ar); level++) {
        if (lua_getinfo(co, "Sl", &ar) && ar.currentline > 0) {
            snprintf(buf, len, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
    }
}

/* A message that does not say where: an error object that is not a
 * string (error({}), error()), or Lua's own yield refusal, raised from C. */
static bool lacks_position(lua_State *L, int idx)
{
    const char *msg = lua_type(L, idx) == LUA_TSTRING ? lua_tostring(L, idx) : NULL;
    return msg == NULL || strcmp(msg, "attempt to yield from outside a coroutine") == 0;
}

/* Turns the error object at the top of co's stack into a string that
 * starts with the file:line of the innermost Lua code running. */
void script_error_text(lua_State *co, int level)
{
    char where[LUA_IDSIZE + 32];
    if (!lacks_position(co, -1))
        return;
    script_where(co, level, where, sizeof where);
    if (lua_type(co, -1) == LUA_TSTRING)
        lua_pushfstring(co, "%s%s", where, lua_tostring(co, -1));
    else
        lua_pushfstring(co, "%s(error object is a %s value)", where, luaL_typename(co, -1));
    lua_remove(co, -2);
}

static int traceback_handler(lua_State *L)
{
    script_error_text(L, 1);
    luaL_traceback(L, L, lua_tostring(L, -1), 1);
    return 1;
}

void script_describe_error(struct script *s, lua_State *from, int status, char *buf, size_t len)
{
    const char *msg = lua_tostring(from, -1), *tb;
    if (status == LUA_ERRMEM) {
        snprintf(buf, len, "stopped: the scripts' memory limit of %lu MiB (script_memory) was reached",
                 (unsigned long)(s->mem_limit >> 20));
        return;
    }
    if (msg == NULL)
        msg = "(error object is not a string)";
    tb = strstr(msg, "\nstack traceback:");
    if (tb != NULL) {
        log_debug("%s", msg);
        snprintf(buf, len, "%.*s", (int)(tb - msg), msg);
    } else {
        snprintf(buf, len, "%s", msg);
    }
}

/* Lua frees what a runaway script took; the C library keeps the pages
 * unless asked, and a daemon that once hit script_memory would hold them
 * for good. */
static void give_back_memory(lua_State *L)
{
    lua_gc(L, LUA_GCCOLLECT);
    malloc_trim(0);
}

/* Calls the function below nargs arguments with a traceback and a budget. */
static int protected_call(struct script *s, int nargs, int nres, char *err, size_t errlen)
{
    lua_State *L = s->L;
    struct script_budget budget;
    int base = lua_gettop(L) - nargs, status;

    lua_pushcfunction(L, traceback_handler);
    lua_insert(L, base);
    script_arm_budget(s, L, &budget);
    script_budget_slice_begin(&budget);
    status = lua_pcall(L, nargs, nres, base);
    script_budget_slice_end(&budget);
    disarm_budget(L);
    lua_remove(L, base);
    if (status != LUA_OK) {
        script_describe_error(s, L, status, err, errlen);
        lua_pop(L, 1);
        give_back_memory(L);
        return -1;
    }
    if (!script_budget_within(&budget, err, errlen)) {
        lua_pop(L, nres);
        return -1;
    }
    return 0;
}

/* ---- loading ----------------------------------------------------------- */

static bool is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool is_file(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Where the default scripts are, in this order: $REGISTRAR_SCRIPTS; the
 * source tree for a binary inside the build tree, so an edit to a script is
 * live without an install; <bindir>/../share/registrar/scripts, so an
 * installed tree can be moved; the install prefix compiled in. */
const char *script_dir(char *err, size_t errlen)
{
    static char found[PATH_MAX];
    char exe[PATH_MAX];
    const char *env = getenv("REGISTRAR_SCRIPTS");
    ssize_t n;

    if (env != NULL && env[0] != '\0') {
        if (is_dir(env))
            return env;
        snprintf(err, errlen, "REGISTRAR_SCRIPTS=%s is not a directory", env);
        return NULL;
    }
    n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        char *slash;
        exe[n] = '\0';
        if (strncmp(exe, REGISTRAR_BUILD_DIR "/", strlen(REGISTRAR_BUILD_DIR) + 1) == 0 &&
            is_dir(REGISTRAR_SOURCE_SCRIPTS))
            return REGISTRAR_SOURCE_SCRIPTS;
        slash = strrchr(exe, '/');
        if (slash != NULL) {
            *slash = '\0';
            snprintf(found, sizeof found, "%.*s/../share/registrar/scripts", (int)(sizeof found - 40), exe);
            if (is_dir(found))
                return found;
        }
    }
    if (is_dir(REGISTRAR_INSTALL_SCRIPTS))
        return REGISTRAR_INSTALL_SCRIPTS;
    snprintf(err, errlen, "cannot find registrar's scripts: looked beside the binary and in %s "
             "(set REGISTRAR_SCRIPTS)", REGISTRAR_INSTALL_SCRIPTS);
    return NULL;
}

static int run_file(struct script *s, const char *path, char *err, size_t errlen)
{
    int status = luaL_loadfilex(s->L, path, "t");
    if (status != LUA_OK) {
        script_describe_error(s, s->L, status, err, errlen);
        lua_pop(s->L, 1);
        return -1;
    }
    return protected_call(s, 0, 0, err, errlen);
}

static void set_package_path(lua_State *L, const char *dir, const char *site_script)
{
    char site_dir[PATH_MAX] = "";
    if (site_script != NULL) {
        const char *slash = strrchr(site_script, '/');
        if (slash != NULL)
            snprintf(site_dir, sizeof site_dir, "%.*s/?.lua;", (int)(slash - site_script), site_script);
        else
            snprintf(site_dir, sizeof site_dir, "./?.lua;");
    }
    lua_getglobal(L, "package");
    lua_pushfstring(L, "%s%s/?.lua;%s/?/init.lua", site_dir, dir, dir);
    lua_setfield(L, -2, "path");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "cpath");    /* scripts get no native code */
    lua_pop(L, 1);
}

/* "default" and "registrator" name scripts of ours; anything else is a file. */
static int naming_path(const struct config *c, const char *dir, char *path, size_t len,
                       char *err, size_t errlen)
{
    if (strchr(c->naming, '/') || strstr(c->naming, ".lua"))
        snprintf(path, len, "%s", c->naming);
    else
        snprintf(path, len, "%s/naming/%s.lua", dir, c->naming);
    if (is_file(path))
        return 0;
    snprintf(err, errlen, "naming: \"%s\" is not a naming script: no file %s (%s)", c->naming, path,
             c->where[CK_NAMING] ? c->where[CK_NAMING] : "default");
    return -1;
}

/* registrar.default.<hook>: the naming script's hooks, so a site script that
 * redefines one can still call the one it replaces. */
static void snapshot_defaults(lua_State *L)
{
    static const char *const hooks[] = { "services", "name", "key", "document", "ignore", NULL };
    lua_getglobal(L, "require");
    lua_pushliteral(L, "registrar");
    lua_call(L, 1, 1);
    lua_newtable(L);
    for (int i = 0; hooks[i]; i++) {
        lua_getglobal(L, hooks[i]);
        lua_setfield(L, -2, hooks[i]);
    }
    lua_setfield(L, -2, "default");
    lua_pop(L, 1);
}

/* Calls require(module).fn(args...) leaving nres results; errors to err. */
static int call_module(struct script *s, const char *module, const char *fn, int nargs, int nres,
                       char *err, size_t errlen)
{
    lua_State *L = s->L;
    int base = lua_gettop(L) - nargs;
    lua_getglobal(L, "require");
    lua_pushstring(L, module);
    if (protected_call(s, 1, 1, err, errlen) < 0) {
        lua_settop(L, base);
        return -1;
    }
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    lua_insert(L, base + 1);
    return protected_call(s, nargs, nres, err, errlen);
}

/* The pipeline over the naming hooks, with the backend's compare(). */
static int load_pipeline(struct script *s, char *err, size_t errlen)
{
    lua_pushnil(s->L);
    lua_rawgeti(s->L, LUA_REGISTRYINDEX, s->backend_ref);
    lua_getfield(s->L, -1, "compare");
    lua_remove(s->L, -2);
    if (call_module(s, "registrar.pipeline", "new", 2, 1, err, errlen) < 0)
        return -1;
    s->pipeline_ref = luaL_ref(s->L, LUA_REGISTRYINDEX);
    return 0;
}

static int load_backend(struct script *s, const struct config *c, char *err, size_t errlen)
{
    lua_pushstring(s->L, c->backend);
    lua_pushstring(s->L, c->where[CK_BACKEND] ? c->where[CK_BACKEND] : "default");
    if (call_module(s, "registrar.backend", "load", 2, 1, err, errlen) < 0)
        return -1;
    s->backend_ref = luaL_ref(s->L, LUA_REGISTRYINDEX);
    return 0;
}

struct script *script_load(const struct script_options *opt, char *err, size_t errlen)
{
    const struct config *c = opt->config;
    struct registrar_env env = { c, opt->http, opt->metrics, c->timeout_ms };
    struct script *s = calloc(1, sizeof *s);
    char path[PATH_MAX];
    const char *dir = script_dir(err, errlen);

    if (s == NULL || dir == NULL) {
        free(s);
        return NULL;
    }
    s->pipeline_ref = s->backend_ref = LUA_NOREF;
    s->mem_limit = (size_t)c->script_memory_mb << 20;
    s->instruction_budget = c->script_instructions;
    s->timeout_ms = c->script_timeout_ms;
    s->L = lua_newstate(capped_alloc, s);
    if (s->L == NULL) {
        free(s);
        snprintf(err, errlen, "cannot create a Lua state");
        return NULL;
    }
    luaL_openlibs(s->L);
    set_package_path(s->L, dir, c->script);
    lua_registrar_install(s->L, &env);
    if (naming_path(c, dir, path, sizeof path, err, errlen) < 0 ||
        run_file(s, path, err, errlen) < 0)
        goto fail;
    snapshot_defaults(s->L);
    if (c->script != NULL) {
        if (!is_file(c->script)) {
            snprintf(err, errlen, "script: no such file %s (%s)", c->script,
                     c->where[CK_SCRIPT] ? c->where[CK_SCRIPT] : "default");
            goto fail;
        }
        if (run_file(s, c->script, err, errlen) < 0)
            goto fail;
    }
    if (load_backend(s, c, err, errlen) < 0 || load_pipeline(s, err, errlen) < 0)
        goto fail;
    return s;
fail:
    script_free(s);
    return NULL;
}

void script_free(struct script *s)
{
    if (s == NULL)
        return;
    lua_close(s->L);
    free(s);
}

void script_unref(struct script *s, int ref)
{
    luaL_unref(s->L, LUA_REGISTRYINDEX, ref);
}

/* ---- naming ------------------------------------------------------------- */

void script_entries_free(struct script *s, struct script_entry *e, int n)
{
    for (int i = 0; i < n; i++) {
        free(e[i].key);
        free(e[i].value);
        free(e[i].compare);
        free(e[i].name);
        if (s != NULL)
            script_unref(s, e[i].ref);
    }
    free(e);
}

/* A naming run's entries, owned by a userdata until they are complete, so
 * a Lua error half-way (out of memory) cannot leak them. */
struct entries_box {
    struct script *s;
    struct script_entry *e;
    int n;
};

static int entries_box_gc(lua_State *L)
{
    struct entries_box *box = lua_touserdata(L, 1);
    script_entries_free(box->s, box->e, box->n);
    box->e = NULL;
    box->n = 0;
    return 0;
}

static struct entries_box *entries_box_push(lua_State *L, struct script *s)
{
    struct entries_box *box = lua_newuserdatauv(L, sizeof *box, 0);
    box->s = s;
    box->e = NULL;
    box->n = 0;
    if (luaL_newmetatable(L, "registrar.entries")) {
        lua_pushcfunction(L, entries_box_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return box;
}

static char *copy_or_raise(lua_State *L, const char *text)
{
    char *copy = strdup(text);
    if (copy == NULL)
        luaL_error(L, "out of memory");
    return copy;
}

/* The pipeline has already checked types; this copies key and value out
 * of the list on top of the stack. */
static void collect_entries(lua_State *L, struct entries_box *box)
{
    int count = (int)lua_rawlen(L, -1);

    box->e = calloc((size_t)(count ? count : 1), sizeof *box->e);
    if (box->e == NULL)
        luaL_error(L, "out of memory");
    for (int i = 0; i < count; i++) {
        struct script_entry *e = &box->e[i];
        e->ref = LUA_NOREF;
        box->n = i + 1;
        lua_rawgeti(L, -1, i + 1);
        lua_getfield(L, -1, "key");
        lua_getfield(L, -2, "value");
        lua_getfield(L, -3, "service");
        lua_getfield(L, -1, "name");
        lua_getfield(L, -5, "compare");
        e->key = copy_or_raise(L, lua_tostring(L, -5));
        e->value = copy_or_raise(L, lua_tostring(L, -4));
        if (lua_type(L, -2) == LUA_TSTRING)
            e->name = copy_or_raise(L, lua_tostring(L, -2));
        e->compare = copy_or_raise(L, lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : e->value);
        lua_pop(L, 5);
        e->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
}

struct naming_run {
    struct script *s;
    const cJSON *container;
    struct script_entry *e;
    int n;
};

/* Everything that touches the Lua state runs here, under lua_pcall: a
 * container pushed into a state at its memory limit raises, and that must
 * cost this container, not the daemon. */
static int run_naming(lua_State *L)
{
    struct naming_run *run = lua_touserdata(L, 1);
    struct entries_box *box = entries_box_push(L, run->s);

    lua_rawgeti(L, LUA_REGISTRYINDEX, run->s->pipeline_ref);
    lua_json_push(L, run->container);
    lua_call(L, 1, 1);
    collect_entries(L, box);
    run->e = box->e;
    run->n = box->n;
    box->e = NULL;
    box->n = 0;
    return 0;
}

int script_services(struct script *s, const cJSON *container,
                    struct script_entry **out, int *n, char *err, size_t errlen)
{
    struct naming_run run = { s, container, NULL, 0 };
    *out = NULL;
    *n = 0;
    lua_pushcfunction(s->L, run_naming);
    lua_pushlightuserdata(s->L, &run);
    if (protected_call(s, 1, 0, err, errlen) < 0) {
        script_entries_free(s, run.e, run.n);   /* a run over its time */
        return -1;
    }
    *out = run.e;
    *n = run.n;
    return 0;
}
