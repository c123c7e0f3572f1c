/* reconcile.c: desired entries (from naming) against the entries the
 * registry holds for this host (from the backend's advertised() and from
 * our own writes), one record per key:
 *
 *   want   the value naming asks for, or NULL
 *   have   the value the registry holds as far as we know, or NULL
 *
 * A key whose want and have differ is queued; converge() turns queued keys
 * into backend calls: register when want differs from have, deregister
 * when only have is left.  A key a container named in this run is removed
 * when that container stops naming it.  An entry no container here named
 * (an orphan) is pruned only after a complete Docker listing (before it, an
 * absent container may simply not be read yet) and while every container's
 * naming succeeds (one that fails may be the owner).  A failed call changes
 * nothing we know: the key is retried with backoff.
 * Backend calls are coroutines (task.c), at most `concurrency` at once;
 * a backend with apply() gets the queued changes as one batch instead. */
#include "registry/reconcile.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/log.h"
#include "core/loop.h"
#include "lua/registrar_json.h"
#include "core/map.h"
#include "core/metrics.h"
#include "lua/script.h"
#include "lua/task.h"

#define RETRY_MIN_MS 250L
#define BATCH_MAX 256

/* A container that names a key another container holds: it waits, and
 * takes the key over when the holder lets go of it. */
struct claim {
    char *owner;
    char *want;
    int want_ref;
    struct claim *next;
};

struct entry {
    char *key;
    char *want;
    int want_ref;               /* the entry table naming made */
    char *owner;                /* container id that wants it */
    struct claim *waiting;      /* other containers naming it, first come first */
    char *have;
    bool busy;                  /* a backend call for it is under way */
    bool queued;
    bool failed;                /* waiting for the retry timer */
    bool erring;                /* its last call failed */
    bool claimed;               /* a container here named it in this run */
    unsigned long long touched; /* seq of the last change */
    struct entry *next_queued;
};

struct owned {                  /* the keys one container was given */
    char **keys;
    int n;
};

enum backend_state { B_CLOSED, B_OPENING, B_OPEN };

struct reconcile {
    struct loop *lp;
    struct script *s;
    const struct config *c;
    struct metrics *m;
    struct map *entries;        /* key -> struct entry */
    struct map *owned;          /* container id -> struct owned */
    struct map *naming_failed;  /* container ids whose naming raised */
    struct entry *queue_head, *queue_tail;
    enum backend_state backend;
    int backend_ref;            /* the handle open() returned */
    bool has_apply, has_advertised, has_refresh;
    bool audited;               /* we know what the registry holds */
    bool auditing;
    bool listed_once;           /* writes start after the first listing */
    bool listed_complete;       /* deletions are safe from now on */
    unsigned long long seq, audit_seq;
    int inflight;
    int nerring;                /* entries whose last call failed */
    bool call_failing;          /* the last open, audit or refresh failed */
    bool closing;               /* tasks cancelled: callbacks only free */
    long retry_ms;
    long long retry_timer, open_timer;
    struct log_trouble down;
};

static void converge(struct reconcile *r);

/* ---- entries ------------------------------------------------------------ */

static struct entry *entry_get(struct reconcile *r, const char *key, bool create)
{
    struct entry *e = map_get(r->entries, key);
    if (e != NULL || !create)
        return e;
    e = calloc(1, sizeof *e);
    if (e == NULL || (e->key = strdup(key)) == NULL) {
        free(e);
        return NULL;
    }
    e->want_ref = LUA_NOREF;
    map_put(r->entries, key, e, NULL);
    return e;
}

static void claim_free(struct reconcile *r, struct claim *c)
{
    if (r != NULL)
        script_unref(r->s, c->want_ref);
    free(c->owner);
    free(c->want);
    free(c);
}

static void entry_free(struct entry *e)
{
    while (e->waiting != NULL) {
        struct claim *c = e->waiting;
        e->waiting = c->next;
        claim_free(NULL, c);    /* the Lua state goes with the reconciler */
    }
    free(e->key);
    free(e->want);
    free(e->owner);
    free(e->have);
    free(e);
}

static void set_str(char **slot, const char *value)
{
    char *copy = value ? strdup(value) : NULL;
    free(*slot);
    *slot = copy;
}

static bool settled(const struct entry *e)
{
    if (e->want != NULL)
        return e->have != NULL && strcmp(e->want, e->have) == 0;
    return e->have == NULL;
}

