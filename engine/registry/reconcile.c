/* reconcile.c: desired entries (from naming) against the entries the
 * registry holds for this host (from audits and from our own writes),
 * one record per key:
 *
 *   want   the value naming asks for, or NULL
 *   have   the value the registry holds as far as we know, or NULL
 *
 * Values are as the caller compares them (a digest, mostly: a few bytes
 * for a value of hundreds).  The value to write itself (stored) is held
 * only until the registry has it.
 *
 * A key whose want and have differ is queued; converge() turns queued keys
 * into writes: the value when want differs from have, a delete when only
 * have is left.  A key a container named in this run is removed when that
 * container stops naming it.  An entry no container here named (an
 * orphan) is pruned only after a complete Docker listing (before it, an
 * absent container may simply not be read yet) and while every container's
 * naming succeeds (one that fails may be the owner).  A failed write
 * changes nothing we know: the key is retried with backoff.  Writes go
 * one key at a time, at most `concurrency` at once, or, to a backend that
 * takes batches, as one batch at a time. */
#include "registry/reconcile.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/pool.h"
#include "core/slab.h"

#define RETRY_FIRST_MS 250L
#define BATCH_MAX 256

/* A container that names a key another container holds: it waits, and
 * takes the key over when the holder lets go of it. */
struct claim {
    const char *owner;          /* r->ids' copy */
    char *want;
    char *name;
    long payload;
    struct claim *next;
};

struct entry {
    const char *key;            /* the entries map's copy */
    char *want;
    long payload;               /* the wanted entry's, or 0 */
    const char *owner;          /* container id that wants it (r->ids' copy) */
    char *name;                 /* its service's name */
    struct claim *waiting;      /* other containers naming it, first come first */
    char *have;
    char *stored;               /* want as written, until it is (r->stored) */
    bool busy;                  /* a write of it is under way */
    bool queued;
    bool failed;                /* waiting for the retry timer */
    bool erring;                /* its last write failed */
    char *error;                /* ... with this */
    long long erring_since;     /* ... since (loop_now_ms) */
    bool claimed;               /* a container here named it in this run */
    unsigned long long touched; /* seq of the last change */
    struct entry *next_queued;
    /* what a registry watch reported while a write of it was under way */
    bool observed;
    char *observed_value;
    /* repairs of changes someone else made, counted per interval */
    int repairs;
    bool repair_held;           /* too many: repaired at the interval only */
    long long lives_until;      /* ttl mode: the registry's copy lives at
                                   least until then (loop ms); 0: unknown */
};

struct owned {                  /* the keys one container names */
    const char **keys;          /* the entries map's copies: an entry with an
                                   owner is not forgotten */
    int n, room;                /* keys held, and room for */
    char *name;                 /* the container's, for the log */
};

/* A write under way: the keys and the values it writes (NULL: deletes). */
struct pending {
    unsigned long batch;
    int n;
    char **keys;
    char **values;
    long long started;
    struct pending *next;
};

struct reconcile {
    struct loop *lp;
    struct reconcile_settings settings;
    struct reconcile_ops ops;
    struct metrics *m;
    struct map *entries;        /* key -> struct entry */
    struct map *owned;          /* container id -> struct owned */
    struct map *naming_failed;  /* container ids whose naming raised */
    struct map *ids;            /* container id -> how many owners and claims
                                   point at its key: one copy per container,
                                   not one per key */
    struct pool stored;         /* entries' values not written yet */
    struct entry *queue_head, *queue_tail;
    struct pending *pending;
    bool ready, batches;        /* the backend is open; it takes batches */
    bool audited;               /* we know what the registry holds */
    bool listed_once;           /* writes start after the first listing */
    bool listed_complete;       /* deletions are safe from now on */
    bool dropping;              /* deregister_on_exit: everything goes */
    unsigned long long seq;
    unsigned long next_batch;
    int inflight;               /* writes under way */
    int nerring;                /* entries whose last write failed */
    struct backoff retry;
    long long retry_timer;
    long long repair_timer;     /* resets repair counts, once per interval */
    bool was_in_step;           /* at the end of the last converge() */
    void (*in_step_fn)(void *arg);
    void *in_step_arg;
};

