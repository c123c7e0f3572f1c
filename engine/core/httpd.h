/* httpd.h: a small HTTP/1.1 server on the event loop, for the operator's
 * endpoints (/health, /metrics, /services).  GET and HEAD only, one
 * request per connection, bounded in size, time and number of
 * connections: a slow or hostile client costs a few KiB and a timer, and
 * never stalls Docker events or registry writes. */
#ifndef REGISTRAR_CORE_HTTPD_H
#define REGISTRAR_CORE_HTTPD_H

#include <stddef.h>

#include "core/buffer.h"

struct loop;
struct httpd;

struct httpd_response {
    int status;                 /* 200 unless the handler says otherwise */
    const char *content_type;   /* "text/plain; charset=utf-8" unless set */
    struct buffer body;
};

/* Fills res for GET path (without its query, which is in query, or ""). */
typedef void httpd_handler_fn(void *arg, const char *path, const char *query, struct httpd_response *res);

/* Listens on "PORT" (loopback), "HOST:PORT" or "[ADDR6]:PORT"; port 0
 * takes a free one (httpd_port says which).  NULL with err. */
struct httpd *httpd_new(struct loop *lp, const char *address, httpd_handler_fn *fn, void *arg,
                        char *err, size_t errlen);
void httpd_free(struct httpd *h);
int httpd_port(const struct httpd *h);

#endif
