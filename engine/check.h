/* check.h: `registrar check`. */
#ifndef REGISTRAR_CHECK_H
#define REGISTRAR_CHECK_H

struct config;

#include <stdbool.h>

/* Prints what would be registered for the live containers, or for a file
 * of `docker inspect` answers; 0, 1 when a hook failed, 2 when the
 * scripts do not load.  as_json: one JSON document on stdout instead of
 * the text (the log goes to stderr):
 *   {"containers":[{"index":1,"container":"/web (3f2ad1a466ff)","note":…,"error":…,
 *                   "entries":[{"name":…,"key":…,"value":…}],"warnings":[…]}]} */
int check_run(struct config *c, const char *containers_file, bool as_json);

#endif