static void converge(struct reconcile *r);

/* ---- entries ------------------------------------------------------------ */

static void set_str(char **slot, const char *value)
{
    char *copy = value ? slab_strdup(value) : NULL;
    slab_strfree(*slot);
    *slot = copy;
}

/* have and want are one string when they are equal, as they are for
 * nearly every key once it is written: a value is stored once, not twice. */
static void set_have(struct entry *e, const char *value)
{
    char *old = e->have == e->want ? NULL : e->have;
    if (value != NULL && e->want != NULL && strcmp(value, e->want) == 0)
        e->have = e->want;
    else
        e->have = value ? slab_strdup(value) : NULL;
    slab_strfree(old);
}

static void drop_stored(struct entry *e)
{
    pool_free(e->stored);
    e->stored = NULL;
}

/* want takes value, which it owns from now on; have keeps what it held. */
static void take_want(struct entry *e, char *value)
{
    drop_stored(e);
    if (e->have != NULL && e->have == e->want)
        e->have = slab_strdup(e->have);     /* out of memory: held is unknown, written again */
    slab_strfree(e->want);
    e->want = value;
    if (e->have != NULL && e->want != NULL && strcmp(e->have, e->want) == 0) {
        slab_strfree(e->have);
        e->have = e->want;
    }
}

static void set_want(struct entry *e, const char *value)
{
    take_want(e, value ? slab_strdup(value) : NULL);
}

static struct entry *entry_get(struct reconcile *r, const char *key, bool create)
{
    struct entry *e = map_get(r->entries, key);
    if (e != NULL || !create)
        return e;
    bool failed;
    if ((e = slab_alloc(sizeof *e)) == NULL)
        return NULL;
    map_put(r->entries, key, e, &failed);
    if (failed) {
        slab_free(e, sizeof *e);
        return NULL;
    }
    e->key = map_key(r->entries, key);
    return e;
}

/* r->ids' copy of id, counted; NULL when out of memory. */
static const char *id_hold(struct reconcile *r, const char *id)
{
    bool failed;
    intptr_t holds = (intptr_t)map_get(r->ids, id);
    map_put(r->ids, id, (void *)(holds + 1), &failed);
    return failed ? NULL : map_key(r->ids, id);
}

static void id_drop(struct reconcile *r, const char *id)
{
    intptr_t holds;
    if (id == NULL)
        return;
    holds = (intptr_t)map_get(r->ids, id);
    if (holds > 1)
        map_put(r->ids, id, (void *)(holds - 1), NULL);
    else
        map_remove(r->ids, id);     /* id points into the node: not read after */
}

static void release(struct reconcile *r, long *payload)
{
    if (*payload != 0 && r->ops.release != NULL)
        r->ops.release(r->ops.arg, *payload);
    *payload = 0;
}

/* Its owner's hold on r->ids is the caller's to drop (id_drop). */
static void claim_free(struct claim *c)
{
    slab_strfree(c->want);
    slab_strfree(c->name);
    slab_free(c, sizeof *c);
}

/* The holds of its owner and claims on r->ids were dropped already (only
 * an entry nobody wants is forgotten), or go with r->ids. */
static void entry_free(void *p)
{
    struct entry *e = p;
    while (e->waiting != NULL) {
        struct claim *c = e->waiting;
        e->waiting = c->next;
        claim_free(c);
    }
    if (e->have != e->want)
        slab_strfree(e->have);
    slab_strfree(e->want);
    pool_free(e->stored);
    slab_strfree(e->name);
    slab_strfree(e->error);
    slab_strfree(e->observed_value);
    slab_free(e, sizeof *e);
}


