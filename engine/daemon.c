/* daemon.c: `registrar run`, the parts wired together in the order data
 * flows: the Docker watcher reports containers, naming turns each into
 * entries, the reconciler decides what to write, the backend adapter
 * writes it; the loop runs it all.  SIGTERM and SIGINT end the loop at
 * once, leaving the registry as it is (prune mode: the last known truth
 * stays; ttl mode: entries expire). */
#include "daemon.h"

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "core/config.h"
#include "core/http.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/text.h"
#include "core/zk.h"
#include "docker/watch.h"
#include "lua/naming.h"
#include "lua/script.h"
#include "registry/backend.h"
#include "registry/reconcile.h"

/* What one configuration runs: rebuilt as a whole on SIGHUP. */
struct parts {
    struct config *c;
    struct metrics *metrics;
    struct http *http;          /* the scripts' registry traffic */
    struct script *script;
    struct backend *backend;
    struct reconcile *reconcile;
    struct watch *watch;
};

struct daemon {
    const struct cli *cli;
    struct loop *lp;
    struct zk *zk;              /* ZooKeeper sessions: they outlive a reload's parts, so
                                   ephemeral znodes stay (core/zk.h) */
    struct parts p;
    int signal_seen;
};

extern char **environ;

static const char *container_label(const cJSON *c, const char *id)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(c, "name");
    return cJSON_IsString(name) ? name->valuestring : id;
}

/* A container changed (NULL: it no longer runs): through naming into the
 * reconciler.  A naming that fails keeps the container's registrations. */
static void on_changed(void *arg, const char *id, const cJSON *container)
{
    struct daemon *d = arg;
    struct naming_entry *e = NULL;
    struct reconcile_want *want;
    int n = 0;
    char err[1024];

    if (container != NULL && naming_entries(d->p.script, container, &e, &n, err, sizeof err) < 0) {
        log_error("container %s (%.12s): naming failed: %s; keeping its registrations",
                  container_label(container, id), id, err);
        reconcile_naming_failed(d->p.reconcile, id);
        return;
    }
    want = calloc((size_t)(n ? n : 1), sizeof *want);
    if (want == NULL) {
        log_error("container %.12s: out of memory; keeping its registrations", id);
        naming_entries_free(d->p.script, e, n);
        reconcile_naming_failed(d->p.reconcile, id);
        return;
    }
    for (int i = 0; i < n; i++) {
        want[i] = (struct reconcile_want){ e[i].key, e[i].compare, e[i].ref };
        e[i].ref = 0;           /* the reconciler's now */
    }
    reconcile_container(d->p.reconcile, id, want, n);
    free(want);
    naming_entries_free(d->p.script, e, n);
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
    backend_tick(d->p.backend);
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
    backend_free(p->backend);
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
    so.zk = d->zk;
    p->script = script_load(&so, err, errlen);
    if (p->script == NULL)
        return -1;
    p->backend = backend_new(d->lp, p->script, c, p->metrics);
    if (p->backend != NULL) {
        struct reconcile_settings rs = { c->interval_ms, (int)c->concurrency };
        struct reconcile_ops ops = backend_ops(p->backend);
        p->reconcile = reconcile_new(d->lp, &rs, &ops, p->metrics);
    }
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
    backend_start(p->backend, p->reconcile);
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
    if (d.lp != NULL)
        d.zk = zk_new(d.lp);
    if (d.lp == NULL || d.zk == NULL || parts_build(&d, &d.p, c, err, sizeof err) < 0) {
        fprintf(stderr, "registrar: %s\n", d.lp && d.zk ? err : "out of memory");
        if (d.p.c == NULL) {
            config_free(c);
            free(c);
        }
        parts_free(&d.p);
        zk_free(d.zk);
        loop_free(d.lp);
        return 2;
    }
    if (loop_signal(d.lp, SIGTERM, on_stop_signal, &d) < 0 || loop_signal(d.lp, SIGINT, on_stop_signal, &d) < 0 ||
        loop_signal(d.lp, SIGHUP, on_hangup, &d) < 0) {
        fprintf(stderr, "registrar: cannot set up signal handling\n");
        parts_free(&d.p);
        zk_free(d.zk);
        loop_free(d.lp);
        return 2;
    }
    parts_start(&d.p);
    loop_timer_add(d.lp, d.p.c->interval_ms, on_interval, &d);
    loop_run(d.lp);
    if (d.signal_seen == 0)
        rc = 1;
    parts_free(&d.p);
    zk_free(d.zk);              /* closes the sessions: ZooKeeper removes their ephemeral znodes */
    loop_free(d.lp);
    return rc;
}
