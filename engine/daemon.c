/* daemon.c: `registrar run`, the parts wired together in the order data
 * flows: the Docker watcher reports containers, naming turns each into
 * entries, the reconciler decides what to write, the backend adapter
 * writes it; the loop runs it all.  SIGTERM and SIGINT end the loop at
 * once, leaving the registry as it is (prune mode: the last known truth
 * stays; ttl mode: entries expire).  Under systemd (Type=notify) it says
 * READY=1 once the first complete listing is in the registry. */
#include "daemon.h"

#include <cjson/cJSON.h>
#include <malloc.h>
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
#include "core/sd_notify.h"
#include "core/slab.h"
#include "core/text.h"
#include "core/zk.h"
#include "endpoints.h"
#include "docker/watch.h"
#include "lua/naming.h"
#include "lua/script.h"
#include "registry/backend.h"
#include "registry/hostdoc.h"
#include "registry/reconcile.h"

/* What one configuration runs: rebuilt as a whole on SIGHUP. */
struct parts {
    struct config *c;
    struct metrics *metrics;
    struct http *http;          /* the scripts' registry traffic */
    struct script *script;
    struct backend *backend;
    struct reconcile *reconcile;
    struct hostdoc *hostdoc;
    struct watch *watch;
};

struct daemon {
    const struct cli *cli;
    struct loop *lp;
    struct zk *zk;              /* ZooKeeper sessions: they outlive a reload's parts, so
                                   ephemeral znodes stay (core/zk.h) */
    struct parts p;
    struct endpoints *endpoints;    /* NULL without `listen`; outlives reloads */
    int signal_seen;
    long long drain_deadline;       /* deregister_on_exit */
    bool ready;                     /* READY=1 sent to systemd */
    long long settle_timer;         /* memory given back a moment after a burst */
    long in_use_kib;                /* ... and how much was left then (0: not yet) */
    int heap_looks;                 /* intervals left that look at the heap */
#define HEAP_LOOKS 5
    size_t lua_bytes;
    long watchdog_ms;               /* WATCHDOG=1 every so often; 0: not asked */
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

    d->heap_looks = HEAP_LOOKS;

    if (container != NULL && naming_entries(d->p.script, container, &e, &n, err, sizeof err) < 0) {
        log_error("container %s (%.12s): naming failed: %s; keeping its registrations",
                  container_label(container, id), id, err);
        metrics_count(d->p.metrics, "script.errors", 1);
        reconcile_naming_failed(d->p.reconcile, id);
        return;
    }
    want = calloc((size_t)(n ? n : 1), sizeof *want);
    if (want == NULL) {
        log_error("container %s (%.12s): out of memory; keeping its registrations",
                  container_label(container, id), id);
        naming_entries_free(d->p.script, e, n);
        reconcile_naming_failed(d->p.reconcile, id);
        return;
    }
    for (int i = 0; i < n; i++) {
        want[i] = (struct reconcile_want){ e[i].key, e[i].compare, e[i].name,
                                           backend_keep_entry(d->p.backend, e[i].ref), e[i].value };
        e[i].ref = 0;           /* the reconciler's now */
    }
    reconcile_container(d->p.reconcile, id, container ? container_label(container, id) : NULL, want, n);
    free(want);
    naming_entries_free(d->p.script, e, n);
}

/* A listing: this host's document says what it now has, and deletes may
 * go once the listing is complete.  The document first: at start-up it
 * goes out in the same batch as the services. */
static void on_listed(void *arg, bool complete)
{
    struct daemon *d = arg;
    if (complete && d->signal_seen == 0)
        hostdoc_update(d->p.hostdoc, d->p.reconcile, d->p.script);
    reconcile_listed(d->p.reconcile, complete);
}

/* A start-up or a burst leaves the heap as large as its peak, mostly
 * free: a second after the registry is in step, it goes back (once per
 * second at most, so a burst is not slowed by it).  What is freed later
 * (the registry's watch still reading back a start-up's writes) goes back
 * at the interval that finds the heap's memory in use a quarter below
 * what it was then.  Lua collects only as it allocates, so what a burst
 * left of its garbage would stay for good on a host that then goes quiet:
 * it goes at the interval that finds Lua holding twice what it did.
 * Looking at the heap (mallinfo2 walks its free lists) was 7 % of a
 * quiet resync's CPU: it is done for HEAP_LOOKS intervals after a change
 * or a give-back, then not until the next change. */
