/* http.c: the glue between libcurl's multi interface and loop.c, and
 * nothing else.  curl names the sockets to watch and one deadline; the loop
 * reports activity back; finished transfers are read off curl's queue and
 * handed to their owners. */
#include "core/http.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buffer.h"
#include "core/log.h"
#include "core/loop.h"


struct http_transfer {
    struct http *h;
    CURL *easy;
    struct curl_slist *headers;
    struct buffer body, head;
    http_data_fn *on_data;
    http_head_fn *on_head;
    http_done_fn *done;
    void *arg;
    size_t max_body;
    bool too_large;             /* the answer passed max_body */
    char *request_body;         /* our copy: curl reads it after we return */
    char error[CURL_ERROR_SIZE];
    struct http_transfer *prev, *next;
};

struct http {
    struct loop *lp;
    CURLM *multi;
    long long deadline;         /* loop timer for curl's timeout, 0 if none */
    int active;
    struct http_transfer *transfers;
};

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    struct http_transfer *t = arg;
    size_t len = size * n;
    if (t->on_data != NULL)
        return t->on_data(data, len, t->arg) == 0 ? len : 0;
    if (t->max_body && t->body.len + len > t->max_body) {
        t->too_large = true;
        return 0;               /* curl aborts the transfer */
    }
    return buffer_append(&t->body, data, len) == 0 ? len : 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
    struct http_transfer *t = arg;
    size_t len = size * n;
    /* a new status line starts a new block (redirects, 100 Continue) */
    if (len > 5 && memcmp(data, "HTTP/", 5) == 0)
        t->head.len = 0;
    if (buffer_append(&t->head, data, len) < 0)
        return 0;
    if (t->on_head != NULL && (len == 2 && data[0] == '\r')) {
        long status = 0;
        curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200)      /* not a 1xx interim answer */
            t->on_head(status, t->arg);
    }
    return len;
}

static void transfer_free(struct http_transfer *t)
{
    curl_multi_remove_handle(t->h->multi, t->easy);
    curl_easy_cleanup(t->easy);
    curl_slist_free_all(t->headers);
    buffer_free(&t->body);
    buffer_free(&t->head);
    free(t->request_body);
    if (t->prev)
        t->prev->next = t->next;
    else
        t->h->transfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->h->active--;
    free(t);
}

static void finish(struct http_transfer *t, CURLcode code)
{
    struct http_response res = { 0 };
    double secs = 0;

    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &res.status);
    curl_easy_getinfo(t->easy, CURLINFO_TOTAL_TIME, &secs);
    res.body = t->body.data ? t->body.data : "";
    res.body_len = t->body.len;
    res.headers = t->head.data ? t->head.data : "";
    res.headers_len = t->head.len;
    res.curl_code = (int)code;
    res.error = code == CURLE_OK ? "" : (t->error[0] ? t->error : curl_easy_strerror(code));
    if (t->too_large) {
        snprintf(t->error, sizeof t->error, "the answer is larger than %zu bytes", t->max_body);
        res.error = t->error;
    }
    res.seconds = secs;
    if (t->done != NULL)
        t->done(t, &res, t->arg);
    transfer_free(t);
}

static void read_finished(struct http *h)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        struct http_transfer *t = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        finish(t, msg->data.result);
    }
}

static void on_socket_ready(struct loop *lp, int fd, int events, void *arg)
{
    struct http *h = arg;
    int running, flags = 0;
    (void)lp;
    if (events & LOOP_READ)
        flags |= CURL_CSELECT_IN;
    if (events & LOOP_WRITE)
        flags |= CURL_CSELECT_OUT;
    curl_multi_socket_action(h->multi, fd, flags, &running);
    read_finished(h);
}

static long on_deadline(struct loop *lp, void *arg)
{
    struct http *h = arg;
    int running;
    (void)lp;
    h->deadline = 0;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    read_finished(h);
    return LOOP_NOMORE;
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *arg, void *sockp)
{
    struct http *h = arg;
    int events = 0;
    (void)easy;
    (void)sockp;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= LOOP_READ;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= LOOP_WRITE;
    if (loop_watch(h->lp, fd, what == CURL_POLL_REMOVE ? 0 : events, on_socket_ready, h) < 0)
        log_error("cannot watch curl socket %d", (int)fd);
    return 0;
}

static int on_curl_timer(CURLM *multi, long ms, void *arg)
{
    struct http *h = arg;
    (void)multi;
    loop_timer_cancel(h->lp, h->deadline);
    h->deadline = 0;
    /* 0 means "soon": never call back into curl from inside its callback */
    if (ms >= 0)
        h->deadline = loop_timer_add(h->lp, ms > 0 ? ms : 0, on_deadline, h);
    return 0;
}

