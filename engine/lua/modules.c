/* lua_registrar.c: assembles the `registrar` module (json, base64, log,
 * file, config, host, http, metrics) for the engine, and a plain C library
 * of the same module for specs run by lua5.4 and busted. */
#include "lua/modules.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <lualib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"
#include "lua/registrar_json.h"

/* ---- registrar.log ----------------------------------------------------- */

/* log.info(fmt, ...) formats as string.format does. */
static const char *format_args(lua_State *L)
{
    if (lua_gettop(L) <= 1)
        return luaL_tolstring(L, 1, NULL);
    lua_getglobal(L, "string");
    lua_getfield(L, -1, "format");
    lua_insert(L, 1);
    lua_pop(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return lua_tostring(L, -1);
}

static int log_at(lua_State *L, enum log_level level)
{
    if (log_enabled(level))
        log_msg(level, "%s", format_args(L));
    return 0;
}

static int log_debug_fn(lua_State *L) { return log_at(L, LOG_DEBUG); }
static int log_info_fn(lua_State *L) { return log_at(L, LOG_INFO); }
static int log_warn_fn(lua_State *L) { return log_at(L, LOG_WARN); }
static int log_error_fn(lua_State *L) { return log_at(L, LOG_ERROR); }

static int log_enabled_fn(lua_State *L)
{
    enum log_level level;
    if (log_level_parse(luaL_checkstring(L, 1), &level) < 0)
        return luaL_argerror(L, 1, "not a log level");
    lua_pushboolean(L, log_enabled(level));
    return 1;
}

int luaopen_registrar_log(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "debug", log_debug_fn }, { "info", log_info_fn },
        { "warn", log_warn_fn }, { "error", log_error_fn },
        { "enabled", log_enabled_fn }, { NULL, NULL },
    };
    luaL_newlib(L, fns);
    return 1;
}

/* ---- registrar.file ---------------------------------------------------- */

static int make_parents(const char *path)
{
    char buf[4096];
    size_t n = strlen(path);
    if (n >= sizeof buf)
        return -1;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -1;
        *p = '/';
    }
    return 0;
}

static int write_all(int fd, const char *data, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, data, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        data += w;
        n -= (size_t)w;
    }
    return 0;
}

/* What is at path, as a word for messages: "missing", "file", or what
 * else it is.  lstat: a symbolic link is not followed. */
static const char *kind_at(const char *path, int *error)
{
    struct stat st;
    *error = 0;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return "missing";
        *error = errno;
        return "unreadable";
    }
    if (S_ISREG(st.st_mode))
        return "file";
    if (S_ISDIR(st.st_mode))
        return "directory";
    if (S_ISLNK(st.st_mode))
        return "symbolic link";
    if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))
        return "device";
    if (S_ISFIFO(st.st_mode))
        return "named pipe";
    return "socket";
}

/* Only a regular file, or nothing, may be replaced: a rename over a
 * device, a link or a directory would destroy something that is not ours. */
static int refuse_unless_file(lua_State *L, const char *path)
{
    int error;
    const char *kind = kind_at(path, &error);
    if (strcmp(kind, "file") == 0 || strcmp(kind, "missing") == 0)
        return 0;
    luaL_pushfail(L);
    if (error)
        lua_pushfstring(L, "%s: %s", path, strerror(error));
    else
        lua_pushfstring(L, "%s is a %s, not a regular file", path, kind);
    return 2;
}

/* file.kind(path): "missing", "file", "directory", "symbolic link", ... */
static int file_kind(lua_State *L)
{
    int error;
    lua_pushstring(L, kind_at(luaL_checkstring(L, 1), &error));
    return 1;
}

/* file.replace(path, data): readers see the old file or the new one, never
 * half of one: write a temporary file beside it, fsync, rename over. */
static int file_replace(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    size_t n;
    const char *data = luaL_checklstring(L, 2, &n);
    char tmp[4200];
    int fd, saved;

    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return luaL_argerror(L, 1, "path too long");
    if (refuse_unless_file(L, path))
        return 2;
    if (make_parents(path) < 0)
        goto fail;
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        goto fail;
    if (write_all(fd, data, n) < 0 || fsync(fd) < 0) {
        saved = errno;
        close(fd);
        unlink(tmp);
        errno = saved;
        goto fail;
    }
    close(fd);
    if (rename(tmp, path) < 0) {
        saved = errno;
        unlink(tmp);
        errno = saved;
        goto fail;
    }
    lua_pushboolean(L, 1);
    return 1;
fail:
    luaL_pushfail(L);
    lua_pushfstring(L, "%s: %s", path, strerror(errno));
    return 2;
}

