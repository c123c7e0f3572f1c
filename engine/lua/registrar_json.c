/* registrar_json.c: registrar.json.
 *
 * An empty Lua table is both [] and {}.  Decoded arrays and objects carry a
 * metatable tag so they re-encode as they came, json.array{}/json.object{}
 * tag a table by hand, and json.null stands for null.  Objects encode with
 * sorted keys, so one document always gives the same bytes: the
 * reconciler compares those bytes to decide whether to rewrite a key. */
#include "lua/registrar_json.h"

#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buffer.h"
#include "core/json.h"
#include "core/text.h"
#include "lua/modules.h"

static char array_tag, object_tag, null_tag;

/* Both ways, so whatever decodes encodes again.  Each level holds a few
 * Lua stack slots and one C frame: checked, since Lua's own guarantee is
 * only LUA_MINSTACK (20) slots for a whole C call. */
#define MAX_DEPTH 100
#define SLOTS_PER_LEVEL 8

/* ---- the output, in a userdata so a Lua error cannot leak it ---------- */

static int strbuf_gc(lua_State *L)
{
    buffer_free(lua_touserdata(L, 1));
    return 0;
}

static struct buffer *strbuf_push(lua_State *L)
{
    struct buffer *b = lua_newuserdatauv(L, sizeof *b, 0);
    memset(b, 0, sizeof *b);
    if (luaL_newmetatable(L, "registrar.strbuf")) {
        lua_pushcfunction(L, strbuf_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return b;
}

/* The work has a ceiling: a table used many times over (a DAG, not a
 * cycle) doubles the output at each level, in C, where neither the memory
 * limit nor the time budget can see it.  A registry file of 10 000
 * containers holds some 60 000 tables. */
#define MAX_TEXT (128L << 20)
#define MAX_TABLES 1000000L

static void strbuf_add(lua_State *L, struct buffer *b, const char *s, size_t n)
{
    if (b->len + n > (size_t)MAX_TEXT)
        luaL_error(L, "json.encode: the text would be larger than %d MiB (a table used many times over?)",
                   (int)(MAX_TEXT >> 20));
    if (buffer_append(b, s, n) < 0)
        luaL_error(L, "json.encode: out of memory");
}

#define strbuf_lit(L, b, s) strbuf_add(L, b, s, sizeof(s) - 1)

/* ---- encoding ---------------------------------------------------------- */

/* Strings are written as valid UTF-8 JSON: control bytes escaped, and a
 * byte that is not UTF-8 becomes U+FFFD, as Docker's own encoder does.
 * U+FFFD is written as its UTF-8 bytes, not as \ufffd: that is how it
 * reads back, so decoding and encoding again gives the same text (the
 * file backend compares re-encoded documents). */
static void encode_string(lua_State *L, struct buffer *b, const char *s, size_t n)
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
        len = text_utf8_len((const unsigned char *)s + i, n - i);
        if (len == 0) {
            strbuf_lit(L, b, "\xef\xbf\xbd");
            i++;
        } else {
            strbuf_add(L, b, s + i, len);
            i += len;
        }
    }
    strbuf_lit(L, b, "\"");
}

/* One encode call: the output, and the set of tables being written (at
 * stack index `seen`), so a table met inside itself is a cycle. */
struct encoder {
    lua_State *L;
    struct buffer *b;
    int seen;
    long tables;                /* written so far */
};

static void encode_value(struct encoder *e, int idx, int depth);

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

static void encode_array(struct encoder *e, int idx, lua_Integer n, int depth)
{
    lua_State *L = e->L;
    strbuf_lit(L, e->b, "[");
    for (lua_Integer i = 1; i <= n; i++) {
        if (i > 1)
            strbuf_lit(L, e->b, ",");
        lua_rawgeti(L, idx, i);
        encode_value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    strbuf_lit(L, e->b, "]");
}

/* A key as Lua holds it: it may contain NUL bytes. */
struct key {
    const char *s;
    size_t n;
};

static int compare_keys(const void *a, const void *b)
{
    const struct key *x = a, *y = b;
    int c = memcmp(x->s, y->s, x->n < y->n ? x->n : y->n);
    return c != 0 ? c : (x->n > y->n) - (x->n < y->n);
}

static void encode_object(struct encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    size_t n = 0, cap = 16;
    struct key *keys;
    /* the key array lives in a userdata so an error cannot leak it */
    struct buffer *holder = strbuf_push(L);
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
            struct key *k = realloc(keys, 2 * cap * sizeof *keys);
            if (k == NULL)
                luaL_error(L, "json.encode: out of memory");
            keys = k;
            holder->data = (char *)k;
            cap *= 2;
        }
        keys[n].s = lua_tolstring(L, -1, &keys[n].n);    /* anchored by the table */
        n++;
    }
    qsort(keys, n, sizeof *keys, compare_keys);
    strbuf_lit(L, e->b, "{");
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strbuf_lit(L, e->b, ",");
        encode_string(L, e->b, keys[i].s, keys[i].n);
        strbuf_lit(L, e->b, ":");
        lua_pushlstring(L, keys[i].s, keys[i].n);
        lua_rawget(L, idx);
        encode_value(e, lua_gettop(L), depth + 1);
        lua_pop(L, 1);
    }
    strbuf_lit(L, e->b, "}");
    lua_settop(L, holder_idx - 1);
}

/* Lua promises a C function only LUA_MINSTACK slots: each level asks for
 * its own, or a deep document writes past the stack. */
