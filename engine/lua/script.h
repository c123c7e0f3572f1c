/* script.h: the scripts' Lua state: one state holding the naming hooks,
 * the backend module and any site script, and calls into it under a
 * budget (lua/budget.h). */
#ifndef REGISTRAR_LUA_SCRIPT_H
#define REGISTRAR_LUA_SCRIPT_H

#include <lua.h>
#include <stddef.h>

struct budget_limits;
struct config;
struct http;
struct metrics;
struct script;
struct zk;

struct script_options {
    const struct config *config;
    struct http *http;          /* NULL: no HTTP (registrar check) */
    struct metrics *metrics;
    struct docker_session *docker;  /* NULL: registrar check */
    struct zk *zk;              /* NULL: no ZooKeeper (registrar check) */
};

/* Finds the default scripts' directory: $REGISTRAR_SCRIPTS, the source tree
 * when run from the build tree, else the install prefix. */
const char *script_dir(char *err, size_t errlen);

/* Loads naming, site script and backend module; does not open the backend. */
struct script *script_load(const struct script_options *opt, char *err, size_t errlen);
void script_free(struct script *s);

lua_State *script_state(struct script *s);
const struct budget_limits *script_limits(const struct script *s);
size_t script_memory_used(const struct script *s);
/* A full collection, then the C library's free pages back to the system:
 * for a daemon that just settled after a burst. */
void script_give_back_memory(struct script *s);
void script_unref(struct script *s, int ref);

/* Registry refs of the backend module (scripts/backends/<scheme>.lua) and
 * of the naming pipeline's function. */
int script_backend_module(struct script *s);
int script_pipeline(struct script *s);
/* Registry ref of the changed(summary) hook; LUA_NOREF when no script
 * defines one. */
int script_changed_hook(struct script *s);

/* Calls the function below nargs arguments on the main thread, with a
 * traceback and a budget; 0, or -1 with "file:line: message" in err. */
int script_call(struct script *s, int nargs, int nres, char *err, size_t errlen);

#endif
