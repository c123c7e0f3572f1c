/* check.h: `registrar check`. */
#ifndef REGISTRAR_CHECK_H
#define REGISTRAR_CHECK_H

struct config;

/* Prints what would be registered for the live containers, or for a file
 * of `docker inspect` answers; 0, 1 when a hook failed, 2 when the
 * scripts do not load. */
int check_run(struct config *c, const char *containers_file);

#endif
