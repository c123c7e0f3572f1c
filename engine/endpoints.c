/* endpoints.c: see endpoints.h.
 *
 * Healthy means: Docker was listed, and the registry answered, within the
 * last two intervals, and no entry has been failing for longer than that.
 * Each part says since when it is unhappy, so a page reads as a diagnosis:
 *
 *   {"healthy":false,"docker":{"healthy":true,...},
 *    "registry":{"healthy":false,"unreachable_since":"2026-12-01T10:00:03Z",...}} */
#include "endpoints.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "core/config.h"
#include "core/httpd.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "docker/watch.h"
#include "lua/script.h"
#include "registry/backend.h"
#include "registry/hostdoc.h"
#include "registry/reconcile.h"

struct endpoints {
    struct httpd *httpd;
    struct endpoints_parts parts;
    bool have_parts;
};

/* A loop_now_ms() time as the wall-clock time it was, RFC 3339. */
static void add_time(cJSON *obj, const char *name, long long at_ms)
{
    struct timeval tv;
    time_t secs;
    struct tm tm;
    char text[40];
    gettimeofday(&tv, NULL);
    secs = (time_t)(((long long)tv.tv_sec * 1000 + tv.tv_usec / 1000 - (loop_now_ms() - at_ms)) / 1000);
    gmtime_r(&secs, &tm);
    strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(obj, name, text);
}

/* doc as the response body, one line of JSON; doc is freed. */
static void respond_json(struct httpd_response *res, cJSON *doc)
{
    char *text = cJSON_PrintUnformatted(doc);
    res->content_type = "application/json";
    if (text != NULL) {
        buffer_append(&res->body, text, strlen(text));
        buffer_append(&res->body, "\n", 1);
    }
    cJSON_free(text);
    cJSON_Delete(doc);
}

/* One part's health: reached within `window` ms, and since when not. */
static bool part_health(cJSON *part, long long reached, long long down_since, long long window)
{
    long long now = loop_now_ms();
    bool healthy = reached != 0 && now - reached <= window;
    cJSON_AddBoolToObject(part, "healthy", healthy);
    if (reached != 0) {
        add_time(part, "reached", reached);
        cJSON_AddNumberToObject(part, "reached_seconds_ago", (double)(now - reached) / 1000.0);
    } else {
        cJSON_AddStringToObject(part, "reached", "never");
    }
    if (down_since != 0)
        add_time(part, "unreachable_since", down_since);
    return healthy;
}

static void health(struct endpoints *e, struct httpd_response *res)
{
    const struct endpoints_parts *p = &e->parts;
    long long window = 2 * p->c->interval_ms, failing_since = reconcile_failing_since(p->reconcile);
    cJSON *doc = cJSON_CreateObject(), *docker = cJSON_AddObjectToObject(doc, "docker");
    cJSON *registry = cJSON_AddObjectToObject(doc, "registry");
    bool docker_ok, registry_ok, entries_ok = failing_since == 0 || loop_now_ms() - failing_since <= window;

    docker_ok = part_health(docker, watch_reached_ms(p->watch), watch_down_since_ms(p->watch), window);
    registry_ok = part_health(registry, backend_reached_ms(p->backend), backend_down_since_ms(p->backend),
                              window);
    cJSON_AddStringToObject(registry, "backend", p->c->backend_shown);
    cJSON_AddNumberToObject(registry, "failing_entries", reconcile_failing(p->reconcile));
    if (failing_since != 0)
        add_time(registry, "failing_since", failing_since);
    if (!entries_ok)
        cJSON_ReplaceItemInObject(registry, "healthy", cJSON_CreateFalse());
    cJSON_AddBoolToObject(doc, "healthy", docker_ok && registry_ok && entries_ok);
    cJSON_AddNumberToObject(doc, "window_seconds", (double)window / 1000.0);
    res->status = docker_ok && registry_ok && entries_ok ? 200 : 503;
    respond_json(res, doc);
}

struct counts {
    long services;
};

static void count_service(void *arg, const struct reconcile_entry_view *v)
{
    struct counts *n = arg;
    if (v->owner != NULL && strcmp(v->owner, HOSTDOC_OWNER) != 0)
        n->services++;
}

