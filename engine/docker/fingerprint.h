/* fingerprint.h: a hash of what naming depends on in a container's entry
 * of GET /containers/json.  An entry whose hash is unchanged since the
 * container was read needs no inspect: that keeps a quiet host at one
 * request per interval. */
#ifndef REGISTRAR_DOCKER_FINGERPRINT_H
#define REGISTRAR_DOCKER_FINGERPRINT_H

struct cJSON;

/* Never 0 (0 means "no fingerprint yet"). */
unsigned long long fingerprint_listed(const struct cJSON *item);

#endif