static void enqueue(struct reconcile *r, struct entry *e)
{
    e->touched = ++r->seq;
    if (e->queued)
        return;
    e->queued = true;
    e->next_queued = NULL;
    if (r->queue_tail)
        r->queue_tail->next_queued = e;
    else
        r->queue_head = e;
    r->queue_tail = e;
}

static struct entry *dequeue(struct reconcile *r)
{
    struct entry *e = r->queue_head;
    if (e == NULL)
        return NULL;
    r->queue_head = e->next_queued;
    if (r->queue_head == NULL)
        r->queue_tail = NULL;
    e->queued = false;
    return e;
}

static void set_erring(struct reconcile *r, struct entry *e, bool erring)
{
    if (e->erring != erring)
        r->nerring += erring ? 1 : -1;
    e->erring = erring;
}

static void forget_if_idle(struct reconcile *r, struct entry *e)
{
    if (e->want == NULL && e->have == NULL && !e->busy && !e->queued && !e->failed) {
        set_erring(r, e, false);
        script_unref(r->s, e->want_ref);
        entry_free(map_remove(r->entries, e->key));
    }
}

/* ---- backend calls -------------------------------------------------------- */

/* Pushes backend.<method> and the handle; false if the hook is absent. */
static bool push_method(struct reconcile *r, lua_State *co, const char *method)
{
    lua_rawgeti(co, LUA_REGISTRYINDEX, r->backend_ref);
    lua_getfield(co, -1, method);
    if (!lua_isfunction(co, -1)) {
        lua_pop(co, 2);
        return false;
    }
    lua_insert(co, -2);
    return true;
}

/* Success is "returned nothing, or something true"; nil/false (with a
 * message) is a failure the registry reported. */
static const char *call_failed(lua_State *co, int nres, bool ok, const char *err, char *buf, size_t len)
{
    if (!ok)
        return err;
    if (nres == 0 || lua_toboolean(co, -nres))
        return NULL;
    snprintf(buf, len, "%s", nres >= 2 && lua_isstring(co, -nres + 1) ? lua_tostring(co, -nres + 1)
                                                                      : "failed without a reason");
    return buf;
}

/* Registry trouble is logged when it starts and when it is over: when
 * no entry's last call failed any more.  A call that succeeds meanwhile (a
 * registry that refuses one key but takes the others) ends nothing, so a
 * lasting fault is one line, not one per retry. */
static void registry_failed(struct reconcile *r, const char *what, const char *why)
{
    metrics_count(r->m, "backend.failures", 1);
    if (!log_trouble_begin(&r->down, loop_now_ms(),
                           "registry %s: %s failed: %s; keeping the desired state and retrying",
                           r->c->backend_shown, what, why))
        log_debug("registry still failing: %s: %s", what, why);
}

static void registry_ok(struct reconcile *r)
{
    if (r->nerring == 0 && !r->call_failing)
        log_trouble_end(&r->down, loop_now_ms(), "the registry");
}

static long on_retry(struct loop *lp, void *arg)
{
    struct reconcile *r = arg;
    struct map_iter it;
    const char *key;
    void *v;
    (void)lp;
    r->retry_timer = 0;
    map_iter_init(&it, r->entries);
    while (map_iter_next(&it, &key, &v)) {
        struct entry *e = v;
        if (e->failed) {
            e->failed = false;
            enqueue(r, e);
        }
    }
    converge(r);
    return LOOP_NOMORE;
}

/* Backoff doubles up to the interval, so a registry that comes back is
 * caught up within one interval. */
static void schedule_retry(struct reconcile *r)
{
    if (r->retry_timer != 0)
        return;
    r->retry_timer = loop_timer_add(r->lp, r->retry_ms, on_retry, r);
    r->retry_ms = r->retry_ms * 2 > r->c->interval_ms ? r->c->interval_ms : r->retry_ms * 2;
}

/* A finished call for one entry: update what we know of the registry. */
static void settle(struct reconcile *r, struct entry *e, bool put, const char *value, const char *fail)
{
    e->busy = false;
    e->touched = ++r->seq;      /* an audit asked before this call knows less than we do */
    set_erring(r, e, fail != NULL);
    if (fail != NULL) {
        e->failed = true;
        schedule_retry(r);
    } else {
        set_str(&e->have, put ? value : NULL);
        metrics_count(r->m, put ? "registrations" : "deregistrations", 1);
        log_debug("%s %s", put ? "registered" : "deregistered", e->key);
        if (!settled(e))
            enqueue(r, e);
    }
    forget_if_idle(r, e);
}

