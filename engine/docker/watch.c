/* watch.c: the container table: which containers run, and what changed.
 *
 * The session (session.c) keeps the connection; this file decides what to
 * read.  A listing inspects only containers that are new or whose listed
 * fields changed, so a quiet host costs one request per interval.  Each
 * event re-inspects its one container; inspections of one container never
 * overlap (a second event marks it to be inspected again).
 *
 * Docker being unreachable is never a reason to drop a container: the
 * table stays as it is until Docker answers again. */
#include "docker/watch.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buffer.h"
#include "core/config.h"
#include "core/http.h"
#include "core/json.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/map.h"
#include "core/metrics.h"
#include "core/slab.h"
#include "docker/container.h"
#include "docker/event.h"
#include "docker/fingerprint.h"
#include "docker/session.h"


struct known {
    struct watch *w;
    const char *id;             /* the known map's copy */
    unsigned long long fingerprint;  /* of the listed fields; 0: inspect next time */
    /* The container in the scripts' shape, kept as its compact JSON text
     * (a fifth of the parsed tree's memory; read back only to name it
     * again): NULL until inspected.  And what the table itself reads. */
    char *json;
    char *name;                 /* "/web" */
    long stop_timeout_s;        /* -1: not set */
    char *peer;                 /* network mode container:<peer>; NULL otherwise */
    unsigned long long updated; /* seq of the last change from an inspect */
    unsigned long long listed_seq;  /* the last listing that had it */
    bool inspecting, again, listing_wait;
    bool discard;               /* the inspection under way predates a death */
    bool event_read;            /* read after an event since the last listing */
    bool warned;                /* its bad answers were reported once */
    struct known *queue_next;
    long long held_until;       /* draining after a kill: not read again before */
};

struct watch {
    struct loop *lp;
    struct docker_session *session;
    bool drain_at_stop;         /* deregister: stop */
    struct metrics *metrics;
    struct watch_callbacks cb;
    struct map *known;          /* id -> struct known */
    unsigned long long seq;     /* bumped on every table change, and each listing */
    unsigned long long changes; /* bumped on every table change only */
    unsigned long long list_seq;/* seq when the running listing was asked */
    bool list_running;
    bool list_incomplete;       /* an inspection of this listing failed */
    int list_pending;           /* inspections the listing waits for */
    long list_requests;         /* Docker requests this listing made */
    long long list_started;
    unsigned long long list_digest;   /* fingerprint_listing of the running listing */
    bool list_settled;          /* ... which found every container as it was */
    /* The last listing that found the table in step with it, and changes then:
     * the same answer again, with nothing changed since, is not read. */
    unsigned long long quiet_digest, quiet_changes;
    /* Inspections under way, and those waiting: a start-up with thousands
     * of containers asks Docker a few at a time (curl's cost of a transfer
     * grows with the number under way). */
    int inspects_running;
    struct known *queue_head, *queue_tail;
    int sharing;                /* containers in network mode container:<id> */
};

#define MAX_INSPECTS 16

#define DRAIN_MARGIN_MS 2000L   /* past a container's stop timeout */

static void inspect(struct watch *w, struct known *k);
static void start_inspect(struct watch *w, struct known *k);
static void inspect_next(struct watch *w);

/* ---- the table ---------------------------------------------------------- */

static struct known *known_get(struct watch *w, const char *id, bool create)
{
    struct known *k = map_get(w->known, id);
    if (k != NULL || !create)
        return k;
    bool failed;
    if ((k = slab_alloc(sizeof *k)) == NULL)
        return NULL;
    map_put(w->known, id, k, &failed);
    if (failed) {
        slab_free(k, sizeof *k);
        return NULL;
    }
    k->w = w;
    k->id = map_key(w->known, id);
    return k;
}

static void forget_container(struct known *k)
{
    k->w->sharing -= k->peer != NULL;
    cJSON_free(k->json);
    slab_strfree(k->name);
    slab_strfree(k->peer);
    k->json = k->name = k->peer = NULL;
}

