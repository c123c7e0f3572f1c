/* sd_notify.h: tells the service manager how registrar is doing, over
 * systemd's NOTIFY_SOCKET datagram protocol (sd_notify(3)): READY=1,
 * RELOADING=1, STOPPING=1, STATUS=..., WATCHDOG=1.  Without NOTIFY_SOCKET
 * (not started by systemd with Type=notify) every call does nothing. */
#ifndef REGISTRAR_SD_NOTIFY_H
#define REGISTRAR_SD_NOTIFY_H

/* Sends one datagram of newline-separated VAR=VALUE assignments.  A
 * failure is logged once, as a warning; the daemon carries on. */
void sd_notify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* How often to send WATCHDOG=1: half of WATCHDOG_USEC, in ms (at least 1),
 * when the service manager asked this process for it; else 0. */
long sd_notify_watchdog_ms(void);

/* CLOCK_MONOTONIC in microseconds, for RELOADING=1's MONOTONIC_USEC=. */
unsigned long long sd_notify_monotonic_usec(void);

#endif
