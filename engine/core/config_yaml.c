/* config_yaml.c: the -c FILE reader.  A YAML mapping of known keys;
 * anything else is an error naming file:line, because a misspelt key that
 * is silently ignored is a setting the user believes in and does not have. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/config.h"

/* libyaml resolves an alias to the node it names, so nine lines of
 * aliases can stand for billions of nodes: the conversion counts what it
 * builds and stops. */
#define YAML_MAX_NODES 10000
#define YAML_MAX_DEPTH 32

struct yaml_doc {
    yaml_document_t doc;
    const char *path;
    char *err;
    size_t errlen;
    int nodes;                  /* built so far for the current key */
    const char *key;            /* the setting being read */
};

static int line_of(const yaml_node_t *n) { return (int)n->start_mark.line + 1; }

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* YAML 1.1 plain scalars as JSON types: the site table is read by Lua. */
static cJSON *scalar_to_json(const yaml_node_t *n)
{
    const char *s = scalar(n);
    char *end;
    double d;
    if (n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return cJSON_CreateString(s);
    if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0)
        return cJSON_CreateTrue();
    if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0)
        return cJSON_CreateFalse();
    if (strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || s[0] == '\0')
        return cJSON_CreateNull();
    errno = 0;
    d = strtod(s, &end);
    if (errno == 0 && *end == '\0' && end != s)
        return cJSON_CreateNumber(d);
    return cJSON_CreateString(s);
}

static cJSON *too_big(struct yaml_doc *y, const yaml_node_t *n, const char *why)
{
    if (y->err[0] == '\0')
        snprintf(y->err, y->errlen, "%s:%d: %s: %s", y->path, n ? line_of(n) : 0, y->key, why);
    return NULL;
}

/* A key given twice in one map: the first value would silently be lost. */
static bool duplicate_key(struct yaml_doc *y, const yaml_node_t *map, const yaml_node_pair_t *pair,
                          const char *within)
{
    const yaml_node_t *key = yaml_document_get_node(&y->doc, pair->key);
    for (const yaml_node_pair_t *p = map->data.mapping.pairs.start; p < pair; p++) {
        const yaml_node_t *other = yaml_document_get_node(&y->doc, p->key);
        if (other != NULL && other->type == YAML_SCALAR_NODE && strcmp(scalar(other), scalar(key)) == 0) {
            snprintf(y->err, y->errlen, "%s:%d: %s%skey \"%.80s\" is given twice (first at line %d)", y->path,
                     line_of(key), within ? within : "", within ? ": " : "", scalar(key), line_of(other));
            return true;
        }
    }
    return false;
}

/* Nested values keep their text for lists of scalars (prefix_path) and
 * are typed JSON in a free-form map (CT_MAP: `site`).  NULL with y->err
 * set when the value is too big or malformed. */
static cJSON *node_to_json(struct yaml_doc *y, yaml_node_t *n, int depth, int typed)
{
    cJSON *out;
    if (n == NULL)
        return too_big(y, n, "unreadable value");
    if (depth > YAML_MAX_DEPTH)
        return too_big(y, n, "nested deeper than 32 levels");
    if (++y->nodes > YAML_MAX_NODES)
        return too_big(y, n, "the value expands to more than 10000 items (through YAML aliases?)");
    switch (n->type) {
    case YAML_SCALAR_NODE:
        return typed ? scalar_to_json(n) : cJSON_CreateString(scalar(n));
    case YAML_SEQUENCE_NODE:
        out = cJSON_CreateArray();
        for (yaml_node_item_t *i = n->data.sequence.items.start; out && i < n->data.sequence.items.top; i++) {
            cJSON *v = node_to_json(y, yaml_document_get_node(&y->doc, *i), depth + 1, typed);
            if (v == NULL) {
                cJSON_Delete(out);
                return NULL;
            }
            cJSON_AddItemToArray(out, v);
        }
        return out;
    case YAML_MAPPING_NODE:
        out = cJSON_CreateObject();
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; out && p < n->data.mapping.pairs.top; p++) {
            yaml_node_t *k = yaml_document_get_node(&y->doc, p->key);
            cJSON *v;
            if (k == NULL || k->type != YAML_SCALAR_NODE) {
                cJSON_Delete(out);
                return too_big(y, n, "a map key must be a plain word");
            }
            if (duplicate_key(y, n, p, y->key)) {
                cJSON_Delete(out);
                return NULL;
            }
            v = node_to_json(y, yaml_document_get_node(&y->doc, p->value), depth + 1, typed);
            if (v == NULL) {
                cJSON_Delete(out);
                return NULL;
            }
            cJSON_AddItemToObject(out, scalar(k), v);
        }
        return out;
    default:
        return too_big(y, n, "unreadable value");
    }
}

