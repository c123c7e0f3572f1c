/* container.h: a Docker inspect answer turned into the container table
 * the scripts see (design: "A container as scripts see it"). */
#ifndef REGISTRAR_CONTAINER_H
#define REGISTRAR_CONTAINER_H

#include <stddef.h>

struct cJSON;

/* Returns a new cJSON object, or NULL with the reason in err.  Never trusts
 * the input: missing or mistyped fields are skipped or reported.
 * network_peer: for network mode container:<id>, that container's inspect
 * answer (its networks are this container's), else NULL. */
struct cJSON *container_from_inspect(const struct cJSON *inspect, const struct cJSON *network_peer,
                                     char *err, size_t errlen);

/* Parses raw inspect JSON; the same, for callers holding bytes. */
struct cJSON *container_from_json(const char *json, size_t len, char *err, size_t errlen);

#endif
