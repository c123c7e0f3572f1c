/* zk.h: asynchronous ZooKeeper on the event loop, over the C client's
 * multi-threaded library (libzookeeper_mt).
 *
 * The library runs its own threads: one does the network, one calls the
 * completions and the watcher.  Those callbacks never touch anything of
 * ours but the answer they carry: they copy it into its operation, put
 * the operation on a queue (a mutex and a list) and write to an eventfd.
 * The loop reads the eventfd, takes the whole queue and delivers each
 * answer on the loop's own thread, where the done callback may resume a
 * coroutine.  So Lua, the log and every other part only ever run on the
 * loop.
 *
 * Sessions are shared: asking again for the same servers, credentials and
 * timeout gives the same session, and the last release closes it only on
 * the next loop pass.  A reload that builds a new backend therefore keeps
 * the session, and with it the ephemeral znodes written under it.  A
 * session the server expired is replaced by a new one at once; its id
 * changes (zk_session_id), which is how a backend learns that its
 * ephemeral znodes are gone.
 *
 * Watches: a get, exists or children with watch set leaves a one-shot
 * watch on the path; when it fires, the event waits in the session's
 * queue for zk_event_take.  Watches live as long as the session (a
 * reconnect keeps them); when it expires they are gone, and the next take
 * after the new session is up says so. */
#ifndef REGISTRAR_ZK_H
#define REGISTRAR_ZK_H

#include <stdbool.h>
#include <stddef.h>

#include "core/zk_events.h"

struct loop;
struct zk;
struct zk_session;
struct zk_op;

/* Our own error code beside ZooKeeper's (which are all above -200): the
 * call's timeout passed without an answer. */
#define ZK_TIMEDOUT (-1000)

enum zk_kind { ZK_CREATE, ZK_SET, ZK_GET, ZK_CHILDREN, ZK_DELETE, ZK_EXISTS };

struct zk_request {
    enum zk_kind kind;
    const char *path;
    const char *data;           /* create, set */
    size_t len;
    int version;                /* set, delete: the version it must have; -1 any */
    bool ephemeral;             /* create: bound to the session */
    bool parents;               /* create: missing parents are created first (persistent, empty) */
    bool watch;                 /* get, exists, children: leave a watch (zk.c says which fires when) */
    long timeout_ms;            /* 0: no timeout of ours */
};

struct zk_stat {
    long long czxid, mzxid, pzxid, ctime, mtime;
    long long ephemeral_owner;  /* the session an ephemeral znode belongs to; 0: persistent */
    int version, cversion, aversion, data_length, num_children;
};

struct zk_result {
    enum zk_kind kind;
    int rc;                     /* ZOK (0), a ZooKeeper error code, or ZK_TIMEDOUT */
    const char *error;          /* when rc != 0: "create /a/b: no node" */
    const char *code;           /* when rc != 0: "nonode", "nodeexists", "badversion", ... */
    const char *data;           /* get: the data; create: the path created */
    size_t len;
    bool has_stat;              /* get, set, exists */
    struct zk_stat stat;
    char **children;            /* children: the names, sorted */
    int nchildren;
};

/* Called once per operation, on the loop; the result lives during the call. */
typedef void zk_done_fn(struct zk_op *op, const struct zk_result *res, void *arg);

struct zk *zk_new(struct loop *lp);
/* Closes every session (ZooKeeper then removes their ephemeral znodes);
 * operations still under way end without their callbacks. */
void zk_free(struct zk *z);

/* The session to these servers ("h:p,h:p"), with digest credentials (user
 * NULL: none) and this session timeout; shared, so each get needs a put.
 * NULL with err when the client cannot be started. */
struct zk_session *zk_session_get(struct zk *z, const char *hosts, const char *user, const char *password,
                                  int timeout_ms, char *err, size_t errlen);
void zk_session_put(struct zk_session *s);

/* The id of the session the servers gave, 0 while there is none (before
 * the first connection, and after an expiry until the new one connects). */
long long zk_session_id(const struct zk_session *s);
/* "connecting", "connected", "expired", "auth failed", "closed". */
const char *zk_session_state(const struct zk_session *s);

/* Starts an operation; NULL with err when it cannot be sent (the done
 * callback is then never called). */
struct zk_op *zk_start(struct zk_session *s, const struct zk_request *req, zk_done_fn *done, void *arg,
                       char *err, size_t errlen);
/* The done callback will not be called; the answer, when it comes, is
 * dropped.  Only before done ran. */
void zk_cancel(struct zk_op *op);

/* The session's next node event: 1 and *ev (its path the caller's to
 * free); -1 and why when the watches are gone (the session expired or
 * closed) or their events overflowed: read everything again and arm anew;
 * 0: none yet.  zk_event_wait then calls fn(arg) once when there is one
 * (false: someone else waits, or the session is closing). */
int zk_event_take(struct zk_session *s, struct zk_node_event *ev, char *why, size_t whylen);
bool zk_event_wait(struct zk_session *s, zk_ready_fn *fn, void *arg);
void zk_event_cancel(struct zk_session *s);

/* The short name of a ZooKeeper error code ("nonode"). */
const char *zk_code_name(int rc);

#endif
