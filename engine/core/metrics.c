/* metrics.c: named values kept in-process (for the log and for scripts)
 * and, when statsd is configured, one UDP datagram per update.  UDP is
 * fire-and-forget by design: a missing statsd must cost nothing. */
#include "core/metrics.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/map.h"

struct metrics {
    struct map *values;         /* name -> double* */
    char *prefix;
    int fd;
    struct sockaddr_storage addr;
    socklen_t addrlen;
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

static double *slot(struct metrics *m, const char *name)
{
    double *v = map_get(m->values, name);
    if (v == NULL) {
        v = calloc(1, sizeof *v);
        if (v != NULL)
            map_put(m->values, name, v, NULL);
    }
    return v;
}

void metrics_count(struct metrics *m, const char *name, long delta)
{
    double *v;
    if (m == NULL || (v = slot(m, name)) == NULL)
        return;
    *v += (double)delta;
    send_statsd(m, name, (double)delta, "c");
}

void metrics_gauge(struct metrics *m, const char *name, double value)
{
    double *v;
    if (m == NULL || (v = slot(m, name)) == NULL)
        return;
    *v = value;
    send_statsd(m, name, value, "g");
}

void metrics_timing(struct metrics *m, const char *name, double ms)
{
    double *v;
    if (m == NULL || (v = slot(m, name)) == NULL)
        return;
    *v = ms;
    send_statsd(m, name, ms, "ms");
}

double metrics_value(const struct metrics *m, const char *name)
{
    double *v = m ? map_get(m->values, name) : NULL;
    return v ? *v : 0;
}
