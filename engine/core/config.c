/* config.c: the configuration keys, their defaults, and the merge of the
 * sources in the old tool's precedence: defaults < env < YAML (-c) < env
 * file (-e) < flags.  Sources only record raw text and its origin;
 * config_finish() converts and validates once, so a bad value in a lower
 * source that a higher one overrides is no error, and every error names
 * the origin of the value that would have been used.
 *
 * Nothing here knows a key by name except its check function: the table
 * (core/config_keys.def) says how each is read, defaulted, freed and
 * shown. */
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

struct config_check {
    struct config *c;
    char *err;
    size_t errlen;
};

typedef int check_fn(struct config_check *ck, enum config_key k);
static check_fn check_docker, check_listen, check_ttl, check_hostname, check_ipaddress, check_prefix,
    check_prefix_path, check_backend;

/* ---- the table ---------------------------------------------------------- */

/* The C type each config_type's field has; a row naming a field of
 * another type does not compile (_Generic has no match). */
#define CTYPE_STRING char *
#define CTYPE_PATH char *
#define CTYPE_MS long
#define CTYPE_COUNT long
#define CTYPE_MIB long
#define CTYPE_BOOL bool
#define CTYPE_LIST struct config_list
#define CTYPE_HOSTPORT struct config_hostport
#define CTYPE_MAP struct cJSON *
#define MEMBER(f) (((struct config *)0)->f)
#define IS_FIELD(type, f) _Generic(MEMBER(f), CTYPE_##type: 0)
/* a choice is stored as an int-sized enum */
#define IS_FIELD_CHOICE(f) (0 * sizeof(char[sizeof MEMBER(f) == sizeof(int) ? 1 : -1]))
#define FIELD_CHECK(type, f) FIELD_CHECK_##type(f)
#define FIELD_CHECK_STRING(f) IS_FIELD(STRING, f)
#define FIELD_CHECK_PATH(f) IS_FIELD(PATH, f)
#define FIELD_CHECK_MS(f) IS_FIELD(MS, f)
#define FIELD_CHECK_COUNT(f) IS_FIELD(COUNT, f)
#define FIELD_CHECK_MIB(f) IS_FIELD(MIB, f)
#define FIELD_CHECK_BOOL(f) IS_FIELD(BOOL, f)
#define FIELD_CHECK_CHOICE(f) IS_FIELD_CHOICE(f)
#define FIELD_CHECK_LIST(f) IS_FIELD(LIST, f)
#define FIELD_CHECK_HOSTPORT(f) IS_FIELD(HOSTPORT, f)
#define FIELD_CHECK_MAP(f) IS_FIELD(MAP, f)

#define WORDS(...) ((const char *const[]){ __VA_ARGS__, NULL })
/* a char * field beside the key's own (never at offset 0, which means none) */
#define SHOWN(f) (offsetof(struct config, f) + IS_FIELD(STRING, f) + \
                  0 * sizeof(char[offsetof(struct config, f) != 0 ? 1 : -1]))

#define KEY(id, name_, type_, field_, ...) \
    [id] = { .name = name_, .type = CT_##type_, \
             .field = offsetof(struct config, field_) + FIELD_CHECK(type_, field_), __VA_ARGS__ },
static const struct config_key_info keys[CK_COUNT] = {
#include "core/config_keys.def"
};
#undef KEY

/* What a number counts, unless its row says (CT_COUNT). */
static const char *unit_of(const struct config_key_info *d)
{
    if (d->unit != NULL)
        return d->unit;
    return d->type == CT_MS ? "milliseconds" : d->type == CT_MIB ? "MiB" : "";
}

const struct config_key_info *config_key_info(enum config_key k) { return &keys[k]; }

int config_key_find(const char *name)
{
    for (int k = 0; k < CK_COUNT; k++)
        if (strcmp(keys[k].name, name) == 0)
            return k;
    return -1;
}

const char *config_key_default_text(enum config_key k)
{
    return keys[k].def ? keys[k].def : keys[k].unset ? keys[k].unset : "none";
}

const void *config_field(const struct config *c, enum config_key k)
{
    return (const char *)c + keys[k].field;
}

