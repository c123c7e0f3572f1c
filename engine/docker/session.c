/* session.c: one Docker Engine API (or Podman's compatible one) and the
 * connection to it.  `docker` (DOCKER_SOCKET) is a socket path or a URI;
 * DOCKER_HOST is read as the docker CLI reads it: unix://PATH,
 * tcp://HOST[:PORT], with TLS when DOCKER_TLS_VERIFY is set, using
 * ca.pem, cert.pem and key.pem from DOCKER_CERT_PATH.
 *
 * Start-up and every reconnect: GET /version (to pick the API version),
 * subscribe to /events, and once the subscription is answered, tell the
 * watcher to list.  Listing after subscribing means nothing that happens
 * in between is missed.  The event stream is cut into lines here; a
 * stream that ends, or a request that cannot reach Docker, means a
 * reconnect with backoff, never an exit. */
#include "docker/session.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/backoff.h"
#include "core/buffer.h"
#include "core/config.h"
#include "core/http.h"
#include "core/json.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/metrics.h"
#include "core/text.h"

#define DOCKER_TIMEOUT_MS 10000L
#define DOCKER_MAX_SMALL (1L << 20)     /* /version */
#define DOCKER_CONNECTIONS 8
#define BACKOFF_FIRST_MS 200L
#define BACKOFF_CAP_MS 5000L
#define MAX_EVENT_LINE (1 << 20)

/* Where the API is and how to reach it. */
struct endpoint {
    struct http *http;
    struct metrics *metrics;    /* counts docker.requests */
    char *socket;               /* unix socket path, or NULL for TCP */
    char *base_url;             /* "http://docker", "https://host:2376" */
    char *where;                /* as the user wrote it (redacted), for messages */
    struct http_tls tls;
    bool use_tls;
    char version[16];           /* negotiated, "1.41"; empty until then */
};

enum state { S_DOWN, S_VERSION, S_SUBSCRIBING, S_LISTING, S_UP };

struct docker_session {
    struct loop *lp;
    struct metrics *metrics;
    struct endpoint api;
    struct docker_session_events ev;
    enum state state;
    struct http_transfer *events;
    struct buffer line;         /* event bytes not yet cut into lines */
    bool line_overflow;
    struct backoff backoff;
    long long retry_timer, list_timer, events_timer;
    struct log_trouble down;
    long long reached_ms;       /* the last complete listing */
};

/* ---- the endpoint ---------------------------------------------------------- */

static char *cert_file(const struct config *c, const char *name)
{
    char path[4096];
    const char *dir = c->docker_cert_path, *home = getenv("HOME");
    if (dir != NULL)
        snprintf(path, sizeof path, "%s/%s", dir, name);
    else
        snprintf(path, sizeof path, "%s/.docker/%s", home ? home : "", name);
    return strdup(path);
}

static int endpoint_init(struct endpoint *d, struct http *h, const struct config *c, char *err, size_t errlen)
{
    const char *v = c->docker;
    const char *where = config_origin(c, CK_DOCKER);
    char url[600];

    memset(d, 0, sizeof *d);
    d->http = h;
    d->where = strdup(text_redact_uri(v, url, sizeof url));
    /* config.c checked the form: a path, unix:///PATH or tcp://HOST[:PORT] */
    if (strncmp(v, "unix://", 7) == 0 || v[0] == '/') {
        d->socket = strdup(v[0] == '/' ? v : v + 7);
        d->base_url = strdup("http://docker");
    } else if (strncmp(v, "tcp://", 6) == 0) {
        const char *hostport = v + 6;
        size_t n = strcspn(hostport, "/");
        const char *bracket = memchr(hostport, ']', n);
        bool has_port = memchr(bracket ? bracket : hostport, ':', n - (size_t)((bracket ? bracket : hostport) - hostport)) != NULL;
        d->use_tls = c->docker_tls_verify;
        if (n > 500) {
            snprintf(err, errlen, "docker: \"%.60s...\" is too long (%s)", v, where);
            return -1;
        }
        /* the docker CLI's default ports: 2376 with TLS, 2375 without */
        snprintf(url, sizeof url, "%s://%.*s%s", d->use_tls ? "https" : "http", (int)n, hostport,
                 has_port ? "" : (d->use_tls ? ":2376" : ":2375"));
        d->base_url = strdup(url);
        if (d->use_tls) {
            d->tls.ca_file = cert_file(c, "ca.pem");
            d->tls.cert_file = cert_file(c, "cert.pem");
            d->tls.key_file = cert_file(c, "key.pem");
        }
    } else {
        snprintf(err, errlen, "docker: \"%s\" is not a socket path, unix:///PATH or tcp://HOST:PORT (%s)",
                 d->where, where);
        return -1;
    }
    return 0;
}

