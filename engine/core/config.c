/* config.c: the configuration keys, their defaults, and the merge of the
 * sources in the old tool's precedence: defaults < env < YAML (-c) < env
 * file (-e) < flags.  Sources only record raw text and its origin;
 * config_finish() converts and validates once, so a bad value in a lower
 * source that a higher one overrides is no error, and every error names
 * the origin of the value that would have been used. */
#include "core/config.h"

#include <arpa/inet.h>
#include <cjson/cJSON.h>
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/hostinfo.h"
#include "core/text.h"

#define DEFAULT_PREFIX_PATH \
    "environment:ENVIRONMENT environment:NAME service:PORT service:HOST_PORT service:HOSTNAME"
#define DEFAULT_BACKEND "file:///var/lib/registrar/registry.json"

static const struct config_key_info keys[CK_COUNT] = {
    [CK_DOCKER] = { "docker", "DOCKER_SOCKET", "DOCKER_HOST", "/var/run/docker.sock",
                    "Docker Engine API: a socket path, unix://PATH or tcp://HOST:PORT" },
    [CK_DOCKER_TLS_VERIFY] = { "docker_tls_verify", "DOCKER_TLS_VERIFY", NULL, "off",
                               "verify the daemon's certificate on tcp:// (as the docker CLI does)" },
    [CK_DOCKER_CERT_PATH] = { "docker_cert_path", "DOCKER_CERT_PATH", NULL, "~/.docker",
                              "directory holding ca.pem, cert.pem and key.pem for tcp:// TLS" },
    [CK_INTERVAL] = { "interval", "INTERVAL", NULL, "3000", "ms between full resyncs" },
    [CK_TTL] = { "ttl", "TTL", NULL, "12000", "ms an entry lives without refresh (service_ttl: ttl)" },
    [CK_LOG] = { "log", "LOGFILE", NULL, "stdout", "file to append log lines to" },
    [CK_LOG_LEVEL] = { "log_level", "LOGLEVEL", NULL, "info", "debug, info, warn or error" },
    [CK_HOSTNAME] = { "hostname", "HOST", NULL, "hostname -f", "this Docker host's name; owns its entries" },
    [CK_IPADDRESS] = { "ipaddress", "IPADDRESS", NULL, "the host's address",
                       "address services are reached at" },
    [CK_PREFIX_STATS] = { "prefix_stats", "PREFIX_STATSD", NULL, "registrar-service", "statsd name prefix" },
    [CK_PREFIX_SERVICES] = { "prefix_services", "PREFIX_SERVICES", NULL, "/services", "registry prefix of services" },
    [CK_PREFIX_HOSTS] = { "prefix_hosts", "PREFIX_HOSTS", NULL, "/hosts", "registry prefix of host documents" },
    [CK_PREFIX_PATH] = { "prefix_path", "PREFIX_PATH", NULL, DEFAULT_PREFIX_PATH,
                         "key elements below prefix_services, each TYPE:VALUE" },
    [CK_SERVICE_TTL] = { "service_ttl", "SERVICE_METHOD", NULL, "prune", "prune or ttl" },
    [CK_BACKEND] = { "backend", "BACKEND", NULL, DEFAULT_BACKEND, "registry URI" },
    [CK_STATSD] = { "statsd", "STATSD", NULL, "unset", "HOST:PORT (or {host, port}) turns statsd on" },
    [CK_NAMING] = { "naming", "NAMING", NULL, "default", "default, registrator, or a .lua file" },
    [CK_SCRIPT] = { "script", "SCRIPT", NULL, "none", "site script loaded after the defaults" },
    [CK_SCRIPT_INSTRUCTIONS] = { "script_instructions", "SCRIPT_INSTRUCTIONS", NULL, "50000000",
                                 "Lua instructions one hook call may run before it is stopped" },
    [CK_SCRIPT_TIMEOUT] = { "script_timeout", "SCRIPT_TIMEOUT", NULL, "1000",
                            "ms one hook call may run (waiting on the registry not counted)" },
    [CK_SCRIPT_MEMORY] = { "script_memory", "SCRIPT_MEMORY", NULL, "512",
                           "MiB the scripts' Lua state may hold" },
    [CK_HEALTH] = { "health", "HEALTH", NULL, "require",
                    "require: register containers with a HEALTHCHECK only while healthy; ignore" },
    [CK_NETWORK] = { "network", "NETWORK", NULL, "none",
                     "register each container's IP on this network and the container port" },
    [CK_EXPLICIT] = { "explicit", "EXPLICIT", NULL, "false",
                      "registrator naming: only containers that set SERVICE_NAME" },
    [CK_CONCURRENCY] = { "concurrency", "CONCURRENCY", NULL, "16", "registry requests at once" },
    [CK_TIMEOUT] = { "timeout", "TIMEOUT", NULL, "5000", "ms before a registry request fails" },
    [CK_USERNAME] = { "username", "BACKEND_USERNAME", NULL, "none", "registry user (etcd)" },
    [CK_PASSWORD] = { "password", "BACKEND_PASSWORD", NULL, "none", "registry password (etcd)" },
    [CK_TOKEN] = { "token", "CONSUL_HTTP_TOKEN", "BACKEND_TOKEN", "none", "registry token (Consul ACL)" },
    [CK_CA_FILE] = { "ca_file", "BACKEND_CA_FILE", NULL, "system CAs", "CA bundle for https registries" },
    [CK_CERT_FILE] = { "cert_file", "BACKEND_CERT_FILE", NULL, "none", "client certificate for the registry" },
    [CK_KEY_FILE] = { "key_file", "BACKEND_KEY_FILE", NULL, "none", "client key for the registry" },
    [CK_SITE] = { "site", NULL, NULL, "{}", "free-form settings for site scripts" },
};

