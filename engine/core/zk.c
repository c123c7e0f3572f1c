/* zk.c: ZooKeeper sessions and the path from the client's threads to the
 * loop (see zk.h).
 *
 * Every answer travels the same way: the library's completion thread
 * copies it into its operation and pushes the operation on the queue;
 * drain(), on the loop, takes the queue and handles each one.  The same
 * queue carries the watcher's session events and the library's log
 * lines.  Three flags, read and written under the queue's lock, say who
 * may free an operation: in_library (a request is out: the library will
 * call back, or closing the handle fails it for us), queued (its answer
 * waits on the queue) and in_batch (drain took it and is about to handle
 * it).  Only an operation with none of them is freed; zk_cancel on any
 * other only clears its done callback, and the answer is dropped when it
 * arrives.  Nothing of Lua is ever touched off the loop. */
#define _GNU_SOURCE
#include "core/zk.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zookeeper/zookeeper.h>

#include "core/log.h"
#include "core/loop.h"
#include "core/zk_events.h"

/* A create whose parents keep vanishing (another host pruning them) is
 * tried this many times. */
#define CREATE_ROUNDS 4
#define RENEW_RETRY_MS 1000L
#define AUTH_RETRY_MS 5000L
/* Node events a session keeps for a watch() that is slow to take them. */
#define NODE_EVENTS_MAX 4096

enum msg_type { MSG_OP, MSG_EVENT, MSG_NODE, MSG_LOG };

struct msg {
    struct msg *next;
    enum msg_type type;
    bool queued;                /* on the queue (under the lock) */
};

/* One zookeeper_init: the watcher's and the log callback's context. */
struct handle {
    struct zk *z;
    struct zk_session *s;
    unsigned gen;
    zhandle_t *zh;
};

struct event {
    struct msg msg;
    struct zk_session *s;
    unsigned gen;
    int state;
    long long id;               /* CONNECTED: the session's id */
    int timeout_ms;             /* CONNECTED: the negotiated session timeout */
};

/* A watch fired: which znode, and how. */
struct node_msg {
    struct msg msg;
    struct zk_session *s;
    unsigned gen;
    enum zk_event_type type;
    char path[];
};

struct logline {
    struct msg msg;
    char text[];
};

struct zk_op {
    struct msg msg;             /* first: the queue's link */
    struct zk *z;
    struct zk_session *s;
    struct zk_op *prev, *next;  /* the session's operations */
    enum zk_kind kind;
    char *path;
    char *data;
    size_t len;
    int version;
    bool ephemeral, parents, watch;
    long timeout_ms;
    unsigned gen;               /* the handle the last request went to */
    bool in_library, in_batch;  /* and msg.queued */
    int step;                   /* create: 0 the znode itself, k > 0 its k-th ancestor */
    int rounds;
    long long timer;
    zk_done_fn *done;           /* NULL: nobody waits any more */
    void *arg;
    /* the answer, written by the completion thread before it is queued */
    int rc;
    char *rdata;
    int rlen;
    bool has_stat;
    struct Stat stat;
    char **kids;
    int nkids;
};

struct zk_session {
    struct zk *z;
    struct zk_session *prev, *next;
    char *key;                  /* what sessions are shared by */
    char *hosts;
    char *auth;                 /* "user:password", or NULL */
    int timeout_ms;             /* asked for */
    int negotiated_ms;          /* what the servers granted */
    int refs;
    long long close_timer, renew_timer;
    struct handle *h;           /* NULL while there is no client */
    unsigned gen;
    long long id;
    int state;                  /* the last state logged; 0 before any */
    bool connected_once, init_failing, closing;
    struct zk_op *ops;
    struct zk_events events;    /* node events, for zk_event_take */
    char watches_lost[160];     /* why the watches went: said once a new session is up */
    struct ACL acl_items[2];
    struct ACL_vector acl;
};

struct zk {
    struct loop *lp;
    int efd;
    pthread_mutex_t lock;
    struct msg *head, **tail;
    struct zk_session *sessions;
};

static void drain(struct zk *z);
static void start_handle(struct zk_session *s);

/* ---- the queue: any thread pushes, the loop drains ------------------------ */