#define FILE_MAX_READ (256L << 20)

/* file.read(path): contents, or nil, message, and "missing" for ENOENT.
 * Only a regular file is read (a named pipe would block the daemon). */
static int file_read(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOFOLLOW);
    struct stat st;
    luaL_Buffer b;
    ssize_t got;

    if (fd < 0) {
        int missing = errno == ENOENT;
        luaL_pushfail(L);
        lua_pushfstring(L, "%s: %s", path, strerror(errno));
        if (missing) {
            lua_pushliteral(L, "missing");
            return 3;
        }
        return 2;
    }
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_MAX_READ) {
        int error;
        close(fd);
        luaL_pushfail(L);
        if (st.st_size > FILE_MAX_READ && S_ISREG(st.st_mode))
            lua_pushfstring(L, "%s is larger than %d MiB", path, (int)(FILE_MAX_READ >> 20));
        else
            lua_pushfstring(L, "%s is a %s, not a regular file", path, kind_at(path, &error));
        return 2;
    }
    luaL_buffinit(L, &b);
    do {
        char *p = luaL_prepbuffer(&b);
        got = read(fd, p, LUAL_BUFFERSIZE);
        if (got > 0)
            luaL_addsize(&b, (size_t)got);
    } while (got > 0 || (got < 0 && errno == EINTR));
    close(fd);
    luaL_pushresult(&b);
    return 1;
}

/* file.clean(path): removes <path>.tmp.<pid> files that a registrar killed
 * in the middle of file.replace left behind (the pid no longer runs);
 * returns how many. */