const struct config_key_info *config_key_info(enum config_key k) { return &keys[k]; }

int config_key_find(const char *name)
{
    for (int k = 0; k < CK_COUNT; k++)
        if (strcmp(keys[k].name, name) == 0)
            return k;
    return -1;
}

void config_init(struct config *c)
{
    memset(c, 0, sizeof *c);
}

void config_free(struct config *c)
{
    free(c->docker);
    free(c->docker_cert_path);
    free(c->log_file);
    free(c->hostname);
    free(c->ipaddress);
    free(c->prefix_stats);
    free(c->prefix_services);
    free(c->prefix_hosts);
    for (int i = 0; i < c->prefix_path_len; i++)
        free(c->prefix_path[i]);
    free(c->prefix_path);
    free(c->backend);
    free(c->backend_shown);
    free(c->statsd_host);
    free(c->naming);
    free(c->script);
    free(c->network);
    free(c->username);
    free(c->password);
    free(c->token);
    free(c->ca_file);
    free(c->cert_file);
    free(c->key_file);
    cJSON_Delete(c->site);
    for (int k = 0; k < CK_COUNT; k++) {
        free(c->raw[k]);
        cJSON_Delete(c->raw_tree[k]);
        free(c->where[k]);
    }
    memset(c, 0, sizeof *c);
}

static int set_where(struct config *c, enum config_key k, const char *where)
{
    free(c->where[k]);
    c->where[k] = strdup(where);
    return c->where[k] ? 0 : -1;
}

int config_set(struct config *c, enum config_key k, const char *value, const char *where,
               char *err, size_t errlen)
{
    char *copy = strdup(value);
    if (copy == NULL || set_where(c, k, where) < 0) {
        free(copy);
        snprintf(err, errlen, "%s: out of memory", keys[k].name);
        return -1;
    }
    free(c->raw[k]);
    cJSON_Delete(c->raw_tree[k]);
    c->raw_tree[k] = NULL;
    c->raw[k] = copy;
    return 0;
}

/* Takes ownership of tree. */
int config_set_tree(struct config *c, enum config_key k, cJSON *tree, const char *where,
                    char *err, size_t errlen)
{
    if (set_where(c, k, where) < 0) {
        cJSON_Delete(tree);
        snprintf(err, errlen, "%s: out of memory", keys[k].name);
        return -1;
    }
    free(c->raw[k]);
    c->raw[k] = NULL;
    cJSON_Delete(c->raw_tree[k]);
    c->raw_tree[k] = tree;
    return 0;
}

/* ---- environment and env files ---------------------------------------- */

