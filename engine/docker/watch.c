/* watch.c: the container table.
 *
 * Start-up and every reconnect: GET /version, subscribe to /events, and
 * once the subscription is answered, list.  Listing after subscribing
 * means nothing that happens in between is missed.  A listing inspects
 * only containers that are new or whose listed fields changed, so a quiet
 * host costs one request per interval.  Each event re-inspects its one
 * container; inspections of one container never overlap (a second event
 * marks it to be inspected again).
 *
 * Docker being unreachable is never a reason to drop a container: the
 * table stays as it is until Docker answers again. */
#include "docker/watch.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/http.h"
#include "core/json.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/map.h"
#include "core/metrics.h"
#include "docker/container.h"
#include "docker/session.h"

#define BACKOFF_MIN_MS 200L
#define BACKOFF_MAX_MS 5000L
#define MAX_EVENT_LINE (1 << 20)
#define DOCKER_CONNECTIONS 8

enum watch_state { W_DOWN, W_VERSION, W_SUBSCRIBING, W_LISTING, W_UP };

struct known {
    struct watch *w;
    char *id;
    unsigned long long fingerprint;  /* of the listed fields; 0: inspect next time */
    cJSON *container;           /* scripts' shape; NULL until inspected */
    unsigned long long updated; /* seq of the last change from an inspect */
    bool inspecting, again, listing_wait;
    bool discard;               /* the inspection under way predates a death */
    bool event_read;            /* read after an event since the last listing */
    bool warned;                /* its bad answers were reported once */
};

struct watch {
    struct loop *lp;
    struct http *http;
    struct docker docker;
    struct metrics *metrics;
    struct watch_callbacks cb;
    struct map *known;          /* id -> struct known */
    enum watch_state state;
    struct http_transfer *events;
    char *line;
    size_t line_len, line_cap;
    bool line_overflow;
    long backoff_ms;
    long long retry_timer;
    long long list_timer;
    long long events_timer;     /* buffered event lines wait for it */
    struct log_trouble down;
    unsigned long long seq;     /* bumped on every table change */
    unsigned long long list_seq;/* seq when the running listing was asked */
    bool list_running;
    bool list_incomplete;       /* an inspection of this listing failed */
    int list_pending;           /* inspections the listing waits for */
    long list_requests;         /* Docker requests this listing made */
};

static void go_down(struct watch *w, const char *why);
static void inspect(struct watch *w, struct known *k);
static bool valid_id(const char *id);

/* ---- the table ---------------------------------------------------------- */

static struct known *known_get(struct watch *w, const char *id, bool create)
{
    struct known *k = map_get(w->known, id);
    if (k != NULL || !create)
        return k;
    k = calloc(1, sizeof *k);
    if (k == NULL || (k->id = strdup(id)) == NULL) {
        free(k);
        return NULL;
    }
    k->w = w;
    map_put(w->known, id, k, NULL);
    return k;
}

static void known_free(void *p)
{
    struct known *k = p;
    cJSON_Delete(k->container);
    free(k->id);
    free(k);
}

/* Containers in network mode container:<k> share k's addresses: when k
 * changes they are read again. */
static void inspect_dependents(struct watch *w, const struct known *k)
{
    struct map_iter it;
    const char *id;
    void *v;
    map_iter_init(&it, w->known);
    while (map_iter_next(&it, &id, &v)) {
        struct known *d = v;
        const cJSON *mode = cJSON_GetObjectItemCaseSensitive(d->container, "network_mode");
        if (d != k && cJSON_IsString(mode) && strncmp(mode->valuestring, "container:", 10) == 0 &&
            strcmp(mode->valuestring + 10, k->id) == 0)
            inspect(w, d);
    }
}

static void set_container(struct watch *w, struct known *k, cJSON *container)
{
    cJSON_Delete(k->container);
    k->container = container;
    k->updated = ++w->seq;
    w->cb.changed(w->cb.arg, k->id, container);
    inspect_dependents(w, k);
}

/* The container no longer runs: tell, then forget it unless an
 * inspection of it is still under way (that one cleans up). */
static void drop(struct watch *w, struct known *k)
{
    bool had = k->container != NULL;
    cJSON_Delete(k->container);
    k->container = NULL;
    k->updated = ++w->seq;
    if (had)
        w->cb.changed(w->cb.arg, k->id, NULL);
    if (!k->inspecting && !k->listing_wait)
        known_free(map_remove(w->known, k->id));
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
}

/* ---- listing ------------------------------------------------------------ */