struct op {
    struct reconcile *r;
    char *key;
    char *value;                /* what a put writes; NULL for a delete */
    long long started;
};

static void on_op_done(struct task *t, bool ok, lua_State *co, int nres, const char *err, void *arg)
{
    struct op *op = arg;
    struct reconcile *r = op->r;
    struct entry *e = entry_get(r, op->key, false);
    char buf[512];
    const char *fail = call_failed(co, nres, ok, err, buf, sizeof buf);
    (void)t;

    r->inflight--;
    if (r->closing) {
        free(op->key);
        free(op->value);
        free(op);
        return;
    }
    if (e != NULL)
        settle(r, e, op->value != NULL, op->value, fail);
    if (fail != NULL)
        registry_failed(r, op->value ? "register" : "deregister", fail);
    else {
        registry_ok(r);
        r->retry_ms = RETRY_MIN_MS;
        if (op->value)
            metrics_timing(r->m, "services.set.ms", (double)(loop_now_ms() - op->started));
    }
    free(op->key);
    free(op->value);
    free(op);
    converge(r);
}

/* Pushes the table a register/deregister call gets: naming's entry table
 * (key, value, service, document) plus ttl, or {key, value} to delete. */
static void push_entry(struct reconcile *r, lua_State *co, struct entry *e, bool put)
{
    if (put) {
        lua_rawgeti(co, LUA_REGISTRYINDEX, e->want_ref);
        if (r->c->mode == MODE_TTL) {
            lua_pushinteger(co, (r->c->ttl_ms + 999) / 1000);
            lua_setfield(co, -2, "ttl");
        }
        return;
    }
    lua_createtable(co, 0, 2);
    lua_pushstring(co, e->key);
    lua_setfield(co, -2, "key");
    lua_pushstring(co, e->have);
    lua_setfield(co, -2, "value");
}

static void start_op(struct reconcile *r, struct entry *e, bool put)
{
    struct op *op = calloc(1, sizeof *op);
    struct task *t;
    lua_State *co;

    if (op == NULL || (op->key = strdup(e->key)) == NULL ||
        (put && (op->value = strdup(e->want)) == NULL) ||
        (t = task_new(r->s, on_op_done, op)) == NULL) {
        if (op)
            free(op->key);
        free(op);
        e->failed = true;
        schedule_retry(r);
        return;
    }
    op->r = r;
    op->started = loop_now_ms();
    co = task_thread(t);
    push_method(r, co, put ? "register" : "deregister");
    push_entry(r, co, e, put);
    e->busy = true;
    r->inflight++;
    task_start(t, 2);
}

/* ---- batches (backends with apply) --------------------------------------- */

struct batch {
    struct reconcile *r;
    long long started;
    int n;
    char **keys;
    char **values;              /* NULL entries are deletes */
};

static void on_batch_done(struct task *t, bool ok, lua_State *co, int nres, const char *err, void *arg)
{
    struct batch *b = arg;
    struct reconcile *r = b->r;
    char buf[512];
    const char *fail = call_failed(co, nres, ok, err, buf, sizeof buf);
    (void)t;

    r->inflight--;
    for (int i = 0; i < b->n; i++) {
        struct entry *e = r->closing ? NULL : entry_get(r, b->keys[i], false);
        if (e != NULL)
            settle(r, e, b->values[i] != NULL, b->values[i], fail);
        free(b->keys[i]);
        free(b->values[i]);
    }
    if (!r->closing && fail != NULL)
        registry_failed(r, "apply", fail);
    else if (!r->closing) {
        registry_ok(r);
        r->retry_ms = RETRY_MIN_MS;
        metrics_timing(r->m, "services.set.ms", (double)(loop_now_ms() - b->started));
    }
    free(b->keys);
    free(b->values);
    free(b);
    if (!r->closing)
        converge(r);
}

static bool wants_put(const struct entry *e) { return e->want != NULL; }

/* A key a container named in this run goes as soon as that container no
 * longer names it: we saw it happen.  An orphan (left by an earlier run, or
 * by a container we cannot read) goes only when the picture is whole: a
 * complete listing, and naming that worked for every container. */
static bool may_delete(const struct reconcile *r, const struct entry *e)
{
    if (e->claimed)
        return true;
    return r->listed_complete && map_count(r->naming_failed) == 0;
}

