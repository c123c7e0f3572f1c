/* event.h: what a Docker event says about a container: which one, and
 * whether it died or may have changed.  Podman's action names too. */
#ifndef REGISTRAR_DOCKER_EVENT_H
#define REGISTRAR_DOCKER_EVENT_H

struct cJSON;

enum docker_event_kind {
    EVENT_NONE,                 /* nothing registrar reads changed */
    EVENT_CHANGED,              /* read the container again */
    EVENT_STOPPING,             /* a signal was sent (kill): it may stop */
    EVENT_DIED,                 /* final for this run of the container */
};

struct docker_event {
    enum docker_event_kind kind;
    const char *id;             /* a checked container id (borrowed) */
    const char *action;
};

struct docker_event docker_event_read(const struct cJSON *ev);

#endif
