/* backend.c: the backend adapter (see backend.h).
 *
 * A call is a task whose coroutine runs run_call(): it pushes the hook and
 * its arguments, calls it (yieldable: the hook may wait on HTTP), and
 * finish_call() turns what it returned into C data, still inside the
 * coroutine, so a Lua error anywhere (a full state, a table json cannot
 * encode) fails that call and nothing else.  on_call_done() is the one
 * place results arrive; the registry's trouble is logged there, once when
 * it starts and once when no entry is failing any more. */
#include "registry/backend.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/config.h"
#include "core/digest.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "lua/modules.h"
#include "lua/naming.h"
#include "lua/registrar_json.h"
#include "lua/script.h"
#include "lua/task.h"

#define RETRY_FIRST_MS 250L

enum call_kind { CALL_OPEN, CALL_AUDIT, CALL_REFRESH, CALL_WRITE, CALL_CHANGED, CALL_WATCH };

static const char *const call_names[] = { "open", "advertised", "refresh", "write", "changed", "watch" };

/* A payload that is no Lua table: the key was written and the engine let
 * go of naming's entry, which holds the container's whole table.  A hook
 * that gets the key gets {key} (and value, until the key is first
 * written), and the rest on first use, by naming the container again:
 * what the reconciler keeps is the value's digest (or compare text). */
#define SLIM_PAYLOAD (-1L)

/* An entry a call hands to the hook: naming's entry table (a write, a
 * refresh), one rebuilt (SLIM_PAYLOAD) or {key, value} (a delete). */
struct item {
    char *key;
    char *had;                  /* a delete: what the reconciler holds */
    char *value;                /* SLIM_PAYLOAD: the value to write, if the
                                   reconciler still has it */
    long payload;               /* 0 for a delete */
};

struct call {
    struct backend *b;
    enum call_kind kind;
    unsigned long batch;        /* CALL_WRITE */
    unsigned long long mark;    /* CALL_AUDIT */
    long long started_ms;       /* CALL_REFRESH: the ttls it sets run from then */
    int n;
    struct item *items;
    /* filled in the coroutine */
    struct reconcile_held *held;
    int nheld;
    char fail[512];             /* the hook's own nil, message */
};

struct backend {
    struct loop *lp;
    struct script *s;
    const struct config *c;
    struct metrics *m;
    struct reconcile *r;
    int handle_ref;             /* what open() returned */
    bool has_compare;           /* the module's compare(): it says what is compared */
    /* The strings a call copies (keys, values) until it is done: each
     * refresh in ttl mode and each audit copies every key of this host,
     * 20 000 at 10 000 containers, and from the heap they left 1.2 MiB
     * of its pages resident between intervals. */
    struct pool call_strings;
    char *whole_key;            /* held as it is, not as a digest: this host's
                                   document, which is compared field by field */
    int slim_mt;                /* registry ref of the rebuilt entries' metatable */
    backend_container_fn *container;    /* a running container by id, for rebuilding */
    void *container_arg;
    bool open, opening, auditing, audited;
    bool has_apply, has_advertised, has_refresh, has_watch;
    bool watching;              /* a watch() call is under way */
    bool watch_armed;           /* ... and the one before it did not break */
    struct backoff rewatch;     /* a watch that keeps breaking */
    char watch_ended[256];      /* why the last one ended: said once, */
    long long watch_started_ms; /* not again for each retry that fails at once */
    long long watch_timer;
    bool call_failing;          /* the last open, audit or refresh failed */
    bool refresh_in_shares;     /* the handle says refresh() may run in shares */
    int refreshes;              /* refresh() calls under way */
    int refresh_round_n;        /* ... the entries their round was given */
    double refresh_entry_ms;    /* a round's time per entry it was given */
    int held_n;                 /* entries the registry held at the last round */
    bool refresh_missed;        /* an interval came while one was under way */
    int inflight;
    struct backoff reopen;
    long long open_timer;
    struct log_trouble down;
    long long reached_ms;       /* the last call the registry answered */
    /* changed(summary): keys written and removed since it last ran */
    struct key_list { char **keys; int n; } registered, deregistered;
    long long changed_timer;
    bool changed_running;
};

static void open_backend(struct backend *b);
static void audit(struct backend *b);
static void start_watch(struct backend *b);

/* ---- calls ------------------------------------------------------------- */

static void call_free(struct call *c)
{
    for (int i = 0; i < c->n; i++) {
        pool_free(c->items[i].key);
        pool_free(c->items[i].had);
        pool_free(c->items[i].value);
    }
    for (int i = 0; i < c->nheld; i++) {
        pool_free((char *)c->held[i].key);
        pool_free((char *)c->held[i].value);
    }
    free(c->items);
    free(c->held);
    free(c);
}

