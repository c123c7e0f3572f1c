/* reconcile.h: keeps the registry equal to what naming says the running
 * containers should have, writing only the differences. */
#ifndef REGISTRAR_RECONCILE_H
#define REGISTRAR_RECONCILE_H

#include <stdbool.h>

struct loop;
struct script;
struct config;
struct metrics;
struct cJSON;
struct reconcile;

struct reconcile *reconcile_new(struct loop *lp, struct script *s, const struct config *c,
                                struct metrics *m);
void reconcile_free(struct reconcile *r);

/* Opens the backend (retrying while the registry is down), then audits. */
void reconcile_start(struct reconcile *r);

/* From the Docker watcher. */
void reconcile_container(struct reconcile *r, const char *id, const struct cJSON *container);
void reconcile_listed(struct reconcile *r, bool complete);

/* The interval: audit what the registry holds for this host; ttl refresh. */
void reconcile_tick(struct reconcile *r);

/* Writes under way (shutdown waits a moment for them). */
int reconcile_busy(const struct reconcile *r);

#endif
