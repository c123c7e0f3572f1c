/* loop.c: epoll for fds, a short list of timers, signalfd for signals.
 *
 * Timers are few (curl's deadline, the resync, retries), so an O(n) scan for
 * the nearest one is cheaper than keeping a heap in order.  A cancelled
 * timer is only marked; the next pass drops it, so any callback may cancel
 * any timer, its own included. */
#include "core/loop.h"

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

struct watch {
    loop_io_fn *fn;
    void *arg;
    int events;
};

struct timer {
    long long id;
    long long due_ms;
    loop_timer_fn *fn;
    void *arg;
};

struct signal_handler {
    int signo;
    loop_signal_fn *fn;
    void *arg;
};

struct loop {
    int epfd;
    int sigfd;
    sigset_t sigmask;
    struct watch *watches;      /* indexed by fd */
    int nwatches;
    struct timer *timers;
    int ntimers, timers_cap;
    long long next_timer_id;
    struct signal_handler handlers[8];
    int nhandlers;
    bool stopping;
};

long long loop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

struct loop *loop_new(void)
{
    struct loop *lp = calloc(1, sizeof *lp);
    if (lp == NULL)
        return NULL;
    lp->epfd = epoll_create1(EPOLL_CLOEXEC);
    lp->sigfd = -1;
    sigemptyset(&lp->sigmask);
    if (lp->epfd < 0) {
        free(lp);
        return NULL;
    }
    return lp;
}

void loop_free(struct loop *lp)
{
    if (lp == NULL)
        return;
    close(lp->epfd);
    if (lp->sigfd >= 0)
        close(lp->sigfd);
    free(lp->watches);
    free(lp->timers);
    free(lp);
}

static int grow_watches(struct loop *lp, int fd)
{
    int n = lp->nwatches ? lp->nwatches : 64;
    struct watch *w;
    while (n <= fd)
        n *= 2;
    w = realloc(lp->watches, (size_t)n * sizeof *w);
    if (w == NULL)
        return -1;
    memset(w + lp->nwatches, 0, (size_t)(n - lp->nwatches) * sizeof *w);
    lp->watches = w;
    lp->nwatches = n;
    return 0;
}

int loop_watch(struct loop *lp, int fd, int events, loop_io_fn *fn, void *arg)
{
    struct epoll_event ev = { 0 };
    int op;

    if (fd < 0 || (fd >= lp->nwatches && grow_watches(lp, fd) < 0))
        return -1;
    if (events == 0) {
        if (lp->watches[fd].events != 0)
            epoll_ctl(lp->epfd, EPOLL_CTL_DEL, fd, NULL);
        lp->watches[fd] = (struct watch){ 0 };
        return 0;
    }
    op = lp->watches[fd].events ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    ev.events = (events & LOOP_READ ? EPOLLIN : 0) | (events & LOOP_WRITE ? EPOLLOUT : 0);
    ev.data.fd = fd;
    if (epoll_ctl(lp->epfd, op, fd, &ev) < 0) {
        /* curl may hand us a reused fd number we still think is registered */
        if (errno == ENOENT && op == EPOLL_CTL_MOD)
            op = EPOLL_CTL_ADD;
        else if (errno == EEXIST && op == EPOLL_CTL_ADD)
            op = EPOLL_CTL_MOD;
        else
            return -1;
        if (epoll_ctl(lp->epfd, op, fd, &ev) < 0)
            return -1;
    }
    lp->watches[fd] = (struct watch){ fn, arg, events };
    return 0;
}

static long long timer_push(struct loop *lp, long long id, long ms, loop_timer_fn *fn, void *arg)
{
    if (lp->ntimers == lp->timers_cap) {
        int cap = lp->timers_cap ? lp->timers_cap * 2 : 16;
        struct timer *t = realloc(lp->timers, (size_t)cap * sizeof *t);
        if (t == NULL)
            return 0;
        lp->timers = t;
        lp->timers_cap = cap;
    }
    lp->timers[lp->ntimers++] = (struct timer){
        .id = id,
        .due_ms = loop_now_ms() + (ms < 0 ? 0 : ms),
        .fn = fn,
        .arg = arg,
    };
    return id;
}

long long loop_timer_add(struct loop *lp, long ms, loop_timer_fn *fn, void *arg)
{
    return timer_push(lp, ++lp->next_timer_id, ms, fn, arg);
}