static struct call *call_new(struct backend *b, enum call_kind kind, int n)
{
    struct call *c = calloc(1, sizeof *c);
    if (c == NULL || (n > 0 && (c->items = calloc((size_t)n, sizeof *c->items)) == NULL)) {
        free(c);
        return NULL;
    }
    c->b = b;
    c->kind = kind;
    return c;
}

/* __index of a slim entry: the first read of a field it lacks names its
 * container again and copies in the rest of the entry (service, document,
 * compare, and value unless it has the one being written). */
static int rebuild_entry(lua_State *co)
{
    struct backend *b = lua_touserdata(co, lua_upvalueindex(1));
    const char *owner, *key;
    cJSON *container;
    int found;
    bool has_value;

    lua_settop(co, 2);
    lua_pushnil(co);
    lua_setmetatable(co, 1);            /* once: later misses are plain nils */
    has_value = lua_getfield(co, 1, "value") != LUA_TNIL;    /* the one being written */
    lua_pop(co, 1);
    lua_getfield(co, 1, "key");
    key = lua_tostring(co, -1);
    owner = key && b->r ? reconcile_owner(b->r, key) : NULL;
    container = owner && b->container ? b->container(b->container_arg, owner) : NULL;
    found = container != NULL && naming_push_entry(co, b->s, container, key);
    cJSON_Delete(container);
    if (!found) {
        log_debug("entry %s: its container names it no more; %s is nil", key ? key : "?",
                  lua_isstring(co, 2) ? lua_tostring(co, 2) : "the field");
        lua_pushnil(co);
        return 1;
    }
    lua_pushnil(co);
    while (lua_next(co, -2)) {          /* rebuilt entry at -3 */
        bool keep = lua_type(co, -2) == LUA_TSTRING &&
                    (strcmp(lua_tostring(co, -2), "key") == 0 ||
                     (strcmp(lua_tostring(co, -2), "value") == 0 && has_value));
        if (keep) {
            lua_pop(co, 1);
            continue;
        }
        lua_pushvalue(co, -2);
        lua_insert(co, -2);
        lua_rawset(co, 1);
    }
    lua_pushvalue(co, 2);
    lua_rawget(co, 1);
    return 1;
}

/* A key whose entry the engine let go of: {key, value} (the value when
 * the reconciler still has it, before the key is first written), and the
 * rest read by naming the container again.  Once a key is written the
 * reconciler holds only a digest or compare text, and value too is read
 * that way. */
static void push_rebuilt(lua_State *co, struct backend *b, const struct item *it)
{
    lua_createtable(co, 0, 3);
    lua_pushstring(co, it->key);
    lua_setfield(co, -2, "key");
    if (it->value != NULL) {
        lua_pushstring(co, it->value);
        lua_setfield(co, -2, "value");
    }
    if (b->slim_mt == LUA_NOREF) {
        lua_createtable(co, 0, 1);
        lua_pushlightuserdata(co, b);
        lua_pushcclosure(co, rebuild_entry, 1);
        lua_setfield(co, -2, "__index");
        b->slim_mt = luaL_ref(co, LUA_REGISTRYINDEX);
    }
    lua_rawgeti(co, LUA_REGISTRYINDEX, b->slim_mt);
    lua_setmetatable(co, -2);
}

/* Pushes the table a hook gets for one item. */
static void push_item(lua_State *co, struct backend *b, const struct item *it)
{
    if (it->payload != 0) {
        if (it->payload == SLIM_PAYLOAD)
            push_rebuilt(co, b, it);
        else
            lua_rawgeti(co, LUA_REGISTRYINDEX, (lua_Integer)it->payload);
        if (b->c->mode == MODE_TTL) {
            lua_pushinteger(co, (b->c->ttl_ms + 999) / 1000);
            lua_setfield(co, -2, "ttl");
        }
        return;
    }
    lua_createtable(co, 0, 2);
    lua_pushstring(co, it->key);
    lua_setfield(co, -2, "key");
    lua_pushstring(co, it->had);
    lua_setfield(co, -2, "value");
}

static void push_items(lua_State *co, const struct call *c, bool puts)
{
    int k = 0;
    lua_newtable(co);
    for (int i = 0; i < c->n; i++) {
        if ((c->items[i].payload != 0) != puts)
            continue;
        push_item(co, c->b, &c->items[i]);
        lua_rawseti(co, -2, ++k);
    }
}

/* The keys of the items that are writes (or deletes), as a list. */
static void push_keys(lua_State *co, const struct call *c, bool puts)
{
    int k = 0;
    lua_createtable(co, c->n, 0);
    for (int i = 0; i < c->n; i++) {
        if ((c->items[i].payload != 0) != puts)
            continue;
        lua_pushstring(co, c->items[i].key);
        lua_rawseti(co, -2, ++k);
    }
    lua_json_tag_array(co);     /* "[]" when empty */
}

