/* endpoints.h: what an operator asks a running registrar, over HTTP on
 * `listen`: /health (200 or 503, and why), /metrics (Prometheus' text
 * format) and /services (this host's entries and their state). */
#ifndef REGISTRAR_ENDPOINTS_H
#define REGISTRAR_ENDPOINTS_H

#include <stddef.h>

struct backend;
struct config;
struct loop;
struct metrics;
struct reconcile;
struct script;
struct watch;

/* The parts of the configuration now running (replaced on SIGHUP). */
struct endpoints_parts {
    const struct config *c;
    struct metrics *metrics;
    struct script *script;
    struct watch *watch;
    struct backend *backend;
    struct reconcile *reconcile;
};

struct endpoints;

struct endpoints *endpoints_new(struct loop *lp, const char *listen, char *err, size_t errlen);
void endpoints_free(struct endpoints *e);
/* What the answers are made from, from now on. */
void endpoints_use(struct endpoints *e, const struct endpoints_parts *parts);
int endpoints_port(const struct endpoints *e);

#endif
