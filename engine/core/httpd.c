/* httpd.c: see httpd.h.  Each connection reads at most MAX_REQUEST bytes
 * of request head, gets a whole-exchange deadline (a client that trickles
 * one byte a second is cut off with the rest), and is answered with
 * Connection: close.  Past MAX_CONNECTIONS a new connection is closed at
 * once: the operator's scraper retries, the daemon does not queue. */
#define _GNU_SOURCE             /* accept4 */
#include "core/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/text.h"

#define MAX_CONNECTIONS 32
#define MAX_REQUEST 8192
#define EXCHANGE_MS 10000L

struct conn {
    struct httpd *h;
    int fd;
    struct buffer in;
    struct buffer out;          /* head and body, being written */
    size_t written;
    long long deadline;
    struct conn *prev, *next;
};

struct httpd {
    struct loop *lp;
    int fd;
    int port;
    httpd_handler_fn *fn;
    void *arg;
    struct conn *conns;
    int nconns;
};

static void conn_close(struct conn *c)
{
    struct httpd *h = c->h;
    loop_watch(h->lp, c->fd, 0, NULL, NULL);
    loop_timer_cancel(h->lp, c->deadline);
    close(c->fd);
    buffer_free(&c->in);
    buffer_free(&c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    free(c);
}

static long on_deadline(struct loop *lp, void *arg)
{
    struct conn *c = arg;
    (void)lp;
    c->deadline = 0;
    conn_close(c);
    return LOOP_NOMORE;
}

static const char *reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

static void on_writable(struct loop *lp, int fd, int events, void *arg);

/* Queues the whole answer and starts writing it. */
static void respond(struct conn *c, struct httpd_response *res, bool head_only)
{
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Cache-Control: no-store\r\nConnection: close\r\n\r\n",
                     res->status, reason(res->status),
                     res->content_type ? res->content_type : "text/plain; charset=utf-8", res->body.len);
    buffer_free(&c->in);
    if (buffer_append(&c->out, head, (size_t)n) < 0 ||
        (!head_only && res->body.len > 0 && buffer_append(&c->out, res->body.data, res->body.len) < 0)) {
        buffer_free(&res->body);
        conn_close(c);
        return;
    }
    buffer_free(&res->body);
    if (loop_watch(c->h->lp, c->fd, LOOP_WRITE, on_writable, c) < 0)
        conn_close(c);
}

static void respond_text(struct conn *c, int status, const char *text)
{
    struct httpd_response res = { status, NULL, { 0 } };
    buffer_append(&res.body, text, strlen(text));
    respond(c, &res, false);
}

/* The request line of a complete head: "GET /path?query HTTP/1.1". */
static void handle_request(struct conn *c)
{
    char method[8], target[1024], *query;
    struct httpd_response res = { 200, NULL, { 0 } };
    bool head_only;

    if (sscanf(c->in.data, "%7s %1023s HTTP/1.%*c", method, target) != 2 || target[0] != '/' ||
        text_has_control(target)) {
        respond_text(c, 400, "a request line: GET /path HTTP/1.1\n");
        return;
    }
    head_only = strcmp(method, "HEAD") == 0;
    if (strcmp(method, "GET") != 0 && !head_only) {
        respond_text(c, 405, "only GET and HEAD\n");
        return;
    }
    query = strchr(target, '?');
    if (query != NULL)
        *query++ = '\0';
    c->h->fn(c->h->arg, target, query ? query : "", &res);
    respond(c, &res, head_only);
}

static void on_writable(struct loop *lp, int fd, int events, void *arg)
{
    struct conn *c = arg;
    (void)lp;
    (void)events;
    while (c->written < c->out.len) {
        ssize_t n = send(fd, c->out.data + c->written, c->out.len - c->written, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;             /* the rest when the socket drains */
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->written += (size_t)n;
    }
    conn_close(c);
}

static void on_readable(struct loop *lp, int fd, int events, void *arg)
{
    struct conn *c = arg;
    char buf[2048];
    (void)lp;
    (void)events;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            conn_close(c);      /* gone before a whole request */
            return;
        }
        if (c->in.len + (size_t)n > MAX_REQUEST) {
            respond_text(c, 431, "request head over 8 KiB\n");
            return;
        }
        buffer_append(&c->in, buf, (size_t)n);
        if (c->in.data != NULL && strstr(c->in.data, "\r\n\r\n") != NULL) {
            handle_request(c);
            return;
        }
    }
}

static void on_accept(struct loop *lp, int fd, int events, void *arg)
{
    struct httpd *h = arg;
    (void)events;
    for (;;) {
        int cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        struct conn *c;
        if (cfd < 0) {
            if (errno == EINTR)
                continue;
            return;             /* EAGAIN, or a transient error: the next readiness */
        }
        if (h->nconns >= MAX_CONNECTIONS || (c = calloc(1, sizeof *c)) == NULL) {
            close(cfd);
            continue;
        }
        c->h = h;
        c->fd = cfd;
        c->deadline = loop_timer_add(lp, EXCHANGE_MS, on_deadline, c);
        c->next = h->conns;
        if (h->conns)
            h->conns->prev = c;
        h->conns = c;
        h->nconns++;
        if (loop_watch(lp, cfd, LOOP_READ, on_readable, c) < 0)
            conn_close(c);
    }
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

struct httpd *httpd_new(struct loop *lp, const char *address, httpd_handler_fn *fn, void *arg,
                        char *err, size_t errlen)
{
    struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE }, *ai = NULL;
    char host[256], port_text[8];
    struct httpd *h;
    int port, one = 1, rc;

    if (text_host_port(address, "127.0.0.1", host, sizeof host, &port) < 0) {
        snprintf(err, errlen, "\"%s\" is not PORT, HOST:PORT or [ADDRESS]:PORT", address);
        return NULL;
    }
    snprintf(port_text, sizeof port_text, "%d", port);
    if ((rc = getaddrinfo(host, port_text, &hints, &ai)) != 0) {
        snprintf(err, errlen, "%s: %s", host, gai_strerror(rc));
        return NULL;
    }
    h = calloc(1, sizeof *h);
    if (h == NULL) {
        freeaddrinfo(ai);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    h->lp = lp;
    h->fn = fn;
    h->arg = arg;
    h->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (h->fd >= 0)
        setsockopt(h->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (h->fd < 0 || bind(h->fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(h->fd, 64) < 0 ||
        loop_watch(lp, h->fd, LOOP_READ, on_accept, h) < 0) {
        snprintf(err, errlen, "%s: %s", address, strerror(errno));
        freeaddrinfo(ai);
        if (h->fd >= 0)
            close(h->fd);
        free(h);
        return NULL;
    }
    freeaddrinfo(ai);
    h->port = bound_port(h->fd);
    return h;
}

int httpd_port(const struct httpd *h) { return h->port; }

void httpd_free(struct httpd *h)
{
    if (h == NULL)
        return;
    while (h->conns != NULL)
        conn_close(h->conns);
    loop_watch(h->lp, h->fd, 0, NULL, NULL);
    close(h->fd);
    free(h);
}
