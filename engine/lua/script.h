/* script.h: the Lua side of the engine: one state holding the naming
 * hooks, the backend script and any site script; calls into them under an
 * instruction and memory budget. */
#ifndef REGISTRAR_SCRIPT_H
#define REGISTRAR_SCRIPT_H

#include <lua.h>
#include <stdbool.h>
#include <stddef.h>

struct config;
struct http;
struct metrics;
struct cJSON;

struct script;

struct script_options {
    const struct config *config;
    struct http *http;          /* NULL: no HTTP (registrar check) */
    struct metrics *metrics;
};

/* Finds the default scripts' directory: $REGISTRAR_SCRIPTS, the source tree
 * when run from the build tree, else the install prefix. */
const char *script_dir(char *err, size_t errlen);

/* Loads naming, site script and backend module; does not open the backend. */
struct script *script_load(const struct script_options *opt, char *err, size_t errlen);
void script_free(struct script *s);
lua_State *script_state(struct script *s);

/* One service entry computed by naming. */
struct script_entry {
    char *key;
    char *value;                /* the bytes the registry should hold */
    char *compare;              /* what is compared with advertised(): the
                                   backend's compare(entry), else value */
    char *name;                 /* the service's name, NULL if it has none */
    int ref;                    /* Lua registry ref of the entry table */
};

/* Runs the naming pipeline on a container (a cJSON in the scripts' shape).
 * On success *out holds *n entries (free with script_entries_free). */
int script_services(struct script *s, const struct cJSON *container,
                    struct script_entry **out, int *n, char *err, size_t errlen);
void script_entries_free(struct script *s, struct script_entry *e, int n);
void script_unref(struct script *s, int ref);

/* Budget bookkeeping shared with task.c: instructions, and time spent
 * running (a coroutine waiting on the registry uses none). */
struct script_budget {
    long instructions_left;
    long limit;
    long long used_ns;          /* in earlier slices (a task resumes many times) */
    long long slice_start_ns;   /* 0 while not running */
    long long limit_ns;
    bool exceeded;
};
void script_arm_budget(struct script *s, lua_State *L, struct script_budget *b);
/* Around each run of a hook's code (a call, or one resume of a task). */
void script_budget_slice_begin(struct script_budget *b);
void script_budget_slice_end(struct script_budget *b);
/* A hook that ran over its time inside one library call could not be
 * stopped: false, with the reason in buf, when b is over its time. */
bool script_budget_within(const struct script_budget *b, char *buf, size_t len);
/* "file:line: " of the innermost Lua function on co's stack from level
 * on, or "" when there is none. */
void script_where(lua_State *co, int level, char *buf, size_t len);
/* Makes the error object on top of co a message that says where: one that
 * is not a string, or that Lua raised from C without a position, gets the
 * file:line of the innermost Lua code from level on. */
void script_error_text(lua_State *co, int level);
/* Writes "file:line: message" of the error object on top of `from`, with
 * memory errors spelt out; a traceback after it goes to the debug log. */
void script_describe_error(struct script *s, lua_State *from, int status, char *buf, size_t len);
size_t script_memory_used(const struct script *s);

/* The backend module table (scripts/backends/<scheme>.lua) in the registry. */
int script_backend_module(struct script *s);

#endif