static void known_free(void *p)
{
    struct known *k = p;
    forget_container(k);
    slab_free(k, sizeof *k);
}

/* "/web (3f2ad1a466ff)" once the container was read, else "3f2ad1a466ff". */
static const char *label(const struct known *k, char *buf, size_t len)
{
    if (k->json != NULL)
        snprintf(buf, len, "%s (%.12s)", k->name ? k->name : "?", k->id);
    else
        snprintf(buf, len, "%.12s", k->id);
    return buf;
}

/* Containers in network mode container:<k> share k's addresses: when k
 * changes they are read again. */
static void inspect_dependents(struct watch *w, const struct known *k)
{
    struct map_iter it;
    const char *id;
    void *v;
    if (w->sharing == 0)        /* the common case: no walk over the table per change */
        return;
    map_iter_init(&it, w->known);
    while (map_iter_next(&it, &id, &v)) {
        struct known *d = v;
        if (d != k && d->peer != NULL && strcmp(d->peer, k->id) == 0)
            inspect(w, d);
    }
}

static char *peer_of(const cJSON *container)
{
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(container, "network_mode");
    if (!cJSON_IsString(mode) || strncmp(mode->valuestring, "container:", 10) != 0)
        return NULL;
    return slab_strdup(mode->valuestring + 10);
}

/* Keeps the container (NULL: none) as text; false when out of memory. */
static bool keep_container(struct watch *w, struct known *k, const cJSON *container)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(container, "name");
    const cJSON *timeout = cJSON_GetObjectItemCaseSensitive(container, "stop_timeout");
    forget_container(k);
    if (container == NULL)
        return true;
    k->json = cJSON_PrintUnformatted(container);    /* a slab record, through cJSON's hooks */
    k->name = slab_strdup(cJSON_IsString(name) ? name->valuestring : "?");
    k->stop_timeout_s = cJSON_IsNumber(timeout) && timeout->valuedouble >= 0 ? (long)timeout->valuedouble : -1;
    k->peer = peer_of(container);
    w->sharing += k->peer != NULL;
    if (k->json == NULL || k->name == NULL) {
        forget_container(k);
        return false;
    }
    return true;
}

static void set_container(struct watch *w, struct known *k, cJSON *container)
{
    if (!keep_container(w, k, container)) {
        log_error("container %.12s: out of memory; its registrations stay as they were", k->id);
        cJSON_Delete(container);
        return;
    }
    k->updated = ++w->seq;
    w->changes++;
    w->cb.changed(w->cb.arg, k->id, container);
    cJSON_Delete(container);
    inspect_dependents(w, k);
}

/* The container no longer runs: tell, then forget it unless an
 * inspection of it is still under way (that one cleans up). */
static void drop(struct watch *w, struct known *k)
{
    bool had = k->json != NULL;
    keep_container(w, k, NULL);
    k->updated = ++w->seq;
    w->changes++;
    if (had)
        w->cb.changed(w->cb.arg, k->id, NULL);
    if (!k->inspecting && !k->listing_wait && k->held_until == 0)
        known_free(map_remove(w->known, k->id));
}

/* deregister: stop.  A kill is sent as a stop begins, or as `docker kill`:
 * the container's entries go at once, so load balancers stop sending it
 * traffic while it shuts down, and it is not read again while it may
 * still be stopping (its stop timeout, and some).  One that survives the
 * signal (kill -s USR1) is then read and registered again. */
static void hold(struct watch *w, struct known *k)
{
    long ms = (k->stop_timeout_s >= 0 ? k->stop_timeout_s : 10) * 1000L;
    char buf[320];
    k->held_until = loop_now_ms() + ms + DRAIN_MARGIN_MS;
    k->discard = k->inspecting;
    k->fingerprint = 0;         /* read again once the hold is over */
    log_info("container %s is being stopped: its entries go now", label(k, buf, sizeof buf));
    drop(w, k);
}

/* Still held?  A hold that ran out is cleared. */
static bool held(struct known *k)
{
    if (k->held_until == 0)
        return false;
    if (loop_now_ms() < k->held_until)
        return true;
    k->held_until = 0;
    return false;
}