static void endpoint_free(struct endpoint *d)
{
    free(d->socket);
    free(d->base_url);
    free(d->where);
    free((char *)d->tls.ca_file);
    free((char *)d->tls.cert_file);
    free((char *)d->tls.key_file);
    memset(d, 0, sizeof *d);
}

static struct http_transfer *request(struct endpoint *d, const char *url, long timeout_ms, size_t max_body,
                                     http_head_fn *on_head, http_data_fn *on_data,
                                     http_done_fn *done, void *arg)
{
    struct http_request req = {
        .max_body = max_body,
        .url = url,
        .unix_socket = d->socket,
        .timeout_ms = timeout_ms,
        .connect_timeout_ms = 3000,
        .tls = d->use_tls ? &d->tls : NULL,
        .on_head = on_head,
        .on_data = on_data,
    };
    metrics_count(d->metrics, "docker.requests", 1);
    return http_start(d->http, &req, done, arg);
}

static struct http_transfer *get_version(struct endpoint *d, http_done_fn *done, void *arg)
{
    char url[700];
    snprintf(url, sizeof url, "%s/version", d->base_url);
    return request(d, url, DOCKER_TIMEOUT_MS, DOCKER_MAX_SMALL, NULL, NULL, done, arg);
}

/* "1.41" -> 141; 0 when it is not MAJOR.MINOR. */
static int version_number(const char *v)
{
    int major, minor;
    char tail;
    if (v == NULL || sscanf(v, "%d.%d%c", &major, &minor, &tail) != 2 || major < 1 || minor < 0 || minor > 99)
        return 0;
    return major * 100 + minor;
}

static int negotiate(struct endpoint *d, const struct http_response *res, char *err, size_t errlen)
{
    cJSON *v = json_parse(res->body, res->body_len, NULL);
    const cJSON *api = cJSON_GetObjectItemCaseSensitive(v, "ApiVersion");
    int theirs = version_number(cJSON_IsString(api) ? api->valuestring : NULL);
    int rc = 0;

    if (res->status != 200 || theirs == 0) {
        snprintf(err, errlen, "GET /version answered %ld without an ApiVersion: is %s a Docker API?",
                 res->status, d->where);
        rc = -1;
    } else if (theirs < version_number(DOCKER_API_MIN)) {
        snprintf(err, errlen, "Docker API %s at %s is older than %s, the oldest registrar speaks",
                 api->valuestring, d->where, DOCKER_API_MIN);
        rc = -1;
    } else {
        snprintf(d->version, sizeof d->version, "%s",
                 theirs < version_number(DOCKER_API_MAX) ? api->valuestring : DOCKER_API_MAX);
    }
    cJSON_Delete(v);
    return rc;
}

static struct http_transfer *get(struct endpoint *d, const char *path, size_t max_body,
                                 http_done_fn *done, void *arg)
{
    char url[1200];
    snprintf(url, sizeof url, "%s/v%s%s", d->base_url, d->version, path);
    return request(d, url, DOCKER_TIMEOUT_MS, max_body, NULL, NULL, done, arg);
}

static struct http_transfer *subscribe(struct endpoint *d, http_head_fn *on_head, http_data_fn *on_data,
                                       http_done_fn *done, void *arg)
{
    char url[1200];
    /* filters={"type":["container","network"]}: network events carry
     * connect/disconnect, which change a container's addresses */
    snprintf(url, sizeof url, "%s/v%s/events?filters=%%7B%%22type%%22%%3A%%5B%%22container%%22%%2C"
             "%%22network%%22%%5D%%7D", d->base_url, d->version);
    return request(d, url, 0, 0, on_head, on_data, done, arg);
}

/* ---- the event stream -------------------------------------------------------- */