static bool settled(const struct entry *e)
{
    if (e->want != NULL)
        return e->have != NULL && strcmp(e->want, e->have) == 0;
    return e->have == NULL;
}

/* The value to write is not needed once the registry holds it. */
static void drop_stored_if_settled(struct entry *e)
{
    if (e->stored != NULL && settled(e))
        drop_stored(e);
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

/* failed: the error of its last write, or NULL when it worked. */
static void set_erring(struct reconcile *r, struct entry *e, const char *failed)
{
    bool erring = failed != NULL;
    if (e->erring != erring) {
        r->nerring += erring ? 1 : -1;
        e->erring_since = erring ? loop_now_ms() : 0;
    }
    e->erring = erring;
    set_str(&e->error, failed);
}

static void forget_if_idle(struct reconcile *r, struct entry *e)
{
    if (e->want == NULL && e->owner == NULL && e->have == NULL && !e->busy && !e->queued && !e->failed) {
        set_erring(r, e, NULL);
        release(r, &e->payload);
        entry_free(map_remove(r->entries, e->key));
    }
}

/* Queues every entry that is not as wanted. */
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

/* ---- the delete rule ------------------------------------------------------ */

/* A key a container named in this run goes as soon as that container no
 * longer names it: we saw it happen.  An orphan (left by an earlier run, or
 * by a container we cannot read) goes only when the picture is whole: a
 * complete listing, and naming that worked for every container. */
static bool may_delete(const struct reconcile *r, const struct entry *e)
{
    if (e->claimed || r->dropping)
        return true;
    return r->listed_complete && map_count(r->naming_failed) == 0;
}

/* Does e need a write now?  Not one under way, waiting to retry, already
 * as wanted, or a delete that must wait. */
static bool needs_write(const struct reconcile *r, const struct entry *e)
{
    if (e->busy || e->failed || settled(e))
        return false;
    return e->want != NULL || may_delete(r, e);
}

/* ---- retries -------------------------------------------------------------- */

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
    if (r->retry_timer == 0)
        r->retry_timer = loop_timer_add(r->lp, backoff_next(&r->retry), on_retry, r);
}

/* ---- writes ---------------------------------------------------------------- */

static void pending_free(struct pending *p)
{
    for (int i = 0; i < p->n; i++) {
        free(p->keys[i]);
        free(p->values[i]);
    }
    free(p->keys);
    free(p->values);
    free(p);
}

static struct pending *pending_new(struct reconcile *r, struct entry **picked, int n)
{
    struct pending *p = calloc(1, sizeof *p);
    if (p == NULL || (p->keys = calloc((size_t)n, sizeof *p->keys)) == NULL ||
        (p->values = calloc((size_t)n, sizeof *p->values)) == NULL) {
        if (p != NULL)
            free(p->keys);
        free(p);
        return NULL;
    }
    for (int i = 0; i < n; i++) {
        p->n = i + 1;
        p->keys[i] = strdup(picked[i]->key);
        p->values[i] = picked[i]->want ? strdup(picked[i]->want) : NULL;
        if (p->keys[i] == NULL || (picked[i]->want && p->values[i] == NULL)) {
            pending_free(p);
            return NULL;
        }
    }
    p->batch = ++r->next_batch;
    p->started = loop_now_ms();
    p->next = r->pending;
    r->pending = p;
    return p;
}

/* Hands the picked entries to the backend as one write. */
static void start_write(struct reconcile *r, struct entry **picked, int n)
{
    /* on the heap: 10 KiB of stack here, under the backend's Lua calls,
     * would stay resident for good */
    struct reconcile_write *w = malloc((size_t)n * sizeof *w);
    struct pending *p = w ? pending_new(r, picked, n) : NULL;

    if (p == NULL) {
        free(w);
        for (int i = 0; i < n; i++)
            picked[i]->failed = true;
        schedule_retry(r);
        return;
    }
    for (int i = 0; i < n; i++) {
        struct entry *e = picked[i];
        w[i] = (struct reconcile_write){ e->key, e->want, e->stored, e->have, e->want ? e->payload : 0 };
        e->busy = true;
    }
    r->inflight++;
    r->ops.write(r->ops.arg, w, n, p->batch);
    free(w);
}