/* After events may have been lost, listings check every container again. */
static void forget_event_reads(struct watch *w)
{
    struct map_iter it;
    const char *id;
    void *v;
    map_iter_init(&it, w->known);
    while (map_iter_next(&it, &id, &v))
        ((struct known *)v)->event_read = false;
    w->quiet_digest = 0;
}

/* ---- listing ------------------------------------------------------------ */

static void listing_finished(struct watch *w)
{
    w->list_running = false;
    if (w->list_settled && !w->list_incomplete && w->list_requests == 1) {
        w->quiet_digest = w->list_digest;
        w->quiet_changes = w->changes;
    }
    docker_session_listed(w->session);
    log_debug("resync: %lu containers running, %ld Docker requests%s",
              (unsigned long)map_count(w->known), w->list_requests,
              w->list_incomplete ? ", some inspections failed" : "");
    metrics_gauge(w->metrics, "docker.requests_per_resync", (double)w->list_requests);
    metrics_gauge(w->metrics, "containers", (double)map_count(w->known));
    metrics_timing(w->metrics, "resync.ms", (double)(loop_now_ms() - w->list_started));
    w->cb.listed(w->cb.arg, !w->list_incomplete);
}

/* A listing as read: each container's id and fingerprint, nothing else
 * (a parsed listing of 10 000 containers would be tens of MiB). */
struct listed {
    size_t id_at;               /* in listing.ids */
    unsigned long long fingerprint;
};

struct listing {
    struct buffer ids;          /* NUL-terminated, one after another */
    struct buffer items;        /* struct listed */
    bool out_of_memory;
};

static size_t listing_count(const struct listing *l) { return l->items.len / sizeof(struct listed); }

static const struct listed *listing_item(const struct listing *l, size_t i)
{
    return (const struct listed *)l->items.data + i;
}

static const char *listing_id(const struct listing *l, size_t i)
{
    return l->ids.data + listing_item(l, i)->id_at;
}

/* All or nothing: one entry we cannot read could be any running container,
 * and dropping what is "not listed" would then deregister it. */
static bool take_listed(const cJSON *item, void *arg)
{
    struct listing *l = arg;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "Id");
    struct listed entry;
    if (!cJSON_IsObject(item) || !cJSON_IsString(id) || !container_id_valid(id->valuestring))
        return false;
    entry.id_at = l->ids.len;
    entry.fingerprint = fingerprint_listed(item);
    if (buffer_append(&l->ids, id->valuestring, strlen(id->valuestring) + 1) < 0 ||
        buffer_append(&l->items, (const char *)&entry, sizeof entry) < 0) {
        l->out_of_memory = true;
        return false;
    }
    return true;
}

static void listing_free(struct listing *l)
{
    buffer_free(&l->ids);
    buffer_free(&l->items);
}

/* Containers known before this listing was asked for, and absent from it,
 * have stopped; one that changed since is left to its own inspection. */
static void drop_unlisted(struct watch *w, const struct listing *l)
{
    struct map_iter it;
    const char *id;
    void *v;

    for (size_t i = 0; i < listing_count(l); i++) {
        struct known *k = map_get(w->known, listing_id(l, i));
        if (k != NULL)
            k->listed_seq = w->list_seq;
    }
    map_iter_init(&it, w->known);
    while (map_iter_next(&it, &id, &v)) {
        struct known *k = v;
        if (k->listed_seq != w->list_seq && !k->inspecting && k->updated < w->list_seq) {
            k->held_until = 0;  /* gone: nothing to hold */
            drop(w, k);
        }
    }
}

/* A container read after an event is as current as a listing can show:
 * any later change brings an event of its own, which reads it again. So
 * the listing only records its fingerprint. Not once events may have
 * been lost (an outage, an unreadable event): forget_event_reads(). */
static bool listed_as_read(struct known *k)
{
    bool current = k->event_read && k->json != NULL && !k->inspecting;
    k->event_read = false;
    return current;
}