static void metrics(struct endpoints *e, struct httpd_response *res)
{
    const struct endpoints_parts *p = &e->parts;
    struct counts n = { 0 };
    char scheme[32];
    reconcile_each_entry(p->reconcile, count_service, &n);
    metrics_gauge(p->metrics, "services", (double)n.services);
    metrics_gauge(p->metrics, "script.memory_bytes", (double)script_memory_used(p->script));
    snprintf(scheme, sizeof scheme, "%.*s", (int)strcspn(p->c->backend_shown, ":+"), p->c->backend_shown);
    metrics_prometheus(p->metrics, scheme, &res->body);
    res->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

static const char *const state_names[] = { "registered", "pending", "failing" };

struct listing {
    const struct endpoints_parts *p;
    cJSON *list;
};

static void add_entry(void *arg, const struct reconcile_entry_view *v)
{
    struct listing *l = arg;
    cJSON *item = cJSON_CreateObject();
    const char *name = v->owner ? watch_container_name(l->p->watch, v->owner) : NULL;

    cJSON_AddStringToObject(item, "key", v->key);
    if (v->owner != NULL && strcmp(v->owner, HOSTDOC_OWNER) == 0) {
        cJSON_AddBoolToObject(item, "host_document", true);
    } else if (v->owner != NULL) {
        cJSON_AddStringToObject(item, "container", v->owner);
        if (name != NULL)
            cJSON_AddStringToObject(item, "container_name", name);
    }
    if (v->name != NULL)
        cJSON_AddStringToObject(item, "service", v->name);
    /* an entry no container names is on its way out */
    cJSON_AddStringToObject(item, "state", v->owner == NULL && v->state != RECONCILE_FAILING
                                               ? "pruning" : state_names[v->state]);
    if (v->state == RECONCILE_FAILING) {
        cJSON_AddStringToObject(item, "error", v->error ? v->error : "");
        add_time(item, "failing_since", v->failing_since_ms);
    }
    cJSON_AddItemToArray(l->list, item);
}

static int by_key(const void *a, const void *b)
{
    const cJSON *x = *(const cJSON *const *)a, *y = *(const cJSON *const *)b;
    return strcmp(cJSON_GetObjectItemCaseSensitive(x, "key")->valuestring,
                  cJSON_GetObjectItemCaseSensitive(y, "key")->valuestring);
}

/* {"host": ..., "services": [{key, container, container_name, service, state, error}]}, by key */
static void services(struct endpoints *e, struct httpd_response *res)
{
    struct listing l = { &e->parts, cJSON_CreateArray() };
    cJSON *doc = cJSON_CreateObject(), **items, *item, *sorted;
    int n, i = 0;

    reconcile_each_entry(e->parts.reconcile, add_entry, &l);
    n = cJSON_GetArraySize(l.list);
    items = calloc((size_t)(n ? n : 1), sizeof *items);
    sorted = cJSON_CreateArray();
    while (items != NULL && (item = cJSON_DetachItemFromArray(l.list, 0)) != NULL)
        items[i++] = item;
    if (items != NULL) {
        qsort(items, (size_t)n, sizeof *items, by_key);
        for (i = 0; i < n; i++)
            cJSON_AddItemToArray(sorted, items[i]);
    }
    free(items);
    cJSON_Delete(l.list);
    cJSON_AddStringToObject(doc, "host", e->parts.c->hostname);
    cJSON_AddItemToObject(doc, "services", sorted);
    respond_json(res, doc);
}

static void on_request(void *arg, const char *path, const char *query, struct httpd_response *res)
{
    struct endpoints *e = arg;
    const char *text;
    (void)query;
    if (!e->have_parts) {
        res->status = 503;
        text = "starting\n";
    } else if (strcmp(path, "/health") == 0) {
        health(e, res);
        return;
    } else if (strcmp(path, "/metrics") == 0) {
        metrics(e, res);
        return;
    } else if (strcmp(path, "/services") == 0) {
        services(e, res);
        return;
    } else {
        res->status = 404;
        text = "not here: /health, /metrics, /services\n";
    }
    buffer_append(&res->body, text, strlen(text));
}

struct endpoints *endpoints_new(struct loop *lp, const char *listen, char *err, size_t errlen)
{
    struct endpoints *e = calloc(1, sizeof *e);
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    e->httpd = httpd_new(lp, listen, on_request, e, err, errlen);
    if (e->httpd == NULL) {
        free(e);
        return NULL;
    }
    return e;
}

void endpoints_use(struct endpoints *e, const struct endpoints_parts *parts)
{
    e->parts = *parts;
    e->have_parts = true;
}

int endpoints_port(const struct endpoints *e) { return httpd_port(e->httpd); }

void endpoints_free(struct endpoints *e)
{
    if (e == NULL)
        return;
    httpd_free(e->httpd);
    free(e);
}
