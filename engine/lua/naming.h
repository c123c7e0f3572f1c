/* naming.h: a container through the naming hooks: what it should have
 * registered. */
#ifndef REGISTRAR_LUA_NAMING_H
#define REGISTRAR_LUA_NAMING_H

#include <stddef.h>

struct cJSON;
struct script;
struct lua_State;

/* One service entry computed by naming. */
struct naming_entry {
    char *key;
    char *value;                /* the bytes the registry should hold */
    char *compare;              /* what the reconciler holds and compares with
                                   advertised(): the backend's compare(entry),
                                   else the value's digest (digest_keyed) */
    char *name;                 /* the service's name, NULL if it has none */
    int ref;                    /* Lua registry ref of the entry table; a
                                   caller that keeps it sets it to 0 */
};

/* Runs the naming pipeline on a container (a cJSON in the scripts' shape).
 * On success *out holds *n entries (free with naming_entries_free); -1
 * with "file:line: message" in err when a hook failed. */
int naming_entries(struct script *s, const struct cJSON *container,
                   struct naming_entry **out, int *n, char *err, size_t errlen);
void naming_entries_free(struct script *s, struct naming_entry *e, int n);

/* Names container again and pushes on co its entry for key (nil, 0 when
 * the naming no longer gives one): for an entry the engine let go of. */
int naming_push_entry(struct lua_State *co, struct script *s, const struct cJSON *container, const char *key);
/* The entry backends get for this host's document (key, value, document,
 * host = true): a registry ref and *value the JSON text written (the
 * caller's to free), or 0 with err. */
int naming_host_entry(struct script *s, const char *key, const struct cJSON *document, char **value,
                      char *err, size_t errlen);

#endif