/* handle.<method> and the handle. */
static void push_method(lua_State *co, const struct backend *b, const char *method)
{
    lua_rawgeti(co, LUA_REGISTRYINDEX, b->handle_ref);
    lua_getfield(co, -1, method);
    lua_insert(co, -2);
}

/* Pushes the hook and its arguments; returns how many arguments. */
static int push_call(lua_State *co, struct call *c)
{
    struct backend *b = c->b;
    switch (c->kind) {
    case CALL_OPEN:             /* open(uri, config): the config with its secrets */
        lua_rawgeti(co, LUA_REGISTRYINDEX, script_backend_module(b->s));
        lua_getfield(co, -1, "open");
        lua_remove(co, -2);
        lua_pushstring(co, b->c->backend);
        lua_registrar_push_config(co, b->c, true);
        return 2;
    case CALL_AUDIT:
        push_method(co, b, "advertised");
        return 1;
    case CALL_WATCH:
        push_method(co, b, "watch");
        return 1;
    case CALL_REFRESH:
        push_method(co, b, "refresh");
        push_items(co, c, true);
        return 2;
    case CALL_CHANGED:          /* changed{registered = {keys}, deregistered = {keys}} */
        lua_rawgeti(co, LUA_REGISTRYINDEX, script_changed_hook(b->s));
        lua_createtable(co, 0, 2);
        push_keys(co, c, true);
        lua_setfield(co, -2, "registered");
        push_keys(co, c, false);
        lua_setfield(co, -2, "deregistered");
        return 1;
    case CALL_WRITE:
        if (b->has_apply) {
            push_method(co, b, "apply");
            push_items(co, c, true);
            push_items(co, c, false);
            return 3;
        }
        push_method(co, b, c->items[0].payload != 0 ? "register" : "deregister");
        push_item(co, b, &c->items[0]);
        return 2;
    }
    return 0;
}

static char *copy_or_raise(lua_State *co, struct backend *b, const char *text)
{
    char *copy = pool_strdup(&b->call_strings, text);
    if (copy == NULL)
        luaL_error(co, "out of memory");
    return copy;
}

/* What the reconciler holds of what key holds: as naming.c makes it, the
 * value's digest, unless compare() says (then advertised() and watch()
 * say it) or the key is kept whole. */
static const char *held_form(const struct backend *b, const char *key, const char *value,
                             char digest[DIGEST_HEX_LEN + 1])
{
    if (b->has_compare || (b->whole_key != NULL && strcmp(key, b->whole_key) == 0))
        return value;
    digest_keyed(value, strlen(value), digest);
    return digest;
}

/* array (n elements of size bytes, room for *cap) with room for one more:
 * doubled, from 64, since a call may hold every key of this host (a
 * realloc per element would be a mremap per element past malloc's mapping
 * threshold).  NULL when out of memory, array then as it was. */
static void *room_for_one(void *array, int n, int *cap, size_t size)
{
    int grown_cap;
    void *grown;
    if (n < *cap)
        return array;
    grown_cap = *cap ? *cap * 2 : 64;
    if ((grown = realloc(array, (size_t)grown_cap * size)) != NULL)
        *cap = grown_cap;
    return grown;
}

static void add_held_item(lua_State *co, struct call *c, int *cap, const char *key, const char *value)
{
    char digest[DIGEST_HEX_LEN + 1];
    struct reconcile_held *h, *held = room_for_one(c->held, c->nheld, cap, sizeof *held);
    if (held == NULL)
        luaL_error(co, "out of memory");
    c->held = held;
    h = &held[c->nheld];
    h->key = copy_or_raise(co, c->b, key);
    h->value = NULL;
    c->nheld++;
    h->value = value ? copy_or_raise(co, c->b, held_form(c->b, key, value, digest)) : NULL;
}

/* advertised()'s {key = value}: a table value stands for its JSON text (a
 * backend may hand back the decoded document). */
static void read_held(lua_State *co, struct call *c, int idx)
{
    int cap = 0;
    lua_pushnil(co);
    while (lua_next(co, idx)) {
        if (lua_type(co, -2) != LUA_TSTRING) {
            lua_pop(co, 1);
            continue;
        }
        if (lua_type(co, -1) == LUA_TTABLE) {
            lua_json_encode(co, -1);
            lua_remove(co, -2);
        }
        add_held_item(co, c, &cap, lua_tostring(co, -2), lua_isstring(co, -1) ? lua_tostring(co, -1) : "");
        lua_pop(co, 1);
    }
}

/* watch()'s list of {key = K, value = V}: V is what K holds now, nil when
 * it was deleted; a table stands for its JSON text. */