/* Nothing is written before the registry was audited (so unchanged keys
 * are not rewritten) and Docker listed once (so a start-up's writes go out
 * together, not one per inspection). */
static void start_writes(struct reconcile *r)
{
    struct entry *picked[BATCH_MAX], *e;
    int n = 0;

    if (!r->ready || !r->audited || !r->listed_once)
        return;
    if (r->batches) {
        if (r->inflight > 0)
            return;
        while (n < BATCH_MAX && (e = dequeue(r)) != NULL) {
            if (needs_write(r, e))
                picked[n++] = e;
            else
                forget_if_idle(r, e);   /* a held-back delete comes back with requeue_unsettled */
        }
        if (n > 0)
            start_write(r, picked, n);
        return;
    }
    while (r->inflight < r->settings.concurrency && (e = dequeue(r)) != NULL) {
        if (needs_write(r, e))
            start_write(r, &e, 1);
        else
            forget_if_idle(r, e);
    }
}

/* The registry holds what a complete listing asked for: nothing queued,
 * under way or failing.  (Orphans held back while a container's naming
 * fails do not count: that waits on a script, not on the registry.) */
static bool in_step(const struct reconcile *r)
{
    return r->ready && r->audited && r->listed_complete && !r->dropping && r->queue_head == NULL &&
           r->inflight == 0 && r->nerring == 0;
}

static void converge(struct reconcile *r)
{
    bool now;
    start_writes(r);
    now = in_step(r);
    if (now && !r->was_in_step && r->in_step_fn != NULL)
        r->in_step_fn(r->in_step_arg);
    r->was_in_step = now;
}

void reconcile_on_in_step(struct reconcile *r, void (*fn)(void *arg), void *arg)
{
    r->in_step_fn = fn;
    r->in_step_arg = arg;
}

/* A finished write for one entry: update what we know of the registry.
 * What a watch reported meanwhile is newer than the write's own answer
 * when it came after the write was applied, and at worst older (then the
 * key is written once more): it wins either way. */
static void settle(struct reconcile *r, struct entry *e, const char *value, const char *failed, long long started)
{
    e->busy = false;
    if (failed == NULL && value != NULL)
        e->lives_until = started + r->settings.ttl_ms;
    e->touched = ++r->seq;      /* an audit asked before this write knows less than we do */
    set_erring(r, e, failed);
    if (failed != NULL) {
        e->failed = true;
        schedule_retry(r);
    } else {
        metrics_count(r->m, value ? "registrations" : "deregistrations", 1);
        log_debug("%s %s", value ? "registered" : "deregistered", e->key);
    }
    if (e->observed) {
        set_have(e, e->observed_value);
        set_str(&e->observed_value, NULL);
        e->observed = false;
    } else if (failed == NULL) {
        set_have(e, value);
    }
    drop_stored_if_settled(e);
    if (failed == NULL && !settled(e))
        enqueue(r, e);
    forget_if_idle(r, e);
}

void reconcile_written(struct reconcile *r, unsigned long batch, const char *failed)
{
    struct pending **slot = &r->pending, *p;
    while (*slot != NULL && (*slot)->batch != batch)
        slot = &(*slot)->next;
    if ((p = *slot) == NULL)
        return;
    *slot = p->next;
    r->inflight--;
    for (int i = 0; i < p->n; i++) {
        struct entry *e = entry_get(r, p->keys[i], false);
        if (e != NULL)
            settle(r, e, p->values[i], failed, p->started);
    }
    if (failed == NULL) {
        backoff_reset(&r->retry);
        metrics_timing(r->m, "services.set.ms", (double)(loop_now_ms() - p->started));
    }
    pending_free(p);
    converge(r);
}