#define SETTLE_MS 1000L
#define GIVE_BACK_MIN_KIB 2048L

static long heap_in_use_kib(void)
{
    return (long)(mallinfo2().uordblks / 1024);
}

static void give_back_memory(struct daemon *d)
{
    backend_settle(d->p.backend);
    script_give_back_memory(d->p.script);
    slab_trim();
    d->in_use_kib = heap_in_use_kib();
    d->lua_bytes = script_memory_used(d->p.script);
    d->heap_looks = HEAP_LOOKS;
    log_debug("memory given back: %ld KiB of heap in use and %zu KiB of slab pages, %zu KiB of it all Lua's",
              d->in_use_kib, slab_mapped_kib(), d->lua_bytes >> 10);
}

static long on_settled(struct loop *lp, void *arg)
{
    struct daemon *d = arg;
    (void)lp;
    d->settle_timer = 0;
    give_back_memory(d);
    return LOOP_NOMORE;
}

static long quarter(long kib) { return kib / 4 > GIVE_BACK_MIN_KIB ? kib / 4 : GIVE_BACK_MIN_KIB; }

static void give_back_if_freed(struct daemon *d)
{
    bool look = d->heap_looks > 0;
    if (d->in_use_kib == 0 || d->settle_timer != 0)
        return;                 /* not settled yet, or settling */
    d->heap_looks -= look;
    if ((look && heap_in_use_kib() < d->in_use_kib - quarter(d->in_use_kib)) ||
        script_memory_used(d->p.script) > 2 * d->lua_bytes + (GIVE_BACK_MIN_KIB << 10))
        give_back_memory(d);
}

/* The registry holds what a complete listing asked for.  The first time,
 * start-up is done; later reloads say READY=1 themselves. */
static void on_in_step(void *arg)
{
    struct daemon *d = arg;
    if (d->settle_timer == 0)
        d->settle_timer = loop_timer_add(d->lp, SETTLE_MS, on_settled, d);
    if (d->ready)
        return;
    d->ready = true;
    sd_notify_send("READY=1\nSTATUS=in step: this host's containers are in %s", d->p.c->backend_shown);
}

/* From a loop timer, so a loop that hangs stops the pings and systemd
 * restarts registrar. */
static long on_watchdog(struct loop *lp, void *arg)
{
    struct daemon *d = arg;
    (void)lp;
    sd_notify_send("WATCHDOG=1");
    return d->watchdog_ms;
}

static long on_interval(struct loop *lp, void *arg)
{
    struct daemon *d = arg;
    (void)lp;
    watch_resync(d->p.watch);
    backend_tick(d->p.backend);
    give_back_if_freed(d);
    return d->p.c->interval_ms;
}

/* deregister_on_exit: done when every entry is gone, or at the timeout. */
static long drain_done(struct loop *lp, void *arg)
{
    struct daemon *d = arg;
    if (reconcile_empty(d->p.reconcile)) {
        log_info("deregister_on_exit: this host's entries are removed");
        loop_stop(lp);
        return LOOP_NOMORE;
    }
    if (loop_now_ms() >= d->drain_deadline) {
        log_warn("deregister_on_exit: entries still registered after %ld ms (timeout); stopping anyway",
                 d->p.c->timeout_ms);
        loop_stop(lp);
        return LOOP_NOMORE;
    }
    return 20;
}

/* SIGTERM, SIGINT: stop at once (prune mode: the last known truth stays;
 * ttl mode: it expires), or with deregister_on_exit in prune mode remove
 * this host's entries first, within `timeout`.  A second signal stops at
 * once. */