/* Takes queued entries that need a call into one apply(puts, deletes). */
static void start_batch(struct reconcile *r)
{
    struct entry *picked[BATCH_MAX], *e;
    struct batch *b;
    struct task *t;
    lua_State *co;
    int n = 0, nput = 0, ndel = 0;

    while (n < BATCH_MAX && (e = dequeue(r)) != NULL) {
        if (e->busy || e->failed || settled(e) || (!wants_put(e) && !may_delete(r, e)))
            forget_if_idle(r, e);
        else
            picked[n++] = e;
    }
    if (n == 0)
        return;
    b = calloc(1, sizeof *b);
    if (b == NULL || (b->keys = calloc((size_t)n, sizeof *b->keys)) == NULL ||
        (b->values = calloc((size_t)n, sizeof *b->values)) == NULL ||
        (t = task_new(r->s, on_batch_done, b)) == NULL) {
        if (b) {
            free(b->keys);
            free(b->values);
        }
        free(b);
        for (int i = 0; i < n; i++)
            picked[i]->failed = true;
        schedule_retry(r);
        return;
    }
    b->r = r;
    b->started = loop_now_ms();
    co = task_thread(t);
    push_method(r, co, "apply");
    lua_newtable(co);           /* puts */
    lua_newtable(co);           /* deletes */
    for (int i = 0; i < n; i++) {
        bool put = wants_put(picked[i]);
        push_entry(r, co, picked[i], put);
        lua_rawseti(co, put ? -3 : -2, put ? ++nput : ++ndel);
        b->keys[i] = strdup(picked[i]->key);
        b->values[i] = put ? strdup(picked[i]->want) : NULL;
        picked[i]->busy = true;
    }
    b->n = n;
    r->inflight++;
    task_start(t, 3);
}

/* ---- converging ----------------------------------------------------------- */

/* Nothing is written before the registry was audited (so unchanged keys
 * are not rewritten) and Docker listed once (so a start-up's writes go out
 * together, not one per inspection). */
static void converge(struct reconcile *r)
{
    struct entry *e;
    if (r->backend != B_OPEN || !r->audited || !r->listed_once)
        return;
    if (r->has_apply) {
        if (r->inflight == 0 && r->queue_head != NULL)
            start_batch(r);
        return;
    }
    while (r->inflight < r->c->concurrency && (e = dequeue(r)) != NULL) {
        if (e->busy || e->failed || settled(e)) {
            forget_if_idle(r, e);
            continue;
        }
        if (!wants_put(e) && !may_delete(r, e))
            continue;           /* re-queued when deleting becomes safe */
        start_op(r, e, wants_put(e));
    }
}

/* ---- desired state from containers ---------------------------------------- */

static void owned_free(void *p)
{
    struct owned *o = p;
    if (o == NULL)
        return;
    for (int i = 0; i < o->n; i++)
        free(o->keys[i]);
    free(o->keys);
    free(o);
}

/* The claim of container id among those waiting for e, or the slot to
 * add it at. */
static struct claim **claim_slot(struct entry *e, const char *id)
{
    struct claim **slot = &e->waiting;
    while (*slot != NULL && strcmp((*slot)->owner, id) != 0)
        slot = &(*slot)->next;
    return slot;
}

/* Container id no longer names key: it lets go of it, or of its wait for
 * it.  A holder that lets go hands the key to the first one waiting. */
static void unwant(struct reconcile *r, const char *id, const char *key)
{
    struct entry *e = entry_get(r, key, false);
    struct claim **slot, *next;
    if (e == NULL || e->owner == NULL)
        return;
    if (strcmp(e->owner, id) != 0) {
        slot = claim_slot(e, id);
        if (*slot != NULL) {
            struct claim *c = *slot;
            *slot = c->next;
            claim_free(r, c);
        }
        return;
    }
    script_unref(r->s, e->want_ref);
    next = e->waiting;
    if (next == NULL) {
        set_str(&e->want, NULL);
        set_str(&e->owner, NULL);
        e->want_ref = LUA_NOREF;
    } else {
        e->waiting = next->next;
        log_info("key %s: container %.12s no longer names it; %.12s takes it over", key, id, next->owner);
        free(e->want);
        free(e->owner);
        e->want = next->want;
        e->owner = next->owner;
        e->want_ref = next->want_ref;
        free(next);
    }
    enqueue(r, e);
}

