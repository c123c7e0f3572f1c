/* daemon.c: wires the parts together.  The watcher reports containers,
 * the reconciler turns them into registry calls, the loop runs it all;
 * SIGTERM and SIGINT end the loop at once, leaving the registry as it is
 * (prune mode: the last known truth stays; ttl mode: entries expire). */
#include "daemon.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/config.h"
#include "docker/container.h"
#include "core/http.h"
#include "core/json.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/map.h"
#include "core/metrics.h"
#include "registry/reconcile.h"
#include "lua/script.h"
#include "core/text.h"
#include "docker/watch.h"

/* What one configuration runs: rebuilt as a whole on SIGHUP. */
struct parts {
    struct config *c;
    struct metrics *metrics;
    struct http *http;          /* the scripts' registry traffic */
    struct script *script;
    struct reconcile *reconcile;
    struct watch *watch;
};

struct daemon {
    const struct cli *cli;
    struct loop *lp;
    struct parts p;
    int signal_seen;
};

extern char **environ;

static void on_changed(void *arg, const char *id, const cJSON *container)
{
    struct daemon *d = arg;
    reconcile_container(d->p.reconcile, id, container);
}

static void on_listed(void *arg, bool complete)
{
    struct daemon *d = arg;
    reconcile_listed(d->p.reconcile, complete);
}

static long on_interval(struct loop *lp, void *arg)
{
    struct daemon *d = arg;
    (void)lp;
    watch_resync(d->p.watch);
    reconcile_tick(d->p.reconcile);
    return d->p.c->interval_ms;
}

static void on_stop_signal(struct loop *lp, int signo, void *arg)
{
    struct daemon *d = arg;
    d->signal_seen = signo;
    log_info("%s: stopping; registrations stay as they are", signo == SIGINT ? "SIGINT" : "SIGTERM");
    loop_stop(lp);
}

static void parts_free(struct parts *p)
{
    watch_free(p->watch);
    reconcile_free(p->reconcile);
    script_free(p->script);
    http_free(p->http);
    metrics_free(p->metrics);
    if (p->c != NULL) {
        config_free(p->c);
        free(p->c);
    }
    memset(p, 0, sizeof *p);
}

