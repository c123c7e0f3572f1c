/* fingerprint.c: see fingerprint.h.  Status text changes every second
 * ("Up 5 minutes"), so only its health part is taken; Ports comes in no
 * fixed order, so an entry's are hashed sorted (a whole listing's hash
 * only ever skips work: Docker answering in another order costs one
 * parse). */
#define _GNU_SOURCE             /* memmem */
#include "docker/fingerprint.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME 1099511628211ULL

static unsigned long long fnv(const char *s, unsigned long long h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= FNV_PRIME;
    }
    return h;
}

static unsigned long long fnv_bytes(const char *s, size_t n, unsigned long long h)
{
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* The end of the JSON string whose content starts at s: its closing
 * quote, or end when there is none. */
static const char *string_end(const char *s, const char *end)
{
    while (s < end && *s != '"')
        s += (*s == '\\' && s + 1 < end) ? 2 : 1;
    return s;
}

/* A Ports array, from just past its '[': each element hashed on its own
 * and summed, since Docker lists a container's ports in map order, which
 * changes from one answer to the next.  Returns the end of the array. */
static const char *ports_sum(const char *p, const char *end, unsigned long long *sum)
{
    const char *element = p;
    int depth = 0;
    *sum = 0;
    while (p < end) {
        char c = *p;
        if (c == '"') {
            p = string_end(p + 1, end);
            p += p < end;
            continue;
        }
        if ((c == ']' && depth == 0) || (c == ',' && depth == 0)) {
            *sum += fnv_bytes(element, (size_t)(p - element), FNV_OFFSET);
            element = p + 1;
            if (c == ']')
                return p + 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
        p++;
    }
    return end;
}

static const char *find(const char *p, const char *end, const char *marker, size_t len)
{
    const char *at = memmem(p, (size_t)(end - p), marker, len);
    return at != NULL ? at : end;
}

unsigned long long fingerprint_listing(const char *body, size_t len)
{
    static const char status[] = "\"Status\":\"", ports[] = "\"Ports\":[";
    const char *p = body, *end = body + len;
    const char *next_status = find(p, end, status, sizeof status - 1);
    const char *next_ports = find(p, end, ports, sizeof ports - 1);
    unsigned long long h = FNV_OFFSET, sum;

    while (next_status < end || next_ports < end) {
        if (next_status < next_ports) {
            const char *value = next_status + sizeof status - 1, *close = string_end(value, end);
            const char *health = memchr(value, '(', (size_t)(close - value));
            h = fnv_bytes(p, (size_t)(value - p), h);
            p = health != NULL ? health : close;
        } else {
            const char *array = next_ports + sizeof ports - 1;
            h = fnv_bytes(p, (size_t)(array - p), h);
            p = ports_sum(array, end, &sum);
            h = fnv_bytes((const char *)&sum, sizeof sum, h);
        }
        if (next_status < p)
            next_status = find(p, end, status, sizeof status - 1);
        if (next_ports < p)
            next_ports = find(p, end, ports, sizeof ports - 1);
    }
    h = fnv_bytes(p, (size_t)(end - p), h);
    return h ? h : 1;
}

static int compare_json(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

unsigned long long fingerprint_listed(const cJSON *item)
{
    static const char *const fields[] = { "Names", "Image", "State", "Labels", "NetworkSettings", NULL };
    unsigned long long h = FNV_OFFSET;
    const cJSON *ports = cJSON_GetObjectItemCaseSensitive(item, "Ports"), *p;
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(item, "Status");
    int n = cJSON_GetArraySize(ports), i = 0;
    char **texts = n > 0 ? calloc((size_t)n, sizeof *texts) : NULL;

    for (int f = 0; fields[f]; f++) {
        char *s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(item, fields[f]));
        h = fnv(s ? s : "-", h);
        cJSON_free(s);
    }
    if (cJSON_IsString(status) && strchr(status->valuestring, '('))
        h = fnv(strchr(status->valuestring, '('), h);
    if (texts != NULL) {
        cJSON_ArrayForEach(p, ports)
            texts[i++] = cJSON_PrintUnformatted(p);
        qsort(texts, (size_t)n, sizeof *texts, compare_json);
        for (i = 0; i < n; i++) {
            h = fnv(texts[i] ? texts[i] : "-", h);
            cJSON_free(texts[i]);
        }
        free(texts);
    }
    return h ? h : 1;
}
