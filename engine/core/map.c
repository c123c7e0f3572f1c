/* map.c: separate chaining, FNV-1a, doubling at load 1.  Nodes live as
 * long as what they key (a container, a registry key): they are slab
 * records. */
#include "core/map.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/slab.h"

struct map_node {
    struct map_node *next;
    uint64_t hash;
    void *value;
    char key[];
};

struct map {
    struct map_node **buckets;
    size_t nbuckets;
    size_t count;
};

static size_t node_size(size_t key_len) { return sizeof(struct map_node) + key_len + 1; }

static void node_free(struct map_node *n) { slab_free(n, node_size(strlen(n->key))); }

static uint64_t hash_key(const char *s)
{
    uint64_t h = 14695981039346656037ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

struct map *map_new(void)
{
    struct map *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    m->nbuckets = 16;
    m->buckets = calloc(m->nbuckets, sizeof *m->buckets);
    if (m->buckets == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void map_free(struct map *m, void (*free_value)(void *))
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct map_node *n = m->buckets[i], *next;
        for (; n != NULL; n = next) {
            next = n->next;
            if (free_value)
                free_value(n->value);
            node_free(n);
        }
    }
    free(m->buckets);
    free(m);
}

static struct map_node **find(const struct map *m, const char *key, uint64_t h)
{
    struct map_node **p = &m->buckets[h & (m->nbuckets - 1)];
    for (; *p != NULL; p = &(*p)->next)
        if ((*p)->hash == h && strcmp((*p)->key, key) == 0)
            return p;
    return p;
}

void *map_get(const struct map *m, const char *key)
{
    struct map_node *n = *find(m, key, hash_key(key));
    return n ? n->value : NULL;
}

const char *map_key(const struct map *m, const char *key)
{
    struct map_node *n = *find(m, key, hash_key(key));
    return n ? n->key : NULL;
}

static void grow(struct map *m)
{
    size_t nb = m->nbuckets * 2;
    struct map_node **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return;                 /* a longer chain is slower, not wrong */
    for (size_t i = 0; i < m->nbuckets; i++) {
        struct map_node *n = m->buckets[i], *next;
        for (; n != NULL; n = next) {
            next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    }
    free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
}

void *map_put(struct map *m, const char *key, void *value, bool *failed)
{
    uint64_t h = hash_key(key);
    struct map_node **p = find(m, key, h), *n;
    size_t len;

    if (failed)
        *failed = false;
    if (*p != NULL) {
        void *old = (*p)->value;
        (*p)->value = value;
        return old;
    }
    len = strlen(key);
    n = slab_alloc(node_size(len));
    if (n == NULL) {
        if (failed)
            *failed = true;
        return NULL;
    }
    memcpy(n->key, key, len + 1);
    n->hash = h;
    n->value = value;
    n->next = NULL;
    *p = n;
    if (++m->count > m->nbuckets)
        grow(m);
    return NULL;
}

void *map_remove(struct map *m, const char *key)
{
    struct map_node **p = find(m, key, hash_key(key)), *n = *p;
    void *value;
    if (n == NULL)
        return NULL;
    *p = n->next;
    value = n->value;
    node_free(n);
    m->count--;
    return value;
}

size_t map_count(const struct map *m) { return m->count; }

void map_iter_init(struct map_iter *it, const struct map *m)
{
    it->map = m;
    it->bucket = 0;
    it->next = NULL;
}

bool map_iter_next(struct map_iter *it, const char **key, void **value)
{
    struct map_node *n = it->next;
    while (n == NULL) {
        if (it->bucket >= it->map->nbuckets)
            return false;
        n = it->map->buckets[it->bucket++];
    }
    it->next = n->next;
    *key = n->key;
    if (value)
        *value = n->value;
    return true;
}