static int key_for_env(const char *name)
{
    for (int k = 0; k < CK_COUNT; k++)
        if ((keys[k].env && strcmp(keys[k].env, name) == 0) ||
            (keys[k].env_alt && strcmp(keys[k].env_alt, name) == 0))
            return k;
    return -1;
}

int config_load_env(struct config *c, char *const *environ, char *err, size_t errlen)
{
    /* Primary names first, so DOCKER_SOCKET beats DOCKER_HOST whatever
     * their order in the environment. */
    for (int pass = 0; pass < 2; pass++) {
        for (char *const *e = environ; *e != NULL; e++) {
            const char *eq = strchr(*e, '=');
            char name[64], where[80];
            int k;
            if (eq == NULL || (size_t)(eq - *e) >= sizeof name)
                continue;
            memcpy(name, *e, (size_t)(eq - *e));
            name[eq - *e] = '\0';
            k = key_for_env(name);
            if (k < 0)
                continue;
            if ((pass == 0) != (keys[k].env && strcmp(keys[k].env, name) == 0))
                continue;
            if (pass == 1 && c->where[k] && strncmp(c->where[k], "env ", 4) == 0)
                continue;
            if (eq[1] == '\0')
                continue;       /* VAR= is "unset" to a shell user, not an empty value */
            snprintf(where, sizeof where, "env %s", name);
            if (config_set(c, (enum config_key)k, eq + 1, where, err, errlen) < 0)
                return -1;
        }
    }
    return 0;
}

/* KEY=VALUE lines; '#' comments, blank lines, an optional "export " and
 * optional quotes around the value, as shells and docker --env-file write. */
static int env_file_line(struct config *c, char *line, const char *path, int lineno,
                         char *err, size_t errlen)
{
    char *eq, *value, where[512];
    int k;
    size_t n;

    line = text_trim(line);
    if (*line == '\0' || *line == '#')
        return 0;
    if (strncmp(line, "export ", 7) == 0)
        line = text_trim(line + 7);
    eq = strchr(line, '=');
    if (eq == NULL) {
        snprintf(err, errlen, "%s:%d: expected KEY=VALUE, got \"%.60s\"", path, lineno, line);
        return -1;
    }
    *eq = '\0';
    value = eq + 1;
    line = text_trim(line);
    k = key_for_env(line);
    if (k < 0) {
        snprintf(err, errlen, "%s:%d: unknown variable %s (see `registrar help config`)",
                 path, lineno, line);
        return -1;
    }
    n = strlen(value);
    if (n >= 2 && (value[0] == '"' || value[0] == '\'') && value[n - 1] == value[0]) {
        value[n - 1] = '\0';
        value++;
    }
    snprintf(where, sizeof where, "%s:%d", path, lineno);
    return config_set(c, (enum config_key)k, value, where, err, errlen);
}

int config_load_env_file(struct config *c, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    int lineno = 0, rc = 0;

    if (f == NULL) {
        snprintf(err, errlen, "env file %s: %s", path, strerror(errno));
        return -1;
    }
    while (rc == 0 && (n = getline(&line, &cap, f)) >= 0) {
        if (memchr(line, '\0', (size_t)n) != NULL) {
            snprintf(err, errlen, "%s:%d: holds a NUL byte, which would cut the line short", path, lineno + 1);
            rc = -1;
            break;
        }
        rc = env_file_line(c, line, path, ++lineno, err, errlen);
    }
    free(line);
    fclose(f);
    return rc;
}

/* ---- conversion and validation ---------------------------------------- */

struct check {
    struct config *c;
    char *err;
    size_t errlen;
};

static const char *origin(const struct config *c, enum config_key k)
{
    return c->where[k] ? c->where[k] : "default";
}

/* The value is shown with any password in it redacted: error lines end
 * up in logs. */
static int fail(struct check *ck, enum config_key k, const char *value, const char *why)
{
    char shown[256];
    snprintf(ck->err, ck->errlen, "%s: \"%.200s\" %s (%s)", keys[k].name,
             text_redact_uri(value, shown, sizeof shown), why, origin(ck->c, k));
    return -1;
}

