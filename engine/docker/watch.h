/* watch.h: keeps the table of running containers current from Docker's
 * events, with a full listing every interval as a safety net. */
#ifndef REGISTRAR_WATCH_H
#define REGISTRAR_WATCH_H

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct http;
struct config;
struct metrics;
struct cJSON;

struct watch_callbacks {
    /* A container's current state: NULL when it no longer runs. */
    void (*changed)(void *arg, const char *id, const struct cJSON *container);
    /* A listing completed.  complete: every running container was read
     * (none failed to inspect), so what is not in the table is not running. */
    void (*listed)(void *arg, bool complete);
    void *arg;
};

struct watch;

struct watch *watch_new(struct loop *lp, const struct config *c, struct metrics *m,
                        const struct watch_callbacks *cb, char *err, size_t errlen);
void watch_start(struct watch *w);
void watch_free(struct watch *w);

/* The interval's resync: one list request, inspecting only what changed. */
void watch_resync(struct watch *w);
bool watch_connected(const struct watch *w);
/* The connection, for requests of scripts (registrar.docker). */
struct docker_session *watch_session(struct watch *w);
/* loop_now_ms() of the last complete listing, and of the start of the
 * Docker outage under way (0: none). */
long long watch_reached_ms(const struct watch *w);
long long watch_down_since_ms(const struct watch *w);
/* A running container as the scripts see it (the caller's to free), or
 * NULL; and its name ("/web"), or NULL. */
struct cJSON *watch_container(const struct watch *w, const char *id);
const char *watch_container_name(const struct watch *w, const char *id);

#endif