/* Builds everything a configuration needs; nothing runs until started. */
static int parts_build(struct daemon *d, struct parts *p, struct config *c, char *err, size_t errlen)
{
    struct script_options so = { 0 };
    struct watch_callbacks cb = { on_changed, on_listed, d };

    memset(p, 0, sizeof *p);
    p->c = c;
    p->metrics = metrics_new(c->prefix_stats, c->statsd_host, c->statsd_port);
    p->http = http_new(d->lp, (int)c->concurrency);
    if (p->metrics == NULL || p->http == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    so.config = c;
    so.http = p->http;
    so.metrics = p->metrics;
    p->script = script_load(&so, err, errlen);
    if (p->script == NULL)
        return -1;
    p->reconcile = reconcile_new(d->lp, p->script, c, p->metrics);
    if (p->reconcile == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->watch = watch_new(d->lp, c, p->metrics, &cb, err, errlen);
    return p->watch ? 0 : -1;
}

static void parts_start(struct parts *p)
{
    const struct config *c = p->c;
    char docker[600];
    log_info("registrar %s: host %s (%s), Docker at %s, backend %s, %s mode, interval %ld ms",
             REGISTRAR_VERSION, c->hostname, c->ipaddress, text_redact_uri(c->docker, docker, sizeof docker),
             c->backend_shown,
             c->mode == MODE_TTL ? "ttl" : "prune", c->interval_ms);
    reconcile_start(p->reconcile);
    watch_start(p->watch);
}

/* The configuration as the command line, env, YAML and env file say now. */
static struct config *read_config(const struct cli *cli, char *err, size_t errlen)
{
    struct config *c = malloc(sizeof *c);
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (cli_build_config(cli, c, environ, err, errlen) < 0) {
        config_free(c);
        free(c);
        return NULL;
    }
    return c;
}

/* SIGHUP: read configuration and scripts again.  Only when all of it loads
 * are the running parts replaced; the new ones read Docker and audit the
 * registry afresh, so a changed layout converges (old keys of this host
 * are pruned after the first complete listing) and nothing is dropped in
 * between.  The log file is reopened, for rotation. */
static void on_hangup(struct loop *lp, int signo, void *arg)
{
    struct daemon *d = arg;
    struct parts next;
    struct config *c;
    char err[1024];
    (void)lp;
    (void)signo;

    c = read_config(d->cli, err, sizeof err);
    if (c == NULL) {
        log_error("SIGHUP: %s; keeping the running configuration and scripts", err);
        return;
    }
    if (parts_build(d, &next, c, err, sizeof err) < 0) {
        log_error("SIGHUP: %s; keeping the running configuration and scripts", err);
        parts_free(&next);
        return;
    }
    if (log_open(c->log_file, err, sizeof err) < 0)
        log_error("SIGHUP: %s; logging on where it was", err);
    log_set_level(c->log_level);
    parts_free(&d->p);
    d->p = next;
    log_info("SIGHUP: configuration and scripts reloaded");
    parts_start(&d->p);
}

int daemon_run(const struct cli *cli, struct config *initial)
{
    struct daemon d = { .cli = cli };
    struct config *c = malloc(sizeof *c);
    char err[1024];
    int rc = 0;

    signal(SIGPIPE, SIG_IGN);
    if (c == NULL)
        return 2;
    *c = *initial;              /* the daemon owns it from here (and frees it) */
    memset(initial, 0, sizeof *initial);
    d.lp = loop_new();
    if (d.lp == NULL || parts_build(&d, &d.p, c, err, sizeof err) < 0) {
        fprintf(stderr, "registrar: %s\n", d.lp ? err : "out of memory");
        if (d.p.c == NULL) {
            config_free(c);
            free(c);
        }
        parts_free(&d.p);
        loop_free(d.lp);
        return 2;
    }
    if (loop_signal(d.lp, SIGTERM, on_stop_signal, &d) < 0 || loop_signal(d.lp, SIGINT, on_stop_signal, &d) < 0 ||
        loop_signal(d.lp, SIGHUP, on_hangup, &d) < 0) {
        fprintf(stderr, "registrar: cannot set up signal handling\n");
        parts_free(&d.p);
        loop_free(d.lp);
        return 2;
    }
    parts_start(&d.p);
    loop_timer_add(d.lp, d.p.c->interval_ms, on_interval, &d);
    loop_run(d.lp);
    if (d.signal_seen == 0)
        rc = 1;
    parts_free(&d.p);
    loop_free(d.lp);
    return rc;
}

/* ---- registrar check --------------------------------------------------- */

struct check {
    struct loop *lp;
    struct script *script;
    cJSON *containers;          /* id -> container, from Docker */
    struct map *holders;        /* key -> id of the container that holds it */
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
    for (int i = 0; i < n; i++) {
        const char *holder = map_get(k->holders, e[i].key);
        if (e[i].name != NULL)
            printf("  name  %s\n", e[i].name);
        printf("  key   %s\n  value %s\n", e[i].key, e[i].value);
        /* as `run` decides: the first container keeps it, this one waits */
        if (holder != NULL)
            printf("  warning: key %s is named by containers %.12s and %.12s; keeping it for %.12s\n",
                   e[i].key, holder, cJSON_IsString(id) ? id->valuestring : "?", holder);
        else
            map_put(k->holders, e[i].key, strdup(cJSON_IsString(id) ? id->valuestring : "?"), NULL);
    }
    script_entries_free(k->script, e, n);
}

static int check_file(struct check *k, const char *path)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL, err[256];
    size_t len = 0, got = 0;
    const char *bad = NULL;
    cJSON *list, *item;
    int i = 0;

    if (f == NULL) {
        fprintf(stderr, "registrar: --containers %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (len = (size_t)ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (data = malloc(len)) != NULL)
        got = fread(data, 1, len, f);
    fclose(f);
    list = data && got == len ? json_parse(data, len, &bad) : NULL;
    if (list == NULL) {
        if (bad != NULL)
            fprintf(stderr, "registrar: --containers %s: not JSON: byte %zu of %zu is wrong\n", path,
                    (size_t)(bad - data) + 1, len);
        else
            fprintf(stderr, "registrar: --containers %s: cannot read it (%zu bytes)\n", path, len);
        free(data);
        return -1;
    }
    free(data);
    if (!cJSON_IsArray(list)) {
        fprintf(stderr, "registrar: --containers %s: not a JSON list of `docker inspect` results\n", path);
        cJSON_Delete(list);
        return -1;
    }
    cJSON_ArrayForEach(item, list) {
        struct container_notes notes = { .count = 0 };
        cJSON *c = container_from_inspect(item, NULL, &notes, err, sizeof err);
        i++;
        if (c == NULL) {
            printf("container #%d of %s\n  error: %s\n", i, path, err);
            k->errors++;
            continue;
        }
        if (notes.count > 0)
            printf("container #%d of %s\n  note: %s\n", i, path, container_notes_text(&notes, err, sizeof err));
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
    struct script_options so = { .config = c };
    char err[1024];
    int rc;

    k.script = script_load(&so, err, sizeof err);
    if (k.script == NULL) {
        fprintf(stderr, "registrar: %s\n", err);
        return 2;               /* as `run` would fail to start */
    }
    k.lp = loop_new();
    k.holders = map_new();
    rc = containers_file ? check_file(&k, containers_file) : check_live(&k, c);
    map_free(k.holders, free);
    loop_free(k.lp);
    script_free(k.script);
    return rc < 0 || k.errors > 0 ? 1 : 0;
}
