/* fingerprint.h: a hash of what naming depends on in a container's entry
 * of GET /containers/json.  An entry whose hash is unchanged since the
 * container was read needs no inspect: that keeps a quiet host at one
 * request per interval. */
#ifndef REGISTRAR_DOCKER_FINGERPRINT_H
#define REGISTRAR_DOCKER_FINGERPRINT_H

struct cJSON;

#include <stddef.h>

/* Never 0 (0 means "no fingerprint yet"). */
unsigned long long fingerprint_listed(const struct cJSON *item);

/* A hash of a whole GET /containers/json answer as Docker sent it, each
 * "Status" string taken from its '(' on (the health part; "Up 5 minutes"
 * changes on its own) and each "Ports" array in any order.  An answer with
 * the same hash as the last one lists the same containers the same way,
 * and is not even parsed.  Never 0. */
unsigned long long fingerprint_listing(const char *body, size_t len);

#endif
