/* session.h: the connection to the Docker Engine API (or Podman's
 * compatible one): where it is, which API version to speak, the event
 * stream cut into events, and reconnecting after an outage. */
#ifndef REGISTRAR_DOCKER_SESSION_H
#define REGISTRAR_DOCKER_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "core/http.h"

#define DOCKER_API_MIN "1.24"
#define DOCKER_API_MAX "1.43"

/* Answers past these sizes are refused: a Docker API (or something that
 * pretends to be one) may send anything.  A container's inspect is tens
 * of KiB; a listing of 10 000 containers about 20 MiB. */
#define DOCKER_MAX_INSPECT (8L << 20)
#define DOCKER_MAX_LIST (256L << 20)

struct config;
struct cJSON;
struct loop;
struct metrics;
struct docker_session;

struct docker_session_events {
    /* Connected and subscribed to events: list now.  After every
     * reconnect too. */
    void (*ready)(void *arg);
    /* One event, as Docker sent it. */
    void (*event)(void *arg, const struct cJSON *event);
    /* Events may have been lost (an outage, an unreadable event): the
     * next listing must not trust what events told. */
    void (*lost)(void *arg);
    void *arg;
};

struct docker_session *docker_session_new(struct loop *lp, const struct config *c, struct metrics *m,
                                          const struct docker_session_events *ev, char *err, size_t errlen);
void docker_session_start(struct docker_session *s);
void docker_session_free(struct docker_session *s);

/* GET /containers/json, GET /containers/<id>/json, with the negotiated
 * API version; id must already be checked. */
struct http_transfer *docker_session_list(struct docker_session *s, http_done_fn *done, void *arg);
struct http_transfer *docker_session_inspect(struct docker_session *s, const char *id, http_done_fn *done,
                                             void *arg);

/* POST /containers/<id>/kill?signal=<signal> (both already checked). */
struct http_transfer *docker_session_signal(struct docker_session *s, const char *id, const char *signal,
                                            http_done_fn *done, void *arg);

/* Docker cannot be reached (why, for the log): reconnect with backoff. */
void docker_session_failed(struct docker_session *s, const char *why);
/* The first listing after connecting is complete: Docker is back. */
void docker_session_listed(struct docker_session *s);

bool docker_session_usable(const struct docker_session *s);   /* listing, or up */
/* loop_now_ms() of the last complete listing (0: none yet); of the start
 * of the outage under way (0: none). */
long long docker_session_reached_ms(const struct docker_session *s);
long long docker_session_down_since_ms(const struct docker_session *s);
bool docker_session_up(const struct docker_session *s);
bool docker_session_down(const struct docker_session *s);

#endif