static void read_changes(lua_State *co, struct call *c, int idx)
{
    int cap = 0;
    lua_Integer n = (lua_Integer)lua_rawlen(co, idx);
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(co, idx, i);
        if (!lua_istable(co, -1))
            luaL_error(co, "watch(): change %d is a %s, not {key = ..., value = ...}", (int)i, luaL_typename(co, -1));
        lua_getfield(co, -1, "key");
        lua_getfield(co, -2, "value");
        if (lua_type(co, -2) != LUA_TSTRING)
            luaL_error(co, "watch(): change %d has no key", (int)i);
        if (lua_type(co, -1) == LUA_TTABLE) {
            lua_json_encode(co, -1);
            lua_remove(co, -2);
        }
        add_held_item(co, c, &cap, lua_tostring(co, -2), lua_isstring(co, -1) ? lua_tostring(co, -1) : NULL);
        lua_pop(co, 3);
    }
}

static bool handle_has(lua_State *co, int idx, const char *method)
{
    bool has;
    lua_getfield(co, idx, method);
    has = lua_isfunction(co, -1);
    lua_pop(co, 1);
    return has;
}

/* What the hook returned (the whole stack), as C data in c.  Success is
 * "nothing, or something true"; nil/false and a message is a failure the
 * registry reported. */
static int finish_call(lua_State *co, int status, lua_KContext ctx)
{
    struct call *c = (struct call *)ctx;
    struct backend *b = c->b;
    int nres = lua_gettop(co);
    (void)status;

    if (nres > 0 && !lua_toboolean(co, 1)) {
        snprintf(c->fail, sizeof c->fail, "%s",
                 nres >= 2 && lua_isstring(co, 2) ? lua_tostring(co, 2) : "failed without a reason");
        return 0;
    }
    if (c->kind == CALL_OPEN) {
        if (nres < 1 || !lua_istable(co, 1))
            return luaL_error(co, "open() did not return a backend table");
        b->has_apply = handle_has(co, 1, "apply");
        b->has_advertised = handle_has(co, 1, "advertised");
        b->has_refresh = handle_has(co, 1, "refresh");
        lua_getfield(co, 1, "refresh_in_shares");
        b->refresh_in_shares = lua_toboolean(co, -1);
        lua_pop(co, 1);
        b->has_watch = handle_has(co, 1, "watch");
        if (!b->has_apply && !(handle_has(co, 1, "register") && handle_has(co, 1, "deregister")))
            return luaL_error(co, "the backend has neither apply() nor register() and deregister(): "
                                  "nothing can be written");
        lua_settop(co, 1);
        luaL_unref(co, LUA_REGISTRYINDEX, b->handle_ref);
        b->handle_ref = luaL_ref(co, LUA_REGISTRYINDEX);
    } else if (c->kind == CALL_AUDIT) {
        if (nres < 1 || !lua_istable(co, 1))
            return luaL_error(co, "advertised() did not return a table of key = value");
        read_held(co, c, 1);
    } else if (c->kind == CALL_WATCH) {
        if (nres < 1 || !lua_istable(co, 1))
            return luaL_error(co, "watch() did not return a list of {key = ..., value = ...}");
        read_changes(co, c, 1);
    }
    return 0;
}

static int run_call(lua_State *co)
{
    struct call *c = lua_touserdata(co, 1);
    int nargs;
    lua_settop(co, 0);
    nargs = push_call(co, c);
    lua_callk(co, nargs, LUA_MULTRET, (lua_KContext)c, finish_call);
    return finish_call(co, LUA_OK, (lua_KContext)c);
}

static void on_call_done(struct task *t, bool ok, lua_State *co, int nres, const char *err, void *arg);

/* Starts c as a task; false (c freed) when that cannot be done. */
static bool start_call(struct backend *b, struct call *c)
{
    struct task *t = task_new(script_state(b->s), script_limits(b->s), on_call_done, c);
    if (t == NULL) {
        call_free(c);
        return false;
    }
    lua_pushcfunction(task_thread(t), run_call);
    lua_pushlightuserdata(task_thread(t), c);
    b->inflight++;
    task_start(t, 1);
    return true;
}

/* ---- the registry's trouble ------------------------------------------------ */

static void registry_failed(struct backend *b, enum call_kind kind, const char *why)
{
    metrics_count(b->m, "backend.failures", 1);
    if (!log_trouble_begin(&b->down, loop_now_ms(),
                           "registry %s: %s failed: %s; keeping the desired state and retrying",
                           b->c->backend_shown, call_names[kind], why))
        log_debug("registry still failing: %s: %s", call_names[kind], why);
}

/* Trouble ends when no entry's last write failed any more: a write that
 * succeeds meanwhile (a registry that refuses one key but takes the
 * others) ends nothing, so a lasting fault is one line, not one per retry. */
static void registry_ok(struct backend *b)
{
    b->reached_ms = loop_now_ms();
    if (reconcile_failing(b->r) == 0 && !b->call_failing)
        log_trouble_end(&b->down, loop_now_ms(), "the registry");
}

