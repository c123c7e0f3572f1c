/* naming.c: runs the naming pipeline (scripts/registrar/pipeline.lua)
 * for one container and copies out what it names: for each service its
 * key, value, compare text (the value's digest when the backend has no
 * compare()) and name, and a reference to its Lua entry
 * table for the backend calls that follow. */
#include "lua/naming.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/digest.h"
#include "core/log.h"
#include "lua/registrar_json.h"
#include "lua/script.h"

void naming_entries_free(struct script *s, struct naming_entry *e, int n)
{
    for (int i = 0; i < n; i++) {
        free(e[i].key);
        free(e[i].value);
        free(e[i].compare);
        free(e[i].name);
        if (s != NULL && e[i].ref > 0)
            script_unref(s, e[i].ref);
    }
    free(e);
}

/* A naming run's entries, owned by a userdata until they are complete, so
 * a Lua error half-way (out of memory) cannot leak them. */
struct entries_box {
    struct script *s;
    struct naming_entry *e;
    int n;
};

static int entries_box_gc(lua_State *L)
{
    struct entries_box *box = lua_touserdata(L, 1);
    naming_entries_free(box->s, box->e, box->n);
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

/* What the reconciler holds of a value: its digest, a few bytes where the
 * value may be hundreds (it holds one per key, for as long as the key is
 * registered).  A write reads the value again from naming's entry. */
static char *digest_or_raise(lua_State *L, const char *value)
{
    char hex[DIGEST_HEX_LEN + 1];
    digest_keyed(value, strlen(value), hex);
    return copy_or_raise(L, hex);
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
        struct naming_entry *e = &box->e[i];
        e->ref = 0;
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
        e->compare = lua_type(L, -1) == LUA_TSTRING ? copy_or_raise(L, lua_tostring(L, -1)) : digest_or_raise(L, e->value);
        lua_pop(L, 5);
        e->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    }
}

struct naming_run {
    struct script *s;
    const cJSON *container;
    struct naming_entry *e;
    int n;
};

/* Everything that touches the Lua state runs here, under lua_pcall: a
 * container pushed into a state at its memory limit raises, and that must
 * cost this container, not the daemon. */
static int run_naming(lua_State *L)
{
    struct naming_run *run = lua_touserdata(L, 1);
    struct entries_box *box = entries_box_push(L, run->s);

    lua_rawgeti(L, LUA_REGISTRYINDEX, script_pipeline(run->s));
    lua_json_push(L, run->container);
    lua_call(L, 1, 1);
    collect_entries(L, box);
    run->e = box->e;
    run->n = box->n;
    box->e = NULL;
    box->n = 0;
    return 0;
}

int naming_entries(struct script *s, const cJSON *container,
                    struct naming_entry **out, int *n, char *err, size_t errlen)
{
    struct naming_run run = { s, container, NULL, 0 };
    *out = NULL;
    *n = 0;
    lua_pushcfunction(script_state(s), run_naming);
    lua_pushlightuserdata(script_state(s), &run);
    if (script_call(s, 1, 0, err, errlen) < 0) {
        naming_entries_free(s, run.e, run.n);   /* a run over its time */
        return -1;
    }
    *out = run.e;
    *n = run.n;
    return 0;
}

/* The pipeline on co (a backend hook's coroutine, inside its pcall):
 * naming is inline code, so it runs on the thread that asks. */
int naming_push_entry(lua_State *co, struct script *s, const cJSON *container, const char *key)
{
    lua_Integer n;
    lua_rawgeti(co, LUA_REGISTRYINDEX, script_pipeline(s));
    lua_json_push(co, container);
    if (lua_pcall(co, 1, 1, 0) != LUA_OK) {
        log_warn("naming %s again failed: %s", key, lua_tostring(co, -1));
        lua_pop(co, 1);
        lua_pushnil(co);
        return 0;
    }
    n = lua_istable(co, -1) ? (lua_Integer)lua_rawlen(co, -1) : 0;
    for (lua_Integer i = 1; i <= n; i++) {
        bool found;
        lua_rawgeti(co, -1, i);
        lua_getfield(co, -1, "key");
        found = lua_type(co, -1) == LUA_TSTRING && strcmp(lua_tostring(co, -1), key) == 0;
        lua_pop(co, 1);
        if (found) {
            lua_remove(co, -2);
            return 1;
        }
        lua_pop(co, 1);
    }
    lua_pop(co, 1);
    lua_pushnil(co);
    return 0;
}

struct host_entry {
    const char *key;
    const cJSON *document;
    int ref;
    char *value;
};

/* {key, value, document, host = true}: the entry backends get for this
 * host's document, as naming's entries are for services. */
static int make_host_entry(lua_State *L)
{
    struct host_entry *h = lua_touserdata(L, 1);
    lua_createtable(L, 0, 4);
    lua_pushstring(L, h->key);
    lua_setfield(L, -2, "key");
    lua_json_push(L, h->document);
    lua_pushvalue(L, -1);
    lua_setfield(L, -3, "document");
    lua_json_encode(L, -1);
    h->value = strdup(lua_tostring(L, -1));
    if (h->value == NULL)
        luaL_error(L, "out of memory");
    lua_setfield(L, -3, "value");
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "host");
    h->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int naming_host_entry(struct script *s, const char *key, const cJSON *document, char **value,
                      char *err, size_t errlen)
{
    struct host_entry h = { key, document, 0, NULL };
    lua_pushcfunction(script_state(s), make_host_entry);
    lua_pushlightuserdata(script_state(s), &h);
    if (script_call(s, 1, 0, err, errlen) < 0 || h.ref <= 0) {
        free(h.value);
        return 0;
    }
    *value = h.value;
    return h.ref;
}
