/* daemon.c: wires the parts together.  The watcher reports containers,
 * the reconciler turns them into registry calls, the loop runs it all;
 * SIGTERM and SIGINT end the loop at once, leaving the registry as it is
 * (prune mode: the last known truth stays; ttl mode: entries expire). */
#include "daemon.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "container.h"
#include "http.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "reconcile.h"
#include "script.h"
#include "watch.h"

struct daemon {
    struct config *c;
    struct loop *lp;
    struct metrics *metrics;
    struct http *http;          /* the scripts' registry traffic */
    struct script *script;
    struct reconcile *reconcile;
    struct watch *watch;
    int signal_seen;
};

static void on_changed(void *arg, const char *id, const cJSON *container)
{
    struct daemon *d = arg;
    reconcile_container(d->reconcile, id, container);
}

static void on_listed(void *arg, bool complete)
{
    struct daemon *d = arg;
    reconcile_listed(d->reconcile, complete);
}

static long on_interval(struct loop *lp, void *arg)
{
    struct daemon *d = arg;
    (void)lp;
    watch_resync(d->watch);
    reconcile_tick(d->reconcile);
    return d->c->interval_ms;
}

static void on_stop_signal(struct loop *lp, int signo, void *arg)
{
    struct daemon *d = arg;
    d->signal_seen = signo;
    log_info("%s: stopping; registrations stay as they are", signo == SIGINT ? "SIGINT" : "SIGTERM");
    loop_stop(lp);
}

static void on_hangup(struct loop *lp, int signo, void *arg)
{
    (void)lp;
    (void)signo;
    (void)arg;
    log_warn("SIGHUP: reloading is not supported by this version; restart to apply changes");
}

static void daemon_free(struct daemon *d)
{
    watch_free(d->watch);
    reconcile_free(d->reconcile);
    script_free(d->script);
    http_free(d->http);
    metrics_free(d->metrics);
    loop_free(d->lp);
}

static int daemon_init(struct daemon *d, struct config *c)
{
    char err[1024];
    struct script_options so = { 0 };
    struct watch_callbacks cb = { on_changed, on_listed, d };

    memset(d, 0, sizeof *d);
    d->c = c;
    d->lp = loop_new();
    d->metrics = metrics_new(c->prefix_stats, c->statsd_host, c->statsd_port);
    d->http = d->lp ? http_new(d->lp, (int)c->concurrency) : NULL;
    if (d->lp == NULL || d->metrics == NULL || d->http == NULL) {
        log_error("out of memory");
        return -1;
    }
    so.config = c;
    so.http = d->http;
    so.metrics = d->metrics;
    d->script = script_load(&so, err, sizeof err);
    if (d->script == NULL) {
        fprintf(stderr, "registrar: %s\n", err);
        return -1;
    }
    d->reconcile = reconcile_new(d->lp, d->script, c, d->metrics);
    d->watch = d->reconcile ? watch_new(d->lp, c, d->metrics, &cb, err, sizeof err) : NULL;
    if (d->watch == NULL) {
        fprintf(stderr, "registrar: %s\n", d->reconcile ? err : "out of memory");
        return -1;
    }
    if (loop_signal(d->lp, SIGTERM, on_stop_signal, d) < 0 || loop_signal(d->lp, SIGINT, on_stop_signal, d) < 0 ||
        loop_signal(d->lp, SIGHUP, on_hangup, d) < 0) {
        log_error("cannot set up signal handling");
        return -1;
    }
    return 0;
}

int daemon_run(struct config *c)
{
    struct daemon d;
    int rc = 0;

    signal(SIGPIPE, SIG_IGN);
    if (daemon_init(&d, c) < 0) {
        daemon_free(&d);
        return 2;
    }
    log_info("registrar %s: host %s (%s), Docker at %s, backend %s, %s mode, interval %ld ms",
             REGISTRAR_VERSION, c->hostname, c->ipaddress, c->docker, c->backend,
             c->mode == MODE_TTL ? "ttl" : "prune", c->interval_ms);
    reconcile_start(d.reconcile);
    watch_start(d.watch);
    loop_timer_add(d.lp, c->interval_ms, on_interval, &d);
    loop_run(d.lp);
    if (d.signal_seen == 0)
        rc = 1;
    daemon_free(&d);
    return rc;
}