static void listing_finished(struct watch *w)
{
    w->list_running = false;
    if (w->state == W_LISTING) {
        w->state = W_UP;
        w->backoff_ms = BACKOFF_MIN_MS;
        log_trouble_end(&w->down, loop_now_ms(), "Docker");
    }
    log_debug("resync: %lu containers running, %ld Docker requests%s",
              (unsigned long)map_count(w->known), w->list_requests,
              w->list_incomplete ? ", some inspections failed" : "");
    metrics_gauge(w->metrics, "docker.requests_per_resync", (double)w->list_requests);
    w->cb.listed(w->cb.arg, !w->list_incomplete);
}

static unsigned long long fnv(const char *s, unsigned long long h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static int compare_json(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Hash of what naming depends on, as /containers/json lists it.  Status
 * text changes every second ("Up 5 minutes"), so only its health part is
 * taken; Ports comes in no fixed order, so it is hashed sorted. */
static unsigned long long fingerprint(const cJSON *item)
{
    static const char *const fields[] = { "Names", "Image", "State", "Labels", "NetworkSettings", NULL };
    unsigned long long h = 14695981039346656037ULL;
    const cJSON *ports = cJSON_GetObjectItemCaseSensitive(item, "Ports"), *p;
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(item, "Status");
    int n = cJSON_GetArraySize(ports), i = 0;
    char **texts = n > 0 ? calloc((size_t)n, sizeof *texts) : NULL;

    for (int f = 0; fields[f]; f++) {
        char *s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(item, fields[f]));
        h = fnv(s ? s : "-", h);
        free(s);
    }
    if (cJSON_IsString(status) && strchr(status->valuestring, '('))
        h = fnv(strchr(status->valuestring, '('), h);
    if (texts != NULL) {
        cJSON_ArrayForEach(p, ports)
            texts[i++] = cJSON_PrintUnformatted(p);
        qsort(texts, (size_t)n, sizeof *texts, compare_json);
        for (i = 0; i < n; i++) {
            h = fnv(texts[i] ? texts[i] : "-", h);
            free(texts[i]);
        }
        free(texts);
    }
    return h ? h : 1;
}

/* Containers known before this listing was asked for, and absent from it,
 * have stopped; one that changed since is left to its own inspection. */
static void drop_unlisted(struct watch *w, const cJSON *list)
{
    struct map_iter it;
    const char *id;
    void *v;
    struct map *listed = map_new();
    const cJSON *item;

    if (listed == NULL)
        return;
    cJSON_ArrayForEach(item, list) {
        const cJSON *cid = cJSON_GetObjectItemCaseSensitive(item, "Id");
        if (cJSON_IsString(cid))
            map_put(listed, cid->valuestring, (void *)1, NULL);
    }
    map_iter_init(&it, w->known);
    while (map_iter_next(&it, &id, &v)) {
        struct known *k = v;
        if (map_get(listed, id) == NULL && !k->inspecting && k->updated < w->list_seq)
            drop(w, k);
    }
    map_free(listed, NULL);
}

/* All or nothing: one entry we cannot read could be any running container,
 * and dropping what is "not listed" would then deregister it. */
static bool readable_list(const cJSON *list)
{
    const cJSON *item;
    if (!cJSON_IsArray(list))
        return false;
    cJSON_ArrayForEach(item, list) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "Id");
        if (!cJSON_IsObject(item) || !cJSON_IsString(id) || !valid_id(id->valuestring))
            return false;
    }
    return true;
}

/* A container read after an event is as current as a listing can show:
 * any later change brings an event of its own, which reads it again. So
 * the listing only records its fingerprint. Not once events may have
 * been lost (an outage, an unreadable event): forget_event_reads(). */
static bool listed_as_read(struct known *k)
{
    bool current = k->event_read && k->container != NULL && !k->inspecting;
    k->event_read = false;
    return current;
}