/* ---- what each call's answer means ------------------------------------------- */

static long on_reopen(struct loop *lp, void *arg)
{
    struct backend *b = arg;
    (void)lp;
    b->open_timer = 0;
    open_backend(b);
    return LOOP_NOMORE;
}

static void opened(struct backend *b, const char *fail)
{
    b->opening = false;
    b->call_failing = fail != NULL;
    if (fail != NULL) {
        registry_failed(b, CALL_OPEN, fail);
        b->open_timer = loop_timer_add(b->lp, backoff_next(&b->reopen), on_reopen, b);
        return;
    }
    if (!b->has_advertised)
        log_warn("backend for %s has no advertised(): entries left by an earlier run cannot be pruned",
                 b->c->backend_shown);
    b->open = true;
    backoff_reset(&b->reopen);
    registry_ok(b);
    reconcile_backend_ready(b->r, b->has_apply, b->has_advertised);
    audit(b);
}

static void audited(struct backend *b, struct call *c, const char *fail)
{
    b->auditing = false;
    b->call_failing = fail != NULL;
    if (fail != NULL) {
        registry_failed(b, CALL_AUDIT, fail);
        return;                 /* the next interval asks again */
    }
    registry_ok(b);
    if (!b->audited)
        log_info("registry %s: this host has %d entries there", b->c->backend_shown, c->nheld);
    b->audited = true;
    reconcile_audited(b->r, c->mark, c->held, c->nheld);
    start_watch(b);             /* from what this audit saw on */
}

static long on_rewatch(struct loop *lp, void *arg)
{
    struct backend *b = arg;
    (void)lp;
    b->watch_timer = 0;
    audit(b);                   /* what the broken watch may have missed; then watch again */
    return LOOP_NOMORE;
}

/* A watch that ends with changes is called again at once; one that broke
 * (the registry restarted, compacted its history, or cannot be reached)
 * falls back to one audit, then watches again, backing off up to the
 * interval while it keeps breaking. */
static void watched(struct backend *b, struct call *c, const char *fail)
{
    b->watching = false;
    if (fail != NULL) {
        b->watch_armed = false;
        metrics_count(b->m, "registry.watch_restarts", 1);
        /* A watch that had been up for a while ended: that is news, even
         * for the same reason.  Timed from the watch's own start, not from
         * the last ending: the audit in between may take longer than an
         * interval on a slow registry. */
        if (strncmp(fail, b->watch_ended, sizeof b->watch_ended - 1) != 0 ||
            loop_now_ms() - b->watch_started_ms > b->c->interval_ms)
            log_info("registry %s: watch ended: %s; auditing, then watching again", b->c->backend_shown, fail);
        else                    /* e.g. a layout this backend cannot watch: audited each time */
            log_debug("registry %s: watch ended again: %s", b->c->backend_shown, fail);
        snprintf(b->watch_ended, sizeof b->watch_ended, "%.255s", fail);
        b->watch_timer = loop_timer_add(b->lp, backoff_next(&b->rewatch), on_rewatch, b);
        return;
    }
    backoff_reset(&b->rewatch);
    b->watch_ended[0] = '\0';      /* it worked: its next ending is news */
    b->reached_ms = loop_now_ms();
    reconcile_observed(b->r, c->held, c->nheld);
    start_watch(b);
}

static void refresh(struct backend *b);

static void refreshed(struct backend *b, struct call *c, const char *fail)
{
    if (--b->refreshes == 0 && b->refresh_round_n > 0)
        b->refresh_entry_ms = (double)(loop_now_ms() - c->started_ms) / b->refresh_round_n;
    b->call_failing = fail != NULL;
    if (fail != NULL) {
        registry_failed(b, CALL_REFRESH, fail);
        reconcile_rewrite_all(b->r);    /* whatever it held may be gone */
        return;
    }
    for (int i = 0; i < c->n; i++)
        reconcile_refreshed(b->r, c->items[i].key, c->started_ms);
    registry_ok(b);
    if (b->refreshes == 0 && b->refresh_missed && b->open && b->audited)
        refresh(b);             /* what came due meanwhile waits no longer */
}

static void notify_later(struct backend *b);

/* A key written twice in one batch (this host's document, at each
 * listing of a burst) is in the summary once.  Copied as a call's strings
 * are: the changed() call takes them over. */
static void remember(struct backend *b, struct key_list *l, const char *key)
{
    char **grown;
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->keys[i], key) == 0)
            return;
    grown = realloc(l->keys, (size_t)(l->n + 1) * sizeof *grown);
    if (grown == NULL)
        return;                 /* the summary misses a key; the hook still runs */
    l->keys = grown;
    if ((l->keys[l->n] = pool_strdup(&b->call_strings, key)) != NULL)
        l->n++;
}