static void push_locked(struct zk *z, struct msg *m)
{
    m->next = NULL;
    *z->tail = m;
    z->tail = &m->next;
    m->queued = true;
}

static void wake_loop(struct zk *z)
{
    uint64_t one = 1;
    ssize_t n = write(z->efd, &one, sizeof one);
    (void)n;                    /* EAGAIN: the counter is already non-zero */
}

static void push(struct zk *z, struct msg *m)
{
    pthread_mutex_lock(&z->lock);
    push_locked(z, m);
    pthread_mutex_unlock(&z->lock);
    wake_loop(z);
}

/* ---- the library's threads ----------------------------------------------- */

/* An answer is in op: the library is done with it. */
static void answered(struct zk_op *op)
{
    struct zk *z = op->z;
    pthread_mutex_lock(&z->lock);
    op->in_library = false;
    push_locked(z, &op->msg);
    pthread_mutex_unlock(&z->lock);
    wake_loop(z);
}

static void keep_stat(struct zk_op *op, const struct Stat *st)
{
    op->has_stat = st != NULL;
    if (st != NULL)
        op->stat = *st;
}

static void keep_bytes(struct zk_op *op, const char *value, int len)
{
    if (value == NULL || len < 0)
        return;
    op->rdata = malloc((size_t)len + 1);
    if (op->rdata == NULL) {
        op->rc = ZSYSTEMERROR;
        return;
    }
    memcpy(op->rdata, value, (size_t)len);
    op->rdata[len] = '\0';
    op->rlen = len;
}

static void on_string(int rc, const char *value, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    op->rc = rc;
    if (rc == ZOK && op->step == 0)
        keep_bytes(op, value, value ? (int)strlen(value) : 0);
    answered(op);
}

static void on_stat(int rc, const struct Stat *st, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    op->rc = rc;
    if (rc == ZOK)
        keep_stat(op, st);
    answered(op);
}

static void on_data(int rc, const char *value, int len, const struct Stat *st, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    op->rc = rc;
    if (rc == ZOK) {
        keep_stat(op, st);
        keep_bytes(op, value ? value : "", value ? len : 0);
    }
    answered(op);
}

static void on_strings(int rc, const struct String_vector *v, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    op->rc = rc;
    if (rc == ZOK && v != NULL && v->count > 0) {
        op->kids = calloc((size_t)v->count, sizeof *op->kids);
        if (op->kids == NULL)
            op->rc = ZSYSTEMERROR;
        for (int i = 0; op->kids != NULL && i < v->count; i++) {
            op->kids[i] = strdup(v->data[i]);
            if (op->kids[i] == NULL) {
                op->rc = ZSYSTEMERROR;
                break;
            }
            op->nkids = i + 1;
        }
    }
    answered(op);
}

static void on_void(int rc, const void *data)
{
    struct zk_op *op = (struct zk_op *)data;
    op->rc = rc;
    answered(op);
}

/* Node events.  A request with watch set leaves the handle's own watcher
 * (this one, with its struct handle) on the path; what we rely on, from
 * the C client's source (zookeeper.c, zk_hashtable.c, 3.8):
 *  - it is held once per path in one of three tables (data, exist,
 *    child): arming a path again adds nothing, here or at the server;
 *  - a get or a children sets it only when the znode exists; an exists
 *    sets it either way, and on a missing znode it fires when created;
 *  - it fires once: the event takes the path out of its table;
 *  - a new connection within the same session sends every armed path
 *    again (SetWatches, with the last zxid seen), and the server fires at
 *    once those whose znode changed meanwhile: a lost connection loses no
 *    watch, so it is not reported;
 *  - an expired session's handle is dead; the new handle we start has
 *    empty tables: the watches are gone, which zk_event_take says once the
 *    new session is up (so that the audit it leads to can be answered);
 *  - session events come once to this watcher, whatever is armed. */
