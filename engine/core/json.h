/* json.h: reading JSON that comes from outside (Docker, registries,
 * files), whole and without losing bytes. */
#ifndef REGISTRAR_JSON_H
#define REGISTRAR_JSON_H

#include <stddef.h>

struct cJSON;

/* Parses exactly one JSON value filling text (white space around it is
 * allowed).  NULL when it is not that; *error_at (if not NULL) then points
 * at the first byte that is wrong.  cJSON keeps strings NUL-terminated, so
 * an escaped NUL (\u0000) would silently cut a value short: it is read as
 * U+FFFD instead, as a byte that is not UTF-8 is. */
struct cJSON *json_parse(const char *text, size_t len, const char **error_at);

#endif
