/* fingerprint.c: see fingerprint.h.  Status text changes every second
 * ("Up 5 minutes"), so only its health part is taken; Ports comes in no
 * fixed order, so it is hashed sorted. */
#include "docker/fingerprint.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long fnv(const char *s, unsigned long long h)
{
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static int compare_json(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

unsigned long long fingerprint_listed(const cJSON *item)
{
    static const char *const fields[] = { "Names", "Image", "State", "Labels", "NetworkSettings", NULL };
    unsigned long long h = 14695981039346656037ULL;
    const cJSON *ports = cJSON_GetObjectItemCaseSensitive(item, "Ports"), *p;
    const cJSON *status = cJSON_GetObjectItemCaseSensitive(item, "Status");
    int n = cJSON_GetArraySize(ports), i = 0;
    char **texts = n > 0 ? calloc((size_t)n, sizeof *texts) : NULL;

    for (int f = 0; fields[f]; f++) {
        char *s = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(item, fields[f]));
        h = fnv(s ? s : "-", h);
        free(s);
    }
    if (cJSON_IsString(status) && strchr(status->valuestring, '('))
        h = fnv(strchr(status->valuestring, '('), h);
    if (texts != NULL) {
        cJSON_ArrayForEach(p, ports)
            texts[i++] = cJSON_PrintUnformatted(p);
        qsort(texts, (size_t)n, sizeof *texts, compare_json);
        for (i = 0; i < n; i++) {
            h = fnv(texts[i] ? texts[i] : "-", h);
            free(texts[i]);
        }
        free(texts);
    }
    return h ? h : 1;
}