static void on_stop_signal(struct loop *lp, int signo, void *arg)
{
    struct daemon *d = arg;
    const char *name = signo == SIGINT ? "SIGINT" : "SIGTERM";
    const struct config *c = d->p.c;
    sd_notify_send("STOPPING=1\nSTATUS=stopping (%s)", name);
    if (d->signal_seen == 0 && c->deregister_on_exit && c->mode == MODE_PRUNE) {
        d->signal_seen = signo;
        d->drain_deadline = loop_now_ms() + c->timeout_ms;
        log_info("%s: removing this host's entries before stopping (deregister_on_exit)", name);
        reconcile_drop_all(d->p.reconcile);
        loop_timer_add(lp, 0, drain_done, d);
        return;
    }
    d->signal_seen = signo;
    if (c->mode == MODE_TTL)
        log_info("%s: stopping; registrations expire after %ld ms (ttl)", name, c->ttl_ms);
    else
        log_info("%s: stopping; registrations stay as they are", name);
    loop_stop(lp);
}

/* The backend first: its calls may wait on the Docker session (a
 * changed() hook signalling a container). */
static void parts_free(struct parts *p)
{
    backend_free(p->backend);
    watch_free(p->watch);
    reconcile_free(p->reconcile);
    hostdoc_free(p->hostdoc);
    script_free(p->script);
    http_free(p->http);
    metrics_free(p->metrics);
    if (p->c != NULL) {
        config_free(p->c);
        free(p->c);
    }
    memset(p, 0, sizeof *p);
}

static cJSON *running_container(void *watch, const char *id) { return watch_container(watch, id); }