static void on_list(struct http_transfer *x, const struct http_response *res, void *arg)
{
    struct watch *w = arg;
    struct listing listing = { .out_of_memory = false };
    (void)x;

    if (res->curl_code != 0 || res->status != 200) {
        char why[600];
        snprintf(why, sizeof why, "GET /containers/json: %s",
                 res->curl_code ? res->error : "unexpected status");
        w->list_running = false;
        docker_session_failed(w->session, why);
        return;
    }
    w->list_digest = fingerprint_listing(res->body, res->body_len);
    if (w->list_digest == w->quiet_digest && w->changes == w->quiet_changes) {
        listing_finished(w);    /* as quiet as the last one: nothing to read */
        return;
    }
    w->list_settled = true;
    if (!json_each_element(res->body, res->body_len, take_listed, &listing)) {
        if (listing.out_of_memory)
            log_error("out of memory reading Docker's listing; keeping the table as it is");
        else
            log_warn("Docker listed containers as something that is not a list of containers with ids "
                     "(%zu bytes); keeping the table as it is", res->body_len);
        listing_free(&listing);
        w->list_running = false;
        return;
    }
    drop_unlisted(w, &listing);
    for (size_t i = 0; i < listing_count(&listing); i++) {
        unsigned long long fp = listing_item(&listing, i)->fingerprint;
        struct known *k = known_get(w, listing_id(&listing, i), true);
        bool current;
        if (k == NULL || held(k)) {
            w->list_settled = false;    /* to be read once the hold is over */
            continue;
        }
        current = listed_as_read(k);
        if (k->fingerprint == fp && k->json != NULL)
            continue;
        w->list_settled = false;
        k->fingerprint = fp;
        if (current)
            continue;
        k->listing_wait = true;
        w->list_pending++;
        inspect(w, k);
    }
    listing_free(&listing);
    if (w->list_pending == 0)
        listing_finished(w);
}

void watch_resync(struct watch *w)
{
    if (w->list_running || !docker_session_usable(w->session))
        return;
    w->list_running = true;
    w->list_incomplete = false;
    w->list_pending = 0;
    w->list_requests = 1;
    w->list_started = loop_now_ms();
    w->list_seq = ++w->seq;
    if (docker_session_list(w->session, on_list, w) == NULL) {
        w->list_running = false;
        docker_session_failed(w->session, "cannot start GET /containers/json");
    }
}

/* ---- inspection --------------------------------------------------------- */

/* For network mode container:<id>: that peer as the table holds it (the
 * caller's to free), whose networks this container shares. */
static cJSON *peer_container(struct watch *w, const cJSON *inspect, bool *missing)
{
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(inspect, "HostConfig"), "NetworkMode");
    struct map_iter it;
    const char *id;
    void *v;
    const char *peer;

    if (!cJSON_IsString(mode) || strncmp(mode->valuestring, "container:", 10) != 0)
        return NULL;
    peer = mode->valuestring + 10;
    map_iter_init(&it, w->known);
    while (map_iter_next(&it, &id, &v)) {
        struct known *k = v;
        if (k->json == NULL)
            continue;
        /* Docker names the peer by full id; users may give a name */
        if (strncmp(id, peer, strlen(peer)) == 0 || strcmp(k->name + (k->name[0] == '/'), peer) == 0)
            return cJSON_Parse(k->json);
    }
    log_debug("container network mode %s: that container is not read yet; no addresses for now",
              mode->valuestring);
    *missing = true;
    return NULL;
}

static bool is_running(const cJSON *inspect)
{
    const cJSON *state = cJSON_GetObjectItemCaseSensitive(inspect, "State");
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(state, "Running"));
}

/* A container whose answers stay bad is reported once, then at debug
 * level, not at every resync. */
