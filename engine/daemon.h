/* daemon.h: `registrar run` and `registrar check`. */
#ifndef REGISTRAR_DAEMON_H
#define REGISTRAR_DAEMON_H

struct cli;
struct config;

/* Takes over *c (zeroing it); SIGHUP rebuilds the config from cli. */
int daemon_run(const struct cli *cli, struct config *c);
int daemon_check(struct config *c, const char *containers_file);

#endif
