/* libFuzzer target: registrar.json (engine/lua_json.c, engine/json.c) both
 * ways, through the Lua functions the scripts call.  What must hold:
 *
 *  1. json.decode(input) never crashes, leaks or raises: it returns a
 *     value, or nil and a message.
 *  2. A decoded value encodes, unless it holds a number JSON cannot write
 *     (1e999 reads as inf).  Its text s1 decodes again, and that encodes
 *     to the very same bytes; from there on encode(decode(s)) == s.
 *  3. Tables built from the input bytes (nesting depth, list/named keys,
 *     tags, shared tables, tables that contain themselves, values JSON
 *     cannot hold) encode or raise a Lua error, never crash.  A table that
 *     contains itself is an error; a table used twice beside itself is
 *     not a cycle.  What encodes decodes, and re-encodes stably.
 *
 * Each input gets a fresh lua_State, closed at the end, so libFuzzer's
 * leak check sees what an input leaves behind.
 *
 * Known engine findings that break the strict form of 2 and 3 are
 * tolerated unless built with -DREGISTRAR_FUZZ_STRICT (run.sh passes
 * $FUZZ_CFLAGS to clang):
 *  - encode writes a byte that is not UTF-8 as the escape \ufffd, and an
 *    escaped NUL \u0000 decodes as U+FFFD, but encode writes a real U+FFFD
 *    as its raw bytes: encode(decode(s1)) differs from s1 there;
 *  - encode writes 100 nested tables with a scalar in the innermost one,
 *    which decode refuses as "nested deeper than 100";
 *  - encode cuts a name at its first NUL byte and writes the value of the
 *    shorter name (often null): what the real name holds -- a cycle, a
 *    function -- is never looked at. */
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lua/modules.h"
#include "lua/registrar_json.h"

#ifdef REGISTRAR_FUZZ_STRICT
#define TOLERATE_KNOWN 0
#else
#define TOLERATE_KNOWN 1
#endif

#define JSON_TABLE 1            /* stack index of the registrar.json table */

/* Whether what is being checked may be 100 tables deep (the depth-100
 * finding): the input as JSON never is, since decode refuses it. */
static int may_be_100_deep;