static void encode_table(struct encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    lua_Integer n = 0;
    int tag;

    if (depth >= MAX_DEPTH)
        luaL_error(L, "json.encode: tables nested deeper than %d", MAX_DEPTH);
    if (++e->tables > MAX_TABLES)
        luaL_error(L, "json.encode: more than %d tables (a table used many times over?)", (int)MAX_TABLES);
    luaL_checkstack(L, SLOTS_PER_LEVEL, "json.encode: nested too deeply");
    if (lua_rawgetp(L, e->seen, lua_topointer(L, idx)) != LUA_TNIL)
        luaL_error(L, "json.encode: a table contains itself (a cycle)");
    lua_pop(L, 1);
    lua_pushboolean(L, 1);
    lua_rawsetp(L, e->seen, lua_topointer(L, idx));
    tag = tag_of(L, idx);
    if (tag == 'a')
        encode_array(e, idx, (lua_Integer)lua_rawlen(L, idx), depth);
    else if (tag != 'o' && is_list(L, idx, &n))
        encode_array(e, idx, n, depth);
    else
        encode_object(e, idx, depth);
    lua_pushnil(L);             /* the same table may appear again beside itself */
    lua_rawsetp(L, e->seen, lua_topointer(L, idx));
}

static void encode_number(lua_State *L, struct buffer *b, int idx)
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

static void encode_value(struct encoder *e, int idx, int depth)
{
    lua_State *L = e->L;
    size_t n;
    const char *s;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        strbuf_lit(L, e->b, "null");
        break;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            strbuf_lit(L, e->b, "true");
        else
            strbuf_lit(L, e->b, "false");
        break;
    case LUA_TNUMBER:
        encode_number(L, e->b, idx);
        break;
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        encode_string(L, e->b, s, n);
        break;
    case LUA_TTABLE:
        encode_table(e, idx, depth);
        break;
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &null_tag) {
            strbuf_lit(L, e->b, "null");
            break;
        }
        /* fall through */
    default:
        luaL_error(L, "json.encode: cannot write a %s as JSON", luaL_typename(L, idx));
    }
}

void lua_json_encode(lua_State *L, int idx)
{
    struct encoder e = { L, NULL, 0, 0 };
    idx = lua_absindex(L, idx);
    luaL_checkstack(L, SLOTS_PER_LEVEL, "json.encode");
    e.b = strbuf_push(L);
    lua_newtable(L);
    e.seen = lua_gettop(L);
    encode_value(&e, idx, 0);
    lua_pushlstring(L, e.b->data ? e.b->data : "", e.b->len);
    lua_replace(L, -3);
    lua_pop(L, 1);
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

static void push_value(lua_State *L, const cJSON *v, int depth)
{
    const cJSON *item;
    lua_Integer i = 1;

    if (depth >= MAX_DEPTH && (cJSON_IsArray(v) || cJSON_IsObject(v)))
        luaL_error(L, "json: nested deeper than %d", MAX_DEPTH);
    luaL_checkstack(L, SLOTS_PER_LEVEL, "json: nested too deeply");
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
            push_value(L, item, depth + 1);
            lua_rawseti(L, -2, i++);
        }
        set_tag(L, &array_tag);
    } else if (cJSON_IsObject(v)) {
        lua_createtable(L, 0, 4);
        cJSON_ArrayForEach(item, v) {
            push_value(L, item, depth + 1);
            lua_setfield(L, -2, item->string);
        }
        set_tag(L, &object_tag);
    } else {
        lua_pushlightuserdata(L, &null_tag);
    }
}

void lua_json_push(lua_State *L, const cJSON *v)
{
    push_value(L, v, 0);
}

/* A parsed tree owned by a userdata, so a Lua error while it is pushed
 * (too deep, out of memory) cannot leak it. */
static int tree_gc(lua_State *L)
{
    cJSON **tree = lua_touserdata(L, 1);
    cJSON_Delete(*tree);
    *tree = NULL;
    return 0;
}

static cJSON **tree_box(lua_State *L)
{
    cJSON **tree = lua_newuserdatauv(L, sizeof *tree, 0);
    *tree = NULL;
    if (luaL_newmetatable(L, "registrar.json_tree")) {
        lua_pushcfunction(L, tree_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
    return tree;
}

/* More arrays and objects nested than the encoder writes? */
static bool deeper_than(const cJSON *v, int tables)
{
    const cJSON *item;
    if (!cJSON_IsArray(v) && !cJSON_IsObject(v))
        return false;
    if (tables == 0)
        return true;
    cJSON_ArrayForEach(item, v)
        if (deeper_than(item, tables - 1))
            return true;
    return false;
}

/* Expected failures (a registry answering garbage) return nil, message. */
static int json_decode(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n), *end = NULL;
    cJSON **tree = tree_box(L);

    *tree = json_parse(s, n, &end);
    if (*tree == NULL) {
        luaL_pushfail(L);
        lua_pushfstring(L, "invalid JSON at byte %d of %d", (int)(end - s) + 1, (int)n);
        return 2;
    }
    if (deeper_than(*tree, MAX_DEPTH)) {
        luaL_pushfail(L);
        lua_pushfstring(L, "JSON nested deeper than %d", MAX_DEPTH);
        return 2;
    }
    lua_json_push(L, *tree);
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

void lua_json_tag_array(lua_State *L)
{
    set_tag(L, &array_tag);
}
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

int registrar_json_open(lua_State *L, const struct registrar_env *env)
{
    (void)env;
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
