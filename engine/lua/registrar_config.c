/* registrar_config.c: registrar.config, the merged configuration as a
 * read-only table built from the key table (core/config_keys.def), and
 * registrar.host.  Outside the daemon (the module busted loads) both are
 * plain tables a spec fills. */
#include <lauxlib.h>

#include "core/config.h"
#include "core/hostinfo.h"
#include "lua/modules.h"
#include "lua/registrar_json.h"

static void set_string_field(lua_State *L, const char *name, const char *value)
{
    if (value == NULL)
        return;
    lua_pushstring(L, value);
    lua_setfield(L, -2, name);
}

/* Pushes key k's value as its natural Lua type; returns 0 (and pushes
 * nothing) when the key is unset. */
static int push_value(lua_State *L, const struct config *c, enum config_key k)
{
    const struct config_key_info *d = config_key_info(k);
    const void *f = config_field(c, k);
    const char *s;

    switch (d->type) {
    case CT_STRING:
    case CT_PATH:
        /* a value holding a password shows as its redacted copy */
        s = d->shown ? *(char *const *)((const char *)c + d->shown) : *(char *const *)f;
        if (s == NULL)
            return 0;
        lua_pushstring(L, s);
        return 1;
    case CT_MS:
    case CT_COUNT:
    case CT_MIB:
        lua_pushinteger(L, *(const long *)f);
        return 1;
    case CT_BOOL:
        lua_pushboolean(L, *(const bool *)f);
        return 1;
    case CT_CHOICE:
        lua_pushstring(L, d->words[*(const int *)f]);
        return 1;
    case CT_LIST: {
        const struct config_list *l = f;
        lua_createtable(L, l->len, 0);
        for (int i = 0; i < l->len; i++) {
            lua_pushstring(L, l->items[i]);
            lua_rawseti(L, -2, i + 1);
        }
        return 1;
    }
    case CT_HOSTPORT: {
        const struct config_hostport *hp = f;
        if (hp->host == NULL)
            return 0;
        lua_createtable(L, 0, 2);
        set_string_field(L, "host", hp->host);
        lua_pushinteger(L, hp->port);
        lua_setfield(L, -2, "port");
        return 1;
    }
    case CT_MAP:
        if (*(struct cJSON *const *)f != NULL)
            lua_json_push(L, *(struct cJSON *const *)f);
        else
            lua_newtable(L);
        return 1;
    }
    return 0;
}

/* Every key of the table by its name; secret keys only with secrets. */
void lua_registrar_push_config(lua_State *L, const struct config *c, bool secrets)
{
    lua_createtable(L, 0, CK_COUNT);
    for (int k = 0; k < CK_COUNT; k++) {
        const struct config_key_info *d = config_key_info((enum config_key)k);
        if (d->secret && !secrets)
            continue;
        if (push_value(L, c, (enum config_key)k))
            lua_setfield(L, -2, d->name);
    }
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

int registrar_config_open(lua_State *L, const struct registrar_env *env)
{
    if (env == NULL || env->config == NULL) {
        lua_newtable(L);
        return 1;
    }
    lua_registrar_push_config(L, env->config, false);
    make_readonly(L);
    return 1;
}

/* registrar.host: {hostname, ipaddress, container}; container is the id
 * of the container registrar runs in (the pipeline skips it unless
 * register_self), absent outside one. */
int registrar_host_open(lua_State *L, const struct registrar_env *env)
{
    char id[65];
    lua_newtable(L);
    if (env != NULL && env->config != NULL) {
        set_string_field(L, "hostname", env->config->hostname);
        set_string_field(L, "ipaddress", env->config->ipaddress);
        if (hostinfo_container_id("/proc/self/mountinfo", id, sizeof id) == 0)
            set_string_field(L, "container", id);
    }
    return 1;
}
