/* docker.h: requests to the Docker Engine API (or Podman's compatible
 * one): where it is, how to reach it, and which API version to speak. */
#ifndef REGISTRAR_DOCKER_H
#define REGISTRAR_DOCKER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/http.h"

#define DOCKER_API_MIN "1.24"
#define DOCKER_API_MAX "1.43"

struct config;

struct docker {
    struct http *http;
    char *socket;               /* unix socket path, or NULL for TCP */
    char *base_url;             /* "http://docker", "https://host:2376" */
    char *where;                /* as the user wrote it, for messages */
    struct http_tls tls;
    bool use_tls;
    char version[16];           /* negotiated, "1.41"; empty until then */
    long requests;              /* sent since start */
};

int docker_init(struct docker *d, struct http *h, const struct config *c, char *err, size_t errlen);
void docker_free(struct docker *d);

/* GET /version: answer handed to done; docker_negotiate then reads it. */
struct http_transfer *docker_get_version(struct docker *d, http_done_fn *done, void *arg);
/* Picks min(daemon's ApiVersion, DOCKER_API_MAX); -1 with err if unusable. */
int docker_negotiate(struct docker *d, const struct http_response *res, char *err, size_t errlen);

/* Answers past these sizes are refused: a Docker API (or something that
 * pretends to be one) may send anything.  A container's inspect is tens
 * of KiB; a listing of 10 000 containers about 20 MiB. */
#define DOCKER_MAX_INSPECT (8L << 20)
#define DOCKER_MAX_LIST (256L << 20)

/* GET /v<version><path> (path starts with '/'). */
struct http_transfer *docker_get(struct docker *d, const char *path, size_t max_body,
                                 http_done_fn *done, void *arg);

/* The events stream for containers and network (dis)connects. */
struct http_transfer *docker_events(struct docker *d, http_head_fn *on_head, http_data_fn *on_data,
                                    http_done_fn *done, void *arg);

#endif
