/* sd_notify.c: the service manager's notification socket.  The protocol
 * is one AF_UNIX datagram per message to the path in NOTIFY_SOCKET; a
 * path starting with '@' names an abstract socket.  No libsystemd: these
 * few lines are all of it that registrar uses. */
#include "core/sd_notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "core/log.h"

static bool warned;

static void warn_once(const char *what, const char *path, int error)
{
    if (!warned)
        log_warn("NOTIFY_SOCKET=%s: %s: %s; systemd is not told how registrar is doing", path, what,
                 strerror(error));
    warned = true;
}

/* NOTIFY_SOCKET as a socket address; its length, or 0 when it names none. */
static socklen_t notify_address(const char *path, struct sockaddr_un *sa)
{
    size_t n = strlen(path);
    memset(sa, 0, sizeof *sa);
    sa->sun_family = AF_UNIX;
    if ((path[0] != '/' && path[0] != '@') || n < 2 || n > sizeof sa->sun_path)
        return 0;
    memcpy(sa->sun_path, path, n);
    if (path[0] == '@')
        sa->sun_path[0] = '\0';     /* abstract: the name is not NUL-terminated */
    else if (n == sizeof sa->sun_path)
        return 0;                   /* no room for the path's NUL */
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n);
}

/* A socket per message: messages are rare (start, reload, stop, a watchdog
 * ping every few seconds), and nothing stays open across a fork. */
void sd_notify_send(const char *fmt, ...)
{
    const char *path = getenv("NOTIFY_SOCKET");
    struct sockaddr_un sa;
    socklen_t salen;
    char msg[1024];
    va_list ap;
    int fd;

    if (path == NULL || path[0] == '\0')
        return;
    if ((salen = notify_address(path, &sa)) == 0) {
        warn_once("not an absolute path or @name", path, EINVAL);
        return;
    }
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        warn_once("socket", path, errno);
        return;
    }
    if (sendto(fd, msg, strlen(msg), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen) < 0)
        warn_once("sendto", path, errno);
    close(fd);
}

/* WATCHDOG_PID, when set, names the process the watchdog is for: a child
 * that inherited the variables must not ping for its parent. */
long sd_notify_watchdog_ms(void)
{
    const char *usec = getenv("WATCHDOG_USEC"), *pid = getenv("WATCHDOG_PID");
    char *end;
    unsigned long long us;

    if (usec == NULL || getenv("NOTIFY_SOCKET") == NULL)
        return 0;
    if (pid != NULL && pid[0] != '\0' && strtol(pid, NULL, 10) != (long)getpid())
        return 0;
    errno = 0;
    us = strtoull(usec, &end, 10);
    if (errno != 0 || end == usec || *end != '\0' || us == 0)
        return 0;
    us /= 2000;                     /* half the timeout, in ms */
    if (us > 86400000)
        us = 86400000;
    return us > 0 ? (long)us : 1;
}

unsigned long long sd_notify_monotonic_usec(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000ULL;
}