/* Container id names the key: it holds it unless another container holds
 * it already; then it waits (and the log says so once). */
static bool want(struct reconcile *r, const char *id, struct script_entry *se)
{
    struct entry *e = entry_get(r, se->key, true);
    if (e == NULL)
        return false;
    if (e->owner != NULL && strcmp(e->owner, id) != 0) {
        struct claim **slot = claim_slot(e, id), *c = *slot;
        if (c == NULL) {
            log_warn("key %s is named by containers %.12s and %.12s; keeping it for %.12s",
                     se->key, e->owner, id, e->owner);
            c = calloc(1, sizeof *c);
            if (c == NULL || (c->owner = strdup(id)) == NULL) {
                free(c);
                return false;
            }
            c->want_ref = LUA_NOREF;
            *slot = c;
        }
        set_str(&c->want, se->compare);
        script_unref(r->s, c->want_ref);
        c->want_ref = se->ref;
        se->ref = LUA_NOREF;
        return true;
    }
    if (e->want == NULL || strcmp(e->want, se->compare) != 0) {
        set_str(&e->want, se->compare);
        enqueue(r, e);
    }
    set_str(&e->owner, id);
    e->claimed = true;
    script_unref(r->s, e->want_ref);
    e->want_ref = se->ref;
    se->ref = LUA_NOREF;
    return true;
}

static void requeue_unsettled(struct reconcile *r)
{
    struct map_iter it;
    const char *key;
    void *v;
    map_iter_init(&it, r->entries);
    while (map_iter_next(&it, &key, &v))
        if (!settled(v))
            enqueue(r, v);
}

static const char *container_label(const cJSON *c, const char *id)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
    return cJSON_IsString(name) ? name->valuestring : id;
}

void reconcile_container(struct reconcile *r, const char *id, const cJSON *container)
{
    struct owned *old = map_get(r->owned, id), *now = NULL;
    struct script_entry *se = NULL;
    int n = 0;
    char err[1024];

    if (container != NULL &&
        script_services(r->s, container, &se, &n, err, sizeof err) < 0) {
        log_error("container %s (%.12s): naming failed: %s; keeping its registrations",
                  container_label(container, id), id, err);
        map_put(r->naming_failed, id, (void *)1, NULL);
        return;
    }
    if (map_remove(r->naming_failed, id) != NULL && map_count(r->naming_failed) == 0)
        requeue_unsettled(r);   /* orphans may be pruned again */
    now = calloc(1, sizeof *now);
    if (now != NULL && n > 0)
        now->keys = calloc((size_t)n, sizeof *now->keys);
    for (int i = 0; i < n && now && now->keys; i++)
        if (want(r, id, &se[i]))
            now->keys[now->n++] = strdup(se[i].key);
    /* keys this container named before and names no more */
    for (int i = 0; old != NULL && i < old->n; i++) {
        bool kept = false;
        for (int j = 0; now && j < now->n && !kept; j++)
            kept = strcmp(old->keys[i], now->keys[j]) == 0;
        if (!kept)
            unwant(r, id, old->keys[i]);
    }
    script_entries_free(r->s, se, n);
    owned_free(map_remove(r->owned, id));
    if (now != NULL && now->n > 0)
        map_put(r->owned, id, now, NULL);
    else
        owned_free(now);
    converge(r);
}

void reconcile_listed(struct reconcile *r, bool complete)
{
    if (!r->listed_once) {
        r->listed_once = true;
        converge(r);
    }
    if (!complete || r->listed_complete)
        return;
    /* the first complete listing: deletions held back until now may go */
    r->listed_complete = true;
    requeue_unsettled(r);
    converge(r);
}

/* ---- auditing --------------------------------------------------------------- */

/* A table value stands for its JSON text (a backend may hand back the
 * decoded document); anything else must already be a string. */
static void value_as_string(lua_State *co)
{
    if (lua_type(co, -1) == LUA_TTABLE) {
        lua_json_encode(co, -1);
        lua_remove(co, -2);
    }
}

