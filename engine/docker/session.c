/* docker.c: the Docker Engine API endpoint.  `docker` (DOCKER_SOCKET) is
 * a socket path or a URI; DOCKER_HOST is read as the docker CLI reads it:
 * unix://PATH, tcp://HOST:PORT, with TLS when DOCKER_TLS_VERIFY is set,
 * using ca.pem, cert.pem and key.pem from DOCKER_CERT_PATH. */
#include "docker/session.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/json.h"
#include "core/text.h"

#define DOCKER_TIMEOUT_MS 10000L
#define DOCKER_MAX_SMALL (1L << 20)     /* /version */

static char *cert_file(const struct config *c, const char *name)
{
    char path[4096];
    const char *dir = c->docker_cert_path, *home = getenv("HOME");
    if (dir != NULL)
        snprintf(path, sizeof path, "%s/%s", dir, name);
    else
        snprintf(path, sizeof path, "%s/.docker/%s", home ? home : "", name);
    return strdup(path);
}

int docker_init(struct docker *d, struct http *h, const struct config *c, char *err, size_t errlen)
{
    const char *v = c->docker;
    const char *where = c->where[CK_DOCKER] ? c->where[CK_DOCKER] : "default";
    char url[600];

    memset(d, 0, sizeof *d);
    d->http = h;
    d->where = strdup(text_redact_uri(v, url, sizeof url));
    /* config.c checked the form: a path, unix:///PATH or tcp://HOST[:PORT] */
    if (strncmp(v, "unix://", 7) == 0 || v[0] == '/') {
        d->socket = strdup(v[0] == '/' ? v : v + 7);
        d->base_url = strdup("http://docker");
    } else if (strncmp(v, "tcp://", 6) == 0) {
        const char *hostport = v + 6;
        size_t n = strcspn(hostport, "/");
        const char *bracket = memchr(hostport, ']', n);
        bool has_port = memchr(bracket ? bracket : hostport, ':', n - (size_t)((bracket ? bracket : hostport) - hostport)) != NULL;
        d->use_tls = c->docker_tls_verify;
        if (n > 500) {
            snprintf(err, errlen, "docker: \"%.60s...\" is too long (%s)", v, where);
            return -1;
        }
        /* the docker CLI's default ports: 2376 with TLS, 2375 without */
        snprintf(url, sizeof url, "%s://%.*s%s", d->use_tls ? "https" : "http", (int)n, hostport,
                 has_port ? "" : (d->use_tls ? ":2376" : ":2375"));
        d->base_url = strdup(url);
        if (d->use_tls) {
            d->tls.ca_file = cert_file(c, "ca.pem");
            d->tls.cert_file = cert_file(c, "cert.pem");
            d->tls.key_file = cert_file(c, "key.pem");
        }
    } else {
        snprintf(err, errlen, "docker: \"%s\" is not a socket path, unix:///PATH or tcp://HOST:PORT (%s)",
                 d->where, where);
        return -1;
    }
    return 0;
}

void docker_free(struct docker *d)
{
    free(d->socket);
    free(d->base_url);
    free(d->where);
    free((char *)d->tls.ca_file);
    free((char *)d->tls.cert_file);
    free((char *)d->tls.key_file);
    memset(d, 0, sizeof *d);
}

static struct http_transfer *request(struct docker *d, const char *url, long timeout_ms, size_t max_body,
                                     http_head_fn *on_head, http_data_fn *on_data,
                                     http_done_fn *done, void *arg)
{
    struct http_request req = {
        .max_body = max_body,
        .url = url,
        .unix_socket = d->socket,
        .timeout_ms = timeout_ms,
        .connect_timeout_ms = 3000,
        .tls = d->use_tls ? &d->tls : NULL,
        .on_head = on_head,
        .on_data = on_data,
    };
    d->requests++;
    return http_start(d->http, &req, done, arg);
}

struct http_transfer *docker_get_version(struct docker *d, http_done_fn *done, void *arg)
{
    char url[700];
    snprintf(url, sizeof url, "%s/version", d->base_url);
    return request(d, url, DOCKER_TIMEOUT_MS, DOCKER_MAX_SMALL, NULL, NULL, done, arg);
}

/* "1.41" -> 141; 0 when it is not MAJOR.MINOR. */
static int version_number(const char *v)
{
    int major, minor;
    char tail;
    if (v == NULL || sscanf(v, "%d.%d%c", &major, &minor, &tail) != 2 || major < 1 || minor < 0 || minor > 99)
        return 0;
    return major * 100 + minor;
}

int docker_negotiate(struct docker *d, const struct http_response *res, char *err, size_t errlen)
{
    cJSON *v = json_parse(res->body, res->body_len, NULL);
    const cJSON *api = cJSON_GetObjectItemCaseSensitive(v, "ApiVersion");
    int theirs = version_number(cJSON_IsString(api) ? api->valuestring : NULL);
    int rc = 0;

    if (res->status != 200 || theirs == 0) {
        snprintf(err, errlen, "GET /version answered %ld without an ApiVersion: is %s a Docker API?",
                 res->status, d->where);
        rc = -1;
    } else if (theirs < version_number(DOCKER_API_MIN)) {
        snprintf(err, errlen, "Docker API %s at %s is older than %s, the oldest registrar speaks",
                 api->valuestring, d->where, DOCKER_API_MIN);
        rc = -1;
    } else {
        snprintf(d->version, sizeof d->version, "%s",
                 theirs < version_number(DOCKER_API_MAX) ? api->valuestring : DOCKER_API_MAX);
    }
    cJSON_Delete(v);
    return rc;
}

struct http_transfer *docker_get(struct docker *d, const char *path, size_t max_body,
                                 http_done_fn *done, void *arg)
{
    char url[1200];
    snprintf(url, sizeof url, "%s/v%s%s", d->base_url, d->version, path);
    return request(d, url, DOCKER_TIMEOUT_MS, max_body, NULL, NULL, done, arg);
}

struct http_transfer *docker_events(struct docker *d, http_head_fn *on_head, http_data_fn *on_data,
                                    http_done_fn *done, void *arg)
{
    char url[1200];
    /* filters={"type":["container","network"]}: network events carry
     * connect/disconnect, which change a container's addresses */
    snprintf(url, sizeof url, "%s/v%s/events?filters=%%7B%%22type%%22%%3A%%5B%%22container%%22%%2C"
             "%%22network%%22%%5D%%7D", d->base_url, d->version);
    return request(d, url, 0, 0, on_head, on_data, done, arg);
}