static void on_list(struct http_transfer *x, const struct http_response *res, void *arg)
{
    struct watch *w = arg;
    cJSON *list;
    const cJSON *item;
    (void)x;

    if (res->curl_code != 0 || res->status != 200) {
        char why[600];
        snprintf(why, sizeof why, "GET /containers/json: %s",
                 res->curl_code ? res->error : "unexpected status");
        w->list_running = false;
        go_down(w, why);
        return;
    }
    list = json_parse(res->body, res->body_len, NULL);
    if (!readable_list(list)) {
        log_warn("Docker listed containers as something that is not a list of containers with ids "
                 "(%zu bytes); keeping the table as it is", res->body_len);
        cJSON_Delete(list);
        w->list_running = false;
        return;
    }
    drop_unlisted(w, list);
    cJSON_ArrayForEach(item, list) {
        const cJSON *cid = cJSON_GetObjectItemCaseSensitive(item, "Id");
        struct known *k;
        unsigned long long fp;
        bool current;
        if (!cJSON_IsString(cid) || cid->valuestring[0] == '\0')
            continue;
        fp = fingerprint(item);
        k = known_get(w, cid->valuestring, true);
        if (k == NULL)
            continue;
        current = listed_as_read(k);
        if (k->fingerprint == fp && k->container != NULL)
            continue;
        k->fingerprint = fp;
        if (current)
            continue;
        k->listing_wait = true;
        w->list_pending++;
        inspect(w, k);
    }
    cJSON_Delete(list);
    if (w->list_pending == 0)
        listing_finished(w);
}

void watch_resync(struct watch *w)
{
    if (w->list_running || (w->state != W_UP && w->state != W_LISTING))
        return;
    w->list_running = true;
    w->list_incomplete = false;
    w->list_pending = 0;
    w->list_requests = 1;
    w->list_seq = ++w->seq;
    if (docker_get(&w->docker, "/containers/json", DOCKER_MAX_LIST, on_list, w) == NULL) {
        w->list_running = false;
        go_down(w, "cannot start GET /containers/json");
    }
}

/* ---- inspection --------------------------------------------------------- */

/* For network mode container:<id>: the networks of that peer, which this
 * container shares (borrowed from the table). */
static const cJSON *peer_networks(struct watch *w, const cJSON *inspect, bool *missing)
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
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(k->container, "name");
        if (k->container == NULL)
            continue;
        /* Docker names the peer by full id; users may give a name */
        if (strncmp(id, peer, strlen(peer)) == 0 ||
            (cJSON_IsString(name) && strcmp(name->valuestring + (name->valuestring[0] == '/'), peer) == 0))
            return cJSON_GetObjectItemCaseSensitive(k->container, "networks");
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
    char why[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    if (k->warned)
        log_debug("container %.12s: %s; keeping its services", k->id, why);
    else
        log_warn("container %.12s: %s; keeping its services", k->id, why);
    k->warned = true;
}

/* Parts of a container left out of its table: once per container, and
 * again only after it was read clean in between. */
static void note_left_out(struct known *k, const cJSON *container, const struct container_notes *notes)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(container, "name");
    char text[300];
    container_notes_text(notes, text, sizeof text);
    if (k->warned)
        log_debug("container %s (%.12s): %s", cJSON_IsString(name) ? name->valuestring : "?", k->id, text);
    else
        log_warn("container %s (%.12s): %s", cJSON_IsString(name) ? name->valuestring : "?", k->id, text);
    k->warned = true;
}

/* Applies an inspect answer; returns false when it was unusable. */
static bool apply_inspect(struct watch *w, struct known *k, const struct http_response *res)
{
    cJSON *inspect, *container;
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
    container = container_from_inspect(inspect, peer_networks(w, inspect, &peer_missing), &notes,
                                       err, sizeof err);
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
    (void)x;

    /* still "inspecting" while applying, so drop() cannot free k under us */
    if (k->discard)
        k->discard = false;     /* it may say "running" about a dead container */
    else if (res->curl_code != 0)
        log_debug("container %.12s: inspect failed: %s", k->id, res->error);
    else
        usable = apply_inspect(w, k, res);
    k->inspecting = false;
    if (!usable || res->curl_code != 0) {
        k->fingerprint = 0;     /* try again at the next listing */
        k->event_read = false;
        if (k->listing_wait)
            w->list_incomplete = true;
    }
    if (k->again && w->state != W_DOWN) {
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
    if (k->container == NULL && !k->inspecting && usable && res->curl_code == 0)
        known_free(map_remove(w->known, k->id));
}

/* Ids go into URLs and the log: letters, digits, '_', '.', '-' only. */
static bool valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 128)
        return false;
    for (; *id; id++)
        if (!isalnum((unsigned char)*id) && *id != '_' && *id != '.' && *id != '-')
            return false;
    return true;
}

static void inspect(struct watch *w, struct known *k)
{
    char path[200];
    if (k->inspecting) {
        k->again = true;
        return;
    }
    if (!valid_id(k->id)) {
        log_warn("ignoring a container id that is not an id (%zu bytes)", strlen(k->id));
        return;
    }
    snprintf(path, sizeof path, "/containers/%s/json", k->id);
    k->inspecting = true;
    if (w->list_running)
        w->list_requests++;
    if (docker_get(&w->docker, path, DOCKER_MAX_INSPECT, on_inspect, k) == NULL) {
        k->inspecting = false;
        log_error("cannot start an inspect of %.12s", k->id);
    }
}