/* Builds everything a configuration needs; nothing runs until started. */
static int parts_build(struct daemon *d, struct parts *p, struct config *c, char *err, size_t errlen)
{
    struct script_options so = { 0 };
    struct watch_callbacks cb = { on_changed, on_listed, d };

    memset(p, 0, sizeof *p);
    p->c = c;
    p->metrics = metrics_new(c->prefix_stats, c->statsd.host, c->statsd.port);
    p->http = http_new(d->lp, (int)c->concurrency);
    if (p->metrics == NULL || p->http == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    p->watch = watch_new(d->lp, c, p->metrics, &cb, err, errlen);
    if (p->watch == NULL)
        return -1;
    so.config = c;
    so.http = p->http;
    so.metrics = p->metrics;
    so.docker = watch_session(p->watch);
    so.zk = d->zk;
    p->script = script_load(&so, err, errlen);
    if (p->script == NULL)
        return -1;
    p->backend = backend_new(d->lp, p->script, c, p->metrics);
    if (p->backend != NULL) {
        backend_set_containers(p->backend, running_container, p->watch);
        struct reconcile_settings rs = { c->interval_ms, (int)c->concurrency, c->mode == MODE_TTL ? c->ttl_ms : 0 };
        struct reconcile_ops ops = backend_ops(p->backend);
        p->reconcile = reconcile_new(d->lp, &rs, &ops, p->metrics);
    }
    p->hostdoc = hostdoc_new(c);
    if (p->reconcile == NULL || p->hostdoc == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    backend_keep_whole(p->backend, hostdoc_key(p->hostdoc));   /* kept() reads what it holds */
    return 0;
}

static void parts_start(struct daemon *d, struct parts *p)
{
    const struct config *c = p->c;
    struct endpoints_parts view = { c, p->metrics, p->script, p->watch, p->backend, p->reconcile };
    char docker[600];
    log_info("registrar %s: host %s (%s), Docker at %s, backend %s, %s mode, interval %ld ms",
             REGISTRAR_VERSION, c->hostname, c->ipaddress, text_redact_uri(c->docker, docker, sizeof docker),
             c->backend_shown,
             c->mode == MODE_TTL ? "ttl" : "prune", c->interval_ms);
    reconcile_on_in_step(p->reconcile, on_in_step, d);
    backend_start(p->backend, p->reconcile);
    watch_start(p->watch);
    if (d->endpoints != NULL)
        endpoints_use(d->endpoints, &view);
}

/* The endpoints are bound once: a reload that changes `listen` says it
 * takes effect at the next start (the port may still be in use). */
static int start_endpoints(struct daemon *d, char *err, size_t errlen)
{
    const char *listen = d->p.c->listen;
    if (listen == NULL)
        return 0;
    d->endpoints = endpoints_new(d->lp, listen, err, errlen);
    if (d->endpoints == NULL)
        return -1;
    log_info("serving /health, /metrics and /services on %s (port %d)", listen, endpoints_port(d->endpoints));
    return 0;
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
static int reload(struct daemon *d, char *err, size_t errlen)
{
    struct parts next;
    struct config *c = read_config(d->cli, err, errlen);

    if (c == NULL)
        return -1;
    if (parts_build(d, &next, c, err, errlen) < 0) {
        parts_free(&next);
        return -1;
    }
    if (log_open(c->log_file, err, errlen) < 0)
        log_error("SIGHUP: %s; logging on where it was", err);
    log_set_level(c->log_level);
    log_set_json(c->log_format == LOG_FORMAT_JSON);
    if ((c->listen == NULL) != (d->endpoints == NULL) ||
        (c->listen != NULL && strcmp(c->listen, d->p.c->listen ? d->p.c->listen : "") != 0))
        log_warn("SIGHUP: listen changes at the next start; serving where it was");
    parts_free(&d->p);
    d->p = next;
    log_info("SIGHUP: configuration and scripts reloaded");
    parts_start(d, &d->p);
    return 0;
}

/* systemd hears RELOADING=1, then READY=1 with how it went; before the
 * first READY=1 a reload is part of starting up and says nothing. */
static void on_hangup(struct loop *lp, int signo, void *arg)
{
    struct daemon *d = arg;
    bool tell = d->ready;
    char err[1024];
    (void)lp;
    (void)signo;

    if (d->signal_seen != 0)
        return;                 /* stopping: deregister_on_exit under way */
    if (tell)
        sd_notify_send("RELOADING=1\nMONOTONIC_USEC=%llu", sd_notify_monotonic_usec());
    if (reload(d, err, sizeof err) < 0) {
        log_error("SIGHUP: %s; keeping the running configuration and scripts", err);
        if (tell)
            sd_notify_send("READY=1\nSTATUS=reload failed, running the previous configuration: %.*s",
                           (int)strcspn(err, "\n"), err);
    } else if (tell) {
        sd_notify_send("READY=1\nSTATUS=configuration and scripts reloaded");
    }
}

int daemon_run(const struct cli *cli, struct config *initial)
{
    struct daemon d = { .cli = cli };
    struct config *c = malloc(sizeof *c);
    char err[1024];
    int rc = 0;

    signal(SIGPIPE, SIG_IGN);
    /* Large passing buffers (a listing of thousands of containers, a
     * registry's full answer) are mapped and unmapped whole, instead of
     * leaving the heap as large as they were. */
    mallopt(M_MMAP_THRESHOLD, 64 * 1024);
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
    if (start_endpoints(&d, err, sizeof err) < 0) {
        fprintf(stderr, "registrar: listen: %s (%s)\n", err, config_origin(d.p.c, CK_LISTEN));
        parts_free(&d.p);
        zk_free(d.zk);
        loop_free(d.lp);
        return 2;
    }
    if (loop_signal(d.lp, SIGTERM, on_stop_signal, &d) < 0 || loop_signal(d.lp, SIGINT, on_stop_signal, &d) < 0 ||
        loop_signal(d.lp, SIGHUP, on_hangup, &d) < 0) {
        fprintf(stderr, "registrar: cannot set up signal handling\n");
        endpoints_free(d.endpoints);
        parts_free(&d.p);
        loop_free(d.lp);
        return 2;
    }
    sd_notify_send("STATUS=starting: listing Docker's containers and reading the registry");
    parts_start(&d, &d.p);
    loop_timer_add(d.lp, d.p.c->interval_ms, on_interval, &d);
    if ((d.watchdog_ms = sd_notify_watchdog_ms()) > 0)
        loop_timer_add(d.lp, d.watchdog_ms, on_watchdog, &d);
    loop_run(d.lp);
    if (d.signal_seen == 0)
        rc = 1;
    endpoints_free(d.endpoints);
    parts_free(&d.p);
    zk_free(d.zk);              /* closes the sessions: ZooKeeper removes their ephemeral znodes */
    loop_free(d.lp);
    return rc;
}
