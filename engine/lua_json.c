/* lua_json.c: registrar.json.
 *
 * An empty Lua table is both [] and {}.  Decoded arrays and objects carry a
 * metatable tag so they re-encode as they came, json.array{}/json.object{}
 * tag a table by hand, and json.null stands for null.  Objects encode with
 * sorted keys, so one document always gives the same bytes: the
 * reconciler compares those bytes to decide whether to rewrite a key. */
#include "lua_json.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char array_tag, object_tag, null_tag;

#define MAX_DEPTH 64

/* ---- a growable byte buffer that a Lua error cannot leak -------------- */

struct strbuf {
    char *data;
    size_t len, cap;
};

static int strbuf_gc(lua_State *L)
{
    struct strbuf *b = lua_touserdata(L, 1);
    free(b->data);
    b->data = NULL;
    return 0;
}

static struct strbuf *strbuf_push(lua_State *L)
{
    struct strbuf *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    if (luaL_newmetatable(L, "registrar.strbuf")) {
        lua_pushcfunction(L, strbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return b;
}

static void strbuf_add(lua_State *L, struct strbuf *b, const char *s, size_t n)
{
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *p;
        while (cap < b->len + n)
            cap *= 2;
        p = realloc(b->data, cap);
        if (p == NULL)
            luaL_error(L, "json.encode: out of memory");
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

#define strbuf_lit(L, b, s) strbuf_add(L, b, s, sizeof(s) - 1)

/* ---- encoding ---------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s, or 0 if it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    unsigned cp;
    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) { len = 2; cp = c & 0x1f; }
    else if ((c & 0xf0) == 0xe0) { len = 3; cp = c & 0x0f; }
    else if ((c & 0xf8) == 0xf0) { len = 4; cp = c & 0x07; }
    else return 0;
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
        cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

/* Strings are written as valid UTF-8 JSON: control bytes escaped, and a
 * byte that is not UTF-8 becomes U+FFFD, as Docker's own encoder does. */
static void encode_string(lua_State *L, struct strbuf *b, const char *s, size_t n)
{
    strbuf_lit(L, b, "\"");
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t len;
        char esc[8];
        switch (c) {
        case '"': strbuf_lit(L, b, "\\\""); i++; continue;
        case '\\': strbuf_lit(L, b, "\\\\"); i++; continue;
        case '\n': strbuf_lit(L, b, "\\n"); i++; continue;
        case '\r': strbuf_lit(L, b, "\\r"); i++; continue;
        case '\t': strbuf_lit(L, b, "\\t"); i++; continue;
        default: break;
        }
        if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            strbuf_add(L, b, esc, 6);
            i++;
            continue;
        }
        len = utf8_len((const unsigned char *)s + i, n - i);
        if (len == 0) {
            strbuf_lit(L, b, "\\ufffd");
            i++;
        } else {
            strbuf_add(L, b, s + i, len);
            i += len;
        }
    }
    strbuf_lit(L, b, "\"");
}

static void encode_value(lua_State *L, struct strbuf *b, int idx, int depth);

static int tag_of(lua_State *L, int idx)
{
    int tag = 0;
    if (lua_getmetatable(L, idx)) {
        lua_rawgetp(L, LUA_REGISTRYINDEX, &array_tag);
        if (lua_rawequal(L, -1, -2))
            tag = 'a';
        lua_pop(L, 1);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &object_tag);
        if (lua_rawequal(L, -1, -2))
            tag = 'o';
        lua_pop(L, 2);
    }
    return tag;
}

/* A table is a list when its keys are exactly 1..n (n > 0). */
static int is_list(lua_State *L, int idx, lua_Integer *n)
{
    lua_Integer count = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return 0;
        }
        if (lua_tointeger(L, -1) > max)
            max = lua_tointeger(L, -1);
        count++;
    }
    *n = max;
    return count > 0 && count == max;
}

static void encode_array(lua_State *L, struct strbuf *b, int idx, lua_Integer n, int depth)
{
    strbuf_lit(L, b, "[");
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            strbuf_lit(L, b, ",");
        lua_rawgeti(L, idx, i);
        encode_value(L, b, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    strbuf_lit(L, b, "]");
}

static int compare_keys(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void encode_object(lua_State *L, struct strbuf *b, int idx, int depth)
{
    size_t n = 0, cap = 16;
    const char **keys;
    /* the key array lives in a userdata so an error cannot leak it */
    struct strbuf *holder = strbuf_push(L);
    int holder_idx = lua_gettop(L);

    keys = malloc(cap * sizeof *keys);
    holder->data = (char *)keys;
    if (keys == NULL)
        luaL_error(L, "json.encode: out of memory");
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "json.encode: a table mixes list items and named keys (key %s)",
                       luaL_typename(L, -1));
        if (n == cap) {
            const char **k = realloc(keys, 2 * cap * sizeof *keys);
            if (k == NULL)
                luaL_error(L, "json.encode: out of memory");
            keys = k;
            holder->data = (char *)k;
            cap *= 2;
        }
        keys[n++] = lua_tostring(L, -1);    /* anchored by the table */
    }
    qsort(keys, n, sizeof *keys, compare_keys);
    strbuf_lit(L, b, "{");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strbuf_lit(L, b, ",");
        encode_string(L, b, keys[i], strlen(keys[i]));
        strbuf_lit(L, b, ":");
        lua_getfield(L, idx, keys[i]);
        encode_value(L, b, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    strbuf_lit(L, b, "}");
    lua_settop(L, holder_idx - 1);
}

static void encode_table(lua_State *L, struct strbuf *b, int idx, int depth)
{
    int tag = tag_of(L, idx);
    lua_Integer n = 0;
    if (depth > MAX_DEPTH)
        luaL_error(L, "json.encode: tables nested deeper than %d (a cycle?)", MAX_DEPTH);
    if (tag == 'a') {
        encode_array(L, b, idx, (lua_Integer)lua_rawlen(L, idx), depth);
    } else if (tag != 'o' && is_list(L, idx, &n)) {
        encode_array(L, b, idx, n, depth);
    } else {
        encode_object(L, b, idx, depth);
    }
}

static void encode_number(lua_State *L, struct strbuf *b, int idx)
{
    char num[64];
    int len;
    if (lua_isinteger(L, idx)) {
        len = snprintf(num, sizeof num, LUA_INTEGER_FMT, lua_tointeger(L, idx));
    } else {
        lua_Number d = lua_tonumber(L, idx);
        if (isnan(d) || isinf(d))
            luaL_error(L, "json.encode: %f cannot be written as JSON", (double)d);
        if (d == floor(d) && fabs(d) < 1e15)
            len = snprintf(num, sizeof num, "%.0f", (double)d);
        else
            len = snprintf(num, sizeof num, "%.17g", (double)d);
    }
    strbuf_add(L, b, num, (size_t)len);
}

static void encode_value(lua_State *L, struct strbuf *b, int idx, int depth)
{
    size_t n;
    const char *s;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        strbuf_lit(L, b, "null");
        break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            strbuf_lit(L, b, "true");
        else
            strbuf_lit(L, b, "false");
        break;
    case LUA_TNUMBER:
        encode_number(L, b, idx);
        break;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        encode_string(L, b, s, n);
        break;
    case LUA_TTABLE:
        encode_table(L, b, idx, depth);
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &null_tag) {
            strbuf_lit(L, b, "null");
            break;
        }
        /* fall through */
    default:
        luaL_error(L, "json.encode: cannot write a %s as JSON", luaL_typename(L, idx));
    }
}