static void node_event(struct handle *h, int type, const char *path)
{
    size_t n = path ? strlen(path) : 0;
    struct node_msg *m = malloc(sizeof *m + n + 1);
    if (m == NULL)
        return;                 /* the next audit finds what it was about */
    m->msg.type = MSG_NODE;
    m->s = h->s;
    m->gen = h->gen;
    m->type = type == ZOO_CREATED_EVENT ? ZK_EVENT_CREATED
              : type == ZOO_DELETED_EVENT ? ZK_EVENT_DELETED
              : type == ZOO_CHANGED_EVENT ? ZK_EVENT_CHANGED
              : type == ZOO_CHILD_EVENT ? ZK_EVENT_CHILD : ZK_EVENT_NOTWATCHING;
    memcpy(m->path, path ? path : "", n + 1);
    push(h->z, &m->msg);
}

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
    struct handle *h = ctx;
    struct event *e;
    if (h == NULL)
        return;
    if (type == ZOO_CREATED_EVENT || type == ZOO_DELETED_EVENT || type == ZOO_CHANGED_EVENT ||
        type == ZOO_CHILD_EVENT || type == ZOO_NOTWATCHING_EVENT) {
        node_event(h, type, path);
        return;
    }
    if (type != ZOO_SESSION_EVENT)
        return;
    e = calloc(1, sizeof *e);
    if (e == NULL)
        return;
    e->msg.type = MSG_EVENT;
    e->s = h->s;
    e->gen = h->gen;
    e->state = state;
    if (state == ZOO_CONNECTED_STATE) {
        const clientid_t *id = zoo_client_id(zh);
        e->id = id ? id->client_id : 0;
        e->timeout_ms = zoo_recv_timeout(zh);
    }
    push(h->z, &e->msg);
}

/* The library's own log lines: to our log at debug level, from the loop.
 * The callback has no context, hence the one hub it writes to. */
static struct zk *log_hub;
static atomic_bool log_wanted;  /* our debug level is on */

static void library_log(const char *message)
{
    struct zk *z = log_hub;
    size_t n;
    struct logline *l;
    if (z == NULL || message == NULL || !atomic_load(&log_wanted))
        return;
    n = strlen(message);
    l = malloc(sizeof *l + n + 1);
    if (l == NULL)
        return;
    l->msg.type = MSG_LOG;
    memcpy(l->text, message, n + 1);
    while (n > 0 && (l->text[n - 1] == '\n' || l->text[n - 1] == '\r'))
        l->text[--n] = '\0';
    push(z, &l->msg);
}

/* ---- operations, on the loop ------------------------------------------------ */

const char *zk_code_name(int rc)
{
    switch (rc) {
    case ZOK: return "ok";
    case ZNONODE: return "nonode";
    case ZNODEEXISTS: return "nodeexists";
    case ZBADVERSION: return "badversion";
    case ZNOTEMPTY: return "notempty";
    case ZNOAUTH: return "noauth";
    case ZNOCHILDRENFOREPHEMERALS: return "nochildrenforephemerals";
    case ZINVALIDACL: return "invalidacl";
    case ZAUTHFAILED: return "authfailed";
    case ZCONNECTIONLOSS: return "connectionloss";
    case ZOPERATIONTIMEOUT: return "operationtimeout";
    case ZSESSIONEXPIRED: return "sessionexpired";
    case ZSESSIONMOVED: return "sessionmoved";
    case ZCLOSING: return "closing";
    case ZINVALIDSTATE: return "invalidstate";
    case ZBADARGUMENTS: return "badarguments";
    case ZMARSHALLINGERROR: return "marshallingerror";
    case ZK_TIMEDOUT: return "timeout";
    default: return "error";
    }
}

static const char *const kind_names[] = { "create", "set", "get", "children", "delete", "exists" };

static void clear_answer(struct zk_op *op)
{
    free(op->rdata);
    op->rdata = NULL;
    op->rlen = 0;
    for (int i = 0; i < op->nkids; i++)
        free(op->kids[i]);
    free(op->kids);
    op->kids = NULL;
    op->nkids = 0;
    op->has_stat = false;
}

static void op_free(struct zk_op *op)
{
    struct zk_session *s = op->s;
    loop_timer_cancel(op->z->lp, op->timer);
    if (op->prev)
        op->prev->next = op->next;
    else if (s->ops == op)
        s->ops = op->next;
    if (op->next)
        op->next->prev = op->prev;
    clear_answer(op);
    free(op->path);
    free(op->data);
    free(op);
}