static void *field_of(struct config *c, enum config_key k)
{
    return (char *)c + keys[k].field;
}

static char **shown_of(struct config *c, enum config_key k)
{
    return keys[k].shown ? (char **)((char *)c + keys[k].shown) : NULL;
}

void config_init(struct config *c)
{
    memset(c, 0, sizeof *c);
}

static void free_list(struct config_list *l)
{
    for (int i = 0; i < l->len; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->len = 0;
}

void config_free(struct config *c)
{
    for (int k = 0; k < CK_COUNT; k++) {
        void *f = field_of(c, (enum config_key)k);
        switch (keys[k].type) {
        case CT_STRING:
        case CT_PATH: free(*(char **)f); break;
        case CT_LIST: free_list(f); break;
        case CT_HOSTPORT: free(((struct config_hostport *)f)->host); break;
        case CT_MAP: cJSON_Delete(*(cJSON **)f); break;
        case CT_MS: case CT_COUNT: case CT_MIB: case CT_BOOL: case CT_CHOICE: break;
        }
        if (keys[k].shown)
            free(*shown_of(c, (enum config_key)k));
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

/* ---- conversion --------------------------------------------------------- */

const char *config_origin(const struct config *c, enum config_key k)
{
    return c->where[k] ? c->where[k] : "default";
}

/* The value is shown with any password in it redacted, and a secret not
 * at all: error lines end up in logs. */
static int fail(struct config_check *ck, enum config_key k, const char *value, const char *why)
{
    char shown[256];
    if (keys[k].secret)
        snprintf(ck->err, ck->errlen, "%s: (secret) %s (%s)", keys[k].name, why, config_origin(ck->c, k));
    else
        snprintf(ck->err, ck->errlen, "%s: \"%.200s\" %s (%s)", keys[k].name,
                 text_redact_uri(value, shown, sizeof shown), why, config_origin(ck->c, k));
    return -1;
}

/* The raw text of a key, or its default; NULL when unset with no default. */
static const char *raw(const struct config *c, enum config_key k)
{
    return c->raw[k] ? c->raw[k] : keys[k].def;
}

static int want_scalar(struct config_check *ck, enum config_key k)
{
    if (ck->c->raw_tree[k] == NULL)
        return 0;
    snprintf(ck->err, ck->errlen, "%s: expected a single value, not a list or map (%s)",
             keys[k].name, config_origin(ck->c, k));
    return -1;
}

static int set_string(struct config_check *ck, enum config_key k, const char *v)
{
    char **out = field_of(ck->c, k), **shown = shown_of(ck->c, k);
    if (text_has_control(v))
        return fail(ck, k, v, "contains control characters");
    *out = strdup(v);
    if (*out != NULL && shown != NULL) {
        size_t n = strlen(v) + 8;       /* redaction adds at most "***" */
        char *buf = malloc(n);
        *shown = buf ? strdup(text_redact_uri(v, buf, n)) : NULL;
        free(buf);
        if (*shown == NULL)
            return fail(ck, k, v, "out of memory");
    }
    return *out ? 0 : fail(ck, k, v, "out of memory");
}

static int set_number(struct config_check *ck, enum config_key k, const char *v)
{
    const struct config_key_info *d = &keys[k];
    long n;
    char why[96];
    if (text_to_long(v, &n) < 0) {
        snprintf(why, sizeof why, "is not a whole number of %s", unit_of(d));
        return fail(ck, k, v, why);
    }
    if (n < d->min || n > d->max) {
        snprintf(why, sizeof why, "is out of range: %ld to %ld %s", d->min, d->max, unit_of(d));
        return fail(ck, k, v, why);
    }
    *(long *)field_of(ck->c, k) = n;
    return 0;
}

static int set_bool(struct config_check *ck, enum config_key k, const char *v)
{
    static const struct { const char *word; bool value; } words[] = {
        { "", false }, { "0", false }, { "false", false }, { "no", false }, { "off", false },
        { "1", true }, { "true", true }, { "yes", true }, { "on", true },
    };
    /* the docker CLI treats any non-empty DOCKER_TLS_VERIFY as on */
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++) {
        if (strcmp(v, words[i].word) == 0) {
            *(bool *)field_of(ck->c, k) = words[i].value;
            return 0;
        }
    }
    return fail(ck, k, v, "is not a boolean (true or false)");
}

static int set_choice(struct config_check *ck, enum config_key k, const char *v)
{
    const char *const *words = keys[k].words;
    char why[200];
    size_t n;
    for (int i = 0; words[i] != NULL; i++) {
        if (strcmp(v, words[i]) == 0) {
            *(int *)field_of(ck->c, k) = i;
            return 0;
        }
    }
    /* "is not a, b or c" */
    n = (size_t)snprintf(why, sizeof why, "is not");
    for (int i = 0; words[i] != NULL && n < sizeof why; i++)
        n += (size_t)snprintf(why + n, sizeof why - n, "%s%s", i == 0 ? " " : words[i + 1] ? ", " : " or ",
                              words[i]);
    return fail(ck, k, v, why);
}

static int list_add(struct config_check *ck, enum config_key k, const char *elem)
{
    struct config_list *l = field_of(ck->c, k);
    char **grown;
    if (text_has_control(elem))
        return fail(ck, k, elem, "contains control characters");
    grown = realloc(l->items, (size_t)(l->len + 1) * sizeof *grown);
    if (grown == NULL)
        return fail(ck, k, elem, "out of memory");
    l->items = grown;
    if ((l->items[l->len] = strdup(elem)) == NULL)
        return fail(ck, k, elem, "out of memory");
    l->len++;
    return 0;
}

/* A list from YAML, or one string of elements separated by spaces/commas. */
static int set_list(struct config_check *ck, enum config_key k)
{
    const cJSON *tree = ck->c->raw_tree[k], *item;
    const char *v = raw(ck->c, k);
    char *copy, *tok, *save = NULL, why[120];
    int rc = 0;

    if (tree != NULL) {
        if (!cJSON_IsArray(tree)) {
            snprintf(why, sizeof why, "is not a list of %s", keys[k].unit ? keys[k].unit : "strings");
            return fail(ck, k, "(map)", why);
        }
        cJSON_ArrayForEach(item, tree) {
            if (!cJSON_IsString(item))
                return fail(ck, k, "(list)", "holds an element that is not a string");
            if (list_add(ck, k, item->valuestring) < 0)
                return -1;
        }
        return 0;
    }
    if (v == NULL)
        return 0;
    copy = strdup(v);
    if (copy == NULL)
        return fail(ck, k, "", "out of memory");
    for (tok = strtok_r(copy, " ,\t", &save); tok && rc == 0; tok = strtok_r(NULL, " ,\t", &save))
        rc = list_add(ck, k, tok);
    free(copy);
    return rc;
}

/* HOST:PORT, or from YAML {host: H, port: P} with port defaulting. */
static int set_hostport(struct config_check *ck, enum config_key k)
{
    struct config_hostport *out = field_of(ck->c, k);
    const cJSON *tree = ck->c->raw_tree[k];
    const char *v = raw(ck->c, k);
    char hostport[300], *colon;
    long port;

    if (tree != NULL) {
        const cJSON *h = cJSON_GetObjectItemCaseSensitive(tree, "host");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(tree, "port");
        if (!cJSON_IsObject(tree) || !cJSON_IsString(h))
            return fail(ck, k, "(map)", "needs host: and port:");
        if (cJSON_IsString(p))
            snprintf(hostport, sizeof hostport, "%s:%s", h->valuestring, p->valuestring);
        else
            snprintf(hostport, sizeof hostport, "%s:%d", h->valuestring, keys[k].port);
    } else if (v != NULL) {
        snprintf(hostport, sizeof hostport, "%s", v);
    } else {
        return 0;
    }
    colon = strrchr(hostport, ':');
    if (colon == NULL || colon == hostport || text_to_long(colon + 1, &port) < 0 || port < 1 || port > 65535)
        return fail(ck, k, hostport, "is not HOST:PORT");
    *colon = '\0';
    if ((out->host = strdup(hostport)) == NULL)
        return fail(ck, k, hostport, "out of memory");
    out->port = (int)port;
    return 0;
}

/* Only a YAML map: site scripts read it as a table.  The default is JSON. */
static int set_map(struct config_check *ck, enum config_key k)
{
    const cJSON *tree = ck->c->raw_tree[k];
    cJSON **out = field_of(ck->c, k);
    if (ck->c->raw[k] != NULL)
        return fail(ck, k, ck->c->raw[k], "must be a map in the YAML file");
    if (tree != NULL && !cJSON_IsObject(tree))
        return fail(ck, k, "(list)", "must be a map");
    *out = tree ? cJSON_Duplicate(tree, 1) : cJSON_Parse(keys[k].def ? keys[k].def : "{}");
    return *out ? 0 : fail(ck, k, "", "out of memory");
}

static int convert(struct config_check *ck, enum config_key k)
{
    const char *v = raw(ck->c, k);
    switch (keys[k].type) {
    case CT_LIST: return set_list(ck, k);
    case CT_HOSTPORT: return set_hostport(ck, k);
    case CT_MAP: return set_map(ck, k);
    default: break;
    }
    if (want_scalar(ck, k) < 0)
        return -1;
    if (v == NULL)
        return 0;               /* unset: the field stays NULL, 0 or false */
    switch (keys[k].type) {
    case CT_STRING:
    case CT_PATH: return set_string(ck, k, v);
    case CT_MS:
    case CT_COUNT:
    case CT_MIB: return set_number(ck, k, v);
    case CT_BOOL: return set_bool(ck, k, v);
    case CT_CHOICE: return set_choice(ck, k, v);
    default: return 0;
    }
}

/* ---- the checks the types cannot make ----------------------------------- */

static const char *string_of(struct config_check *ck, enum config_key k)
{
    return *(char **)field_of(ck->c, k);
}

static int check_backend(struct config_check *ck, enum config_key k)
{
    const char *v = string_of(ck, k), *p = v;
    if (!isalpha((unsigned char)*p))
        return fail(ck, k, v, "is not a URI like etcd://HOST:PORT or file:///PATH");
    while (isalnum((unsigned char)*p) || *p == '+' || *p == '-' || *p == '.')
        p++;
    if (strncmp(p, "://", 3) != 0)
        return fail(ck, k, v, "is not a URI like etcd://HOST:PORT or file:///PATH");
    return 0;
}

/* A registry prefix: every key starts with it, and backends compare
 * keys against it to decide what is this host's. */
static int check_prefix(struct config_check *ck, enum config_key k)
{
    const char *v = string_of(ck, k);
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
    if ((copy = strdup(v)) == NULL)
        return fail(ck, k, v, "out of memory");
    for (seg = strtok_r(copy, "/", &save); seg && rc == 0; seg = strtok_r(NULL, "/", &save))
        if (strcmp(seg, ".") == 0 || strcmp(seg, "..") == 0)
            rc = fail(ck, k, v, "has a relative segment ('.' or '..')");
    free(copy);
    return rc;
}

/* Each element TYPE:VALUE, with a TYPE the naming scripts know. */
static int check_prefix_path(struct config_check *ck, enum config_key k)
{
    static const char *const types[] = { "environment", "string", "service", "label", NULL };
    const struct config_list *l = field_of(ck->c, k);

    for (int e = 0; e < l->len; e++) {
        const char *elem = l->items[e], *colon = strchr(elem, ':');
        int known = 0;
        if (colon == NULL || colon == elem || colon[1] == '\0')
            return fail(ck, k, elem, "is not TYPE:VALUE");
        for (int i = 0; types[i]; i++)
            if (strlen(types[i]) == (size_t)(colon - elem) && strncmp(elem, types[i], (size_t)(colon - elem)) == 0)
                known = 1;
        if (!known)
            return fail(ck, k, elem, "has an unknown TYPE: use environment, string, service or label");
    }
    return 0;
}

/* The Docker API: what the docker CLI takes in DOCKER_HOST, less what
 * registrar cannot speak (ssh://, npipe://, fd://). */
static int check_docker(struct config_check *ck, enum config_key k)
{
    const char *v = string_of(ck, k), *host, *colon;
    long port;
    if (v[0] == '/' || (strncmp(v, "unix:///", 8) == 0 && v[8] != '\0'))
        return 0;
    if (strncmp(v, "tcp://", 6) != 0)
        return fail(ck, k, v, "is not a socket path, unix:///PATH or tcp://HOST:PORT");
    host = v + 6;
    if (host[0] == '[')
        colon = strstr(host, "]:") ? strstr(host, "]:") + 1 : NULL;
    else
        colon = strchr(host, ':');
    if (host[0] == '\0' || host[0] == ':' || host[0] == '/' || strchr(host, '@') != NULL)
        return fail(ck, k, v, "has no HOST (tcp://HOST:PORT)");
    if (colon != NULL) {
        char digits[16];
        snprintf(digits, sizeof digits, "%.*s", (int)strcspn(colon + 1, "/"), colon + 1);
        if (text_to_long(digits, &port) < 0 || port < 1 || port > 65535)
            return fail(ck, k, v, "has a port that is not 1 to 65535");
    }
    return 0;
}

/* In ttl mode an entry must outlive the resync that refreshes it. */
static int check_listen(struct config_check *ck, enum config_key k)
{
    char **v = field_of(ck->c, k), host[256];
    int port;
    if (*v == NULL || text_host_port(*v, "127.0.0.1", host, sizeof host, &port) == 0)
        return 0;
    return fail(ck, k, *v, "is not PORT, HOST:PORT or [ADDRESS]:PORT");
}

static int check_ttl(struct config_check *ck, enum config_key k)
{
    const struct config *c = ck->c;
    if (c->mode == MODE_TTL && c->ttl_ms <= c->interval_ms) {
        char v[32];
        snprintf(v, sizeof v, "%ld", c->ttl_ms);
        return fail(ck, k, v, "must be longer than interval, or entries expire between refreshes");
    }
    return 0;
}

/* Unset: what `hostname -f` would print. */
static int check_hostname(struct config_check *ck, enum config_key k)
{
    char **v = field_of(ck->c, k), buf[256];
    if (*v == NULL) {
        if (hostinfo_fqdn(buf, sizeof buf) < 0)
            return fail(ck, k, "", "could not be found (set HOST or -H)");
        if ((*v = strdup(buf)) == NULL)
            return fail(ck, k, buf, "out of memory");
    }
    /* It becomes a key segment and marks ownership: keep it plain. */
    if ((*v)[0] == '\0' || strchr(*v, '/') || strcmp(*v, ".") == 0 || strcmp(*v, "..") == 0)
        return fail(ck, k, *v, "is not usable as a host name (empty, '/', or dots only)");
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

/* Services are advertised at it: an IP address, or a name resolvers know.
 * Unset: the address of the interface with the default route. */
static int check_ipaddress(struct config_check *ck, enum config_key k)
{
    char **v = field_of(ck->c, k), buf[256];
    unsigned char addr[sizeof(struct in6_addr)];
    if (*v == NULL) {
        if (hostinfo_address(buf, sizeof buf) < 0)
            return fail(ck, k, "", "could not be found (set IPADDRESS or -a)");
        if ((*v = strdup(buf)) == NULL)
            return fail(ck, k, buf, "out of memory");
    }
    if (inet_pton(AF_INET, *v, addr) == 1 || inet_pton(AF_INET6, *v, addr) == 1 || is_dns_name(*v))
        return 0;
    return fail(ck, k, *v, "is not an IPv4 or IPv6 address, nor a DNS name");
}

/* Every key is converted first, then every check runs in table order:
 * a check may read keys below its own (ttl reads service_ttl). */
int config_finish(struct config *c, char *err, size_t errlen)
{
    struct config_check ck = { c, err, errlen };
    for (int k = 0; k < CK_COUNT; k++)
        if (convert(&ck, (enum config_key)k) < 0)
            return -1;
    for (int k = 0; k < CK_COUNT; k++)
        if (keys[k].check != NULL && keys[k].check(&ck, (enum config_key)k) < 0)
            return -1;
    return 0;
}