static long let_go(void *arg, long payload);

static void written(struct backend *b, struct call *c, const char *fail)
{
    reconcile_written(b->r, c->batch, fail);
    if (fail != NULL) {
        registry_failed(b, CALL_WRITE, fail);
        return;
    }
    registry_ok(b);
    if (b->container != NULL)   /* written: naming's tables are not needed any more */
        for (int i = 0; i < c->n; i++)
            if (c->items[i].payload > 0)
                reconcile_swap_held_payload(b->r, c->items[i].key, let_go, b);
    if (script_changed_hook(b->s) <= 0)
        return;
    for (int i = 0; i < c->n; i++)
        remember(b, c->items[i].payload != 0 ? &b->registered : &b->deregistered, c->items[i].key);
    notify_later(b);
}

/* ---- changed(summary) ------------------------------------------------------------ */

static void forget_keys(struct key_list *l)
{
    for (int i = 0; i < l->n; i++)
        pool_free(l->keys[i]);
    free(l->keys);
    l->keys = NULL;
    l->n = 0;
}

/* Takes what was written since the last run into one call. */
static void run_changed(struct backend *b)
{
    int n = b->registered.n + b->deregistered.n, k = 0;
    struct call *c = call_new(b, CALL_CHANGED, n);
    if (c == NULL)
        return;
    for (int i = 0; i < b->registered.n; i++, k++) {
        c->items[k].key = b->registered.keys[i];
        c->items[k].payload = 1;        /* a write: only what push_keys reads */
    }
    for (int i = 0; i < b->deregistered.n; i++, k++)
        c->items[k].key = b->deregistered.keys[i];
    c->n = n;
    free(b->registered.keys);
    free(b->deregistered.keys);
    b->registered = b->deregistered = (struct key_list){ NULL, 0 };
    b->changed_running = true;
    if (!start_call(b, c))
        b->changed_running = false;
}

/* Once the registry is quiet for notify_wait: one call for the batch,
 * never one per key, and never two at once. */
static long on_quiet(struct loop *lp, void *arg)
{
    struct backend *b = arg;
    (void)lp;
    b->changed_timer = 0;
    if (b->changed_running || reconcile_busy(b->r) > 0) {
        notify_later(b);
        return LOOP_NOMORE;
    }
    if (b->registered.n + b->deregistered.n > 0)
        run_changed(b);
    return LOOP_NOMORE;
}

static void notify_later(struct backend *b)
{
    loop_timer_cancel(b->lp, b->changed_timer);
    b->changed_timer = loop_timer_add(b->lp, b->c->notify_wait_ms, on_quiet, b);
}

static void notified(struct backend *b, const char *fail)
{
    b->changed_running = false;
    if (fail != NULL)
        log_warn("changed() hook failed: %s", fail);
    if (b->registered.n + b->deregistered.n > 0)
        notify_later(b);        /* what was written while it ran */
}

/* The one done path. */
static void on_call_done(struct task *t, bool ok, lua_State *co, int nres, const char *err, void *arg)
{
    struct call *c = arg;
    struct backend *b = c->b;
    const char *fail = !ok ? err : c->fail[0] ? c->fail : NULL;
    (void)t;
    (void)co;
    (void)nres;

    b->inflight--;
    if (!ok && b->r != NULL)
        metrics_count(b->m, "script.errors", 1);
    if (b->r != NULL) {         /* NULL: the backend is being freed */
        switch (c->kind) {
        case CALL_OPEN: opened(b, fail); break;
        case CALL_AUDIT: audited(b, c, fail); break;
        case CALL_REFRESH: refreshed(b, c, fail); break;
        case CALL_WRITE: written(b, c, fail); break;
        case CALL_CHANGED: notified(b, fail); break;
        case CALL_WATCH: watched(b, c, fail); break;
        }
    }
    call_free(c);
}

/* ---- starting calls ------------------------------------------------------------ */

static void open_backend(struct backend *b)
{
    struct call *c = call_new(b, CALL_OPEN, 0);
    b->opening = true;
    if (c == NULL || !start_call(b, c)) {
        b->opening = false;
        b->open_timer = loop_timer_add(b->lp, backoff_next(&b->reopen), on_reopen, b);
    }
}

static void audit(struct backend *b)
{
    struct call *c;
    if (!b->open || b->auditing || !b->has_advertised)
        return;
    c = call_new(b, CALL_AUDIT, 0);
    if (c == NULL)
        return;
    c->mark = reconcile_audit_begin(b->r);
    b->auditing = true;
    if (!start_call(b, c))
        b->auditing = false;
}

