/* loop.h: the one event loop: fds, timers and signals (epoll, Linux). */
#ifndef REGISTRAR_LOOP_H
#define REGISTRAR_LOOP_H

#include <stdbool.h>

#define LOOP_READ  1
#define LOOP_WRITE 2

/* A timer callback returns its next delay in ms, or LOOP_NOMORE. */
#define LOOP_NOMORE (-1L)

struct loop;
typedef void loop_io_fn(struct loop *lp, int fd, int events, void *arg);
typedef long loop_timer_fn(struct loop *lp, void *arg);
typedef void loop_signal_fn(struct loop *lp, int signo, void *arg);

struct loop *loop_new(void);
void loop_free(struct loop *lp);

/* Watch fd for LOOP_READ|LOOP_WRITE; 0 stops watching. */
int loop_watch(struct loop *lp, int fd, int events, loop_io_fn *fn, void *arg);

/* Timer ids are > 0; 0 means "no timer" so a zeroed field is safe to cancel. */
long long loop_timer_add(struct loop *lp, long ms, loop_timer_fn *fn, void *arg);
void loop_timer_cancel(struct loop *lp, long long id);

int loop_signal(struct loop *lp, int signo, loop_signal_fn *fn, void *arg);

long long loop_now_ms(void);
void loop_run(struct loop *lp);
void loop_stop(struct loop *lp);

#endif