/* The raw text of a key, or its default; NULL when the key has no default. */
static const char *raw(const struct config *c, enum config_key k, const char *def)
{
    return c->raw[k] ? c->raw[k] : def;
}

static int want_scalar(struct check *ck, enum config_key k)
{
    if (ck->c->raw_tree[k] == NULL)
        return 0;
    snprintf(ck->err, ck->errlen, "%s: expected a single value, not a list or map (%s)",
             keys[k].name, origin(ck->c, k));
    return -1;
}

static int set_string(struct check *ck, enum config_key k, char **out, const char *def)
{
    const char *v = raw(ck->c, k, def);
    if (want_scalar(ck, k) < 0)
        return -1;
    if (v == NULL)
        return 0;
    if (text_has_control(v))
        return fail(ck, k, v, "contains control characters");
    *out = strdup(v);
    return *out ? 0 : fail(ck, k, v, "out of memory");
}

static int set_number(struct check *ck, enum config_key k, long *out, const char *def,
                      long min, long max, const char *unit)
{
    const char *v = raw(ck->c, k, def);
    long n;
    char why[96];
    if (want_scalar(ck, k) < 0)
        return -1;
    if (text_to_long(v, &n) < 0) {
        snprintf(why, sizeof why, "is not a whole number of %s", unit);
        return fail(ck, k, v, why);
    }
    if (n < min || n > max) {
        snprintf(why, sizeof why, "is out of range: %ld to %ld %s", min, max, unit);
        return fail(ck, k, v, why);
    }
    *out = n;
    return 0;
}

static int set_choice(struct check *ck, enum config_key k, int *out, const char *def,
                      const char *const *choices, const char *expected)
{
    const char *v = raw(ck->c, k, def);
    if (want_scalar(ck, k) < 0)
        return -1;
    for (int i = 0; choices[i] != NULL; i++) {
        if (strcmp(v, choices[i]) == 0) {
            *out = i;
            return 0;
        }
    }
    return fail(ck, k, v, expected);
}

static int set_bool(struct check *ck, enum config_key k, bool *out)
{
    const char *v = raw(ck->c, k, "0");
    if (want_scalar(ck, k) < 0)
        return -1;
    /* the docker CLI treats any non-empty DOCKER_TLS_VERIFY as on */
    if (strcmp(v, "") == 0 || strcmp(v, "0") == 0 || strcmp(v, "false") == 0 ||
        strcmp(v, "no") == 0 || strcmp(v, "off") == 0)
        *out = false;
    else if (strcmp(v, "1") == 0 || strcmp(v, "true") == 0 || strcmp(v, "yes") == 0 ||
             strcmp(v, "on") == 0)
        *out = true;
    else
        return fail(ck, k, v, "is not a boolean (true or false)");
    return 0;
}

static int add_path_element(struct check *ck, const char *elem)
{
    static const char *const types[] = { "environment", "string", "service", "label", NULL };
    struct config *c = ck->c;
    const char *colon = strchr(elem, ':');
    char **grown;
    int known = 0;

    if (colon == NULL || colon == elem || colon[1] == '\0')
        return fail(ck, CK_PREFIX_PATH, elem, "is not TYPE:VALUE");
    for (int i = 0; types[i]; i++)
        if (strlen(types[i]) == (size_t)(colon - elem) && strncmp(elem, types[i], (size_t)(colon - elem)) == 0)
            known = 1;
    if (!known)
        return fail(ck, CK_PREFIX_PATH, elem, "has an unknown TYPE: use environment, string, service or label");
    if (text_has_control(elem))
        return fail(ck, CK_PREFIX_PATH, elem, "contains control characters");
    grown = realloc(c->prefix_path, (size_t)(c->prefix_path_len + 1) * sizeof *grown);
    if (grown == NULL || (grown[c->prefix_path_len] = strdup(elem)) == NULL) {
        if (grown)
            c->prefix_path = grown;
        return fail(ck, CK_PREFIX_PATH, elem, "out of memory");
    }
    c->prefix_path = grown;
    c->prefix_path_len++;
    return 0;
}