/* advertised() answered: {key = value} of what this host has registered. */
static int merge_advertised(struct reconcile *r, lua_State *co)
{
    struct map_iter it;
    const char *key;
    void *v;
    int count = 0;

    /* keys we know of: take the registry's word unless we changed them since */
    map_iter_init(&it, r->entries);
    while (map_iter_next(&it, &key, &v)) {
        struct entry *e = v;
        if (e->busy || e->touched > r->audit_seq)
            continue;
        lua_getfield(co, -1, key);
        value_as_string(co);
        set_str(&e->have, lua_tostring(co, -1));
        lua_pop(co, 1);
        if (!settled(e))
            enqueue(r, e);
    }
    /* keys the registry has and nobody here wants: stale */
    lua_pushnil(co);
    while (lua_next(co, -2)) {
        count++;
        if (lua_type(co, -2) == LUA_TSTRING && entry_get(r, lua_tostring(co, -2), false) == NULL) {
            struct entry *e = entry_get(r, lua_tostring(co, -2), true);
            value_as_string(co);
            if (e != NULL) {
                set_str(&e->have, lua_isstring(co, -1) ? lua_tostring(co, -1) : "");
                enqueue(r, e);
            }
        }
        lua_pop(co, 1);
    }
    return count;
}

static void on_audit_done(struct task *t, bool ok, lua_State *co, int nres, const char *err, void *arg)
{
    struct reconcile *r = arg;
    char buf[512];
    const char *fail = call_failed(co, nres, ok, err, buf, sizeof buf);
    int count;
    (void)t;
    r->auditing = false;
    if (r->closing)
        return;
    if (fail == NULL && (nres < 1 || !lua_istable(co, -nres)))
        fail = "advertised() did not return a table of key = value";
    r->call_failing = fail != NULL;
    if (fail != NULL) {
        registry_failed(r, "advertised", fail);
        schedule_retry(r);
        return;
    }
    registry_ok(r);
    lua_settop(co, lua_gettop(co) - nres + 1);
    count = merge_advertised(r, co);
    if (!r->audited)
        log_info("registry %s: this host has %d entries there", r->c->backend_shown, count);
    r->audited = true;
    converge(r);
}

static void audit(struct reconcile *r)
{
    struct task *t;
    lua_State *co;
    if (r->backend != B_OPEN || r->auditing)
        return;
    if (!r->has_advertised) {
        r->audited = true;
        converge(r);
        return;
    }
    t = task_new(r->s, on_audit_done, r);
    if (t == NULL)
        return;
    co = task_thread(t);
    push_method(r, co, "advertised");
    r->auditing = true;
    r->audit_seq = r->seq;
    task_start(t, 1);
}

/* ---- ttl refresh -------------------------------------------------------- */

/* Forget what the registry holds for every wanted entry, so each is
 * written again (ttl mode without refresh(), or a lost lease/session). */
static void write_all_again(struct reconcile *r)
{
    struct map_iter it;
    const char *key;
    void *v;
    map_iter_init(&it, r->entries);
    while (map_iter_next(&it, &key, &v)) {
        struct entry *e = v;
        if (e->want != NULL && !e->busy) {
            set_str(&e->have, NULL);
            enqueue(r, e);
        }
    }
}

static void on_refresh_done(struct task *t, bool ok, lua_State *co, int nres, const char *err, void *arg)
{
    struct reconcile *r = arg;
    char buf[512];
    const char *fail = call_failed(co, nres, ok, err, buf, sizeof buf);
    (void)t;
    r->inflight--;
    if (r->closing)
        return;
    r->call_failing = fail != NULL;
    if (fail != NULL) {
        registry_failed(r, "refresh", fail);
        write_all_again(r);     /* whatever it held may be gone */
    } else {
        registry_ok(r);
    }
    converge(r);
}

/* TTL mode: the backend's refresh(entries) when it has one (one keepalive
 * for etcd v3), else every entry is written again with its ttl. */
static void refresh(struct reconcile *r)
{
    struct map_iter it;
    const char *key;
    void *v;
    struct task *t;
    lua_State *co;
    int n = 0;

    if (r->has_refresh && (t = task_new(r->s, on_refresh_done, r)) != NULL) {
        co = task_thread(t);
        push_method(r, co, "refresh");
        lua_newtable(co);
        map_iter_init(&it, r->entries);
        while (map_iter_next(&it, &key, &v)) {
            struct entry *e = v;
            if (e->want != NULL && settled(e)) {
                push_entry(r, co, e, true);
                lua_rawseti(co, -2, ++n);
            }
        }
        r->inflight++;
        task_start(t, 2);
        return;
    }
    write_all_again(r);
    converge(r);
}