/* ---- desired state from containers ---------------------------------------- */

static void owned_free(void *p)
{
    struct owned *o = p;
    if (o == NULL)
        return;
    slab_free(o->keys, (size_t)o->room * sizeof *o->keys);
    slab_strfree(o->name);
    slab_free(o, sizeof *o);
}

/* "/web (3f2ad1a466ff)", or the short id of a container not named yet. */
static const char *who(const struct reconcile *r, const char *id, char *buf, size_t len)
{
    const struct owned *o = map_get(r->owned, id);
    if (o != NULL && o->name != NULL)
        snprintf(buf, len, "%s (%.12s)", o->name, id);
    else
        snprintf(buf, len, "%.12s", id);
    return buf;
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
            release(r, &c->payload);
            id_drop(r, c->owner);
            claim_free(c);
        }
        return;
    }
    release(r, &e->payload);
    next = e->waiting;
    if (next == NULL) {
        set_want(e, NULL);
        id_drop(r, e->owner);
        e->owner = NULL;
        set_str(&e->name, NULL);
    } else {
        e->waiting = next->next;
        char a[300], b[300];
        log_info("key %s: container %s no longer names it; %s takes it over", key, who(r, id, a, sizeof a),
                 who(r, next->owner, b, sizeof b));
        take_want(e, next->want);
        id_drop(r, e->owner);
        slab_strfree(e->name);
        e->owner = next->owner;     /* its hold on r->ids with it */
        e->name = next->name;
        e->payload = next->payload;
        slab_free(next, sizeof *next);
    }
    enqueue(r, e);
}

/* Container id names the key: it holds it unless another container holds
 * it already; then it waits (and the log says so once).  False when out
 * of memory (the payload is then still the caller's). */
static bool want(struct reconcile *r, const char *id, const char *name, const struct reconcile_want *w)
{
    struct entry *e = entry_get(r, w->key, true);
    if (e == NULL)
        return false;
    if (e->owner != NULL && strcmp(e->owner, id) != 0) {
        struct claim **slot = claim_slot(e, id), *c = *slot;
        if (c == NULL) {
            char a[300], b[300];
            if (name != NULL)
                snprintf(b, sizeof b, "%s (%.12s)", name, id);
            log_warn("key %s is named by containers %s and %s; keeping it for the first",
                     w->key, who(r, e->owner, a, sizeof a), name ? b : who(r, id, b, sizeof b));
            c = slab_alloc(sizeof *c);
            if (c == NULL || (c->owner = id_hold(r, id)) == NULL) {
                slab_free(c, sizeof *c);
                return false;
            }
            *slot = c;
        }
        set_str(&c->want, w->value);
        set_str(&c->name, w->name);
        release(r, &c->payload);
        c->payload = w->payload;
        return true;
    }
    if (e->want == NULL || strcmp(e->want, w->value) != 0) {
        set_want(e, w->value);
        enqueue(r, e);
    }
    if (e->stored == NULL && w->stored != NULL && !settled(e))
        e->stored = pool_strdup(&r->stored, w->stored);    /* NULL: the backend names it again */
    if (e->owner == NULL)
        e->owner = id_hold(r, id);  /* else it is id already */
    set_str(&e->name, w->name);
    e->claimed = true;
    release(r, &e->payload);
    e->payload = w->payload;
    return true;
}

static bool names(const struct owned *o, const char *key)
{
    for (int i = 0; o != NULL && i < o->n; i++)
        if (strcmp(o->keys[i], key) == 0)
            return true;
    return false;
}

