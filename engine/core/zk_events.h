/* zk_events.h: one session's node events (a watch fired) on their way to
 * the one caller that waits for them, on the loop.
 *
 * A bounded queue: a caller that stops taking them must not make the
 * daemon grow without end, so past its bound the queue is dropped whole
 * and what is left is a loss ("the watches' events overflowed").  A loss
 * is also what the session's owner reports when the watches themselves are
 * gone (the session expired, or closed): whoever waits must then read the
 * tree again and arm its watches anew.  No locking here: everything runs
 * on the loop (core/zk.c moves the events over from the client's thread). */
#ifndef REGISTRAR_ZK_EVENTS_H
#define REGISTRAR_ZK_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

enum zk_event_type { ZK_EVENT_CREATED, ZK_EVENT_DELETED, ZK_EVENT_CHANGED, ZK_EVENT_CHILD, ZK_EVENT_NOTWATCHING };

struct zk_node_event {
    enum zk_event_type type;
    char *path;                 /* the taker's to free */
};

/* Called once, when zk_events_take has something to give. */
typedef void zk_ready_fn(void *arg);

struct zk_event_item;

struct zk_events {
    struct zk_event_item *head, **tail;
    int count, max;
    char lost[256];             /* "": nothing was lost */
    zk_ready_fn *ready;         /* NULL: nobody waits */
    void *arg;
};

void zk_events_init(struct zk_events *q, int max);
/* Drops every event queued, and the waiter, without calling it. */
void zk_events_clear(struct zk_events *q);

/* Drops the events queued, and nothing else. */
void zk_events_drop(struct zk_events *q);

/* false when out of memory: the event is lost, and said so */
bool zk_events_push(struct zk_events *q, enum zk_event_type type, const char *path);
/* The events queued are dropped and the next take reports why. */
void zk_events_lose(struct zk_events *q, const char *why);

/* 1: the oldest event, into *ev; -1: events were lost, why says how (said
 * once); 0: nothing yet. */
int zk_events_take(struct zk_events *q, struct zk_node_event *ev, char *why, size_t whylen);
/* fn(arg), once, when the next event or loss comes: for a caller whose
 * take gave 0.  false when another waits already. */
bool zk_events_wait(struct zk_events *q, zk_ready_fn *fn, void *arg);
void zk_events_cancel(struct zk_events *q);

/* "created", "deleted", "changed", "child", "notwatching" */
const char *zk_event_type_name(enum zk_event_type type);

#endif
