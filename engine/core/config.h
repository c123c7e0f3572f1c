/* config.h: the merged configuration and where each value came from.
 *
 * Every key is one row of core/config_keys.def: its name, variables,
 * type, default, range, field of struct config, check and help.  That
 * table alone drives the parser, the defaults, `registrar help config`,
 * config_free() and registrar.config.  Adding a key is one row there and
 * its field here. */
#ifndef REGISTRAR_CONFIG_H
#define REGISTRAR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/log.h"

struct cJSON;

enum service_mode { MODE_PRUNE, MODE_TTL };
enum health_mode { HEALTH_REQUIRE, HEALTH_IGNORE };
enum log_format { LOG_FORMAT_TEXT, LOG_FORMAT_JSON };
enum deregister_at { DEREGISTER_AT_DIE, DEREGISTER_AT_STOP };

/* Every key, CK_<NAME>, in the order `registrar help config` lists them. */
enum config_key {
#define KEY(id, ...) id,
#include "core/config_keys.def"
#undef KEY
    CK_COUNT
};

/* What a key's text is converted to, and the C type of its field. */
enum config_type {
    CT_STRING,      /* char *: text without control characters; NULL when unset */
    CT_PATH,        /* char *: the same, naming a file or directory */
    CT_MS,          /* long: whole milliseconds, min to max */
    CT_COUNT,       /* long: a whole number of `unit`, min to max */
    CT_MIB,         /* long: whole MiB, min to max */
    CT_BOOL,        /* bool: true/false, yes/no, on/off, 1/0 */
    CT_CHOICE,      /* an enum: the index of one of `words` */
    CT_LIST,        /* struct config_list: a YAML list, or one string split at spaces/commas */
    CT_HOSTPORT,    /* struct config_hostport: HOST:PORT, or a YAML map {host, port} */
    CT_MAP,         /* struct cJSON *: a free-form YAML map, never a string */
};

struct config_list {
    char **items;
    int len;
};

struct config_hostport {
    char *host;                 /* NULL: unset */
    int port;
};

struct config {
    char *docker;               /* socket path or unix:// tcp:// URI */
    bool docker_tls_verify;
    char *docker_cert_path;     /* NULL: ~/.docker */
    long interval_ms;
    long ttl_ms;
    char *log_file;             /* NULL: stdout */
    enum log_level log_level;
    enum log_format log_format;
    char *hostname;
    char *ipaddress;
    char *prefix_stats;
    char *prefix_services;
    char *prefix_hosts;
    struct config_list prefix_path;
    enum service_mode mode;
    char *backend;
    char *backend_shown;        /* backend with any password redacted: for the log */
    struct config_hostport statsd;  /* host NULL: metrics stay in-process */
    char *naming;               /* "default", "registrator" or a file */
    char *script;               /* site script, NULL for none */
    long script_instructions;   /* budget of one hook call */
    long script_timeout_ms;     /* time one hook call may run */
    long script_memory_mb;      /* cap of the scripts' Lua state */
    enum health_mode health;
    char *network;              /* register container IPs on this network */
    bool explicit_only;         /* only containers that name their service */
    bool register_self;         /* the container registrar runs in gets services too */
    long concurrency;
    long timeout_ms;
    long notify_wait_ms;        /* quiet before changed() runs */
    char *listen;               /* NULL: no endpoints */
    enum deregister_at deregister;
    bool deregister_on_exit;
    char *username, *password, *token;
    char *ca_file, *cert_file, *key_file;
    struct cJSON *site;         /* free-form table for site scripts */

    /* internal: raw values and their origin ("env INTERVAL", "a.yml:3") */
    char *raw[CK_COUNT];
    struct cJSON *raw_tree[CK_COUNT];
    char *where[CK_COUNT];
};

struct config_check;            /* config.c's state while config_finish() runs */

/* One row of the table. */
struct config_key_info {
    const char *name;           /* in YAML and registrar.config */
    enum config_type type;
    size_t field;               /* offsetof(struct config, ...) */
    const char *env;            /* primary variable, NULL if none */
    const char *env_alt;        /* a second accepted variable; env beats it */
    const char *def;            /* the default, parsed as any value is; NULL: unset */
    const char *unset;          /* with no def: what unset means, as help shows it */
    long min, max;              /* numbers: the accepted range */
    const char *unit;           /* counts: what is counted; lists: what the elements are */
    const char *const *words;   /* choices, NULL-terminated; the field holds the index */
    int port;                   /* host:port: the port a map without port: gets */
    size_t shown;               /* non-zero: a char * field with the value's password
                                 * redacted, which logs and registrar.config show */
    bool secret;                /* never in registrar.config, never shown in errors */
    /* Runs after every key is converted, in table order: validates what
     * the type cannot, may fill a computed default or compare keys. */
    int (*check)(struct config_check *ck, enum config_key k);
    const char *help;
};

const struct config_key_info *config_key_info(enum config_key k);
int config_key_find(const char *name);
/* The default as `registrar help config` shows it: def, else unset. */
const char *config_key_default_text(enum config_key k);
/* The field of key k in c, of the C type its config_type names. */
const void *config_field(const struct config *c, enum config_key k);

/* Where key k's value came from: "env INTERVAL", "/etc/r.yml:3", "flag -i"
 * or "default". */
const char *config_origin(const struct config *c, enum config_key k);

void config_init(struct config *c);
void config_free(struct config *c);

/* Each step overrides the one before: defaults < env < YAML < env file < flags.
 * All return 0, or -1 with one line in err naming key, value and origin. */
int config_load_env(struct config *c, char *const *environ, char *err, size_t errlen);
int config_load_yaml(struct config *c, const char *path, char *err, size_t errlen);
int config_load_env_file(struct config *c, const char *path, char *err, size_t errlen);
int config_set(struct config *c, enum config_key k, const char *value, const char *where,
               char *err, size_t errlen);
int config_set_tree(struct config *c, enum config_key k, struct cJSON *tree, const char *where,
                    char *err, size_t errlen);
/* Converts and validates the merged raw values, filling the typed fields. */
int config_finish(struct config *c, char *err, size_t errlen);

#endif