/* ---- events ------------------------------------------------------------- */

static bool action_matters(const char *action)
{
    static const char *const actions[] = {
        "start", "die", "stop", "kill", "destroy", "pause", "unpause", "rename",
        "restart", "update", "connect", "disconnect", "health_status",
        "died", "remove", "cleanup",   /* Podman's names */
        NULL,
    };
    for (int i = 0; actions[i]; i++) {
        size_t n = strlen(actions[i]);
        if (strncmp(action, actions[i], n) == 0 && (action[n] == '\0' || action[n] == ':'))
            return true;
    }
    return false;
}

static bool is_death(const char *action)
{
    return strcmp(action, "die") == 0 || strcmp(action, "died") == 0 ||
           strcmp(action, "destroy") == 0 || strcmp(action, "remove") == 0;
}

static void handle_event(struct watch *w, const cJSON *ev)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(ev, "Type");
    const cJSON *action = cJSON_GetObjectItemCaseSensitive(ev, "Action");
    const cJSON *actor = cJSON_GetObjectItemCaseSensitive(ev, "Actor");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(actor, "ID");
    struct known *k;

    if (!cJSON_IsString(action) || !action_matters(action->valuestring))
        return;
    /* network events name the network; the container is an attribute */
    if (cJSON_IsString(type) && strcmp(type->valuestring, "network") == 0)
        id = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(actor, "Attributes"),
                                              "container");
    if (!cJSON_IsString(id) || !valid_id(id->valuestring))
        return;
    log_debug("event %s %.12s", action->valuestring, id->valuestring);
    metrics_count(w->metrics, "docker.events", 1);
    /* A death is final for this run of the container: act on it at once.
     * Inspecting first would wait for dockerd's teardown, which is slow. */
    if (is_death(action->valuestring)) {
        k = known_get(w, id->valuestring, false);
        if (k != NULL) {
            k->discard = k->inspecting;
            drop(w, k);
        }
        return;
    }
    k = known_get(w, id->valuestring, true);
    if (k != NULL)
        inspect(w, k);
}

static void handle_line(struct watch *w, const char *line, size_t len)
{
    cJSON *ev;
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    if (len == 0)
        return;
    ev = json_parse(line, len, NULL);
    if (ev == NULL) {
        log_warn("Docker sent an event that is not JSON (%zu bytes); ignored", len);
        forget_event_reads(w);  /* the next listing checks every container */
        return;
    }
    handle_event(w, ev);
    cJSON_Delete(ev);
}

/* Handles every complete line in the buffer, keeping a partial last one.
 * A line longer than MAX_EVENT_LINE is dropped, not buffered forever. */
static long handle_buffered_events(struct loop *lp, void *arg)
{
    struct watch *w = arg;
    size_t start = 0;
    (void)lp;
    w->events_timer = 0;
    for (size_t i = 0; i < w->line_len; i++) {
        if (w->line[i] != '\n')
            continue;
        if (!w->line_overflow)
            handle_line(w, w->line + start, i - start);
        w->line_overflow = false;
        start = i + 1;
    }
    if (start > 0) {
        memmove(w->line, w->line + start, w->line_len - start);
        w->line_len -= start;
    }
    if (w->line_len > MAX_EVENT_LINE) {
        log_warn("Docker sent an event longer than %d bytes; ignored", MAX_EVENT_LINE);
        forget_event_reads(w);
        w->line_overflow = true;
        w->line_len = 0;
    }
    return LOOP_NOMORE;
}

/* Called from inside curl, where no new request may start: the bytes are
 * kept and handled on the next loop pass. */
static int on_event_data(const char *data, size_t len, void *arg)
{
    struct watch *w = arg;
    if (w->line_len + len > w->line_cap) {
        size_t cap = w->line_cap ? w->line_cap : 4096;
        char *p;
        while (cap < w->line_len + len)
            cap *= 2;
        p = realloc(w->line, cap);
        if (p == NULL)
            return -1;
        w->line = p;
        w->line_cap = cap;
    }
    memcpy(w->line + w->line_len, data, len);
    w->line_len += len;
    if (w->events_timer == 0)
        w->events_timer = loop_timer_add(w->lp, 0, handle_buffered_events, w);
    return 0;
}

static long list_after_subscribing(struct loop *lp, void *arg)
{
    struct watch *w = arg;
    (void)lp;
    w->list_timer = 0;
    watch_resync(w);
    return LOOP_NOMORE;
}

