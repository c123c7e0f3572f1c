/* map.h: a string-keyed hash map (container ids, registry keys). */
#ifndef REGISTRAR_MAP_H
#define REGISTRAR_MAP_H

#include <stdbool.h>
#include <stddef.h>

struct map;
struct map_node;

struct map_iter {
    const struct map *map;
    size_t bucket;
    struct map_node *next;
};

struct map *map_new(void);
/* free_value may be NULL. */
void map_free(struct map *m, void (*free_value)(void *));

void *map_get(const struct map *m, const char *key);
/* The map's own copy of key, or NULL when key is not in it: a value that
 * needs its key can point here instead of holding a second copy (it is
 * valid until the key is removed). */
const char *map_key(const struct map *m, const char *key);
/* Stores value under a copy of key; returns the value it replaced, or NULL.
 * *failed is set on allocation failure (may be NULL). */
void *map_put(struct map *m, const char *key, void *value, bool *failed);
void *map_remove(struct map *m, const char *key);
size_t map_count(const struct map *m);

/* Iteration order is arbitrary.  While iterating, only the entry just
 * returned may be removed, and nothing may be added. */
void map_iter_init(struct map_iter *it, const struct map *m);
bool map_iter_next(struct map_iter *it, const char **key, void **value);

#endif
