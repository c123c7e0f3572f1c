/* registrar_json.h: cJSON <-> Lua for the engine (registrar.json is
 * registrar_json_open, in modules.h). */
#ifndef REGISTRAR_LUA_REGISTRAR_JSON_H
#define REGISTRAR_LUA_REGISTRAR_JSON_H

#include <lua.h>

struct cJSON;

/* Pushes a cJSON value as Lua (objects and arrays tagged, null as json.null). */
void lua_json_push(lua_State *L, const struct cJSON *v);

/* Encodes the value at idx; raises a Lua error on what JSON cannot hold. */
void lua_json_encode(lua_State *L, int idx);

/* Tags the table on top as a JSON array, so an empty one encodes as []. */
void lua_json_tag_array(lua_State *L);

#endif