/* A list from YAML, or one string of elements separated by spaces/commas. */
static int set_prefix_path(struct check *ck)
{
    const cJSON *tree = ck->c->raw_tree[CK_PREFIX_PATH], *item;
    char *copy, *tok, *save = NULL;
    int rc = 0;

    if (tree != NULL) {
        if (!cJSON_IsArray(tree))
            return fail(ck, CK_PREFIX_PATH, "(map)", "is not a list of TYPE:VALUE elements");
        cJSON_ArrayForEach(item, tree) {
            if (!cJSON_IsString(item))
                return fail(ck, CK_PREFIX_PATH, "(list)", "holds an element that is not a string");
            if (add_path_element(ck, item->valuestring) < 0)
                return -1;
        }
        return 0;
    }
    copy = strdup(raw(ck->c, CK_PREFIX_PATH, DEFAULT_PREFIX_PATH));
    if (copy == NULL)
        return fail(ck, CK_PREFIX_PATH, "", "out of memory");
    for (tok = strtok_r(copy, " ,\t", &save); tok && rc == 0; tok = strtok_r(NULL, " ,\t", &save))
        rc = add_path_element(ck, tok);
    free(copy);
    return rc;
}

static int set_statsd(struct check *ck)
{
    struct config *c = ck->c;
    const cJSON *tree = c->raw_tree[CK_STATSD];
    char hostport[300];
    long port;

    if (tree != NULL) {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(tree, "host");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(tree, "port");
        if (!cJSON_IsObject(tree) || !cJSON_IsString(h))
            return fail(ck, CK_STATSD, "(map)", "needs host: and port:");
        snprintf(hostport, sizeof hostport, "%s:%s", h->valuestring,
                 cJSON_IsString(p) ? p->valuestring : "8125");
    } else if (c->raw[CK_STATSD] != NULL) {
        snprintf(hostport, sizeof hostport, "%s", c->raw[CK_STATSD]);
    } else {
        return 0;
    }
    char *colon = strrchr(hostport, ':');
    if (colon == NULL || colon == hostport || text_to_long(colon + 1, &port) < 0 || port < 1 || port > 65535)
        return fail(ck, CK_STATSD, hostport, "is not HOST:PORT");
    *colon = '\0';
    c->statsd_host = strdup(hostport);
    c->statsd_port = (int)port;
    return 0;
}

static int set_site(struct check *ck)
{
    const cJSON *tree = ck->c->raw_tree[CK_SITE];
    if (ck->c->raw[CK_SITE] != NULL)
        return fail(ck, CK_SITE, ck->c->raw[CK_SITE], "must be a map in the YAML file");
    if (tree != NULL && !cJSON_IsObject(tree))
        return fail(ck, CK_SITE, "(list)", "must be a map");
    ck->c->site = tree ? cJSON_Duplicate(tree, 1) : cJSON_CreateObject();
    return 0;
}

static int check_backend(struct check *ck)
{
    const char *v = ck->c->backend, *p = v;
    char shown[1024];
    ck->c->backend_shown = strdup(text_redact_uri(v, shown, sizeof shown));
    if (!isalpha((unsigned char)*p))
        return fail(ck, CK_BACKEND, v, "is not a URI like etcd://HOST:PORT or file:///PATH");
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    if (strncmp(p, "://", 3) != 0)
        return fail(ck, CK_BACKEND, v, "is not a URI like etcd://HOST:PORT or file:///PATH");
    return 0;
}

/* A registry prefix: every key starts with it, and backends compare
 * keys against it to decide what is this host's. */
static int check_prefix(struct check *ck, enum config_key k, const char *v)
{
    char *copy, *seg, *save = NULL;
    int rc = 0;
    if (v[0] != '/')
        return fail(ck, k, v, "must start with '/'");
    if (strlen(v) > 255)
        return fail(ck, k, v, "is longer than 255 bytes");
    if (!text_is_utf8(v))
        return fail(ck, k, v, "is not UTF-8");
    if (strstr(v, "//") != NULL)
        return fail(ck, k, v, "has an empty segment ('//')");
    copy = strdup(v);
    for (seg = strtok_r(copy, "/", &save); seg && rc == 0; seg = strtok_r(NULL, "/", &save))
        if (strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0)
            rc = fail(ck, k, v, "has a relative segment ('.' or '..')");
    free(copy);
    return rc;
}

