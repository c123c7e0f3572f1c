/* http.h: asynchronous HTTP on the event loop (libcurl multi). */
#ifndef REGISTRAR_HTTP_H
#define REGISTRAR_HTTP_H

#include <stdbool.h>
#include <stddef.h>

struct loop;
struct http;
struct http_transfer;

struct http_tls {
    const char *ca_file;
    const char *cert_file;
    const char *key_file;
    bool insecure;              /* skip peer verification: tests only */
};

/* Streamed body: return 0 to go on, non-zero to abort the transfer. */
typedef int http_data_fn(const char *data, size_t len, void *arg);
/* The response's status line and headers have all arrived. */
typedef void http_head_fn(long status, void *arg);

struct http_request {
    const char *method;         /* NULL means GET */
    const char *url;
    const char *unix_socket;    /* connect here; the URL's host is then ignored */
    const char *const *headers; /* "Name: value" strings, NULL-terminated */
    const char *body;
    size_t body_len;
    long timeout_ms;            /* whole transfer; 0 for none (event streams) */
    long connect_timeout_ms;
    const struct http_tls *tls;
    const char *userpwd;        /* basic auth "user:password" */
    size_t max_body;            /* a kept body past this fails the transfer; 0: no limit */
    http_data_fn *on_data;      /* stream the body instead of keeping it */
    http_head_fn *on_head;      /* headers complete (streams: "subscribed") */
};

struct http_response {
    long status;                /* 0 when no HTTP answer arrived */
    const char *body;           /* NUL-terminated; empty when streamed */
    size_t body_len;
    const char *headers;        /* raw header block of the last response */
    size_t headers_len;
    int curl_code;              /* CURLE_OK on a completed exchange */
    const char *error;          /* reason when curl_code != 0 */
    double seconds;
};

/* Called once per transfer; the response lives only during the call. */
typedef void http_done_fn(struct http_transfer *t, const struct http_response *res, void *arg);

/* Once per process, before any other call here; and at the end. */
void http_global_init(void);
void http_global_cleanup(void);

struct http *http_new(struct loop *lp, int max_host_connections);
void http_free(struct http *h);

struct http_transfer *http_start(struct http *h, const struct http_request *req,
                                 http_done_fn *done, void *arg);
/* Abort a transfer without calling its done callback.  Not from inside a
 * curl callback (on_data): return non-zero there instead. */
void http_cancel(struct http_transfer *t);
/* http_cancel for a caller that holds the transfer as void * (a task
 * waiting on it: task_wait). */
void http_cancel_handle(void *t);

/* Transfers under way (tests and shutdown). */
int http_active(const struct http *h);
/* The loop it runs on (for callers that must defer work out of curl's
 * callbacks). */
struct loop *http_loop(const struct http *h);

#endif