static void start_watch(struct backend *b)
{
    struct call *c;
    if (!b->open || !b->has_watch || b->watching || b->watch_timer != 0)
        return;
    if ((c = call_new(b, CALL_WATCH, 0)) == NULL)
        return;                 /* the interval's audits go on */
    b->watching = true;
    if (!b->watch_armed)        /* not again for each batch of changes */
        log_debug("registry %s: watching for changes", b->c->backend_shown);
    b->watch_armed = true;
    b->watch_started_ms = loop_now_ms();
    if (!start_call(b, c))
        b->watching = false;
}

static bool copy_item(struct backend *b, struct item *it, const char *key, const char *had, const char *value,
                      long payload)
{
    struct pool *p = &b->call_strings;
    it->key = pool_strdup(p, key);
    it->had = had ? pool_strdup(p, had) : NULL;
    it->payload = payload;
    it->value = payload == SLIM_PAYLOAD && value ? pool_strdup(p, value) : NULL;
    return it->key != NULL && (had == NULL || it->had != NULL) &&
           (payload != SLIM_PAYLOAD || value == NULL || it->value != NULL);
}

/* reconcile_ops.write */
static void write_changes(void *arg, const struct reconcile_write *w, int n, unsigned long batch)
{
    struct backend *b = arg;
    struct call *c = call_new(b, CALL_WRITE, n);
    bool copied = c != NULL;

    for (int i = 0; copied && i < n; i++) {
        copied = copy_item(b, &c->items[i], w[i].key, w[i].had, w[i].stored, w[i].value ? w[i].payload : 0);
        c->n = i + 1;
    }
    if (copied) {
        c->batch = batch;
        if (start_call(b, c))
            return;
    } else if (c != NULL) {
        call_free(c);
    }
    reconcile_written(b->r, batch, "out of memory");    /* retried */
}

static void release_entry(void *arg, long payload)
{
    struct backend *b = arg;
    if (payload > 0)
        script_unref(b->s, (int)payload);
}

/* Naming's entry table of a written key, unless it is this host's
 * document (which has no container to be named again). */
static long let_go(void *arg, long payload)
{
    struct backend *b = arg;
    lua_State *L = script_state(b->s);
    int top = lua_gettop(L);
    bool host;
    if (payload <= 0)
        return payload;
    lua_rawgeti(L, LUA_REGISTRYINDEX, (lua_Integer)payload);
    host = lua_istable(L, -1) && lua_getfield(L, -1, "host") != LUA_TNIL;
    lua_settop(L, top);
    if (host)
        return payload;
    script_unref(b->s, (int)payload);
    return SLIM_PAYLOAD;
}

long backend_keep_entry(struct backend *b, int ref)
{
    if (b->has_compare || b->container == NULL)
        return ref;
    return let_go(b, ref);
}

/* Without compare() every entry was let go of as it was named
 * (backend_keep_entry): nothing to look for. */
void backend_settle(struct backend *b)
{
    if (b->r != NULL && b->container != NULL && b->has_compare)
        reconcile_swap_held_payloads(b->r, let_go, b);
}

void backend_set_containers(struct backend *b, backend_container_fn *fn, void *arg)
{
    b->container = fn;
    b->container_arg = arg;
}

/* A watch under way holds a connection the registry answered on. */
long long backend_reached_ms(const struct backend *b)
{
    return b->watching && !b->call_failing ? loop_now_ms() : b->reached_ms;
}

long long backend_down_since_ms(const struct backend *b) { return b->down.active ? b->down.since_ms : 0; }

struct reconcile_ops backend_ops(struct backend *b)
{
    struct reconcile_ops ops = { write_changes, release_entry, b };
    return ops;
}

struct refresh_list {
    struct call *c;
    int cap;
    bool copied;
};

static void add_held(void *arg, const char *key, long payload)
{
    struct refresh_list *l = arg;
    struct call *c = l->c;
    struct item *items = room_for_one(c->items, c->n, &l->cap, sizeof *items);
    if (items == NULL) {
        l->copied = false;
        return;
    }
    c->items = items;
    memset(&c->items[c->n], 0, sizeof *c->items);
    l->copied = copy_item(c->b, &c->items[c->n++], key, NULL, NULL, payload) && l->copied;
}

/* Until a round is timed, an entry is taken to cost what one etcd v2 PUT
 * after another does here. */
#define REFRESH_ENTRY_MS_UNTIMED 1.0

/* An entry skipped now must live until the next round reaches it: that
 * starts an interval later, or once this one ends if that is later, and
 * may be given every entry, all come due together (a round of all takes
 * `all`).  One interval more, and a round twice as slow, is room to spare. */
static long long refresh_due_ms(const struct backend *b, long long now)
{
    double entry_ms = b->refresh_entry_ms > 0 ? b->refresh_entry_ms : REFRESH_ENTRY_MS_UNTIMED;
    long long all = (long long)(entry_ms * b->held_n), interval = b->c->interval_ms;
    return now + interval + (all > interval ? all : interval) + 2 * all;
}