static int file_clean(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    const char *slash = strrchr(path, '/');
    char dir[4096], prefix[512], full[4700];
    int removed = 0;
    DIR *d;
    struct dirent *ent;

    if (slash == NULL || (size_t)(slash - path) >= sizeof dir ||
        snprintf(prefix, sizeof prefix, "%s.tmp.", slash + 1) >= (int)sizeof prefix)
        return luaL_argerror(L, 1, "not an absolute path");
    snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    d = opendir(dir);
    while (d != NULL && (ent = readdir(d)) != NULL) {
        char *end;
        long pid;
        if (strncmp(ent->d_name, prefix, strlen(prefix)) != 0)
            continue;
        pid = strtol(ent->d_name + strlen(prefix), &end, 10);
        if (*end != '\0' || pid <= 0 || pid == (long)getpid() || (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
            continue;           /* not ours, or its writer still runs */
        snprintf(full, sizeof full, "%s/%s", dir, ent->d_name);
        if (unlink(full) == 0)
            removed++;
    }
    if (d != NULL)
        closedir(d);
    lua_pushinteger(L, removed);
    return 1;
}

int luaopen_registrar_file(lua_State *L)
{
    static const luaL_Reg fns[] = {
        { "replace", file_replace }, { "read", file_read }, { "kind", file_kind },
        { "clean", file_clean }, { NULL, NULL },
    };
    luaL_newlib(L, fns);
    return 1;
}

/* ---- registrar.config and registrar.host ------------------------------ */

static void set_string_field(lua_State *L, const char *name, const char *value)
{
    if (value == NULL)
        return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, name);
}

static void set_integer_field(lua_State *L, const char *name, lua_Integer value)
{
    lua_pushinteger(L, value);
    lua_setfield(L, -2, name);
}

void lua_registrar_push_config(lua_State *L, const struct config *c)
{
    lua_newtable(L);
    set_string_field(L, "docker", c->docker);
    set_integer_field(L, "interval", c->interval_ms);
    set_integer_field(L, "ttl", c->ttl_ms);
    set_string_field(L, "log_level", log_level_name(c->log_level));
    set_string_field(L, "hostname", c->hostname);
    set_string_field(L, "ipaddress", c->ipaddress);
    set_string_field(L, "prefix_stats", c->prefix_stats);
    set_string_field(L, "prefix_services", c->prefix_services);
    set_string_field(L, "prefix_hosts", c->prefix_hosts);
    lua_createtable(L, c->prefix_path_len, 0);
    for (int i = 0; i < c->prefix_path_len; i++) {
        lua_pushstring(L, c->prefix_path[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "prefix_path");
    set_string_field(L, "service_ttl", c->mode == MODE_TTL ? "ttl" : "prune");
    set_string_field(L, "backend", c->backend_shown);
    set_string_field(L, "naming", c->naming);
    set_string_field(L, "script", c->script);
    set_string_field(L, "health", c->health == HEALTH_IGNORE ? "ignore" : "require");
    set_string_field(L, "network", c->network);
    lua_pushboolean(L, c->explicit_only);
    lua_setfield(L, -2, "explicit");
    set_integer_field(L, "concurrency", c->concurrency);
    set_integer_field(L, "timeout", c->timeout_ms);
    set_string_field(L, "username", c->username);
    set_string_field(L, "password", c->password);
    set_string_field(L, "token", c->token);
    set_string_field(L, "ca_file", c->ca_file);
    set_string_field(L, "cert_file", c->cert_file);
    set_string_field(L, "key_file", c->key_file);
    if (c->statsd_host) {
        lua_newtable(L);
        set_string_field(L, "host", c->statsd_host);
        set_integer_field(L, "port", c->statsd_port);
        lua_setfield(L, -2, "statsd");
    }
    if (c->site)
        lua_json_push(L, c->site);
    else
        lua_newtable(L);
    lua_setfield(L, -2, "site");
}

static int readonly_newindex(lua_State *L)
{
    return luaL_error(L, "registrar.config is read-only (tried to set \"%s\")", luaL_tolstring(L, 2, NULL));
}

static int readonly_pairs(lua_State *L)
{
    lua_getglobal(L, "next");
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "__index");
    lua_remove(L, -2);
    lua_pushnil(L);
    return 3;
}

/* Wraps the table on top in a read-only proxy. */
static void make_readonly(lua_State *L)
{
    lua_newtable(L);                 /* proxy */
    lua_createtable(L, 0, 3);        /* its metatable */
    lua_pushvalue(L, -3);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, readonly_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, readonly_pairs);
    lua_setfield(L, -2, "__pairs");
    lua_setmetatable(L, -2);
    lua_remove(L, -2);
}

/* ---- registrar.digest ---------------------------------------------------- */

/* registrar.digest(s): 16 hex digits (FNV-1a, 64 bits) that change when s
 * does.  For noticing changes (a backend that cannot store a whole
 * document compares digests), not for security. */
static int digest(lua_State *L)
{
    size_t n;
    const unsigned char *s = (const unsigned char *)luaL_checklstring(L, 1, &n);
    unsigned long long h = 14695981039346656037ULL;
    char hex[17];
    for (size_t i = 0; i < n; i++) {
        h ^= s[i];
        h *= 1099511628211ULL;
    }
    snprintf(hex, sizeof hex, "%016llx", h);
    lua_pushstring(L, hex);
    return 1;
}

/* ---- the module --------------------------------------------------------- */

static void add_common(lua_State *L)
{
    luaopen_registrar_json(L);
    lua_setfield(L, -2, "json");
    luaopen_registrar_base64(L);
    lua_setfield(L, -2, "base64");
    luaopen_registrar_log(L);
    lua_setfield(L, -2, "log");
    luaopen_registrar_file(L);
    lua_setfield(L, -2, "file");
    lua_pushcfunction(L, digest);
    lua_setfield(L, -2, "digest");
    lua_newtable(L);
    lua_setfield(L, -2, "backends");   /* site scripts add schemes here */
}

void lua_registrar_install(lua_State *L, const struct registrar_env *env)
{
    lua_newtable(L);
    add_common(L);
    if (env->config) {
        lua_registrar_push_config(L, env->config);
        make_readonly(L);
        lua_setfield(L, -2, "config");
        lua_newtable(L);
        set_string_field(L, "hostname", env->config->hostname);
        set_string_field(L, "ipaddress", env->config->ipaddress);
        lua_setfield(L, -2, "host");
    }
    luaopen_registrar_http(L, env->http, env->http_timeout_ms);
    lua_setfield(L, -2, "http");
    luaopen_registrar_metrics(L, env->metrics);
    lua_setfield(L, -2, "metrics");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushvalue(L, -2);
    lua_setfield(L, -2, "registrar");
    lua_pop(L, 2);
}

int luaopen_registrar(lua_State *L)
{
    lua_newtable(L);
    add_common(L);
    lua_newtable(L);
    lua_setfield(L, -2, "config");
    lua_newtable(L);
    lua_setfield(L, -2, "host");
    luaopen_registrar_http(L, NULL, 0);
    lua_setfield(L, -2, "http");
    luaopen_registrar_metrics(L, NULL);
    lua_setfield(L, -2, "metrics");
    return 1;
}