/* The Docker API: what the docker CLI takes in DOCKER_HOST, less what
 * registrar cannot speak (ssh://, npipe://, fd://). */
static int check_docker(struct check *ck)
{
    const char *v = ck->c->docker, *host, *colon;
    long port;
    if (v[0] == '/' || (strncmp(v, "unix:///", 8) == 0 && v[8] != '\0'))
        return 0;
    if (strncmp(v, "tcp://", 6) != 0)
        return fail(ck, CK_DOCKER, v, "is not a socket path, unix:///PATH or tcp://HOST:PORT");
    host = v + 6;
    if (host[0] == '[')
        colon = strstr(host, "]:") ? strstr(host, "]:") + 1 : NULL;
    else
        colon = strchr(host, ':');
    if (host[0] == '\0' || host[0] == ':' || host[0] == '/' || strchr(host, '@') != NULL)
        return fail(ck, CK_DOCKER, v, "has no HOST (tcp://HOST:PORT)");
    if (colon != NULL) {
        char digits[16];
        snprintf(digits, sizeof digits, "%.*s", (int)strcspn(colon + 1, "/"), colon + 1);
        if (text_to_long(digits, &port) < 0 || port < 1 || port > 65535)
            return fail(ck, CK_DOCKER, v, "has a port that is not 1 to 65535");
    }
    return 0;
}

static int check_hostname(struct check *ck)
{
    const char *v = ck->c->hostname;
    /* It becomes a key segment and marks ownership: keep it plain. */
    if (v[0] == '\0' || strchr(v, '/') || strcmp(v, ".") == 0 || strcmp(v, "..") == 0)
        return fail(ck, CK_HOSTNAME, v, "is not usable as a host name (empty, '/', or dots only)");
    return 0;
}

/* A DNS name: dot-separated labels of letters, digits and '-', not all
 * digits and dots (that is a mistyped IPv4 address). */
static bool is_dns_name(const char *v)
{
    size_t label = 0, n = strlen(v);
    bool letter = false;
    if (n == 0 || n > 253)
        return false;
    for (const char *p = v; *p; p++) {
        if (*p == '.') {
            if (label == 0 || p[-1] == '-')
                return false;
            label = 0;
            continue;
        }
        if (!isalnum((unsigned char)*p) && *p != '-')
            return false;
        if ((label == 0 && *p == '-') || ++label > 63)
            return false;
        letter = letter || isalpha((unsigned char)*p) || *p == '-';
    }
    return label > 0 && v[n - 1] != '-' && letter;
}

/* Services are advertised at it: an IP address, or a name resolvers know. */
static int check_ipaddress(struct check *ck)
{
    const char *v = ck->c->ipaddress;
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, v, addr) == 1 || inet_pton(AF_INET6, v, addr) == 1 || is_dns_name(v))
        return 0;
    return fail(ck, CK_IPADDRESS, v, "is not an IPv4 or IPv6 address, nor a DNS name");
}

static int fill_host_defaults(struct check *ck)
{
    struct config *c = ck->c;
    char buf[256];
    if (c->hostname == NULL) {
        if (hostinfo_fqdn(buf, sizeof buf) < 0)
            return fail(ck, CK_HOSTNAME, "", "could not be found (set HOST or -H)");
        c->hostname = strdup(buf);
    }
    if (c->ipaddress == NULL) {
        if (hostinfo_address(buf, sizeof buf) < 0)
            return fail(ck, CK_IPADDRESS, "", "could not be found (set IPADDRESS or -a)");
        c->ipaddress = strdup(buf);
    }
    return 0;
}