static void handle_line(struct docker_session *s, const char *line, size_t len)
{
    cJSON *ev;
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
        len--;
    if (len == 0)
        return;
    ev = json_parse(line, len, NULL);
    if (ev == NULL) {
        log_warn("Docker sent an event that is not JSON (%zu bytes); ignored", len);
        s->ev.lost(s->ev.arg);  /* the next listing checks every container */
        return;
    }
    s->ev.event(s->ev.arg, ev);
    cJSON_Delete(ev);
}

/* Handles every complete line in the buffer, keeping a partial last one.
 * A line longer than MAX_EVENT_LINE is dropped, not buffered forever. */
static long handle_buffered_events(struct loop *lp, void *arg)
{
    struct docker_session *s = arg;
    size_t start = 0;
    (void)lp;
    s->events_timer = 0;
    for (size_t i = 0; i < s->line.len; i++) {
        if (s->line.data[i] != '\n')
            continue;
        if (!s->line_overflow)
            handle_line(s, s->line.data + start, i - start);
        s->line_overflow = false;
        start = i + 1;
    }
    buffer_consume(&s->line, start);
    if (s->line.len > MAX_EVENT_LINE) {
        log_warn("Docker sent an event longer than %d bytes; ignored", MAX_EVENT_LINE);
        s->ev.lost(s->ev.arg);
        s->line_overflow = true;
        buffer_consume(&s->line, s->line.len);
    }
    return LOOP_NOMORE;
}

/* Called from inside curl, where no new request may start: the bytes are
 * kept and handled on the next loop pass. */
static int on_event_data(const char *data, size_t len, void *arg)
{
    struct docker_session *s = arg;
    if (buffer_append(&s->line, data, len) < 0)
        return -1;
    if (s->events_timer == 0)
        s->events_timer = loop_timer_add(s->lp, 0, handle_buffered_events, s);
    return 0;
}

static long list_after_subscribing(struct loop *lp, void *arg)
{
    struct docker_session *s = arg;
    (void)lp;
    s->list_timer = 0;
    s->ev.ready(s->ev.arg);
    return LOOP_NOMORE;
}

/* Called from inside curl: the listing starts on the next loop pass. */
static void on_events_head(long status, void *arg)
{
    struct docker_session *s = arg;
    if (status != 200 || s->state != S_SUBSCRIBING)
        return;                 /* the done callback reports the failure */
    s->state = S_LISTING;
    s->list_timer = loop_timer_add(s->lp, 0, list_after_subscribing, s);
}

static void on_events_done(struct http_transfer *x, const struct http_response *res, void *arg)
{
    struct docker_session *s = arg;
    char why[600];
    (void)x;
    s->events = NULL;
    loop_timer_cancel(s->lp, s->events_timer);
    s->events_timer = 0;
    handle_buffered_events(s->lp, s);   /* what arrived before the end still counts */
    buffer_consume(&s->line, s->line.len);
    if (res->curl_code != 0)
        snprintf(why, sizeof why, "event stream: %s", res->error);
    else if (res->status != 200)
        snprintf(why, sizeof why, "event stream: status %ld", res->status);
    else
        snprintf(why, sizeof why, "event stream ended (daemon restarting?)");
    docker_session_failed(s, why);
}

/* ---- connecting ------------------------------------------------------------------ */

static void connect_docker(struct docker_session *s);

static long on_retry(struct loop *lp, void *arg)
{
    struct docker_session *s = arg;
    (void)lp;
    s->retry_timer = 0;
    connect_docker(s);
    return LOOP_NOMORE;
}

void docker_session_failed(struct docker_session *s, const char *why)
{
    long delay;
    if (s->state == S_DOWN && s->retry_timer != 0)
        return;
    s->state = S_DOWN;
    s->ev.lost(s->ev.arg);
    if (s->events != NULL) {
        http_cancel(s->events);
        s->events = NULL;
    }
    delay = backoff_next(&s->backoff);
    if (!log_trouble_begin(&s->down, loop_now_ms(),
                           "Docker at %s is unreachable (%s); keeping every registration and retrying",
                           s->api.where, why))
        log_debug("Docker still unreachable: %s; next try in %ld ms", why, delay);
    metrics_count(s->metrics, "docker.failures", 1);
    loop_timer_cancel(s->lp, s->retry_timer);
    s->retry_timer = loop_timer_add(s->lp, delay, on_retry, s);
}

