/* status.c: `registrar status`: asks a running registrar (its `listen`
 * address) for /health and /services and prints them for a person:
 *
 *   CONTAINER   SERVICE     STATE       KEY
 *   /web        web-80      registered  /services/web/80/32768/3f2ad1a466ff
 *   healthy: Docker reached 0.4 s ago, registry reached 0.4 s ago
 *
 * Exit status: 0 healthy, 1 not, 2 when it cannot be asked. */
#include "status.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buffer.h"
#include "core/config.h"
#include "core/text.h"

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
    return buffer_append(arg, data, size * n) == 0 ? size * n : 0;
}

/* GET http://<listen><path> into body; the HTTP status, or -1. */
static long fetch(const char *listen, const char *path, struct buffer *body, char *err, size_t errlen)
{
    char host[256], url[400];
    int port;
    long status = -1;
    CURL *e;
    CURLcode rc;

    if (text_host_port(listen, "127.0.0.1", host, sizeof host, &port) < 0) {
        snprintf(err, errlen, "listen: \"%s\" is not PORT, HOST:PORT or [ADDRESS]:PORT", listen);
        return -1;
    }
    if (strcmp(host, "0.0.0.0") == 0)
        snprintf(host, sizeof host, "127.0.0.1");    /* listening everywhere: ask here */
    else if (strcmp(host, "::") == 0)
        snprintf(host, sizeof host, "::1");
    snprintf(url, sizeof url, strchr(host, ':') ? "http://[%s]:%d%s" : "http://%s:%d%s", host, port, path);
    e = curl_easy_init();
    if (e == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");      /* it is this host's registrar */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    rc = curl_easy_perform(e);
    if (rc == CURLE_OK)
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    else
        snprintf(err, errlen, "cannot ask the registrar at %s: %s", url, curl_easy_strerror(rc));
    curl_easy_cleanup(e);
    return status;
}

static const char *text_of(const cJSON *obj, const char *name, const char *otherwise)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(v) ? v->valuestring : otherwise;
}

static void print_services(const cJSON *doc)
{
    const cJSON *item, *list = cJSON_GetObjectItemCaseSensitive(doc, "services");
    printf("%-24s %-24s %-11s %s\n", "CONTAINER", "SERVICE", "STATE", "KEY");
    cJSON_ArrayForEach(item, list) {
        char container[32];
        const char *name = text_of(item, "container_name", NULL), *id = text_of(item, "container", "-");
        if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(item, "host_document")))
            name = "(this host)";
        snprintf(container, sizeof container, "%.24s", name ? name : id);
        printf("%-24s %-24.24s %-11s %s\n", container, text_of(item, "service", "-"),
               text_of(item, "state", "?"), text_of(item, "key", "?"));
        if (cJSON_GetObjectItemCaseSensitive(item, "error") != NULL)
            printf("%-24s %-24s %-11s since %s: %s\n", "", "", "", text_of(item, "failing_since", "?"),
                   text_of(item, "error", ""));
    }
    if (cJSON_GetArraySize(list) == 0)
        printf("(no entries)\n");
}

/* "Docker reached 0.4 s ago" / "Docker unreachable since 2026-..." */
static void describe(const char *what, const cJSON *part, char *buf, size_t len)
{
    const cJSON *ago = cJSON_GetObjectItemCaseSensitive(part, "reached_seconds_ago");
    const char *since = text_of(part, "unreachable_since", NULL);
    if (since != NULL)
        snprintf(buf, len, "%s unreachable since %s", what, since);
    else if (cJSON_IsNumber(ago))
        snprintf(buf, len, "%s reached %.1f s ago", what, ago->valuedouble);
    else
        snprintf(buf, len, "%s not reached yet", what);
}

static void print_health(const cJSON *doc, bool healthy)
{
    const cJSON *docker = cJSON_GetObjectItemCaseSensitive(doc, "docker");
    const cJSON *registry = cJSON_GetObjectItemCaseSensitive(doc, "registry");
    const cJSON *failing = cJSON_GetObjectItemCaseSensitive(registry, "failing_entries");
    char d[200], r[200];
    describe("Docker", docker, d, sizeof d);
    describe("registry", registry, r, sizeof r);
    printf("%s: %s, %s", healthy ? "healthy" : "unhealthy", d, r);
    if (cJSON_IsNumber(failing) && failing->valuedouble > 0)
        printf(", %d entries failing since %s", (int)failing->valuedouble, text_of(registry, "failing_since", "?"));
    printf("\n");
}

int status_run(const struct config *c)
{
    struct buffer health = { 0 }, services = { 0 };
    char err[600];
    long hs, ss;
    cJSON *h = NULL, *s = NULL;
    int rc = 2;

    if (c->listen == NULL) {
        fprintf(stderr, "registrar: status: no listen address to ask (set --listen, LISTEN or listen:)\n");
        return 2;
    }
    hs = fetch(c->listen, "/health", &health, err, sizeof err);
    ss = hs < 0 ? -1 : fetch(c->listen, "/services", &services, err, sizeof err);
    if (hs < 0 || ss < 0) {
        fprintf(stderr, "registrar: status: %s\n", err);
    } else if ((h = cJSON_Parse(health.data ? health.data : "")) == NULL ||
               (s = cJSON_Parse(services.data ? services.data : "")) == NULL) {
        fprintf(stderr, "registrar: status: %s answered something that is not a registrar's status\n", c->listen);
    } else {
        print_services(s);
        print_health(h, hs == 200);
        rc = hs == 200 ? 0 : 1;
    }
    cJSON_Delete(h);
    cJSON_Delete(s);
    buffer_free(&health);
    buffer_free(&services);
    return rc;
}