int config_finish(struct config *c, char *err, size_t errlen)
{
    static const char *const levels[] = { "debug", "info", "warn", "error", NULL };
    static const char *const modes[] = { "prune", "ttl", NULL };
    static const char *const health[] = { "require", "ignore", NULL };
    struct check ck = { c, err, errlen };
    int level = LOG_INFO, mode = MODE_PRUNE, hm = HEALTH_REQUIRE;

    if (set_string(&ck, CK_DOCKER, &c->docker, "/var/run/docker.sock") < 0 ||
        check_docker(&ck) < 0 ||
        set_bool(&ck, CK_DOCKER_TLS_VERIFY, &c->docker_tls_verify) < 0 ||
        set_string(&ck, CK_DOCKER_CERT_PATH, &c->docker_cert_path, NULL) < 0 ||
        set_number(&ck, CK_INTERVAL, &c->interval_ms, "3000", 10, 86400000, "milliseconds") < 0 ||
        set_number(&ck, CK_TTL, &c->ttl_ms, "12000", 1000, 86400000, "milliseconds") < 0 ||
        set_string(&ck, CK_LOG, &c->log_file, NULL) < 0 ||
        set_choice(&ck, CK_LOG_LEVEL, &level, "info", levels, "is not debug, info, warn or error") < 0 ||
        set_string(&ck, CK_HOSTNAME, &c->hostname, NULL) < 0 ||
        set_string(&ck, CK_IPADDRESS, &c->ipaddress, NULL) < 0 ||
        set_string(&ck, CK_PREFIX_STATS, &c->prefix_stats, "registrar-service") < 0 ||
        set_string(&ck, CK_PREFIX_SERVICES, &c->prefix_services, "/services") < 0 ||
        check_prefix(&ck, CK_PREFIX_SERVICES, c->prefix_services) < 0 ||
        set_string(&ck, CK_PREFIX_HOSTS, &c->prefix_hosts, "/hosts") < 0 ||
        check_prefix(&ck, CK_PREFIX_HOSTS, c->prefix_hosts) < 0 ||
        set_prefix_path(&ck) < 0 ||
        set_choice(&ck, CK_SERVICE_TTL, &mode, "prune", modes, "is not prune or ttl") < 0 ||
        set_string(&ck, CK_BACKEND, &c->backend, DEFAULT_BACKEND) < 0 ||
        check_backend(&ck) < 0 ||
        set_statsd(&ck) < 0 ||
        set_string(&ck, CK_NAMING, &c->naming, "default") < 0 ||
        set_string(&ck, CK_SCRIPT, &c->script, NULL) < 0 ||
        set_number(&ck, CK_SCRIPT_INSTRUCTIONS, &c->script_instructions, "50000000", 100000,
                   100000000000L, "instructions") < 0 ||
        set_number(&ck, CK_SCRIPT_TIMEOUT, &c->script_timeout_ms, "1000", 10, 600000,
                   "milliseconds") < 0 ||
        set_number(&ck, CK_SCRIPT_MEMORY, &c->script_memory_mb, "512", 16, 65536, "MiB") < 0 ||
        set_choice(&ck, CK_HEALTH, &hm, "require", health, "is not require or ignore") < 0 ||
        set_string(&ck, CK_NETWORK, &c->network, NULL) < 0 ||
        set_bool(&ck, CK_EXPLICIT, &c->explicit_only) < 0 ||
        set_number(&ck, CK_CONCURRENCY, &c->concurrency, "16", 1, 1024, "requests") < 0 ||
        set_number(&ck, CK_TIMEOUT, &c->timeout_ms, "5000", 100, 600000, "milliseconds") < 0 ||
        set_string(&ck, CK_USERNAME, &c->username, NULL) < 0 ||
        set_string(&ck, CK_PASSWORD, &c->password, NULL) < 0 ||
        set_string(&ck, CK_TOKEN, &c->token, NULL) < 0 ||
        set_string(&ck, CK_CA_FILE, &c->ca_file, NULL) < 0 ||
        set_string(&ck, CK_CERT_FILE, &c->cert_file, NULL) < 0 ||
        set_string(&ck, CK_KEY_FILE, &c->key_file, NULL) < 0 ||
        set_site(&ck) < 0 ||
        fill_host_defaults(&ck) < 0 ||
        check_hostname(&ck) < 0 ||
        check_ipaddress(&ck) < 0)
        return -1;
    c->log_level = (enum log_level)level;
    c->mode = (enum service_mode)mode;
    c->health = (enum health_mode)hm;
    if (c->mode == MODE_TTL && c->ttl_ms <= c->interval_ms) {
        char v[32];
        snprintf(v, sizeof v, "%ld", c->ttl_ms);
        return fail(&ck, CK_TTL, v, "must be longer than interval, or entries expire between refreshes");
    }
    return 0;
}