/* Frees op unless the library, the queue or drain still holds it. */
static void op_release(struct zk_op *op)
{
    bool held;
    pthread_mutex_lock(&op->z->lock);
    held = op->in_library || op->msg.queued || op->in_batch;
    pthread_mutex_unlock(&op->z->lock);
    if (!held)
        op_free(op);
}

/* The k-th ancestor of op's path ("/a" then "/a/b" for "/a/b/c") into
 * buf; false when there is none. */
static bool ancestor(const struct zk_op *op, int k, char *buf, size_t buflen)
{
    const char *p = op->path;
    int slashes = 0;
    for (const char *c = p + 1; *c; c++) {
        if (*c == '/' && ++slashes == k) {
            size_t n = (size_t)(c - p);
            if (n + 1 > buflen)
                return false;
            memcpy(buf, p, n);
            buf[n] = '\0';
            return true;
        }
    }
    return false;
}

static int send_request(struct zk_op *op)
{
    struct zk_session *s = op->s;
    zhandle_t *zh = s->h ? s->h->zh : NULL;
    const char *path = op->path;
    char parent[4096];
    int rc, flags = 0;

    if (zh == NULL)
        return ZINVALIDSTATE;
    if (op->kind == ZK_CREATE && op->step > 0 && !ancestor(op, op->step, parent, sizeof parent))
        return ZBADARGUMENTS;
    clear_answer(op);
    pthread_mutex_lock(&op->z->lock);
    op->in_library = true;
    op->gen = s->gen;
    pthread_mutex_unlock(&op->z->lock);
    switch (op->kind) {
    case ZK_CREATE:
        if (op->step > 0) {
            rc = zoo_acreate(zh, parent, "", 0, &s->acl, 0, on_string, op);
            break;
        }
        if (op->ephemeral)
            flags = ZOO_EPHEMERAL;
        rc = zoo_acreate(zh, path, op->data ? op->data : "", (int)op->len, &s->acl, flags, on_string, op);
        break;
    case ZK_SET:
        rc = zoo_aset(zh, path, op->data ? op->data : "", (int)op->len, op->version, on_stat, op);
        break;
    case ZK_GET:
        rc = zoo_aget(zh, path, op->watch, on_data, op);
        break;
    case ZK_CHILDREN:
        rc = zoo_aget_children(zh, path, op->watch, on_strings, op);
        break;
    case ZK_DELETE:
        rc = zoo_adelete(zh, path, op->version, on_void, op);
        break;
    case ZK_EXISTS:
        rc = zoo_aexists(zh, path, op->watch, on_stat, op);
        break;
    default:
        rc = ZBADARGUMENTS;
    }
    if (rc != ZOK) {
        pthread_mutex_lock(&op->z->lock);
        op->in_library = false;
        pthread_mutex_unlock(&op->z->lock);
    }
    return rc;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void to_stat(const struct Stat *st, struct zk_stat *out)
{
    out->czxid = st->czxid;
    out->mzxid = st->mzxid;
    out->pzxid = st->pzxid;
    out->ctime = st->ctime;
    out->mtime = st->mtime;
    out->ephemeral_owner = st->ephemeralOwner;
    out->version = st->version;
    out->cversion = st->cversion;
    out->aversion = st->aversion;
    out->data_length = st->dataLength;
    out->num_children = st->numChildren;
}

/* The one place done callbacks run. */
static void deliver(struct zk_op *op, int rc)
{
    zk_done_fn *done = op->done;
    void *arg = op->arg;
    struct zk_result res = { 0 };
    char err[512], where[4096];

    loop_timer_cancel(op->z->lp, op->timer);
    op->timer = 0;
    op->done = NULL;
    if (done == NULL) {
        op_release(op);
        return;
    }
    res.kind = op->kind;
    res.rc = rc;
    if (rc != ZOK) {
        if (op->kind == ZK_CREATE && op->step > 0 && ancestor(op, op->step, where, sizeof where))
            snprintf(err, sizeof err, "create %.200s (parent of %.200s): %s", where, op->path, zerror(rc));
        else if (rc == ZK_TIMEDOUT)
            snprintf(err, sizeof err, "%s %.300s: no answer within %ld ms", kind_names[op->kind], op->path,
                     op->timeout_ms);
        else
            snprintf(err, sizeof err, "%s %.300s: %s", kind_names[op->kind], op->path, zerror(rc));
        res.error = err;
        res.code = zk_code_name(rc);
    } else {
        res.data = op->rdata ? op->rdata : "";
        res.len = (size_t)op->rlen;
        res.has_stat = op->has_stat;
        if (op->has_stat)
            to_stat(&op->stat, &res.stat);
        if (op->nkids > 1)
            qsort(op->kids, (size_t)op->nkids, sizeof *op->kids, cmp_names);
        res.children = op->kids;
        res.nchildren = op->nkids;
    }
    done(op, &res, arg);
    op_release(op);
}

static bool has_ancestor(const struct zk_op *op, int k)
{
    char buf[4096];
    return ancestor(op, k, buf, sizeof buf);
}

/* A create with parents goes on after an answer: true when it sent its
 * next request.  A missing parent makes it create the parents, top down
 * (one that exists is fine), then the znode again. */
static bool create_goes_on(struct zk_op *op)
{
    if (op->step == 0 && op->rc == ZOK)
        return false;
    if (op->step > 0 && (op->rc == ZOK || op->rc == ZNODEEXISTS)) {
        op->step = has_ancestor(op, op->step + 1) ? op->step + 1 : 0;
        return (op->rc = send_request(op)) == ZOK;
    }
    /* the znode's parent is missing, or a parent's own (pruned meanwhile) */
    if (op->rc != ZNONODE || op->rounds >= CREATE_ROUNDS || !has_ancestor(op, 1))
        return false;
    op->rounds++;
    op->step = 1;
    return (op->rc = send_request(op)) == ZOK;
}

static void handle_op(struct zk_op *op)
{
    if (op->done == NULL) {
        op_release(op);
        return;
    }
    if (op->kind == ZK_CREATE && op->parents && create_goes_on(op))
        return;
    deliver(op, op->rc);
}

static long on_op_timeout(struct loop *lp, void *arg)
{
    struct zk_op *op = arg;
    (void)lp;
    op->timer = 0;
    deliver(op, ZK_TIMEDOUT);
    return LOOP_NOMORE;
}

struct zk_op *zk_start(struct zk_session *s, const struct zk_request *req, zk_done_fn *done, void *arg,
                       char *err, size_t errlen)
{
    struct zk_op *op;
    int rc;

    if (req->path == NULL || req->path[0] != '/') {
        snprintf(err, errlen, "%s: the path must start with '/'", kind_names[req->kind]);
        return NULL;
    }
    if (strlen(req->path) >= 4000) {
        snprintf(err, errlen, "%s: a path of %zu bytes is too long", kind_names[req->kind], strlen(req->path));
        return NULL;
    }
    if (req->len > (size_t)INT32_MAX / 2) {
        snprintf(err, errlen, "%s %s: %zu bytes of data is too much", kind_names[req->kind], req->path, req->len);
        return NULL;
    }
    op = calloc(1, sizeof *op);
    if (op == NULL || (op->path = strdup(req->path)) == NULL ||
        (req->data != NULL && (op->data = malloc(req->len + 1)) == NULL)) {
        if (op)
            free(op->path);
        free(op);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (req->data != NULL)
        memcpy(op->data, req->data, req->len);
    op->msg.type = MSG_OP;
    op->z = s->z;
    op->s = s;
    op->kind = req->kind;
    op->len = req->len;
    op->version = req->version;
    op->ephemeral = req->ephemeral;
    op->parents = req->parents;
    op->watch = req->watch && (req->kind == ZK_GET || req->kind == ZK_CHILDREN || req->kind == ZK_EXISTS);
    op->timeout_ms = req->timeout_ms;
    op->done = done;
    op->arg = arg;
    op->next = s->ops;
    if (s->ops)
        s->ops->prev = op;
    s->ops = op;
    rc = send_request(op);
    if (rc != ZOK) {
        snprintf(err, errlen, "%s %.300s: %s%s", kind_names[req->kind], req->path, zerror(rc),
                 s->h == NULL ? " (no client: see the log)"
                 : rc == ZINVALIDSTATE ? " (the session is being renewed)" : "");
        op->done = NULL;
        op_free(op);
        return NULL;
    }
    if (req->timeout_ms > 0)
        op->timer = loop_timer_add(s->z->lp, req->timeout_ms, on_op_timeout, op);
    return op;
}

void zk_cancel(struct zk_op *op)
{
    if (op == NULL)
        return;
    loop_timer_cancel(op->z->lp, op->timer);
    op->timer = 0;
    op->done = NULL;
    op_release(op);
}

/* ---- sessions ---------------------------------------------------------------- */

long long zk_session_id(const struct zk_session *s) { return s->id; }

const char *zk_session_state(const struct zk_session *s)
{
    if (s->closing)
        return "closed";
    if (s->state == ZOO_CONNECTED_STATE)
        return "connected";
    if (s->state == ZOO_EXPIRED_SESSION_STATE)
        return "expired";
    if (s->state == ZOO_AUTH_FAILED_STATE)
        return "auth failed";
    return "connecting";
}

/* After zookeeper_close: every request the library still had is failed
 * with rc, through the queue like any answer. */
static void fail_outstanding(struct zk_session *s, unsigned gen, int rc)
{
    struct zk *z = s->z;
    bool any = false;
    pthread_mutex_lock(&z->lock);
    for (struct zk_op *op = s->ops; op != NULL; op = op->next) {
        if (op->in_library && op->gen == gen) {
            op->in_library = false;
            op->rc = rc;
            push_locked(z, &op->msg);
            any = true;
        }
    }
    pthread_mutex_unlock(&z->lock);
    if (any)
        wake_loop(z);
}

static void close_handle(struct zk_session *s, int rc)
{
    struct handle *h = s->h;
    if (h == NULL)
        return;
    s->h = NULL;
    s->id = 0;
    zookeeper_close(h->zh);     /* joins the library's threads */
    fail_outstanding(s, h->gen, rc);
    free(h);
}

static long on_renew(struct loop *lp, void *arg)
{
    struct zk_session *s = arg;
    (void)lp;
    s->renew_timer = 0;
    close_handle(s, ZSESSIONEXPIRED);
    start_handle(s);
    return LOOP_NOMORE;
}

static void renew_later(struct zk_session *s, long ms)
{
    if (s->renew_timer == 0)
        s->renew_timer = loop_timer_add(s->z->lp, ms, on_renew, s);
}

static void start_handle(struct zk_session *s)
{
    struct handle *h = calloc(1, sizeof *h);
    if (h != NULL) {
        h->z = s->z;
        h->s = s;
        h->gen = ++s->gen;
        h->zh = zookeeper_init2(s->hosts, watcher, s->timeout_ms, NULL, h, 0, library_log);
    }
    if (h == NULL || h->zh == NULL) {
        if (!s->init_failing)
            log_error("ZooKeeper %s: cannot start the client: %s; retrying", s->hosts, strerror(errno));
        s->init_failing = true;
        free(h);
        renew_later(s, RENEW_RETRY_MS);
        return;
    }
    s->init_failing = false;
    if (s->auth != NULL)
        zoo_add_auth(h->zh, "digest", s->auth, (int)strlen(s->auth), NULL, NULL);
    s->h = h;
}

/* The session is over: its node events are dropped now, and the loss is
 * said once the next session is up. */
static void watches_gone(struct zk_session *s, const char *how)
{
    zk_events_drop(&s->events);
    snprintf(s->watches_lost, sizeof s->watches_lost, "the session 0x%llx %s, and its watches with it",
             (unsigned long long)s->id, how);
}

static void handle_node_event(struct node_msg *m)
{
    struct zk_session *s = m->s;
    if (s->closing || s->h == NULL || m->gen != s->h->gen)
        return;                 /* an older handle's: its watches are gone */
    zk_events_push(&s->events, m->type, m->path);
}

/* Session events: each change of state is logged once. */
static void handle_event(struct event *e)
{
    struct zk_session *s = e->s;
    int was = s->state;

    if (s->closing || s->h == NULL || e->gen != s->h->gen || e->state == was)
        return;
    s->state = e->state;
    if (e->state == ZOO_CONNECTED_STATE) {
        bool same = s->id != 0 && s->id == e->id;
        s->id = e->id;
        s->negotiated_ms = e->timeout_ms;
        if (!s->connected_once)
            log_info("ZooKeeper %s: connected, session 0x%llx (timeout %d ms)", s->hosts, (unsigned long long)e->id,
                     e->timeout_ms);
        else if (same)
            log_info("ZooKeeper %s: connected again, session 0x%llx kept", s->hosts, (unsigned long long)e->id);
        else
            log_info("ZooKeeper %s: connected, new session 0x%llx (timeout %d ms)", s->hosts,
                     (unsigned long long)e->id, e->timeout_ms);
        s->connected_once = true;
        if (!same && s->watches_lost[0] != '\0') {
            zk_events_lose(&s->events, s->watches_lost);
            s->watches_lost[0] = '\0';
        }
    } else if (e->state == ZOO_EXPIRED_SESSION_STATE) {
        log_warn("ZooKeeper %s: session 0x%llx expired (its ephemeral znodes are gone); starting a new session",
                 s->hosts, (unsigned long long)s->id);
        watches_gone(s, "expired");
        s->id = 0;
        renew_later(s, 0);
    } else if (e->state == ZOO_AUTH_FAILED_STATE) {
        log_error("ZooKeeper %s: authentication failed; trying a new session in %ld s", s->hosts,
                  AUTH_RETRY_MS / 1000);
        watches_gone(s, "failed authentication");
        s->id = 0;
        renew_later(s, AUTH_RETRY_MS);
    } else if (was == ZOO_CONNECTED_STATE) {
        log_warn("ZooKeeper %s: connection lost; reconnecting (session 0x%llx lives on for %d ms without one)",
                 s->hosts, (unsigned long long)s->id, s->negotiated_ms ? s->negotiated_ms : s->timeout_ms);
    }
}

static void session_free(struct zk_session *s)
{
    struct zk *z = s->z;
    s->closing = true;
    /* out of the list first: nothing the drain below resumes can take it */
    if (s->prev)
        s->prev->next = s->next;
    else
        z->sessions = s->next;
    if (s->next)
        s->next->prev = s->prev;
    zk_events_lose(&s->events, "the session was closed");     /* whoever waits is told */
    loop_timer_cancel(z->lp, s->close_timer);
    loop_timer_cancel(z->lp, s->renew_timer);
    s->close_timer = s->renew_timer = 0;
    close_handle(s, ZCLOSING);
    drain(z);                   /* every answer of s, and its events, are handled */
    while (s->ops != NULL)      /* none should be left; never leak them */
        op_free(s->ops);
    zk_events_clear(&s->events);
    free(s->key);
    free(s->hosts);
    if (s->auth != NULL) {
        explicit_bzero(s->auth, strlen(s->auth));
        free(s->auth);
    }
    free(s);
}

static long on_close(struct loop *lp, void *arg)
{
    struct zk_session *s = arg;
    (void)lp;
    s->close_timer = 0;
    if (s->refs == 0)
        session_free(s);
    return LOOP_NOMORE;
}

struct zk_session *zk_session_get(struct zk *z, const char *hosts, const char *user, const char *password,
                                  int timeout_ms, char *err, size_t errlen)
{
    struct zk_session *s;
    char *key = NULL;

    if (z == NULL) {
        snprintf(err, errlen, "no ZooKeeper client here");
        return NULL;
    }
    atomic_store(&log_wanted, log_enabled(LOG_DEBUG));
    if (asprintf(&key, "%s\n%s\n%s\n%d", hosts, user ? user : "", user && password ? password : "", timeout_ms) < 0) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (s = z->sessions; s != NULL; s = s->next) {
        if (strcmp(s->key, key) == 0) {
            free(key);
            s->refs++;
            loop_timer_cancel(z->lp, s->close_timer);
            s->close_timer = 0;
            return s;
        }
    }
    s = calloc(1, sizeof *s);
    if (s == NULL || (s->hosts = strdup(hosts)) == NULL ||
        (user != NULL && asprintf(&s->auth, "%s:%s", user, password ? password : "") < 0)) {
        if (s)
            free(s->hosts);
        free(s);
        free(key);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    s->z = z;
    s->key = key;
    s->timeout_ms = timeout_ms;
    s->refs = 1;
    zk_events_init(&s->events, NODE_EVENTS_MAX);
    /* with credentials: all rights to the creator's digest, reading to
     * everyone; without: open */
    if (s->auth != NULL) {
        s->acl_items[0] = (struct ACL){ ZOO_PERM_ALL, { "auth", "" } };
        s->acl_items[1] = (struct ACL){ ZOO_PERM_READ, { "world", "anyone" } };
        s->acl = (struct ACL_vector){ 2, s->acl_items };
    } else {
        s->acl_items[0] = (struct ACL){ ZOO_PERM_ALL, { "world", "anyone" } };
        s->acl = (struct ACL_vector){ 1, s->acl_items };
    }
    s->next = z->sessions;
    if (z->sessions)
        z->sessions->prev = s;
    z->sessions = s;
    start_handle(s);
    return s;
}

void zk_session_put(struct zk_session *s)
{
    if (s == NULL || --s->refs > 0)
        return;
    /* closed on the next pass, unless a reload's new backend takes it */
    if (s->close_timer == 0)
        s->close_timer = loop_timer_add(s->z->lp, 0, on_close, s);
}

/* ---- node events ------------------------------------------------------------ */

int zk_event_take(struct zk_session *s, struct zk_node_event *ev, char *why, size_t whylen)
{
    if (s->closing) {
        snprintf(why, whylen, "the session was closed");
        return -1;
    }
    return zk_events_take(&s->events, ev, why, whylen);
}

bool zk_event_wait(struct zk_session *s, zk_ready_fn *fn, void *arg)
{
    return !s->closing && zk_events_wait(&s->events, fn, arg);
}

void zk_event_cancel(struct zk_session *s) { zk_events_cancel(&s->events); }

/* ---- the hub ------------------------------------------------------------------------ */

static void drain(struct zk *z)
{
    for (;;) {
        struct msg *m, *next;
        pthread_mutex_lock(&z->lock);
        m = z->head;
        z->head = NULL;
        z->tail = &z->head;
        for (struct msg *i = m; i != NULL; i = i->next) {
            i->queued = false;
            if (i->type == MSG_OP)
                ((struct zk_op *)i)->in_batch = true;
        }
        pthread_mutex_unlock(&z->lock);
        if (m == NULL)
            return;
        for (; m != NULL; m = next) {
            next = m->next;
            switch (m->type) {
            case MSG_OP: {
                struct zk_op *op = (struct zk_op *)m;
                pthread_mutex_lock(&z->lock);
                op->in_batch = false;
                pthread_mutex_unlock(&z->lock);
                handle_op(op);
                break;
            }
            case MSG_EVENT:
                handle_event((struct event *)m);
                free(m);
                break;
            case MSG_NODE:
                handle_node_event((struct node_msg *)m);
                free(m);
                break;
            case MSG_LOG:
                log_debug("zookeeper client: %s", ((struct logline *)m)->text);
                free(m);
                break;
            }
        }
    }
}

static void on_wakeup(struct loop *lp, int fd, int events, void *arg)
{
    uint64_t n;
    ssize_t r = read(fd, &n, sizeof n);
    (void)lp;
    (void)events;
    (void)r;
    drain(arg);
}

struct zk *zk_new(struct loop *lp)
{
    struct zk *z = calloc(1, sizeof *z);
    if (z == NULL)
        return NULL;
    z->lp = lp;
    z->tail = &z->head;
    z->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (z->efd < 0 || pthread_mutex_init(&z->lock, NULL) != 0) {
        if (z->efd >= 0)
            close(z->efd);
        free(z);
        return NULL;
    }
    if (loop_watch(lp, z->efd, LOOP_READ, on_wakeup, z) < 0) {
        close(z->efd);
        pthread_mutex_destroy(&z->lock);
        free(z);
        return NULL;
    }
    /* the library logs through library_log only: warnings and errors, at
     * our debug level (a down server is already said once by us) */
    zoo_set_debug_level(ZOO_LOG_LEVEL_WARN);
    log_hub = z;
    return z;
}

void zk_free(struct zk *z)
{
    if (z == NULL)
        return;
    while (z->sessions != NULL)
        session_free(z->sessions);
    drain(z);
    loop_watch(z->lp, z->efd, 0, NULL, NULL);
    close(z->efd);
    pthread_mutex_destroy(&z->lock);
    if (log_hub == z)
        log_hub = NULL;
    free(z);
}
