/* metrics.c: named values kept in-process (for the log, for scripts and
 * for /metrics) and, when statsd is configured, one UDP datagram per
 * update.  UDP is fire-and-forget by design: a missing statsd must cost
 * nothing. */
#include "core/metrics.h"

#include <netdb.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/buffer.h"
#include "core/log.h"
#include "core/map.h"

/* A value and how it was last set: 'c' counted, 'g' a gauge, 't' a timing
 * in milliseconds (the statsd types). */
struct metric {
    double value;
    char kind;
};

struct metrics {
    struct map *values;         /* name -> struct metric */
    char *prefix;
    int fd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
};

/* The engine's own metrics, with their help; what else is there was set
 * by a script. */
static const struct {
    const char *name;
    char kind;                  /* as struct metric's */
    const char *help;
} known[] = {
    { "backend.failures", 'c', "Registry calls that failed (open, audit, write, refresh)" },
    { "containers", 'g', "Running containers in the table" },
    { "deregistrations", 'c', "Keys removed from the registry" },
    { "docker.events", 'c', "Docker events read" },
    { "docker.failures", 'c', "Times Docker could not be reached" },
    { "docker.requests", 'c', "Requests sent to the Docker API" },
    { "docker.requests_per_resync", 'g', "Docker requests the last full listing made" },
    { "processing.ms", 't', "Time the last interval's registry work took to start" },
    { "registrations", 'c', "Keys written to the registry" },
    { "registry.repairs", 'c', "Keys of this host written back after someone else changed or deleted them" },
    { "registry.requests", 'c', "HTTP requests sent to the registry" },
    { "registry.watch_restarts", 'c', "Registry watches that ended and were audited and armed again" },
    { "resync.ms", 't', "Time the last full Docker listing took" },
    { "script.errors", 'c', "Hook calls that failed (naming and backend)" },
    { "script.memory_bytes", 'g', "Bytes the scripts' Lua state holds" },
    { "services", 'g', "Keys this host wants registered" },
    { "services.set.ms", 't', "Time the last registry write took" },
};

static int open_statsd(struct metrics *m, const char *host, int port)
{
    struct addrinfo hints = { .ai_socktype = SOCK_DGRAM }, *res = NULL;
    char service[16];
    snprintf(service, sizeof service, "%d", port);
    if (getaddrinfo(host, service, &hints, &res) != 0 || res == NULL) {
        log_warn("statsd: cannot resolve %s:%d; metrics stay in-process", host, port);
        return -1;
    }
    m->fd = socket(res->ai_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    memcpy(&m->addr, res->ai_addr, res->ai_addrlen);
    m->addrlen = res->ai_addrlen;
    freeaddrinfo(res);
    return m->fd >= 0 ? 0 : -1;
}

static struct metric *slot(struct metrics *m, const char *name, char kind)
{
    struct metric *v = map_get(m->values, name);
    if (v == NULL) {
        v = calloc(1, sizeof *v);
        if (v != NULL)
            map_put(m->values, name, v, NULL);
    }
    if (v != NULL)
        v->kind = kind;
    return v;
}

struct metrics *metrics_new(const char *prefix, const char *statsd_host, int statsd_port)
{
    struct metrics *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->fd = -1;
    m->values = map_new();
    m->prefix = strdup(prefix ? prefix : "");
    if (m->values == NULL || m->prefix == NULL) {
        metrics_free(m);
        return NULL;
    }
    if (statsd_host != NULL)
        open_statsd(m, statsd_host, statsd_port);
    /* counters exist from the start, at 0: a scraper sees them before
     * the first event, and a rate over a restart stays right */
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (known[i].kind == 'c')
            slot(m, known[i].name, 'c');
    return m;
}

void metrics_free(struct metrics *m)
{
    if (m == NULL)
        return;
    if (m->fd >= 0)
        close(m->fd);
    map_free(m->values, free);
    free(m->prefix);
    free(m);
}

static void send_statsd(struct metrics *m, const char *name, double value, const char *type)
{
    char line[512];
    int n;
    if (m->fd < 0)
        return;
    n = snprintf(line, sizeof line, "%s%s%s:%g|%s", m->prefix, m->prefix[0] ? "." : "", name, value, type);
    if (n > 0 && n < (int)sizeof line)
        sendto(m->fd, line, (size_t)n, MSG_DONTWAIT, (struct sockaddr *)&m->addr, m->addrlen);
}


void metrics_count(struct metrics *m, const char *name, long delta)
{
    struct metric *v;
    if (m == NULL || (v = slot(m, name, 'c')) == NULL)
        return;
    v->value += (double)delta;
    send_statsd(m, name, (double)delta, "c");
}

void metrics_gauge(struct metrics *m, const char *name, double value)
{
    struct metric *v;
    if (m == NULL || (v = slot(m, name, 'g')) == NULL)
        return;
    v->value = value;
    send_statsd(m, name, value, "g");
}

void metrics_timing(struct metrics *m, const char *name, double ms)
{
    struct metric *v;
    if (m == NULL || (v = slot(m, name, 't')) == NULL)
        return;
    v->value = ms;
    send_statsd(m, name, ms, "ms");
}

double metrics_value(const struct metrics *m, const char *name)
{
    struct metric *v = m ? map_get(m->values, name) : NULL;
    return v ? v->value : 0;
}

/* ---- Prometheus' text format --------------------------------------------- */


static const char *help_of(const char *name)
{
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(known[i].name, name) == 0)
            return known[i].help;
    return "Set by a script (registrar.metrics)";
}