static void on_version(struct http_transfer *x, const struct http_response *res, void *arg)
{
    struct docker_session *s = arg;
    char err[600];
    (void)x;
    if (s->state != S_VERSION)
        return;
    if (res->curl_code != 0) {
        snprintf(err, sizeof err, "%s", res->error);
        docker_session_failed(s, err);
        return;
    }
    if (negotiate(&s->api, res, err, sizeof err) < 0) {
        docker_session_failed(s, err);
        return;
    }
    log_debug("Docker API %s at %s", s->api.version, s->api.where);
    s->state = S_SUBSCRIBING;
    s->events = subscribe(&s->api, on_events_head, on_event_data, on_events_done, s);
    if (s->events == NULL)
        docker_session_failed(s, "cannot start the event stream");
}

static void connect_docker(struct docker_session *s)
{
    s->state = S_VERSION;
    if (get_version(&s->api, on_version, s) == NULL)
        docker_session_failed(s, "cannot start GET /version");
}

void docker_session_listed(struct docker_session *s)
{
    s->reached_ms = loop_now_ms();
    if (s->state != S_LISTING)
        return;
    s->state = S_UP;
    backoff_reset(&s->backoff);
    log_trouble_end(&s->down, loop_now_ms(), "Docker");
}

/* ---- requests ------------------------------------------------------------------- */

struct http_transfer *docker_session_list(struct docker_session *s, http_done_fn *done, void *arg)
{
    return get(&s->api, "/containers/json", DOCKER_MAX_LIST, done, arg);
}

struct http_transfer *docker_session_signal(struct docker_session *s, const char *id, const char *signal,
                                            http_done_fn *done, void *arg)
{
    char url[1200];
    struct http_request req = {
        .method = "POST", .url = url, .body = "", .unix_socket = s->api.socket,
        .timeout_ms = DOCKER_TIMEOUT_MS, .connect_timeout_ms = 3000, .max_body = DOCKER_MAX_SMALL,
        .tls = s->api.use_tls ? &s->api.tls : NULL,
    };
    snprintf(url, sizeof url, "%s/v%s/containers/%s/kill?signal=%s", s->api.base_url, s->api.version, id, signal);
    metrics_count(s->metrics, "docker.requests", 1);
    return http_start(s->api.http, &req, done, arg);
}

struct http_transfer *docker_session_inspect(struct docker_session *s, const char *id, http_done_fn *done,
                                             void *arg)
{
    char path[200];
    snprintf(path, sizeof path, "/containers/%s/json", id);
    return get(&s->api, path, DOCKER_MAX_INSPECT, done, arg);
}

bool docker_session_usable(const struct docker_session *s)
{
    return s->state == S_LISTING || s->state == S_UP;
}

bool docker_session_up(const struct docker_session *s) { return s->state == S_UP; }
long long docker_session_reached_ms(const struct docker_session *s) { return s->reached_ms; }
long long docker_session_down_since_ms(const struct docker_session *s)
{
    return s->down.active ? s->down.since_ms : 0;
}
bool docker_session_down(const struct docker_session *s) { return s->state == S_DOWN; }

/* ---- life cycle ------------------------------------------------------------------ */

struct docker_session *docker_session_new(struct loop *lp, const struct config *c, struct metrics *m,
                                          const struct docker_session_events *ev, char *err, size_t errlen)
{
    struct docker_session *s = calloc(1, sizeof *s);
    struct http *h;
    if (s == NULL)
        return NULL;
    s->lp = lp;
    s->metrics = m;
    s->ev = *ev;
    backoff_init(&s->backoff, BACKOFF_FIRST_MS, BACKOFF_CAP_MS);
    h = http_new(lp, DOCKER_CONNECTIONS);
    if (h == NULL || endpoint_init(&s->api, h, c, err, errlen) < 0) {
        if (h != NULL && s->api.http == NULL)
            http_free(h);
        docker_session_free(s);
        return NULL;
    }
    s->api.metrics = m;
    return s;
}

void docker_session_start(struct docker_session *s)
{
    connect_docker(s);
}

void docker_session_free(struct docker_session *s)
{
    if (s == NULL)
        return;
    loop_timer_cancel(s->lp, s->retry_timer);
    loop_timer_cancel(s->lp, s->list_timer);
    loop_timer_cancel(s->lp, s->events_timer);
    if (s->events)
        http_cancel(s->events);
    http_free(s->api.http);     /* cancels every transfer still under way */
    endpoint_free(&s->api);
    buffer_free(&s->line);
    free(s);
}