void lua_json_encode(lua_State *L, int idx)
{
    struct strbuf *b;
    idx = lua_absindex(L, idx);
    b = strbuf_push(L);
    encode_value(L, b, idx, 0);
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    lua_remove(L, -2);
}

static int json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    lua_json_encode(L, 1);
    return 1;
}

/* ---- decoding ---------------------------------------------------------- */

static void set_tag(lua_State *L, void *tag)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, tag);
    lua_setmetatable(L, -2);
}

void lua_json_push(lua_State *L, const cJSON *v)
{
    const cJSON *item;
    lua_Integer i = 1;

    luaL_checkstack(L, 4, "json nested too deeply");
    if (cJSON_IsString(v)) {
        lua_pushstring(L, v->valuestring);
    } else if (cJSON_IsNumber(v)) {
        double d = v->valuedouble;
        if (d == floor(d) && fabs(d) < 9007199254740992.0)
            lua_pushinteger(L, (lua_Integer)d);
        else
            lua_pushnumber(L, d);
    } else if (cJSON_IsBool(v)) {
        lua_pushboolean(L, cJSON_IsTrue(v));
    } else if (cJSON_IsArray(v)) {
        lua_createtable(L, cJSON_GetArraySize(v), 0);
        cJSON_ArrayForEach(item, v) {
            lua_json_push(L, item);
            lua_rawseti(L, -2, i++);
        }
        set_tag(L, &array_tag);
    } else if (cJSON_IsObject(v)) {
        lua_createtable(L, 0, 4);
        cJSON_ArrayForEach(item, v) {
            lua_json_push(L, item);
            lua_setfield(L, -2, item->string);
        }
        set_tag(L, &object_tag);
    } else {
        lua_pushlightuserdata(L, &null_tag);
    }
}

/* Expected failures (a registry answering garbage) return nil, message. */
static int json_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n), *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(s, n, &end, 0);

    if (v != NULL) {
        while (end < s + n && (*end == ' ' || *end == '\n' || *end == '\r' || *end == '\t'))
            end++;
        if (end != s + n) {
            cJSON_Delete(v);
            v = NULL;
        }
    } else {
        end = cJSON_GetErrorPtr();
    }
    if (v == NULL) {
        luaL_pushfail(L);
        lua_pushfstring(L, "invalid JSON at byte %d of %d", (int)(end && end >= s ? end - s : 0) + 1, (int)n);
        return 2;
    }
    lua_json_push(L, v);
    cJSON_Delete(v);
    return 1;
}

static int tag_table(lua_State *L, void *tag)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    else
        luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    set_tag(L, tag);
    return 1;
}

static int json_array(lua_State *L) { return tag_table(L, &array_tag); }
static int json_object(lua_State *L) { return tag_table(L, &object_tag); }

static int json_is_array(lua_State *L)
{
    lua_pushboolean(L, lua_istable(L, 1) && tag_of(L, 1) == 'a');
    return 1;
}

static const luaL_Reg json_functions[] = {
    { "encode", json_encode },
    { "decode", json_decode },
    { "array", json_array },
    { "object", json_object },
    { "is_array", json_is_array },
    { NULL, NULL },
};

int luaopen_registrar_json(lua_State *L)
{
    /* the tags are per state: create them once */
    lua_rawgetp(L, LUA_REGISTRYINDEX, &array_tag);
    if (lua_isnil(L, -1)) {
        lua_newtable(L);
        lua_pushliteral(L, "json.array");
        lua_setfield(L, -2, "__name");
        lua_rawsetp(L, LUA_REGISTRYINDEX, &array_tag);
        lua_newtable(L);
        lua_pushliteral(L, "json.object");
        lua_setfield(L, -2, "__name");
        lua_rawsetp(L, LUA_REGISTRYINDEX, &object_tag);
    }
    lua_pop(L, 1);
    luaL_newlib(L, json_functions);
    lua_pushlightuserdata(L, &null_tag);
    lua_setfield(L, -2, "null");
    return 1;
}