/* "services.set.ms" -> "registrar_services_set_seconds", counters _total. */
static void prometheus_name(const char *name, char kind, char *out, size_t len)
{
    size_t n = (size_t)snprintf(out, len, "registrar_");
    size_t end = strlen(name);
    if (kind == 't' && end > 3 && strcmp(name + end - 3, ".ms") == 0)
        end -= 3;
    for (size_t i = 0; i < end && n + 1 < len; i++) {
        char c = name[i];
        out[n++] = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ? c : '_';
    }
    out[n] = '\0';
    snprintf(out + n, len - n, "%s", kind == 'c' ? "_total" : kind == 't' ? "_seconds" : "");
}

static int compare_names(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

void metrics_prometheus(const struct metrics *m, const char *backend_label, struct buffer *out)
{
    size_t n = map_count(m->values), i = 0;
    const char **names = calloc(n ? n : 1, sizeof *names);
    struct map_iter it;
    const char *name;
    void *v;
    char line[600], pname[200];

    if (names == NULL)
        return;
    map_iter_init(&it, m->values);
    while (map_iter_next(&it, &name, &v))
        names[i++] = name;
    qsort(names, n, sizeof *names, compare_names);
    for (i = 0; i < n; i++) {
        const struct metric *mv = map_get(m->values, names[i]);
        double value = mv->kind == 't' ? mv->value / 1000.0 : mv->value;
        const bool labelled = strncmp(names[i], "backend.", 8) == 0 && backend_label != NULL;
        int len;
        prometheus_name(names[i], mv->kind, pname, sizeof pname);
        len = snprintf(line, sizeof line, mv->kind == 'c' ? "# HELP %s %s\n# TYPE %s %s\n%s%s%s%s %.0f\n"
                                                          : "# HELP %s %s\n# TYPE %s %s\n%s%s%s%s %.9g\n", pname,
                       help_of(names[i]), pname, mv->kind == 'c' ? "counter" : "gauge", pname,
                       labelled ? "{backend=\"" : "", labelled ? backend_label : "", labelled ? "\"}" : "",
                       value);
        if (len > 0 && (size_t)len < sizeof line)
            buffer_append(out, line, (size_t)len);
    }
    free(names);
}