/* Called from inside curl: the listing starts on the next loop pass. */
static void on_events_head(long status, void *arg)
{
    struct watch *w = arg;
    if (status != 200 || w->state != W_SUBSCRIBING)
        return;                 /* the done callback reports the failure */
    w->state = W_LISTING;
    w->list_timer = loop_timer_add(w->lp, 0, list_after_subscribing, w);
}

static void on_events_done(struct http_transfer *x, const struct http_response *res, void *arg)
{
    struct watch *w = arg;
    char why[600];
    (void)x;
    w->events = NULL;
    loop_timer_cancel(w->lp, w->events_timer);
    w->events_timer = 0;
    handle_buffered_events(w->lp, w);   /* what arrived before the end still counts */
    w->line_len = 0;
    if (res->curl_code != 0)
        snprintf(why, sizeof why, "event stream: %s", res->error);
    else if (res->status != 200)
        snprintf(why, sizeof why, "event stream: status %ld", res->status);
    else
        snprintf(why, sizeof why, "event stream ended (daemon restarting?)");
    go_down(w, why);
}

/* ---- connection --------------------------------------------------------- */

static void connect_docker(struct watch *w);

static long on_retry(struct loop *lp, void *arg)
{
    struct watch *w = arg;
    (void)lp;
    w->retry_timer = 0;
    connect_docker(w);
    return LOOP_NOMORE;
}

static void go_down(struct watch *w, const char *why)
{
    if (w->state == W_DOWN && w->retry_timer != 0)
        return;
    w->state = W_DOWN;
    forget_event_reads(w);
    if (w->events != NULL) {
        http_cancel(w->events);
        w->events = NULL;
    }
    if (!log_trouble_begin(&w->down, loop_now_ms(),
                           "Docker at %s is unreachable (%s); keeping every registration and retrying",
                           w->docker.where, why))
        log_debug("Docker still unreachable: %s; next try in %ld ms", why, w->backoff_ms);
    metrics_count(w->metrics, "docker.failures", 1);
    loop_timer_cancel(w->lp, w->retry_timer);
    w->retry_timer = loop_timer_add(w->lp, w->backoff_ms, on_retry, w);
    w->backoff_ms = w->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : w->backoff_ms * 2;
}

static void on_version(struct http_transfer *x, const struct http_response *res, void *arg)
{
    struct watch *w = arg;
    char err[600];
    (void)x;
    if (w->state != W_VERSION)
        return;
    if (res->curl_code != 0) {
        snprintf(err, sizeof err, "%s", res->error);
        go_down(w, err);
        return;
    }
    if (docker_negotiate(&w->docker, res, err, sizeof err) < 0) {
        go_down(w, err);
        return;
    }
    log_debug("Docker API %s at %s", w->docker.version, w->docker.where);
    w->state = W_SUBSCRIBING;
    w->events = docker_events(&w->docker, on_events_head, on_event_data, on_events_done, w);
    if (w->events == NULL)
        go_down(w, "cannot start the event stream");
}

static void connect_docker(struct watch *w)
{
    w->state = W_VERSION;
    if (docker_get_version(&w->docker, on_version, w) == NULL)
        go_down(w, "cannot start GET /version");
}

/* ---- life cycle --------------------------------------------------------- */

struct watch *watch_new(struct loop *lp, const struct config *c, struct metrics *m,
                        const struct watch_callbacks *cb, char *err, size_t errlen)
{
    struct watch *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->lp = lp;
    w->metrics = m;
    w->cb = *cb;
    w->backoff_ms = BACKOFF_MIN_MS;
    w->known = map_new();
    w->http = http_new(lp, DOCKER_CONNECTIONS);
    if (w->known == NULL || w->http == NULL || docker_init(&w->docker, w->http, c, err, errlen) < 0) {
        watch_free(w);
        return NULL;
    }
    return w;
}

void watch_start(struct watch *w)
{
    connect_docker(w);
}

bool watch_connected(const struct watch *w) { return w->state == W_UP; }

void watch_free(struct watch *w)
{
    if (w == NULL)
        return;
    loop_timer_cancel(w->lp, w->retry_timer);
    loop_timer_cancel(w->lp, w->list_timer);
    loop_timer_cancel(w->lp, w->events_timer);
    if (w->events)
        http_cancel(w->events);
    http_free(w->http);         /* cancels every transfer still under way */
    map_free(w->known, known_free);
    docker_free(&w->docker);
    free(w->line);
    free(w);
}
