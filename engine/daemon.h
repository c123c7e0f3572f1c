/* daemon.h: `registrar run` and `registrar check`. */
#ifndef REGISTRAR_DAEMON_H
#define REGISTRAR_DAEMON_H

struct config;

int daemon_run(struct config *c);
int daemon_check(struct config *c, const char *containers_file);

#endif