static int load_pair(struct config *c, struct yaml_doc *y, yaml_node_t *key, yaml_node_t *value)
{
    char where[600];
    int k;
    bool map;

    if (key->type != YAML_SCALAR_NODE) {
        snprintf(y->err, y->errlen, "%s:%d: a key must be a plain word", y->path, line_of(key));
        return -1;
    }
    k = config_key_find(scalar(key));
    if (k < 0) {
        snprintf(y->err, y->errlen, "%s:%d: unknown key \"%.80s\" (see `registrar help config`)",
                 y->path, line_of(key), scalar(key));
        return -1;
    }
    snprintf(where, sizeof where, "%s:%d", y->path, line_of(value));
    map = config_key_info((enum config_key)k)->type == CT_MAP;
    if (value->type == YAML_SCALAR_NODE && !map) {
        if (scalar(value)[0] == '\0' || (value->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
                                         (strcmp(scalar(value), "~") == 0 || strcmp(scalar(value), "null") == 0))) {
            snprintf(y->err, y->errlen, "%s: no value (%s)", scalar(key), where);
            return -1;
        }
        return config_set(c, (enum config_key)k, scalar(value), where, y->err, y->errlen);
    }
    y->nodes = 0;
    y->key = scalar(key);
    y->err[0] = '\0';
    cJSON *tree = node_to_json(y, value, 0, map);
    if (tree == NULL)
        return -1;
    return config_set_tree(c, (enum config_key)k, tree, where, y->err, y->errlen);
}

static int load_root(struct config *c, struct yaml_doc *y)
{
    yaml_node_t *root = yaml_document_get_root_node(&y->doc);
    if (root == NULL)
        return 0;               /* an empty file sets nothing */
    if (root->type != YAML_MAPPING_NODE) {
        snprintf(y->err, y->errlen, "%s:%d: expected a map of settings (key: value)", y->path, line_of(root));
        return -1;
    }
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
        yaml_node_t *key = yaml_document_get_node(&y->doc, p->key);
        if (key != NULL && key->type == YAML_SCALAR_NODE && duplicate_key(y, root, p, NULL))
            return -1;
        if (load_pair(c, y, key, yaml_document_get_node(&y->doc, p->value)) < 0)
            return -1;
    }
    return 0;
}

int config_load_yaml(struct config *c, const char *path, char *err, size_t errlen)
{
    struct yaml_doc y = { .path = path, .err = err, .errlen = errlen };
    yaml_parser_t parser;
    FILE *f = fopen(path, "rb");
    int rc;

    if (f == NULL) {
        snprintf(err, errlen, "config file %s: %s", path, strerror(errno));
        return -1;
    }
    yaml_parser_initialize(&parser);
    yaml_parser_set_input_file(&parser, f);
    if (!yaml_parser_load(&parser, &y.doc)) {
        snprintf(err, errlen, "%s:%d: %s", path, (int)parser.problem_mark.line + 1,
                 parser.problem ? parser.problem : "YAML syntax error");
        yaml_parser_delete(&parser);
        fclose(f);
        return -1;
    }
    rc = load_root(c, &y);
    yaml_document_delete(&y.doc);
    yaml_parser_delete(&parser);
    fclose(f);
    return rc;
}
