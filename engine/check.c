/* check.c: `registrar check`: the live containers (read by the same
 * watcher `run` uses) or a file of `docker inspect` answers, through the
 * naming hooks, printed as text or (--json) as one JSON document, the
 * form the site-script test kit's agreement test reads.  Writes to no
 * registry. */
#include "check.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/config.h"
#include "core/json.h"
#include "core/log.h"
#include "core/loop.h"
#include "core/map.h"
#include "docker/container.h"
#include "docker/watch.h"
#include "lua/naming.h"
#include "lua/script.h"


struct check {
    struct loop *lp;
    struct script *script;
    cJSON *containers;          /* id -> container, from Docker */
    struct map *holders;        /* key -> "/name (id)" of the container that holds it */
    cJSON *report;              /* --json: the list of containers; NULL for text */
    int reported;
    int errors;
};

/* --json: this container's object in the report, {"index": n}; NULL for text. */
static cJSON *report_item(struct check *k)
{
    cJSON *item;
    k->reported++;
    if (k->report == NULL)
        return NULL;
    item = cJSON_CreateObject();
    cJSON_AddNumberToObject(item, "index", k->reported);
    cJSON_AddItemToArray(k->report, item);
    return item;
}

static void report_entry(cJSON *item, const struct naming_entry *e)
{
    cJSON *entries = cJSON_GetObjectItemCaseSensitive(item, "entries"), *out = cJSON_CreateObject();
    if (e->name != NULL)
        cJSON_AddStringToObject(out, "name", e->name);
    cJSON_AddStringToObject(out, "key", e->key);
    cJSON_AddStringToObject(out, "value", e->value);
    cJSON_AddItemToArray(entries, out);
}

static void report_warning(cJSON *item, const char *text)
{
    cJSON *warnings = cJSON_GetObjectItemCaseSensitive(item, "warnings");
    if (warnings == NULL)
        warnings = cJSON_AddArrayToObject(item, "warnings");
    cJSON_AddItemToArray(warnings, cJSON_CreateString(text));
}

/* item: the container's object in the --json report, NULL for text. */
static void print_services(struct check *k, const cJSON *container, cJSON *item)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(container, "name");
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(container, "id");
    struct naming_entry *e;
    int n;
    char err[1024], who[300], warning[1500];

    snprintf(who, sizeof who, "%s (%.12s)", cJSON_IsString(name) ? name->valuestring : "?",
             cJSON_IsString(id) ? id->valuestring : "?");
    if (item != NULL)
        cJSON_AddStringToObject(item, "container", who);
    else
        printf("container %s\n", who);
    if (naming_entries(k->script, container, &e, &n, err, sizeof err) < 0) {
        if (item != NULL)
            cJSON_AddStringToObject(item, "error", err);
        else
            printf("  error: %s\n", err);
        k->errors++;
        return;
    }
    if (item != NULL)
        cJSON_AddArrayToObject(item, "entries");
    else if (n == 0)
        printf("  (no services)\n");
    for (int i = 0; i < n; i++) {
        const char *holder = map_get(k->holders, e[i].key);
        if (item != NULL) {
            report_entry(item, &e[i]);
        } else {
            if (e[i].name != NULL)
                printf("  name  %s\n", e[i].name);
            printf("  key   %s\n  value %s\n", e[i].key, e[i].value);
        }
        /* as `run` decides: the first container keeps it, this one waits */
        if (holder == NULL) {
            map_put(k->holders, e[i].key, strdup(who), NULL);
            continue;
        }
        snprintf(warning, sizeof warning, "key %s is named by containers %s and %s; keeping it for the first",
                 e[i].key, holder, who);
        if (item != NULL)
            report_warning(item, warning);
        else
            printf("  warning: %s\n", warning);
    }
    naming_entries_free(k->script, e, n);
}

