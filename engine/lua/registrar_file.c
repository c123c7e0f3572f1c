/* registrar_file.c: registrar.file, files a backend may write: replaced
 * whole through a temporary file and a rename, and only when what is at
 * the path is a regular file (or nothing). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <lauxlib.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lua/modules.h"

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

int registrar_file_open(lua_State *L, const struct registrar_env *env)
{
    (void)env;
    static const luaL_Reg fns[] = {
        { "replace", file_replace }, { "read", file_read }, { "kind", file_kind },
        { "clean", file_clean }, { NULL, NULL },
    };
    luaL_newlib(L, fns);
    return 1;
}