/* Debian's libcurl speaks TLS through OpenSSL, but two libraries it
 * links for protocols registrar never asks for (RTMP, LDAP) bring GnuTLS,
 * whose load-time constructor builds its ASN.1 tables and loads PKCS#11
 * modules: 120 KiB of heap for good, more than a hundred containers'
 * entries take.  Undoing it later (gnutls_global_deinit) gave back only a
 * little: the pages stay, among OpenSSL's tables.  So the constructor is
 * told to do nothing, through the hook gnutls.h's GNUTLS_SKIP_GLOBAL_INIT
 * defines: GnuTLS looks this symbol up in the executable first (it is
 * exported, see CMakeLists.txt).  Whoever uses GnuTLS (curl built on it,
 * librtmp, libldap) calls gnutls_global_init itself first, as GnuTLS asks. */
int _gnutls_global_init_skip(void);
int _gnutls_global_init_skip(void) { return 1; }

void http_global_init(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void http_global_cleanup(void) { curl_global_cleanup(); }

struct http *http_new(struct loop *lp, int max_host_connections)
{
    struct http *h = calloc(1, sizeof *h);
    if (h == NULL)
        return NULL;
    h->lp = lp;
    h->multi = curl_multi_init();
    if (h->multi == NULL) {
        free(h);
        return NULL;
    }
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    if (max_host_connections > 0)
        curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)max_host_connections);
    return h;
}

void http_free(struct http *h)
{
    if (h == NULL)
        return;
    while (h->transfers != NULL)
        transfer_free(h->transfers);
    loop_timer_cancel(h->lp, h->deadline);
    curl_multi_cleanup(h->multi);
    free(h);
}

int http_active(const struct http *h) { return h->active; }
struct loop *http_loop(const struct http *h) { return h->lp; }

static int set_headers(struct http_transfer *t, const struct http_request *req)
{
    /* No "Expect: 100-continue": it costs a round trip on every large PUT. */
    t->headers = curl_slist_append(NULL, "Expect:");
    for (const char *const *p = req->headers; p != NULL && *p != NULL; p++) {
        struct curl_slist *l = curl_slist_append(t->headers, *p);
        if (l == NULL)
            return -1;
        t->headers = l;
    }
    return t->headers ? 0 : -1;
}

static void set_tls(CURL *e, const struct http_tls *tls)
{
    if (tls == NULL)
        return;
    if (tls->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, tls->ca_file);
    if (tls->cert_file)
        curl_easy_setopt(e, CURLOPT_SSLCERT, tls->cert_file);
    if (tls->key_file)
        curl_easy_setopt(e, CURLOPT_SSLKEY, tls->key_file);
    if (tls->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
}

static void set_method(CURL *e, struct http_transfer *t, const struct http_request *req)
{
    const char *m = req->method ? req->method : "GET";
    if (req->body != NULL || strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0) {
        t->request_body = malloc(req->body_len + 1);
        if (t->request_body != NULL && req->body_len > 0)
            memcpy(t->request_body, req->body, req->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->request_body ? t->request_body : "");
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(t->request_body ? req->body_len : 0));
    }
    if (strcmp(m, "GET") == 0 && req->body == NULL)
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    else if (strcmp(m, "HEAD") == 0)
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    else if (strcmp(m, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, m);
}

struct http_transfer *http_start(struct http *h, const struct http_request *req,
                                 http_done_fn *done, void *arg)
{
    struct http_transfer *t = calloc(1, sizeof *t);
    CURL *e;

    if (t == NULL)
        return NULL;
    e = t->easy = curl_easy_init();
    if (e == NULL || set_headers(t, req) < 0) {
        curl_easy_cleanup(e);
        curl_slist_free_all(t->headers);
        free(t);
        return NULL;
    }
    t->h = h;
    t->on_data = req->on_data;
    t->on_head = req->on_head;
    t->max_body = req->max_body;
    t->done = done;
    t->arg = arg;
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, t);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (req->unix_socket)
        curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, req->unix_socket);
    if (req->timeout_ms > 0) {
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    } else {
        /* a stream lives as long as the daemon, and so does its receive
         * buffer (16 KiB by default): a small one holds any event */
        curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 4096L);
        /* a stream may be quiet for hours: a peer gone without a word
         * (a host powered off) is found by the kernel's probes */
        curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 30L);
        curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 10L);
    }
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS,
                     req->connect_timeout_ms > 0 ? req->connect_timeout_ms : 5000L);
    if (req->userpwd) {
        curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        curl_easy_setopt(e, CURLOPT_USERPWD, req->userpwd);
    }
    set_tls(e, req->tls);
    set_method(e, t, req);
    h->active++;
    t->next = h->transfers;
    if (h->transfers)
        h->transfers->prev = t;
    h->transfers = t;
    if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
        t->done = NULL;
        transfer_free(t);
        return NULL;
    }
    return t;
}

void http_cancel(struct http_transfer *t)
{
    if (t != NULL)
        transfer_free(t);
}

void http_cancel_handle(void *t) { http_cancel(t); }