static void bad_answer(struct known *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void bad_answer(struct known *k, const char *fmt, ...)
{
    char why[300], buf[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (k->warned)
        log_debug("container %s: %s; keeping its services", label(k, buf, sizeof buf), why);
    else
        log_warn("container %s: %s; keeping its services", label(k, buf, sizeof buf), why);
    k->warned = true;
}

/* Parts of a container left out of its table: once per container, and
 * again only after it was read clean in between. */
static void note_left_out(struct known *k, const cJSON *container, const struct container_notes *notes)
{
    char text[300];
    container_notes_text(notes, text, sizeof text);
    if (k->warned)
        log_debug("container %s (%.12s): %s", container_name(container), k->id, text);
    else
        log_warn("container %s (%.12s): %s", container_name(container), k->id, text);
    k->warned = true;
}

/* Applies an inspect answer; returns false when it was unusable. */
static bool apply_inspect(struct watch *w, struct known *k, const struct http_response *res)
{
    cJSON *inspect, *container, *peer;
    struct container_notes notes = { .count = 0 };
    bool peer_missing = false;
    char err[256];

    if (res->status == 404) {
        drop(w, k);
        return true;
    }
    if (res->status != 200) {
        bad_answer(k, "Docker answered inspect with status %ld", res->status);
        return false;
    }
    inspect = json_parse(res->body, res->body_len, NULL);
    if (inspect == NULL) {
        bad_answer(k, "inspect answer is not JSON (%zu bytes)", res->body_len);
        return false;
    }
    if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(inspect, "State"))) {
        bad_answer(k, "inspect answer has no State");
        cJSON_Delete(inspect);
        return false;
    }
    if (!is_running(inspect)) {
        cJSON_Delete(inspect);
        drop(w, k);
        return true;
    }
    peer = peer_container(w, inspect, &peer_missing);
    container = container_from_inspect(inspect, cJSON_GetObjectItemCaseSensitive(peer, "networks"), &notes,
                                       err, sizeof err);
    cJSON_Delete(peer);
    cJSON_Delete(inspect);
    if (container == NULL) {
        bad_answer(k, "unusable inspect answer: %s", err);
        return false;
    }
    if (notes.count > 0)
        note_left_out(k, container, &notes);
    else
        k->warned = false;
    set_container(w, k, container);
    k->event_read = !k->listing_wait && !peer_missing;
    if (peer_missing)
        k->fingerprint = 0;     /* its peer's inspection will bring the addresses */
    return true;
}

static void on_inspect(struct http_transfer *x, const struct http_response *res, void *arg)
{
    struct known *k = arg;
    struct watch *w = k->w;
    bool usable = true;
    char buf[320];
    (void)x;

    inspect_next(w);
    /* still "inspecting" while applying, so drop() cannot free k under us */
    if (k->discard)
        k->discard = false;     /* it may say "running" about a dead container */
    else if (res->curl_code != 0)
        log_debug("container %s: inspect failed: %s", label(k, buf, sizeof buf), res->error);
    else
        usable = apply_inspect(w, k, res);
    k->inspecting = false;
    if (!usable || res->curl_code != 0) {
        k->fingerprint = 0;     /* try again at the next listing */
        k->event_read = false;
        if (k->listing_wait)
            w->list_incomplete = true;
    }
    if (k->again && !docker_session_down(w->session)) {
        k->again = false;
        inspect(w, k);
        return;
    }
    k->again = false;
    if (k->listing_wait) {
        k->listing_wait = false;
        if (--w->list_pending == 0 && w->list_running)
            listing_finished(w);
    }
    if (k->json == NULL && !k->inspecting && usable && res->curl_code == 0)
        known_free(map_remove(w->known, k->id));
}

static void inspect(struct watch *w, struct known *k)
{
    if (k->inspecting) {
        k->again = true;
        return;
    }
    if (!container_id_valid(k->id)) {
        log_warn("ignoring a container id that is not an id (%zu bytes)", strlen(k->id));
        return;
    }
    k->inspecting = true;
    if (w->list_running)
        w->list_requests++;
    if (w->inspects_running >= MAX_INSPECTS) {
        k->queue_next = NULL;   /* waits for a free slot, "inspecting" meanwhile */
        if (w->queue_tail != NULL)
            w->queue_tail->queue_next = k;
        else
            w->queue_head = k;
        w->queue_tail = k;
        return;
    }
    start_inspect(w, k);
}