/* ---- registrar check --------------------------------------------------- */

struct check {
    struct loop *lp;
    struct script *script;
    cJSON *containers;          /* id -> container, from Docker */
    int errors;
};

static void print_services(struct check *k, const cJSON *container)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(container, "name");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(container, "id");
    struct script_entry *e;
    int n;
    char err[1024];

    printf("container %s (%.12s)\n", cJSON_IsString(name) ? name->valuestring : "?",
           cJSON_IsString(id) ? id->valuestring : "?");
    if (script_services(k->script, container, &e, &n, err, sizeof err) < 0) {
        printf("  error: %s\n", err);
        k->errors++;
        return;
    }
    if (n == 0)
        printf("  (no services)\n");
    for (int i = 0; i < n; i++)
        printf("  key   %s\n  value %s\n", e[i].key, e[i].value);
    script_entries_free(k->script, e, n);
}

static int check_file(struct check *k, const char *path)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL, err[256];
    size_t len = 0;
    cJSON *list, *item;
    int i = 0;

    if (f == NULL) {
        fprintf(stderr, "registrar: --containers %s: cannot open it\n", path);
        return -1;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (len = (size_t)ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (data = malloc(len)) != NULL && fread(data, 1, len, f) != len)
        len = 0;
    fclose(f);
    list = data ? cJSON_ParseWithLength(data, len) : NULL;
    free(data);
    if (!cJSON_IsArray(list)) {
        fprintf(stderr, "registrar: --containers %s: not a JSON list of `docker inspect` results\n", path);
        cJSON_Delete(list);
        return -1;
    }
    cJSON_ArrayForEach(item, list) {
        cJSON *c = container_from_inspect(item, NULL, err, sizeof err);
        i++;
        if (c == NULL) {
            printf("container #%d of %s\n  error: %s\n", i, path, err);
            k->errors++;
            continue;
        }
        print_services(k, c);
        cJSON_Delete(c);
    }
    cJSON_Delete(list);
    return 0;
}

static void check_changed(void *arg, const char *id, const cJSON *container)
{
    struct check *k = arg;
    cJSON_DeleteItemFromObjectCaseSensitive(k->containers, id);
    if (container != NULL)
        cJSON_AddItemToObject(k->containers, id, cJSON_Duplicate(container, 1));
}

static void check_listed(void *arg, bool complete)
{
    struct check *k = arg;
    if (!complete)
        k->errors++;
    loop_stop(k->lp);
}

static long check_timeout(struct loop *lp, void *arg)
{
    struct check *k = arg;
    fprintf(stderr, "registrar: Docker did not answer within 10 s\n");
    k->errors++;
    loop_stop(lp);
    return LOOP_NOMORE;
}

/* Reads the live containers through the same watcher `run` uses. */
static int check_live(struct check *k, struct config *c)
{
    struct watch_callbacks cb = { check_changed, check_listed, k };
    char err[1024];
    struct watch *w = watch_new(k->lp, c, NULL, &cb, err, sizeof err);
    const cJSON *item;

    if (w == NULL) {
        fprintf(stderr, "registrar: %s\n", err);
        return -1;
    }
    k->containers = cJSON_CreateObject();
    watch_start(w);
    loop_timer_add(k->lp, 10000, check_timeout, k);
    loop_run(k->lp);
    watch_free(w);
    cJSON_ArrayForEach(item, k->containers)
        print_services(k, item);
    cJSON_Delete(k->containers);
    return 0;
}

int daemon_check(struct config *c, const char *containers_file)
{
    struct check k = { 0 };
    struct script_options so = { c, NULL, NULL };
    char err[1024];
    int rc;

    k.script = script_load(&so, err, sizeof err);
    if (k.script == NULL) {
        fprintf(stderr, "registrar: %s\n", err);
        return 1;
    }
    k.lp = loop_new();
    rc = containers_file ? check_file(&k, containers_file) : check_live(&k, c);
    loop_free(k.lp);
    script_free(k.script);
    return rc < 0 || k.errors > 0 ? 1 : 0;
}
