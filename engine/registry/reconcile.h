/* reconcile.h: keeps the registry equal to what naming says the running
 * containers should have, writing only the differences.  Pure C, and no
 * Lua: the backend is reached through struct reconcile_ops, which
 * registry/backend.c implements over the backend scripts. */
#ifndef REGISTRAR_REGISTRY_RECONCILE_H
#define REGISTRAR_REGISTRY_RECONCILE_H

#include <stdbool.h>

struct loop;
struct metrics;
struct reconcile;

/* One entry a container's naming asks for. */
struct reconcile_want {
    const char *key;
    const char *value;          /* compared with what the registry holds (a
                                   digest of the value, or compare text) */
    const char *name;           /* the service's name, for the operator; may be NULL */
    long payload;               /* the caller's handle on the entry (naming's
                                   Lua table); kept while the key is wanted,
                                   then handed to ops->release */
    const char *stored;         /* the value to write, held until it is
                                   written, or NULL: the backend reads it
                                   from the payload */
};

/* One change the backend is to make. */
struct reconcile_write {
    const char *key;
    const char *value;          /* what to write (as compared); NULL to delete */
    const char *stored;         /* want's stored, while r still holds it */
    const char *had;            /* what the registry holds now, or NULL */
    long payload;               /* the wanted entry's, for a write */
};

/* A key and the value the registry holds for it (an audit's answer). */
struct reconcile_held {
    const char *key;
    const char *value;
};

struct reconcile_ops {
    /* Make these n changes (n is 1 unless the backend takes batches); the
     * answer comes back through reconcile_written(r, batch, ...).  Until
     * then r keeps the keys busy.  The arrays live during the call only. */
    void (*write)(void *arg, const struct reconcile_write *w, int n, unsigned long batch);
    void (*release)(void *arg, long payload);
    void *arg;
};

struct reconcile_settings {
    long interval_ms;           /* retries back off up to this */
    int concurrency;            /* writes under way at once, one key each */
    long ttl_ms;                /* ttl mode: how long an entry lives once
                                   written or refreshed; 0 in prune mode */
};

/* Payloads still held when r is freed are not released: they go with the
 * Lua state. */
struct reconcile *reconcile_new(struct loop *lp, const struct reconcile_settings *settings,
                                const struct reconcile_ops *ops, struct metrics *m);
void reconcile_free(struct reconcile *r);

/* The backend is open.  batches: it takes many changes in one write
 * (apply); else one key per write.  audits: it can say what it holds for
 * this host; without that nothing is known to prune. */
void reconcile_backend_ready(struct reconcile *r, bool batches, bool audits);

/* Container id (called name, for the log; may be NULL) now names these n
 * entries (none: it stopped, or names nothing).  The payloads are r's from
 * here on. */
void reconcile_container(struct reconcile *r, const char *id, const char *name, const struct reconcile_want *w,
                         int n);
/* Naming of container id failed: its keys stay as they are, and keys no
 * container names are not pruned while it fails (it may be their owner). */
void reconcile_naming_failed(struct reconcile *r, const char *id);
/* Docker was listed.  complete: every running container was read, so
 * keys no container names may be pruned from now on. */
void reconcile_listed(struct reconcile *r, bool complete);

/* An audit: a mark before asking the backend, then its answer, which
 * counts only for keys nobody changed since the mark. */
unsigned long long reconcile_audit_begin(struct reconcile *r);
void reconcile_audited(struct reconcile *r, unsigned long long mark, const struct reconcile_held *held, int n);

/* A registry watch saw these keys change (value NULL: deleted).  Keys r
 * does not know are ignored (only audits find orphans); a wanted key that
 * someone else changed or deleted is written back. */
void reconcile_observed(struct reconcile *r, const struct reconcile_held *seen, int n);

/* The answer to a write: why it failed, or NULL.  A failure changes
 * nothing r knows of the registry: the keys are retried with backoff,
 * capped at the interval. */
void reconcile_written(struct reconcile *r, unsigned long batch, const char *failed);

/* What the registry held may be gone (ttl mode: a lost lease, or no way
 * to refresh): every wanted key is written again. */
void reconcile_rewrite_all(struct reconcile *r);

/* ttl refresh: calls fn for each key the registry holds as it is wanted
 * whose ttl may run out by due_ms (loop time): one neither written nor
 * refreshed since, or found by an audit, whose ttl is unknown.  With its
 * payload: what r holds of the value is a digest, so the backend reads the
 * value from the payload.  Returns how many keys it holds as wanted, due
 * or not. */
int reconcile_each_due(struct reconcile *r, long long due_ms, void (*fn)(void *arg, const char *key, long payload),
                       void *arg);
/* A refresh that started at started_ms set key's ttl again. */
void reconcile_refreshed(struct reconcile *r, const char *key, long long started_ms);
/* For each key the registry holds as wanted, with no write of it under
 * way or queued: its payload becomes fn's answer (the caller lets go of
 * what it no longer needs once a key is written; fn releases the old).
 * The same for one key. */
typedef long reconcile_swap_fn(void *arg, long payload);
void reconcile_swap_held_payloads(struct reconcile *r, reconcile_swap_fn *fn, void *arg);
void reconcile_swap_held_payload(struct reconcile *r, const char *key, reconcile_swap_fn *fn, void *arg);
/* The container that wants key, or NULL. */
const char *reconcile_owner(const struct reconcile *r, const char *key);

/* What an operator sees of one key (registrar status, /services). */
enum reconcile_state { RECONCILE_REGISTERED, RECONCILE_PENDING, RECONCILE_FAILING };

struct reconcile_entry_view {
    const char *key;
    const char *owner;          /* the container naming it; NULL for an orphan being pruned */
    const char *name;           /* the service's name, or NULL */
    enum reconcile_state state;
    const char *error;          /* failing: the last write's error */
    long long failing_since_ms; /* failing: loop_now_ms() of the first failed write */
};

/* Calls fn for each key r knows: wanted, or held and about to be pruned. */
void reconcile_each_entry(struct reconcile *r, void (*fn)(void *arg, const struct reconcile_entry_view *v),
                          void *arg);
/* The oldest failing_since_ms of the keys failing now, 0 when none. */
long long reconcile_failing_since(const struct reconcile *r);

/* What the registry holds for key as far as r knows, or NULL. */
const char *reconcile_held_value(const struct reconcile *r, const char *key);

/* fn(arg) is called each time r comes in step: the backend open and
 * audited, a complete listing seen, and every change it asked for written
 * (none queued, under way or failing).  The daemon's readiness. */
void reconcile_on_in_step(struct reconcile *r, void (*fn)(void *arg), void *arg);

/* deregister_on_exit: every key this host has is deleted, and nothing
 * is wanted any more; reconcile_empty() says when that is done. */
void reconcile_drop_all(struct reconcile *r);
bool reconcile_empty(const struct reconcile *r);

/* Keys whose last write failed; writes under way. */
int reconcile_failing(const struct reconcile *r);
int reconcile_busy(const struct reconcile *r);

#endif
