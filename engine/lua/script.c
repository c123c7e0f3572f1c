/* script.c: the Lua state.  Loads scripts in a fixed order (naming, site,
 * backend), resolves the naming hooks once, and runs hook calls under a
 * budget.  Policy lives in the scripts; this file only loads them and
 * reports their faults well. */
#include "lua/script.h"

#include <lauxlib.h>
#include <limits.h>
#include <lualib.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/slab.h"
#include "lua/budget.h"
#include "lua/errors.h"
#include "lua/modules.h"

struct script {
    lua_State *L;
    size_t mem_used;
    struct budget_limits limits;
    int pipeline_ref;
    int backend_ref;
    int changed_ref;            /* the changed(summary) hook, if a script defines one */
};

/* A collection starts when the heap is 8% above what the last one left
 * (Lua's default waits until it doubles; it keeps the pause in steps of
 * 4%, so 110 is 108%).  Naming leaves garbage for each container, and the
 * engine keeps each container's records in the same heap: garbage that
 * waits is garbage the records are placed among, and once it is collected
 * the pages stay, a few records on each.  With 100 containers that was
 * 170 KiB.  A start-up of 10 000 takes 13% more CPU for it, in the same
 * time (bench/).  At 100 (or 102) a cycle follows the last one without a
 * pause, and start-up took ten times the CPU. */
#define GC_PAUSE 110

/* ---- memory cap ------------------------------------------------------- */

/* The allocator refuses growth past the limit; Lua turns that into a
 * memory error for the script that asked, and the daemon goes on. */
static void *capped_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct script *s = ud;
    size_t old = ptr ? osize : 0;
    void *p;
    if (nsize == 0) {
        slab_free(ptr, old);
        s->mem_used -= old;
        return NULL;
    }
    if (nsize > old && s->limits.memory && s->mem_used + (nsize - old) > s->limits.memory)
        return NULL;
    p = slab_realloc(ptr, old, nsize);
    if (p != NULL)
        s->mem_used = s->mem_used - old + nsize;
    return p;
}

size_t script_memory_used(const struct script *s) { return s->mem_used; }
lua_State *script_state(struct script *s) { return s->L; }
const struct budget_limits *script_limits(const struct script *s) { return &s->limits; }
int script_backend_module(struct script *s) { return s->backend_ref; }
int script_pipeline(struct script *s) { return s->pipeline_ref; }
int script_changed_hook(struct script *s) { return s->changed_ref; }

/* ---- calls ------------------------------------------------------------- */

/* Lua frees what a runaway script took; the C library keeps the pages
 * unless asked, and a daemon that once hit script_memory would hold them
 * for good. */
static void give_back_memory(lua_State *L)
{
    lua_gc(L, LUA_GCCOLLECT);
    malloc_trim(0);
}

void script_give_back_memory(struct script *s)
{
    give_back_memory(s->L);
}

int script_call(struct script *s, int nargs, int nres, char *err, size_t errlen)
{
    lua_State *L = s->L;
    struct budget budget;
    int base = lua_gettop(L) - nargs, status;

    lua_pushcfunction(L, errors_traceback);
    lua_insert(L, base);
    budget_arm(L, &budget, &s->limits);
    budget_slice_begin(&budget);
    status = lua_pcall(L, nargs, nres, base);
    budget_slice_end(&budget);
    budget_disarm(L);
    lua_remove(L, base);
    if (status != LUA_OK) {
        errors_describe(&s->limits, L, status, err, errlen);
        lua_pop(L, 1);
        give_back_memory(L);
        return -1;
    }
    if (!budget_within(&budget, err, errlen)) {
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
        errors_describe(&s->limits, s->L, status, err, errlen);
        lua_pop(s->L, 1);
        return -1;
    }
    return script_call(s, 0, 0, err, errlen);
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
             config_origin(c, CK_NAMING));
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
    if (script_call(s, 1, 1, err, errlen) < 0) {
        lua_settop(L, base);
        return -1;
    }
    lua_getfield(L, -1, fn);
    lua_remove(L, -2);
    lua_insert(L, base + 1);
    return script_call(s, nargs, nres, err, errlen);
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
    lua_pushstring(s->L, config_origin(c, CK_BACKEND));
    if (call_module(s, "registrar.backend", "load", 2, 1, err, errlen) < 0)
        return -1;
    s->backend_ref = luaL_ref(s->L, LUA_REGISTRYINDEX);
    return 0;
}

/* changed(summary): resolved once, as the naming hooks are. */
static int load_changed_hook(struct script *s, char *err, size_t errlen)
{
    int type = lua_getglobal(s->L, "changed");
    if (type == LUA_TFUNCTION) {
        s->changed_ref = luaL_ref(s->L, LUA_REGISTRYINDEX);
        return 0;
    }
    lua_pop(s->L, 1);
    if (type == LUA_TNIL)
        return 0;
    snprintf(err, errlen, "hook changed is a %s, not a function", lua_typename(s->L, type));
    return -1;
}

struct script *script_load(const struct script_options *opt, char *err, size_t errlen)
{
    const struct config *c = opt->config;
    struct registrar_env env = { c, opt->http, opt->metrics, c->timeout_ms, opt->docker, opt->zk };
    struct script *s = calloc(1, sizeof *s);
    char path[PATH_MAX];
    const char *dir = script_dir(err, errlen);

    if (s == NULL || dir == NULL) {
        free(s);
        return NULL;
    }
    s->pipeline_ref = s->backend_ref = s->changed_ref = LUA_NOREF;
    s->limits.memory = (size_t)c->script_memory_mb << 20;
    s->limits.instructions = c->script_instructions;
    s->limits.timeout_ms = c->script_timeout_ms;
    s->L = lua_newstate(capped_alloc, s);
    if (s->L == NULL) {
        free(s);
        snprintf(err, errlen, "cannot create a Lua state");
        return NULL;
    }
    luaL_openlibs(s->L);
    lua_gc(s->L, LUA_GCINC, GC_PAUSE, 0, 0);
    set_package_path(s->L, dir, c->script);
    lua_registrar_install(s->L, &env);
    if (naming_path(c, dir, path, sizeof path, err, errlen) < 0 ||
        run_file(s, path, err, errlen) < 0)
        goto fail;
    snapshot_defaults(s->L);
    if (c->script != NULL) {
        if (!is_file(c->script)) {
            snprintf(err, errlen, "script: no such file %s (%s)", c->script,
                     config_origin(c, CK_SCRIPT));
            goto fail;
        }
        if (run_file(s, c->script, err, errlen) < 0)
            goto fail;
    }
    if (load_backend(s, c, err, errlen) < 0 || load_pipeline(s, err, errlen) < 0 ||
        load_changed_hook(s, err, errlen) < 0)
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
