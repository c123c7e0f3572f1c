/* backend.h: the backend adapter.  Every Lua call to the backend script
 * (open, advertised, apply or register/deregister, refresh, watch) runs
 * here as a task, under lua_pcall from the first push to the last read of
 * its results, and ends in one done path; the reconciler gets C data.
 * A backend with watch() is watched after each audit, and what the watch
 * reports goes to reconcile_observed(); while it is up the interval
 * audits nothing. */
#ifndef REGISTRAR_REGISTRY_BACKEND_H
#define REGISTRAR_REGISTRY_BACKEND_H

#include "registry/reconcile.h"

struct config;
struct loop;
struct metrics;
struct script;
struct backend;

struct backend *backend_new(struct loop *lp, struct script *s, const struct config *c, struct metrics *m);
/* Stops every call under way; their answers are dropped. */
void backend_free(struct backend *b);

/* What the reconciler writes through (and releases naming's entries with). */
struct reconcile_ops backend_ops(struct backend *b);

/* Opens the backend (retrying while the registry is down), then audits
 * what it holds for this host into r. */
void backend_start(struct backend *b, struct reconcile *r);

/* The interval: audit again (unless a watch is up); in ttl mode, refresh
 * what is registered. */
void backend_tick(struct backend *b);

/* Where a running container is found by id (the Docker watch's table;
 * the answer is the caller's to free), for naming a written key's
 * container again (backend_settle). */
struct cJSON;
typedef struct cJSON *backend_container_fn(void *arg, const char *id);
void backend_set_containers(struct backend *b, backend_container_fn *fn, void *arg);

/* The payload the reconciler keeps for naming's fresh entry ref: the ref
 * itself, or, without compare(), none at all: the entry is rebuilt as
 * backend_settle says, so a start-up with thousands of containers never
 * holds their tables.  (The value to write the reconciler holds until it
 * is written; then only its digest.) */
long backend_keep_entry(struct backend *b, int ref);

/* What advertised() and watch() say key holds is kept as it is, not as
 * its digest (this host's document, which is compared field by field). */
void backend_keep_whole(struct backend *b, const char *key);

/* The registry is in step: let go of naming's entry tables of the keys
 * written (each holds its container's whole table).  A hook handed such a
 * key again gets {key}, and value, service and document on first use,
 * named again from the container. */
void backend_settle(struct backend *b);

/* loop_now_ms() of the last call the registry answered (0: none yet), and
 * of the start of the registry's trouble under way (0: none). */
long long backend_reached_ms(const struct backend *b);
long long backend_down_since_ms(const struct backend *b);

#endif
