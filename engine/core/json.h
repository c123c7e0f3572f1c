/* json.h: reading JSON that comes from outside (Docker, registries,
 * files), whole and without losing bytes. */
#ifndef REGISTRAR_JSON_H
#define REGISTRAR_JSON_H

#include <stdbool.h>
#include <stddef.h>

struct cJSON;

/* Parses exactly one JSON value filling text (white space around it is
 * allowed).  NULL when it is not that; *error_at (if not NULL) then points
 * at the first byte that is wrong.  cJSON keeps strings NUL-terminated, so
 * an escaped NUL (\u0000) would silently cut a value short: it is read as
 * U+FFFD instead, as a byte that is not UTF-8 is. */
struct cJSON *json_parse(const char *text, size_t len, const char **error_at);

/* Reads text as one JSON array, handing fn each element in turn (the
 * element is freed when fn returns): a large array is never in memory
 * as a whole tree.  fn returns false to stop.  True when text is exactly
 * one array and fn took every element of it; elements before the one
 * that was wrong have been handed over by then. */
typedef bool json_element_fn(const struct cJSON *element, void *arg);
bool json_each_element(const char *text, size_t len, json_element_fn *fn, void *arg);

/* From now on cJSON's trees and texts are slab records (core/slab.h):
 * a start-up's parse trees then leave no holes among the heap's long-lived
 * allocations.  Texts cJSON prints go back with cJSON_free. */
void json_trees_in_slabs(void);

#endif