static int check_file(struct check *k, const char *path)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL, err[256];
    size_t len = 0, got = 0;
    const char *bad = NULL;
    cJSON *list, *item;
    int i = 0;

    if (f == NULL) {
        fprintf(stderr, "registrar: --containers %s: %s\n", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (len = (size_t)ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0 &&
        (data = malloc(len)) != NULL)
        got = fread(data, 1, len, f);
    fclose(f);
    list = data && got == len ? json_parse(data, len, &bad) : NULL;
    if (list == NULL) {
        if (bad != NULL)
            fprintf(stderr, "registrar: --containers %s: not JSON: byte %zu of %zu is wrong\n", path,
                    (size_t)(bad - data) + 1, len);
        else
            fprintf(stderr, "registrar: --containers %s: cannot read it (%zu bytes)\n", path, len);
        free(data);
        return -1;
    }
    free(data);
    if (!cJSON_IsArray(list)) {
        fprintf(stderr, "registrar: --containers %s: not a JSON list of `docker inspect` results\n", path);
        cJSON_Delete(list);
        return -1;
    }
    cJSON_ArrayForEach(item, list) {
        struct container_notes notes = { .count = 0 };
        cJSON *c = container_from_inspect(item, NULL, &notes, err, sizeof err);
        cJSON *out = report_item(k);
        i++;
        if (c == NULL) {
            if (out != NULL)
                cJSON_AddStringToObject(out, "error", err);
            else
                printf("container #%d of %s\n  error: %s\n", i, path, err);
            k->errors++;
            continue;
        }
        if (notes.count > 0 && out != NULL)
            cJSON_AddStringToObject(out, "note", container_notes_text(&notes, err, sizeof err));
        else if (notes.count > 0)
            printf("container #%d of %s\n  note: %s\n", i, path, container_notes_text(&notes, err, sizeof err));
        print_services(k, c, out);
        cJSON_Delete(c);
    }
    cJSON_Delete(list);
    return 0;
}

static void check_changed(void *arg, const char *id, const cJSON *container)
{
    struct check *k = arg;
    cJSON_DeleteItemFromObjectCaseSensitive(k->containers, id);
    if (container != NULL)
        cJSON_AddItemToObject(k->containers, id, cJSON_Duplicate(container, 1));
}

static void check_listed(void *arg, bool complete)
{
    struct check *k = arg;
    if (!complete)
        k->errors++;
    loop_stop(k->lp);
}

static long check_timeout(struct loop *lp, void *arg)
{
    struct check *k = arg;
    fprintf(stderr, "registrar: Docker did not answer within 10 s\n");
    k->errors++;
    loop_stop(lp);
    return LOOP_NOMORE;
}

/* Reads the live containers through the same watcher `run` uses. */
static int check_live(struct check *k, struct config *c)
{
    struct watch_callbacks cb = { check_changed, check_listed, k };
    char err[1024];
    struct watch *w = watch_new(k->lp, c, NULL, &cb, err, sizeof err);
    const cJSON *item;

    if (w == NULL) {
        fprintf(stderr, "registrar: %s\n", err);
        return -1;
    }
    k->containers = cJSON_CreateObject();
    watch_start(w);
    loop_timer_add(k->lp, 10000, check_timeout, k);
    loop_run(k->lp);
    watch_free(w);
    cJSON_ArrayForEach(item, k->containers)
        print_services(k, item, report_item(k));
    cJSON_Delete(k->containers);
    return 0;
}

static void print_report(struct check *k)
{
    cJSON *doc = cJSON_CreateObject();
    char *text;
    cJSON_AddItemToObject(doc, "containers", k->report);
    text = cJSON_PrintUnformatted(doc);
    if (text != NULL)
        printf("%s\n", text);
    cJSON_free(text);
    cJSON_Delete(doc);
}

int check_run(struct config *c, const char *containers_file, bool as_json)
{
    struct check k = { 0 };
    struct script_options so = { .config = c };
    char err[1024];
    int rc;

    if (as_json)
        log_to_stderr();        /* before the scripts load: they may log */
    k.script = script_load(&so, err, sizeof err);
    if (k.script == NULL) {
        fprintf(stderr, "registrar: %s\n", err);
        return 2;               /* as `run` would fail to start */
    }
    k.lp = loop_new();
    k.holders = map_new();
    if (as_json)
        k.report = cJSON_CreateArray();
    rc = containers_file ? check_file(&k, containers_file) : check_live(&k, c);
    if (k.report != NULL && rc == 0)
        print_report(&k);
    else
        cJSON_Delete(k.report);
    map_free(k.holders, free);
    loop_free(k.lp);
    script_free(k.script);
    return rc < 0 || k.errors > 0 ? 1 : 0;
}