void reconcile_container(struct reconcile *r, const char *id, const char *name, const struct reconcile_want *w,
                         int n)
{
    struct owned *old, *now;

    if (r->dropping) {          /* nothing is wanted any more */
        for (int i = 0; i < n; i++) {
            long payload = w[i].payload;
            release(r, &payload);
        }
        return;
    }
    old = map_get(r->owned, id);
    now = slab_alloc(sizeof *now);
    if (now != NULL && name != NULL)
        now->name = slab_strdup(name);
    if (old != NULL && old->name == NULL && name != NULL)
        old->name = slab_strdup(name);   /* the log lines below name it already */

    if (map_remove(r->naming_failed, id) != NULL && map_count(r->naming_failed) == 0)
        requeue_unsettled(r);   /* orphans may be pruned again */
    if (now != NULL && n > 0 && (now->keys = slab_alloc((size_t)n * sizeof *now->keys)) != NULL)
        now->room = n;
    for (int i = 0; i < n; i++) {
        long payload = w[i].payload;
        if (!want(r, id, name, &w[i]))
            release(r, &payload);
        else if (now != NULL && now->keys != NULL && (now->keys[now->n] = map_key(r->entries, w[i].key)) != NULL)
            now->n++;
    }
    /* keys this container named before and names no more */
    for (int i = 0; old != NULL && i < old->n; i++)
        if (!names(now, old->keys[i]))
            unwant(r, id, old->keys[i]);
    owned_free(map_remove(r->owned, id));
    if (now != NULL && now->n > 0)
        map_put(r->owned, id, now, NULL);
    else
        owned_free(now);
    converge(r);
}