void reconcile_tick(struct reconcile *r)
{
    long long started = loop_now_ms();
    if (r->backend != B_OPEN)
        return;
    if (r->c->mode == MODE_TTL && r->audited)
        refresh(r);
    audit(r);
    metrics_timing(r->m, "processing.ms", (double)(loop_now_ms() - started));
}

/* ---- opening the backend ------------------------------------------------ */

static void open_backend(struct reconcile *r);

static long on_open_retry(struct loop *lp, void *arg)
{
    struct reconcile *r = arg;
    (void)lp;
    r->open_timer = 0;
    open_backend(r);
    return LOOP_NOMORE;
}

static bool handle_has(lua_State *co, const char *method)
{
    bool has;
    lua_getfield(co, -1, method);
    has = lua_isfunction(co, -1);
    lua_pop(co, 1);
    return has;
}

static void on_open_done(struct task *t, bool ok, lua_State *co, int nres, const char *err, void *arg)
{
    struct reconcile *r = arg;
    char buf[512];
    const char *fail = call_failed(co, nres, ok, err, buf, sizeof buf);
    (void)t;
    if (r->closing)
        return;
    if (fail == NULL && (nres < 1 || !lua_istable(co, -nres)))
        fail = "open() did not return a backend table";
    r->call_failing = fail != NULL;
    if (fail != NULL) {
        r->backend = B_CLOSED;
        registry_failed(r, "open", fail);
        r->open_timer = loop_timer_add(r->lp, r->retry_ms, on_open_retry, r);
        r->retry_ms = r->retry_ms * 2 > r->c->interval_ms ? r->c->interval_ms : r->retry_ms * 2;
        return;
    }
    lua_settop(co, lua_gettop(co) - nres + 1);
    r->has_apply = handle_has(co, "apply");
    r->has_advertised = handle_has(co, "advertised");
    r->has_refresh = handle_has(co, "refresh");
    if (!r->has_apply && !(handle_has(co, "register") && handle_has(co, "deregister"))) {
        log_error("backend for %s has neither apply() nor register() and deregister(): nothing can be written",
                  r->c->backend_shown);
        return;
    }
    if (!r->has_advertised)
        log_warn("backend for %s has no advertised(): entries left by an earlier run cannot be pruned",
                 r->c->backend_shown);
    r->backend_ref = luaL_ref(co, LUA_REGISTRYINDEX);
    r->backend = B_OPEN;
    r->retry_ms = RETRY_MIN_MS;
    registry_ok(r);
    audit(r);
}

/* open(uri, config) of the backend module, as a task: it may talk HTTP. */
static void open_backend(struct reconcile *r)
{
    struct task *t = task_new(r->s, on_open_done, r);
    lua_State *co;
    if (t == NULL)
        return;
    co = task_thread(t);
    lua_rawgeti(co, LUA_REGISTRYINDEX, script_backend_module(r->s));
    lua_getfield(co, -1, "open");
    lua_remove(co, -2);
    lua_pushstring(co, r->c->backend);
    lua_getglobal(co, "require");
    lua_pushliteral(co, "registrar");
    lua_call(co, 1, 1);
    lua_getfield(co, -1, "config");
    lua_remove(co, -2);
    r->backend = B_OPENING;
    task_start(t, 2);
}

void reconcile_start(struct reconcile *r)
{
    open_backend(r);
}

/* ---- life cycle --------------------------------------------------------- */

struct reconcile *reconcile_new(struct loop *lp, struct script *s, const struct config *c,
                                struct metrics *m)
{
    struct reconcile *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->lp = lp;
    r->s = s;
    r->c = c;
    r->m = m;
    r->backend_ref = LUA_NOREF;
    r->retry_ms = RETRY_MIN_MS;
    r->entries = map_new();
    r->owned = map_new();
    r->naming_failed = map_new();
    if (r->entries == NULL || r->owned == NULL || r->naming_failed == NULL) {
        reconcile_free(r);
        return NULL;
    }
    return r;
}

int reconcile_busy(const struct reconcile *r) { return r->inflight; }

static void entry_release(void *p) { entry_free(p); }

void reconcile_free(struct reconcile *r)
{
    if (r == NULL)
        return;
    r->closing = true;
    task_cancel_all(r->s);      /* their callbacks free what they hold */
    loop_timer_cancel(r->lp, r->retry_timer);
    loop_timer_cancel(r->lp, r->open_timer);
    map_free(r->entries, entry_release);
    map_free(r->owned, owned_free);
    map_free(r->naming_failed, NULL);
    free(r);
}
