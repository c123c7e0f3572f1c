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

/* loop_now_ms() of the last call the registry answered (0: none yet), and
 * of the start of the registry's trouble under way (0: none). */
long long backend_reached_ms(const struct backend *b);
long long backend_down_since_ms(const struct backend *b);

#endif
