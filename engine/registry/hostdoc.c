/* hostdoc.c: see hostdoc.h.  The document is
 *
 *   {"hostname":"web-3","ipaddress":"10.0.1.100","version":"0.1.0",
 *    "services":2,"keys":["/services/...", ...],"synced":"2026-12-01T10:00:03Z"}
 *
 * and the reconciler keeps it as it keeps a container's entries, under an
 * owner no container can be: written only when it changes, retried when
 * the registry fails, expired with the services in ttl mode, removed by
 * deregister_on_exit.  "synced" is the time of the listing at which it
 * last changed: a quiet host writes nothing, ever (prune mode), and the
 * time moves at most once per interval, since documents are made at
 * listings only. */
#include "registry/hostdoc.h"

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/config.h"
#include "core/digest.h"
#include "core/log.h"
#include "lua/naming.h"
#include "registry/reconcile.h"

struct hostdoc {
    const struct config *c;
    char *key;
    bool handed;                /* a document went to the reconciler */
    char content[DIGEST_HEX_LEN + 1];  /* the last one's digest, without "synced"
                                           (the text is a MiB at 10 000 containers) */
    unsigned long long keys_sum;/* of the keys it names (keys_sum()) */
};

struct hostdoc *hostdoc_new(const struct config *c)
{
    struct hostdoc *h = calloc(1, sizeof *h);
    size_t n = strlen(c->prefix_hosts);
    char key[600];
    if (h == NULL)
        return NULL;
    while (n > 0 && c->prefix_hosts[n - 1] == '/')
        n--;                    /* one '/' between prefix and name */
    snprintf(key, sizeof key, "%.*s/%s", (int)n, c->prefix_hosts, c->hostname);
    h->c = c;
    h->key = strdup(key);
    if (h->key == NULL) {
        free(h);
        return NULL;
    }
    return h;
}

const char *hostdoc_key(const struct hostdoc *h) { return h->key; }

void hostdoc_free(struct hostdoc *h)
{
    if (h == NULL)
        return;
    free(h->key);
    free(h);
}

struct keys {
    char **v;
    int n, cap;
};

static void add_key(void *arg, const struct reconcile_entry_view *e)
{
    struct keys *k = arg;
    if (e->owner == NULL || strcmp(e->owner, HOSTDOC_OWNER) == 0)
        return;                 /* on its way out, or this document itself */
    if (k->n == k->cap) {
        int cap = k->cap ? k->cap * 2 : 64;
        char **grown = realloc(k->v, (size_t)cap * sizeof *grown);
        if (grown == NULL)
            return;
        k->v = grown;
        k->cap = cap;
    }
    k->v[k->n++] = (char *)e->key;     /* valid until r changes */
}

/* An order-free hash of the key list: a listing that changed nothing (the
 * common case, once per interval) costs no document. */
static unsigned long long keys_sum(const struct keys *k)
{
    unsigned long long sum = (unsigned long long)k->n;
    for (int i = 0; i < k->n; i++) {
        unsigned long long h = 14695981039346656037ULL;
        for (const char *c = k->v[i]; *c; c++)
            h = (h ^ (unsigned char)*c) * 1099511628211ULL;
        sum += h;
    }
    return sum;
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static cJSON *document(const struct config *c, struct keys *k)
{
    cJSON *doc = cJSON_CreateObject(), *keys = cJSON_AddArrayToObject(doc, "keys");
    if (k->n > 1)               /* k->v is NULL for a host with no keys */
        qsort(k->v, (size_t)k->n, sizeof *k->v, compare_keys);
    for (int i = 0; i < k->n; i++)
        cJSON_AddItemToArray(keys, cJSON_CreateString(k->v[i]));
    cJSON_AddStringToObject(doc, "hostname", c->hostname);
    cJSON_AddStringToObject(doc, "ipaddress", c->ipaddress);
    cJSON_AddNumberToObject(doc, "services", k->n);
    cJSON_AddStringToObject(doc, "version", REGISTRAR_VERSION);
    return doc;
}

static void add_synced(cJSON *doc)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
    cJSON_AddStringToObject(doc, "synced", when);
}

/* The registry holds a document that says the same (an earlier run's, at
 * start-up): keep its time, so a restart with nothing changed writes
 * nothing.  Then doc gets that time and true is returned. */
static bool kept(struct reconcile *r, const char *key, cJSON *doc)
{
    const char *held = reconcile_held_value(r, key);
    cJSON *old = held ? cJSON_Parse(held) : NULL, *synced = cJSON_DetachItemFromObject(old, "synced");
    bool same = old != NULL && cJSON_IsString(synced) && cJSON_Compare(old, doc, true);
    if (same)
        cJSON_AddItemToObject(doc, "synced", synced);
    else
        cJSON_Delete(synced);
    cJSON_Delete(old);
    return same;
}

void hostdoc_update(struct hostdoc *h, struct reconcile *r, struct script *s)
{
    struct keys k = { NULL, 0, 0 };
    cJSON *doc;
    char *content, digest[DIGEST_HEX_LEN + 1], *value = NULL, err[600];
    bool printed;
    unsigned long long sum;
    int ref;

    reconcile_each_entry(r, add_key, &k);
    sum = keys_sum(&k);
    if (h->handed && sum == h->keys_sum) {
        free(k.v);
        return;
    }
    doc = document(h->c, &k);
    free(k.v);
    content = cJSON_PrintUnformatted(doc);
    printed = content != NULL;
    if (printed)
        digest_keyed(content, strlen(content), digest);
    cJSON_free(content);
    if (!printed || (h->handed && strcmp(digest, h->content) == 0)) {
        if (printed)
            h->keys_sum = sum;
        cJSON_Delete(doc);
        return;
    }
    if (!kept(r, h->key, doc))
        add_synced(doc);
    ref = naming_host_entry(s, h->key, doc, &value, err, sizeof err);
    cJSON_Delete(doc);
    if (ref == 0) {
        log_warn("host document %s: %s; tried again at the next listing", h->key, err);
        return;
    }
    {
        struct reconcile_want want = { h->key, value, "host document", ref, NULL };   /* ref holds value */
        reconcile_container(r, HOSTDOC_OWNER, "this host", &want, 1);
    }
    free(value);
    h->handed = true;
    memcpy(h->content, digest, sizeof h->content);
    h->keys_sum = sum;
}
