/* config.h: the merged configuration and where each value came from. */
#ifndef REGISTRAR_CONFIG_H
#define REGISTRAR_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "core/log.h"

struct cJSON;

enum service_mode { MODE_PRUNE, MODE_TTL };
enum health_mode { HEALTH_REQUIRE, HEALTH_IGNORE };

/* Every key, in the order `registrar help config` lists them. */
enum config_key {
    CK_DOCKER, CK_DOCKER_TLS_VERIFY, CK_DOCKER_CERT_PATH,
    CK_INTERVAL, CK_TTL, CK_LOG, CK_LOG_LEVEL,
    CK_HOSTNAME, CK_IPADDRESS,
    CK_PREFIX_STATS, CK_PREFIX_SERVICES, CK_PREFIX_HOSTS, CK_PREFIX_PATH,
    CK_SERVICE_TTL, CK_BACKEND, CK_STATSD,
    CK_NAMING, CK_SCRIPT, CK_SCRIPT_INSTRUCTIONS, CK_SCRIPT_TIMEOUT, CK_SCRIPT_MEMORY,
    CK_HEALTH, CK_NETWORK, CK_EXPLICIT, CK_CONCURRENCY, CK_TIMEOUT,
    CK_USERNAME, CK_PASSWORD, CK_TOKEN, CK_CA_FILE, CK_CERT_FILE, CK_KEY_FILE,
    CK_SITE,
    CK_COUNT
};

struct config {
    char *docker;               /* socket path or unix:// tcp:// URI */
    bool docker_tls_verify;
    char *docker_cert_path;
    long interval_ms;
    long ttl_ms;
    char *log_file;             /* NULL: stdout */
    enum log_level log_level;
    char *hostname;
    char *ipaddress;
    char *prefix_stats;
    char *prefix_services;
    char *prefix_hosts;
    char **prefix_path;
    int prefix_path_len;
    enum service_mode mode;
    char *backend;
    char *backend_shown;        /* backend with any password redacted: for the log */
    char *statsd_host;          /* NULL: metrics stay in-process */
    int statsd_port;
    char *naming;               /* "default", "registrator" or a file */
    char *script;               /* site script, NULL for none */
    long script_instructions;   /* budget of one hook call */
    long script_timeout_ms;     /* time one hook call may run */
    long script_memory_mb;      /* cap of the scripts' Lua state */
    enum health_mode health;
    char *network;              /* register container IPs on this network */
    bool explicit_only;         /* only containers that name their service */
    long concurrency;
    long timeout_ms;
    char *username, *password, *token;
    char *ca_file, *cert_file, *key_file;
    struct cJSON *site;         /* free-form table for site scripts */

    /* internal: raw values and their origin ("env INTERVAL", "a.yml:3") */
    char *raw[CK_COUNT];
    struct cJSON *raw_tree[CK_COUNT];
    char *where[CK_COUNT];
};

struct config_key_info {
    const char *name;
    const char *env;            /* primary variable, NULL if none */
    const char *env_alt;        /* a second accepted variable */
    const char *default_text;   /* as the help shows it */
    const char *help;
};

const struct config_key_info *config_key_info(enum config_key k);
int config_key_find(const char *name);

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
