/* json.c: see json.h. */
#define _GNU_SOURCE             /* memmem */
#include "core/json.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/slab.h"

/* Is the backslash at text[i] an escape, not the second half of "\\"? */
static bool escapes(const char *text, size_t i)
{
    size_t run = 0;
    while (run < i && text[i - run - 1] == '\\')
        run++;
    return run % 2 == 0;
}

/* A copy with each escaped NUL turned into U+FFFD (both six bytes), or
 * NULL when there is none to turn. */
static char *without_nul_escapes(const char *text, size_t len)
{
    char *copy = NULL;
    for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), "\\u0000", 6)) != NULL; p += 6) {
        size_t at = (size_t)(p - text);
        if (!escapes(text, at))
            continue;
        if (copy == NULL && (copy = malloc(len ? len : 1)) != NULL)
            memcpy(copy, text, len);
        if (copy == NULL)
            return NULL;
        memcpy(copy + at, "\\ufffd", 6);
    }
    return copy;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

static const char *skip_space(const char *p, const char *end)
{
    while (p < end && is_space(*p))
        p++;
    return p;
}

cJSON *json_parse(const char *text, size_t len, const char **error_at)
{
    const char *nul = memchr(text, '\0', len), *end = NULL;
    char *copy;
    const char *src;
    cJSON *v;

    if (nul != NULL) {          /* never valid JSON, and cJSON would stop there */
        if (error_at)
            *error_at = nul;
        return NULL;
    }
    copy = without_nul_escapes(text, len);
    src = copy ? copy : text;
    v = cJSON_ParseWithLengthOpts(src, len, &end, 0);
    if (v != NULL) {
        end = skip_space(end, src + len);
        if (end != src + len) {
            cJSON_Delete(v);
            v = NULL;
        }
    } else {
        end = cJSON_GetErrorPtr();
        if (end == NULL || end < src || end > src + len)
            end = src;
    }
    if (v == NULL && error_at)
        *error_at = text + (end - src);
    free(copy);
    return v;
}

/* Each element is parsed on its own, right after the one before it: the
 * tree in memory is one element's, not the whole array's. */
static bool each_element(const char *p, const char *end, json_element_fn *fn, void *arg)
{
    p = skip_space(p, end);
    if (p == end || *p != '[')
        return false;
    p = skip_space(p + 1, end);
    if (p < end && *p == ']')
        return skip_space(p + 1, end) == end;
    for (;;) {
        const char *after = NULL;
        cJSON *item = cJSON_ParseWithLengthOpts(p, (size_t)(end - p), &after, 0);
        bool taken;
        if (item == NULL)
            return false;
        taken = fn(item, arg);
        cJSON_Delete(item);
        if (!taken)
            return false;
        p = skip_space(after, end);
        if (p < end && *p == ']')
            return skip_space(p + 1, end) == end;
        if (p == end || *p != ',')
            return false;
        p++;
    }
}

bool json_each_element(const char *text, size_t len, json_element_fn *fn, void *arg)
{
    char *copy;
    bool whole;
    if (memchr(text, '\0', len) != NULL)
        return false;
    copy = without_nul_escapes(text, len);
    whole = each_element(copy ? copy : text, (copy ? copy : text) + len, fn, arg);
    free(copy);
    return whole;
}

/* ---- where trees live ----------------------------------------------------- */

/* cJSON lets go of its blocks without their size: each carries it. */
#define SIZE_PREFIX 16          /* keeps cJSON's doubles and pointers aligned */

static void *slab_block(size_t size)
{
    size_t *p = slab_alloc(size + SIZE_PREFIX);
    if (p == NULL)
        return NULL;
    *p = size + SIZE_PREFIX;
    return (char *)p + SIZE_PREFIX;
}

static void slab_block_free(void *p)
{
    size_t *at;
    if (p == NULL)
        return;
    at = (size_t *)((char *)p - SIZE_PREFIX);
    slab_free(at, *at);
}

void json_trees_in_slabs(void)
{
    cJSON_Hooks hooks = { slab_block, slab_block_free };
    cJSON_InitHooks(&hooks);
}
