/* daemon.h: `registrar run`. */
#ifndef REGISTRAR_DAEMON_H
#define REGISTRAR_DAEMON_H

struct cli;
struct config;

/* Takes over *c (zeroing it); SIGHUP rebuilds the config from cli. */
int daemon_run(const struct cli *cli, struct config *c);

#endif