void loop_timer_cancel(struct loop *lp, long long id)
{
    if (id <= 0)
        return;
    for (int i = 0; i < lp->ntimers; i++) {
        if (lp->timers[i].id == id) {
            lp->timers[i].fn = NULL;
            return;
        }
    }
}

int loop_signal(struct loop *lp, int signo, loop_signal_fn *fn, void *arg)
{
    if (lp->nhandlers == (int)(sizeof lp->handlers / sizeof lp->handlers[0]))
        return -1;
    sigaddset(&lp->sigmask, signo);
    if (sigprocmask(SIG_BLOCK, &lp->sigmask, NULL) < 0)
        return -1;
    lp->sigfd = signalfd(lp->sigfd, &lp->sigmask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (lp->sigfd < 0)
        return -1;
    lp->handlers[lp->nhandlers++] = (struct signal_handler){ signo, fn, arg };
    return 0;
}

static void drop_cancelled_timers(struct loop *lp)
{
    int j = 0;
    for (int i = 0; i < lp->ntimers; i++)
        if (lp->timers[i].fn != NULL)
            lp->timers[j++] = lp->timers[i];
    lp->ntimers = j;
}

/* Milliseconds until the nearest timer, -1 when there is none. */
static int next_timeout(struct loop *lp)
{
    long long now = loop_now_ms(), best = -1;
    for (int i = 0; i < lp->ntimers; i++) {
        long long left;
        if (lp->timers[i].fn == NULL)
            continue;
        left = lp->timers[i].due_ms - now;
        if (left < 0)
            left = 0;
        if (best < 0 || left < best)
            best = left;
    }
    return best > 1000000 ? 1000000 : (int)best;
}

static void run_due_timers(struct loop *lp)
{
    long long now = loop_now_ms();
    /* Only timers present now run in this pass: one added by a callback
     * waits for the next pass, so a 0 ms re-arm cannot starve fds. */
    int n = lp->ntimers;
    for (int i = 0; i < n && !lp->stopping; i++) {
        struct timer t = lp->timers[i];
        long next;
        if (t.fn == NULL || t.due_ms > now)
            continue;
        lp->timers[i].fn = NULL;
        next = t.fn(lp, t.arg);
        if (next != LOOP_NOMORE)    /* same id: the owner can still cancel it */
            timer_push(lp, t.id, next, t.fn, t.arg);
    }
    drop_cancelled_timers(lp);
}

static void dispatch_signals(struct loop *lp)
{
    struct signalfd_siginfo si;
    while (read(lp->sigfd, &si, sizeof si) == (ssize_t)sizeof si) {
        for (int i = 0; i < lp->nhandlers; i++)
            if (lp->handlers[i].signo == (int)si.ssi_signo)
                lp->handlers[i].fn(lp, (int)si.ssi_signo, lp->handlers[i].arg);
    }
}

void loop_run(struct loop *lp)
{
    struct epoll_event events[64];

    if (lp->sigfd >= 0) {
        struct epoll_event ev = { .events = EPOLLIN, .data.fd = lp->sigfd };
        epoll_ctl(lp->epfd, EPOLL_CTL_ADD, lp->sigfd, &ev);
    }
    lp->stopping = false;
    while (!lp->stopping) {
        int n = epoll_wait(lp->epfd, events, 64, next_timeout(lp));
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait: %s", strerror(errno));
            break;
        }
        for (int i = 0; i < n && !lp->stopping; i++) {
            int fd = events[i].data.fd, ev = 0;
            struct watch w;
            if (fd == lp->sigfd) {
                dispatch_signals(lp);
                continue;
            }
            if (fd >= lp->nwatches || lp->watches[fd].fn == NULL)
                continue;       /* unwatched by an earlier callback this pass */
            if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
                ev |= LOOP_READ;
            if (events[i].events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
                ev |= LOOP_WRITE;
            w = lp->watches[fd];
            w.fn(lp, fd, ev, w.arg);
        }
        run_due_timers(lp);
    }
    if (lp->sigfd >= 0)
        epoll_ctl(lp->epfd, EPOLL_CTL_DEL, lp->sigfd, NULL);
}

void loop_stop(struct loop *lp) { lp->stopping = true; }