void reconcile_naming_failed(struct reconcile *r, const char *id)
{
    map_put(r->naming_failed, id, (void *)1, NULL);
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

/* ---- audits ------------------------------------------------------------------ */

unsigned long long reconcile_audit_begin(struct reconcile *r)
{
    return r->seq;
}

/* Entries we know: take the registry's word, unless we changed them since
 * the audit was asked (its answer is older than what we know).  Keys the
 * registry has and nobody here wants are orphans, to prune. */
void reconcile_audited(struct reconcile *r, unsigned long long mark, const struct reconcile_held *held, int n)
{
    struct map *answer = map_new();
    struct map_iter it;
    const char *key;
    void *v;

    if (answer == NULL)
        return;                 /* out of memory: as if the audit failed */
    for (int i = 0; i < n; i++)
        map_put(answer, held[i].key, (void *)held[i].value, NULL);
    map_iter_init(&it, r->entries);
    while (map_iter_next(&it, &key, &v)) {
        struct entry *e = v;
        if (e->busy || e->touched > mark)
            continue;
        set_have(e, map_get(answer, key));
        drop_stored_if_settled(e);
        if (!settled(e))
            enqueue(r, e);
    }
    for (int i = 0; i < n; i++) {
        struct entry *e;
        if (entry_get(r, held[i].key, false) != NULL)
            continue;
        if ((e = entry_get(r, held[i].key, true)) != NULL) {
            set_have(e, held[i].value);
            enqueue(r, e);
        }
    }
    map_free(answer, NULL);
    r->audited = true;
    converge(r);
}

/* ---- a registry watch ----------------------------------------------------------- */

#define REPAIRS_PER_INTERVAL 3

static long on_repair_interval(struct loop *lp, void *arg)
{
    struct reconcile *r = arg;
    struct map_iter it;
    const char *key;
    void *v;
    bool held = false;
    (void)lp;
    map_iter_init(&it, r->entries);
    while (map_iter_next(&it, &key, &v)) {
        struct entry *e = v;
        e->repairs = 0;
        if (e->repair_held) {
            e->repair_held = false;
            held = true;
            if (!settled(e))
                enqueue(r, e);
        }
    }
    converge(r);
    if (held)
        return r->settings.interval_ms;
    r->repair_timer = 0;
    return LOOP_NOMORE;
}

/* Someone else changed a key of ours: it is written back at once, a few
 * times per interval; past that (another writer that keeps changing it,
 * another registrar with the same key) at the interval only, so two
 * writers never fight at the speed of the network. */
static void repair(struct reconcile *r, struct entry *e)
{
    if (r->repair_timer == 0)
        r->repair_timer = loop_timer_add(r->lp, r->settings.interval_ms, on_repair_interval, r);
    if (++e->repairs <= REPAIRS_PER_INTERVAL) {
        log_info("key %s was %s by someone else: writing it again", e->key,
                 e->have ? "changed" : "deleted");
        metrics_count(r->m, "registry.repairs", 1);
        enqueue(r, e);
        return;
    }
    if (!e->repair_held)
        log_warn("key %s keeps being changed by someone else (%d times this interval): "
                 "writing it back once per interval from now on", e->key, e->repairs);
    e->repair_held = true;
}

void reconcile_observed(struct reconcile *r, const struct reconcile_held *seen, int n)
{
    for (int i = 0; i < n; i++) {
        struct entry *e = entry_get(r, seen[i].key, false);
        if (e == NULL)
            continue;           /* not ours, or gone already: audits find orphans */
        if (e->busy) {
            e->observed = true;
            set_str(&e->observed_value, seen[i].value);
            continue;
        }
        if ((seen[i].value == NULL) == (e->have == NULL) &&
            (e->have == NULL || strcmp(e->have, seen[i].value) == 0))
            continue;           /* what we know already: our own write's echo */
        set_have(e, seen[i].value);
        drop_stored_if_settled(e);
        if (settled(e))
            continue;
        if (e->want != NULL)
            repair(r, e);
        else
            enqueue(r, e);      /* an orphan going: its delete stands */
    }
    converge(r);
}

void reconcile_backend_ready(struct reconcile *r, bool batches, bool audits)
{
    r->ready = true;
    r->batches = batches;
    if (!audits)
        r->audited = true;      /* nothing can be known: write what is wanted */
    backoff_reset(&r->retry);
    converge(r);
}

/* ---- stopping ------------------------------------------------------------------ */

/* deregister_on_exit: nothing is wanted any more, and every key this host
 * has is deleted, named in this run or not. */
void reconcile_drop_all(struct reconcile *r)
{
    struct map_iter it;
    const char *key;
    void *v;
    map_iter_init(&it, r->entries);
    while (map_iter_next(&it, &key, &v)) {
        struct entry *e = v;
        while (e->waiting != NULL) {
            struct claim *c = e->waiting;
            e->waiting = c->next;
            release(r, &c->payload);
            id_drop(r, c->owner);
            claim_free(c);
        }
        release(r, &e->payload);
        set_want(e, NULL);
        id_drop(r, e->owner);
        e->owner = NULL;
        enqueue(r, e);
    }
    r->dropping = true;
    r->listed_once = true;      /* nothing is left to list for */
    converge(r);
}

bool reconcile_empty(const struct reconcile *r)
{
    return map_count(r->entries) == 0 && r->inflight == 0;
}

/* ---- ttl ---------------------------------------------------------------------- */

void reconcile_rewrite_all(struct reconcile *r)
{
    struct map_iter it;
    const char *key;
    void *v;
    map_iter_init(&it, r->entries);
    while (map_iter_next(&it, &key, &v)) {
        struct entry *e = v;
        if (e->want != NULL && !e->busy) {
            set_have(e, NULL);
            e->lives_until = 0;
            enqueue(r, e);
        }
    }
    converge(r);
}

int reconcile_each_due(struct reconcile *r, long long due_ms, void (*fn)(void *arg, const char *key, long payload),
                       void *arg)
{
    struct map_iter it;
    const char *key;
    void *v;
    int held = 0;
    map_iter_init(&it, r->entries);
    while (map_iter_next(&it, &key, &v)) {
        struct entry *e = v;
        if (e->want == NULL || !settled(e))
            continue;
        held++;
        if (e->lives_until <= due_ms)
            fn(arg, key, e->payload);
    }
    return held;
}

void reconcile_refreshed(struct reconcile *r, const char *key, long long started_ms)
{
    struct entry *e = entry_get(r, key, false);
    if (e != NULL && e->want != NULL && started_ms + r->settings.ttl_ms > e->lives_until)
        e->lives_until = started_ms + r->settings.ttl_ms;
}

static void swap_if_held(struct entry *e, reconcile_swap_fn *fn, void *arg)
{
    if (e != NULL && e->want != NULL && e->payload != 0 && settled(e) && !e->busy && !e->queued)
        e->payload = fn(arg, e->payload);
}

void reconcile_swap_held_payloads(struct reconcile *r, reconcile_swap_fn *fn, void *arg)
{
    struct map_iter it;
    const char *key;
    void *v;
    map_iter_init(&it, r->entries);
    while (map_iter_next(&it, &key, &v))
        swap_if_held(v, fn, arg);
}

void reconcile_swap_held_payload(struct reconcile *r, const char *key, reconcile_swap_fn *fn, void *arg)
{
    swap_if_held(map_get(r->entries, key), fn, arg);
}

const char *reconcile_owner(const struct reconcile *r, const char *key)
{
    const struct entry *e = map_get(r->entries, key);
    return e && e->want ? e->owner : NULL;
}

/* ---- life cycle ----------------------------------------------------------------- */

struct reconcile *reconcile_new(struct loop *lp, const struct reconcile_settings *settings,
                                const struct reconcile_ops *ops, struct metrics *m)
{
    struct reconcile *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->lp = lp;
    r->settings = *settings;
    r->ops = *ops;
    r->m = m;
    backoff_init(&r->retry, RETRY_FIRST_MS, settings->interval_ms);
    r->entries = map_new();
    r->owned = map_new();
    r->naming_failed = map_new();
    r->ids = map_new();
    if (r->entries == NULL || r->owned == NULL || r->naming_failed == NULL || r->ids == NULL) {
        reconcile_free(r);
        return NULL;
    }
    return r;
}

void reconcile_each_entry(struct reconcile *r, void (*fn)(void *arg, const struct reconcile_entry_view *v),
                          void *arg)
{
    struct map_iter it;
    const char *key;
    void *v;
    map_iter_init(&it, r->entries);
    while (map_iter_next(&it, &key, &v)) {
        struct entry *e = v;
        struct reconcile_entry_view view = { key, e->owner, e->name, RECONCILE_PENDING, e->error,
                                             e->erring_since };
        if (e->erring)
            view.state = RECONCILE_FAILING;
        else if (settled(e) && e->want != NULL)
            view.state = RECONCILE_REGISTERED;
        if (e->want != NULL || e->have != NULL)
            fn(arg, &view);
    }
}

long long reconcile_failing_since(const struct reconcile *r)
{
    struct map_iter it;
    const char *key;
    void *v;
    long long oldest = 0;
    if (r->nerring == 0)
        return 0;
    map_iter_init(&it, r->entries);
    while (map_iter_next(&it, &key, &v)) {
        const struct entry *e = v;
        if (e->erring && (oldest == 0 || e->erring_since < oldest))
            oldest = e->erring_since;
    }
    return oldest;
}

const char *reconcile_held_value(const struct reconcile *r, const char *key)
{
    const struct entry *e = map_get(r->entries, key);
    return e ? e->have : NULL;
}

int reconcile_failing(const struct reconcile *r) { return r->nerring; }
int reconcile_busy(const struct reconcile *r) { return r->inflight; }

void reconcile_free(struct reconcile *r)
{
    if (r == NULL)
        return;
    loop_timer_cancel(r->lp, r->retry_timer);
    loop_timer_cancel(r->lp, r->repair_timer);
    while (r->pending != NULL) {
        struct pending *p = r->pending;
        r->pending = p->next;
        pending_free(p);
    }
    map_free(r->entries, entry_free);
    map_free(r->owned, owned_free);
    map_free(r->naming_failed, NULL);
    map_free(r->ids, NULL);     /* after the entries that point into it */
    free(r);
}
