/* zk_events.c: a session's queue of node events (see zk_events.h). */
#include "core/zk_events.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct zk_event_item {
    struct zk_event_item *next;
    enum zk_event_type type;
    char path[];
};

void zk_events_init(struct zk_events *q, int max)
{
    memset(q, 0, sizeof *q);
    q->tail = &q->head;
    q->max = max;
}

void zk_events_drop(struct zk_events *q)
{
    while (q->head != NULL) {
        struct zk_event_item *it = q->head;
        q->head = it->next;
        free(it);
    }
    q->tail = &q->head;
    q->count = 0;
}

void zk_events_clear(struct zk_events *q)
{
    zk_events_drop(q);
    q->lost[0] = '\0';
    q->ready = NULL;
    q->arg = NULL;
}

static void wake(struct zk_events *q)
{
    zk_ready_fn *fn = q->ready;
    void *arg = q->arg;
    if (fn == NULL)
        return;
    q->ready = NULL;
    q->arg = NULL;
    fn(arg);
}

void zk_events_lose(struct zk_events *q, const char *why)
{
    zk_events_drop(q);
    snprintf(q->lost, sizeof q->lost, "%s", why);
    wake(q);
}

bool zk_events_push(struct zk_events *q, enum zk_event_type type, const char *path)
{
    size_t n = strlen(path);
    struct zk_event_item *it;
    if (q->lost[0] != '\0')
        return true;            /* the loss says it already; the waiter reads everything anew */
    if (q->count >= q->max) {
        char why[96];
        snprintf(why, sizeof why, "more than %d node events were waiting; they were dropped", q->max);
        zk_events_lose(q, why);
        return true;
    }
    it = malloc(sizeof *it + n + 1);
    if (it == NULL) {
        zk_events_lose(q, "out of memory for a node event");
        return false;
    }
    it->next = NULL;
    it->type = type;
    memcpy(it->path, path, n + 1);
    *q->tail = it;
    q->tail = &it->next;
    q->count++;
    wake(q);
    return true;
}

int zk_events_take(struct zk_events *q, struct zk_node_event *ev, char *why, size_t whylen)
{
    struct zk_event_item *it = q->head;
    if (q->lost[0] != '\0') {
        snprintf(why, whylen, "%s", q->lost);
        q->lost[0] = '\0';
        return -1;
    }
    if (it == NULL)
        return 0;
    ev->path = strdup(it->path);
    if (ev->path == NULL) {
        snprintf(why, whylen, "out of memory for a node event");
        zk_events_drop(q);
        return -1;
    }
    ev->type = it->type;
    q->head = it->next;
    if (q->head == NULL)
        q->tail = &q->head;
    q->count--;
    free(it);
    return 1;
}

bool zk_events_wait(struct zk_events *q, zk_ready_fn *fn, void *arg)
{
    if (q->ready != NULL)
        return false;
    q->ready = fn;
    q->arg = arg;
    return true;
}

void zk_events_cancel(struct zk_events *q)
{
    q->ready = NULL;
    q->arg = NULL;
}

const char *zk_event_type_name(enum zk_event_type type)
{
    switch (type) {
    case ZK_EVENT_CREATED: return "created";
    case ZK_EVENT_DELETED: return "deleted";
    case ZK_EVENT_CHANGED: return "changed";
    case ZK_EVENT_CHILD: return "child";
    case ZK_EVENT_NOTWATCHING: return "notwatching";
    }
    return "unknown";
}