static void start_refresh(struct backend *b, struct call *c)
{
    b->refreshes++;             /* before: a call that never waits is done inside start_call */
    if (!start_call(b, c))
        b->refreshes--;
}

/* Fewer entries than this to a share and the calls cost more than they save. */
#define REFRESH_SHARE_MIN 64

/* A backend that refreshes each entry with a request of its own (etcd v2)
 * takes them in shares, up to concurrency at once, as writes go: one at a
 * time, each waits out the registry's commit, and 20 000 of them took
 * longer than their ttl.  The shares take all's entries over. */
static void start_refresh_in_shares(struct backend *b, struct call *all)
{
    int shares = all->n / REFRESH_SHARE_MIN, from = 0;
    if (shares > (int)b->c->concurrency)
        shares = (int)b->c->concurrency;
    for (int i = 0; i < shares; i++) {
        int n = all->n / shares + (i < all->n % shares);
        struct call *c = call_new(b, CALL_REFRESH, n);
        if (c == NULL)
            break;              /* the rest are due again at the next interval */
        memcpy(c->items, all->items + from, (size_t)n * sizeof *c->items);
        c->n = n;
        c->started_ms = all->started_ms;
        from += n;
        start_refresh(b, c);
    }
    memmove(all->items, all->items + from, (size_t)(all->n - from) * sizeof *all->items);
    all->n -= from;
    call_free(all);
}

/* ttl mode: the backend's refresh(entries) when it has one (one keepalive
 * for etcd v3, a request per entry for etcd v2), given the entries whose
 * ttl runs out before a later refresh could reach them; else every entry
 * is written again with its ttl.  One round at a time: on a registry
 * slower than the interval, refreshes started each interval would pile
 * up, each holding a list of every entry. */
static void refresh(struct backend *b)
{
    struct refresh_list l = { NULL, 0, true };
    if (!b->has_refresh) {
        reconcile_rewrite_all(b->r);
        return;
    }
    if (b->refreshes > 0) {
        log_debug("registry %s: the last refresh is still under way", b->c->backend_shown);
        b->refresh_missed = true;
        return;
    }
    b->refresh_missed = false;
    l.c = call_new(b, CALL_REFRESH, 0);
    if (l.c == NULL)
        return;
    l.c->started_ms = loop_now_ms();
    b->held_n = reconcile_each_due(b->r, refresh_due_ms(b, l.c->started_ms), add_held, &l);
    b->refresh_round_n = l.c->n;
    if (!l.copied)
        call_free(l.c);
    else if (b->refresh_in_shares && l.c->n >= 2 * REFRESH_SHARE_MIN)
        start_refresh_in_shares(b, l.c);
    else
        start_refresh(b, l.c);
}

void backend_tick(struct backend *b)
{
    long long started = loop_now_ms();
    if (!b->open)
        return;
    if (b->c->mode == MODE_TTL && b->audited)
        refresh(b);
    if (!b->watching)           /* a watch reports changes as they happen */
        audit(b);
    metrics_timing(b->m, "processing.ms", (double)(loop_now_ms() - started));
}

void backend_start(struct backend *b, struct reconcile *r)
{
    b->r = r;
    open_backend(b);
}

/* ---- life cycle ------------------------------------------------------------------ */

static bool module_has_compare(struct script *s)
{
    lua_State *L = script_state(s);
    int top = lua_gettop(L);
    bool has;
    lua_rawgeti(L, LUA_REGISTRYINDEX, script_backend_module(s));
    has = lua_istable(L, -1) && lua_getfield(L, -1, "compare") == LUA_TFUNCTION;
    lua_settop(L, top);
    return has;
}

struct backend *backend_new(struct loop *lp, struct script *s, const struct config *c, struct metrics *m)
{
    struct backend *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->lp = lp;
    b->s = s;
    b->c = c;
    b->m = m;
    b->handle_ref = LUA_NOREF;
    b->slim_mt = LUA_NOREF;
    b->has_compare = module_has_compare(s);
    backoff_init(&b->reopen, RETRY_FIRST_MS, c->interval_ms);
    backoff_init(&b->rewatch, RETRY_FIRST_MS, c->interval_ms);
    return b;
}

void backend_free(struct backend *b)
{
    if (b == NULL)
        return;
    b->r = NULL;                /* the callbacks below only free their calls */
    task_cancel_all(script_state(b->s));
    loop_timer_cancel(b->lp, b->open_timer);
    loop_timer_cancel(b->lp, b->changed_timer);
    loop_timer_cancel(b->lp, b->watch_timer);
    forget_keys(&b->registered);
    forget_keys(&b->deregistered);
    free(b->whole_key);
    free(b);
}

void backend_keep_whole(struct backend *b, const char *key)
{
    free(b->whole_key);
    b->whole_key = strdup(key);     /* out of memory: compared as a digest, written again */
}