static void fail(const char *what, const char *detail)
{
    fprintf(stderr, "fuzz_json: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    abort();
}

/* Calls json.<name>(value at idx) under lua_pcall; leaves 2 results,
 * nil and the message when it raised. */
static int call(lua_State *L, const char *name, int idx)
{
    int st;
    idx = lua_absindex(L, idx);
    lua_getfield(L, JSON_TABLE, name);
    lua_pushvalue(L, idx);
    st = lua_pcall(L, 1, 2, 0);
    if (st != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
    }
    return st;
}

/* s1 with the escapes decode turns into U+FFFD written as its raw bytes,
 * which is what encode(decode(s1)) writes.  Escapes in encoder output are
 * always a backslash and one more character, or \uXXXX. */
static char *fffd_raw(const char *s, size_t n, size_t *out_n)
{
    char *out = malloc(n + 1), *o = out;
    if (out == NULL)
        abort();
    for (size_t i = 0; i < n;) {
        if (s[i] == '\\' && i + 1 < n) {
            if (i + 5 < n && (memcmp(s + i, "\\ufffd", 6) == 0 || memcmp(s + i, "\\u0000", 6) == 0)) {
                memcpy(o, "\xef\xbf\xbd", 3);
                o += 3;
                i += 6;
            } else {
                *o++ = s[i++];
                *o++ = s[i++];
            }
        } else {
            *o++ = s[i++];
        }
    }
    *out_n = (size_t)(o - out);
    return out;
}

/* How the first round trip must compare: exactly; exactly but for the
 * U+FFFD finding; or not at all (built tables hold integers past 2^53,
 * which come back as floats, and names with a NUL) -- from the second
 * round trip on, every mode is exact. */
enum trip { TRIP_EXACT, TRIP_FFFD, TRIP_LOOSE };

static void show(const char *label, const char *s, size_t n)
{
    fprintf(stderr, "%s (%zu bytes): %.*s\n", label, n, (int)(n > 600 ? 600 : n), s);
}

/* encode(decode(.)) of the string at the top, left on the stack above it. */
static void trip(lua_State *L, const char *what)
{
    if (call(L, "decode", -1) != LUA_OK)
        fail("json.decode raised on encoder output", lua_tostring(L, -1));
    if (lua_isnil(L, -2)) {
        show("text", lua_tostring(L, -3), lua_rawlen(L, -3));
        fail(what, lua_tostring(L, -1));
    }
    lua_pop(L, 1);
    if (call(L, "encode", -1) != LUA_OK)
        fail("a value decoded from encoder output does not encode", lua_tostring(L, -1));
    lua_pop(L, 1);
    lua_remove(L, -2);          /* the decoded value */
}

/* The string at the top is what json.encode wrote: it must decode, and
 * re-encode as `mode` says.  Leaves the stack as it was. */
static void check_round_trip(lua_State *L, enum trip mode)
{
    int top = lua_gettop(L);
    size_t n1, n2, n3, nr;
    const char *t1 = lua_tolstring(L, top, &n1), *t2, *t3;

    if (call(L, "decode", top) != LUA_OK)
        fail("json.decode raised on encoder output", lua_tostring(L, -1));
    if (lua_isnil(L, -2) && TOLERATE_KNOWN && may_be_100_deep && strstr(lua_tostring(L, -1), "nested deeper than") != NULL)
        goto out;               /* the depth-100 finding */
    lua_settop(L, top);
    lua_pushvalue(L, top);
    trip(L, "what json.encode wrote does not decode");
    t2 = lua_tolstring(L, -1, &n2);
    if (mode == TRIP_EXACT && (n1 != n2 || memcmp(t1, t2, n1) != 0)) {
        show("s1", t1, n1);
        show("s2", t2, n2);
        fail("encode(decode(s)) is not s", NULL);
    }
    if (mode == TRIP_FFFD) {
        char *raw = fffd_raw(t1, n1, &nr);
        int same = nr == n2 && memcmp(raw, t2, nr) == 0;
        free(raw);
        if (!same) {
            show("s1", t1, n1);
            show("s2", t2, n2);
            fail("encode(decode(s)) is not s (beyond the U+FFFD finding)", NULL);
        }
    }
    lua_pushvalue(L, -1);
    trip(L, "encode(decode(s)) does not decode");
    t3 = lua_tolstring(L, -1, &n3);
    if (n3 != n2 || memcmp(t2, t3, n2) != 0) {
        show("s2", t2, n2);
        show("s3", t3, n3);
        fail("encode(decode(s)) is not s (second round trip)", NULL);
    }
out:
    lua_settop(L, top);
}

/* ---- 1 and 2: the input as JSON text --------------------------------- */

static void decode_input(lua_State *L, const uint8_t *data, size_t size)
{
    int top = lua_gettop(L);
    lua_pushlstring(L, (const char *)data, size);
    if (call(L, "decode", -1) != LUA_OK)
        fail("json.decode raised instead of returning nil, message", lua_tostring(L, -1));
    if (lua_isnil(L, -2)) {
        if (!lua_isstring(L, -1))
            fail("json.decode failed without a message", NULL);
        lua_settop(L, top);
        return;
    }
    lua_pop(L, 1);
    if (call(L, "encode", -1) != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (msg == NULL || strstr(msg, "cannot be written as JSON") == NULL)
            fail("a decoded value does not encode", msg);
        lua_settop(L, top);
        return;
    }
    lua_pop(L, 1);
    /* the decoded value may hold bytes that are not UTF-8: s1 may differ
     * from the input, but from s1 on the text must be stable */
    check_round_trip(L, TOLERATE_KNOWN ? TRIP_FFFD : TRIP_EXACT);
    lua_settop(L, top);
}

/* ---- 3: tables built from the input ---------------------------------- */

#define MAX_NODES 1024
#define MAX_EDGES 4096
#define MAX_PATH 160
#define MAX_OPS 600
#define MAX_EXPANDED 20000      /* shared tables are written out each time */

struct builder {
    lua_State *L;
    const uint8_t *data;
    size_t size, at;
    int nodes_idx;              /* a Lua list of the tables, by id + 1 */
    int n_nodes;
    long keys_made[MAX_NODES];  /* per table: keys are never reused */
    int path[MAX_PATH], depth;
    int edge_from[MAX_EDGES], edge_to[MAX_EDGES], n_edges;
    int bad_value;              /* holds something JSON cannot */
    int array_tagged;           /* json.array hides keys from encode */
    int nul_key;                /* a name with a NUL: see the findings above */
};

static unsigned next(struct builder *b)
{
    return b->at < b->size ? b->data[b->at++] : 0;
}

static void push_node(struct builder *b, int id)
{
    lua_rawgeti(b->L, b->nodes_idx, id + 1);
}

/* Pushes a key for the current table that it does not hold yet. */
static void push_key(struct builder *b)
{
    lua_State *L = b->L;
    int cur = b->path[b->depth];
    long *made = &b->keys_made[cur];
    unsigned kind = next(b) % 8;
    char name[32];

    switch (kind) {
    case 0: case 1: case 2:
        lua_pushinteger(L, ++*made);                    /* a list */
        break;
    case 3:
        *made += 2;
        lua_pushinteger(L, *made);                      /* a hole */
        break;
    case 4:
        lua_pushinteger(L, -++*made);                   /* not a list index */
        break;
    case 5:
        lua_pushnumber(L, (double)++*made + 0.5);       /* a float key */
        break;
    case 6: {
        /* a name from the input: any bytes, NUL and not-UTF-8 included */
        size_t len = next(b) % 12;
        if (len > b->size - b->at)
            len = b->size - b->at;
        lua_pushlstring(L, (const char *)b->data + b->at, len);
        if (memchr(b->data + b->at, '\0', len) != NULL)
            b->nul_key = 1;
        b->at += len;
        ++*made;
        break;
    }
    default:
        snprintf(name, sizeof name, "k%ld", ++*made);
        lua_pushstring(L, name);
        break;
    }
    push_node(b, cur);
    lua_pushvalue(L, -2);
    if (lua_rawget(L, -2) != LUA_TNIL) {    /* taken: a fresh name instead */
        lua_pop(L, 3);
        for (;;) {
            snprintf(name, sizeof name, "u%ld", ++*made);
            push_node(b, cur);
            if (lua_getfield(L, -1, name) == LUA_TNIL)
                break;
            lua_pop(L, 2);
        }
        lua_pop(L, 2);
        lua_pushstring(L, name);
        return;
    }
    lua_pop(L, 2);
}

/* current[new key] = the value at the top (popped) */
static void store(struct builder *b)
{
    lua_State *L = b->L;
    push_key(b);
    lua_insert(L, -2);
    push_node(b, b->path[b->depth]);
    lua_insert(L, -3);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

static int add_edge(struct builder *b, int from, int to)
{
    if (b->n_edges == MAX_EDGES)
        return -1;
    b->edge_from[b->n_edges] = from;
    b->edge_to[b->n_edges] = to;
    b->n_edges++;
    return 0;
}

/* A new empty table as a value of the current one; returns its id. */
static int new_child(struct builder *b)
{
    lua_State *L = b->L;
    int id = b->n_nodes;
    if (id == MAX_NODES || b->n_edges == MAX_EDGES)
        return -1;
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, b->nodes_idx, id + 1);
    b->keys_made[id] = 0;
    b->n_nodes++;
    add_edge(b, b->path[b->depth], id);
    store(b);
    return id;
}

static void descend(struct builder *b, int id)
{
    if (b->depth + 1 < MAX_PATH)
        b->path[++b->depth] = id;
}

static void build(struct builder *b)
{
    lua_State *L = b->L;
    char bytes[8];

    lua_newtable(L);
    b->nodes_idx = lua_gettop(L);
    lua_newtable(L);
    lua_rawseti(L, b->nodes_idx, 1);
    b->n_nodes = 1;
    b->keys_made[0] = 0;
    b->path[0] = 0;
    b->depth = 0;

    for (int ops = 0; ops < MAX_OPS && b->at < b->size; ops++) {
        unsigned op = next(b) % 14, n;
        int id;
        switch (op) {
        case 0: case 1:                 /* a table inside this one, and into it */
            if ((id = new_child(b)) >= 0)
                descend(b, id);
            break;
        case 2:                         /* back up */
            if (b->depth > 0)
                b->depth--;
            break;
        case 3: {                       /* a string of input bytes */
            size_t len = next(b) % 24;
            if (len > b->size - b->at)
                len = b->size - b->at;
            lua_pushlstring(L, (const char *)b->data + b->at, len);
            b->at += len;
            store(b);
            break;
        }
        case 4: {                       /* an integer, any of them */
            lua_Integer i = 0;
            n = next(b) % 9;
            for (unsigned k = 0; k < n; k++)
                i = (lua_Integer)(((lua_Unsigned)i << 8) | next(b));
            lua_pushinteger(L, i);
            store(b);
            break;
        }
        case 5: {                       /* a float, inf and NaN included */
            double d;
            for (unsigned k = 0; k < sizeof bytes; k++)
                bytes[k] = (char)next(b);
            memcpy(&d, bytes, sizeof d);
            if (d != d || d - d != 0)
                b->bad_value = 1;
            lua_pushnumber(L, d);
            store(b);
            break;
        }
        case 6:                         /* true, false, json.null */
            n = next(b) % 3;
            if (n == 2)
                lua_getfield(L, JSON_TABLE, "null");
            else
                lua_pushboolean(L, (int)n);
            store(b);
            break;
        case 7:                         /* an ancestor, or itself: a cycle */
            id = b->path[b->depth - (int)(next(b) % (unsigned)(b->depth + 1))];
            if (add_edge(b, b->path[b->depth], id) == 0) {
                push_node(b, id);
                store(b);
            }
            break;
        case 8:                         /* any table made so far */
            id = (int)(next(b) % (unsigned)b->n_nodes);
            if (add_edge(b, b->path[b->depth], id) == 0) {
                push_node(b, id);
                store(b);
            }
            break;
        case 9:                         /* json.array / json.object tags */
            n = next(b) & 1;
            b->array_tagged |= (int)n;
            lua_getfield(L, JSON_TABLE, n ? "array" : "object");
            push_node(b, b->path[b->depth]);
            lua_call(L, 1, 0);
            break;
        case 10:                        /* what JSON cannot hold */
            b->bad_value = 1;
            switch (next(b) % 3) {
            case 0: lua_pushcfunction(L, lua_gettop); break;
            case 1: lua_pushlightuserdata(L, b); break;
            default: lua_newuserdatauv(L, 1, 0); break;
            }
            store(b);
            break;
        case 11:                        /* a chain of tables, and into it */
            n = next(b);
            for (unsigned k = 0; k < n; k++) {
                if ((id = new_child(b)) < 0)
                    break;
                descend(b, id);
            }
            break;
        case 12:                        /* back to the top */
            b->depth = 0;
            break;
        default:                        /* a key set again (only ever to integers) */
            push_node(b, b->path[b->depth]);
            if (lua_getfield(L, -1, "same") == LUA_TNIL || lua_isinteger(L, -1)) {
                lua_pushinteger(L, (lua_Integer)next(b));
                lua_setfield(L, -3, "same");
            }
            lua_pop(L, 2);
            break;
        }
    }
}

/* Over the edges: is a cycle reachable from the root?  How many tables
 * does writing it out visit (capped), and how deep does it go? */
static int has_cycle(const struct builder *b, int v, unsigned char *color)
{
    color[v] = 1;
    for (int e = 0; e < b->n_edges; e++) {
        if (b->edge_from[e] != v)
            continue;
        int w = b->edge_to[e];
        if (color[w] == 1 || (color[w] == 0 && has_cycle(b, w, color)))
            return 1;
    }
    color[v] = 2;
    return 0;
}

static long expanded(const struct builder *b, int v, long *memo, int *depth_memo)
{
    long total = 1;
    int deepest = 0;
    if (memo[v] >= 0)
        return memo[v];
    for (int e = 0; e < b->n_edges; e++) {
        if (b->edge_from[e] != v)
            continue;
        int w = b->edge_to[e];
        total += expanded(b, w, memo, depth_memo);
        if (depth_memo[w] > deepest)
            deepest = depth_memo[w];
        if (total > MAX_EXPANDED)
            total = MAX_EXPANDED + 1;
    }
    memo[v] = total;
    depth_memo[v] = deepest + 1;
    return total;
}

static void encode_built(lua_State *L, const uint8_t *data, size_t size)
{
    static struct builder b;
    static unsigned char color[MAX_NODES];
    static long memo[MAX_NODES];
    static int depth_memo[MAX_NODES];
    int top = lua_gettop(L), cycle, st, hidden;
    long size_out;

    memset(&b, 0, sizeof b);
    b.L = L;
    b.data = data;
    b.size = size;
    build(&b);

    memset(color, 0, sizeof color);
    cycle = has_cycle(&b, 0, color);
    may_be_100_deep = 1;
    if (!cycle) {
        for (int i = 0; i < b.n_nodes; i++)
            memo[i] = -1;
        size_out = expanded(&b, 0, memo, depth_memo);
        if (size_out > MAX_EXPANDED)
            goto out;           /* too slow to write out: not what this looks for */
        may_be_100_deep = depth_memo[0] >= 100;
    }
    push_node(&b, 0);
    st = call(L, "encode", -1);
    if (st != LUA_OK) {
        const char *msg = lua_tostring(L, -1);
        if (msg == NULL || strncmp(msg, "json.encode", 11) != 0)
            fail("json.encode raised something that is not its own error", msg);
        if (!cycle && strstr(msg, "cycle") != NULL)
            fail("json.encode called a table used twice a cycle", msg);
        goto out;
    }
    /* keys are never reused and every table hangs off the root, so all
     * that was stored is written -- but for what an array tag hides
     * (named keys, items past the border), and what a name with a NUL
     * hides (the NUL-name finding) */
    hidden = b.array_tagged || (TOLERATE_KNOWN && b.nul_key);
    if (cycle && !hidden)
        fail("json.encode wrote a table that contains itself", lua_tostring(L, -2));
    if (b.bad_value && !hidden)
        fail("json.encode wrote a value JSON cannot hold", lua_tostring(L, -2));
    lua_pop(L, 1);
    check_round_trip(L, TRIP_LOOSE);
out:
    lua_settop(L, top);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = luaL_newstate();
    if (L == NULL)
        return 0;
    registrar_json_open(L, NULL);          /* at JSON_TABLE */
    may_be_100_deep = 0;
    decode_input(L, data, size);
    encode_built(L, data, size);
    lua_close(L);
    return 0;
}