static void start_inspect(struct watch *w, struct known *k)
{
    char buf[320];
    if (docker_session_inspect(w->session, k->id, on_inspect, k) == NULL) {
        k->inspecting = false;
        log_error("container %s: cannot start an inspect", label(k, buf, sizeof buf));
        return;
    }
    w->inspects_running++;
}

/* An inspection ended: the next waiting one goes (and the one after, if
 * that one could not start). */
static void inspect_next(struct watch *w)
{
    w->inspects_running--;
    while (w->queue_head != NULL && w->inspects_running < MAX_INSPECTS) {
        struct known *k = w->queue_head;
        w->queue_head = k->queue_next;
        if (w->queue_head == NULL)
            w->queue_tail = NULL;
        k->again = false;       /* it reads the container as it is now */
        start_inspect(w, k);
    }
}

/* ---- events ------------------------------------------------------------- */

static void handle_event(struct watch *w, const cJSON *ev)
{
    struct docker_event e = docker_event_read(ev);
    struct known *k;

    if (e.kind == EVENT_NONE)
        return;
    log_debug("event %s %.12s", e.action, e.id);
    metrics_count(w->metrics, "docker.events", 1);
    /* A death is final for this run of the container: act on it at once.
     * Inspecting first would wait for dockerd's teardown, which is slow. */
    if (e.kind == EVENT_DIED) {
        k = known_get(w, e.id, false);
        if (k != NULL) {
            k->discard = k->inspecting;
            k->held_until = 0;
            drop(w, k);
        }
        return;
    }
    k = known_get(w, e.id, true);
    if (k == NULL || held(k))
        return;
    if (e.kind == EVENT_STOPPING && w->drain_at_stop && k->json != NULL)
        hold(w, k);
    else
        inspect(w, k);
}

/* ---- what the session tells ---------------------------------------------- */

static void on_ready(void *arg)
{
    watch_resync(arg);
}

static void on_event(void *arg, const cJSON *ev)
{
    handle_event(arg, ev);
}

static void on_lost(void *arg)
{
    forget_event_reads(arg);
}

/* ---- life cycle --------------------------------------------------------- */

struct watch *watch_new(struct loop *lp, const struct config *c, struct metrics *m,
                        const struct watch_callbacks *cb, char *err, size_t errlen)
{
    struct watch *w = calloc(1, sizeof *w);
    struct docker_session_events ev = { on_ready, on_event, on_lost, w };
    if (w == NULL)
        return NULL;
    w->lp = lp;
    w->metrics = m;
    w->cb = *cb;
    w->drain_at_stop = c->deregister == DEREGISTER_AT_STOP;
    w->known = map_new();
    if (w->known == NULL || (w->session = docker_session_new(lp, c, m, &ev, err, errlen)) == NULL) {
        watch_free(w);
        return NULL;
    }
    return w;
}

void watch_start(struct watch *w)
{
    docker_session_start(w->session);
}

bool watch_connected(const struct watch *w) { return docker_session_up(w->session); }
struct docker_session *watch_session(struct watch *w) { return w->session; }
long long watch_reached_ms(const struct watch *w) { return docker_session_reached_ms(w->session); }
long long watch_down_since_ms(const struct watch *w) { return docker_session_down_since_ms(w->session); }

cJSON *watch_container(const struct watch *w, const char *id)
{
    const struct known *k = map_get(w->known, id);
    return k && k->json ? cJSON_Parse(k->json) : NULL;
}

const char *watch_container_name(const struct watch *w, const char *id)
{
    const struct known *k = map_get(w->known, id);
    return k && k->json ? k->name : NULL;
}

void watch_free(struct watch *w)
{
    if (w == NULL)
        return;
    docker_session_free(w->session);    /* cancels every transfer still under way */
    map_free(w->known, known_free);
    free(w);
}
