/* libFuzzer target: Docker inspect JSON -> the scripts' container table ->
 * a Lua table -> JSON again.  Whatever Docker (or something pretending to
 * be Docker) answers, none of these steps may crash, leak or misbehave. */
#include <cjson/cJSON.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>

#include "docker/container.h"
#include "lua/modules.h"
#include "lua/registrar_json.h"

static int encode_container(lua_State *state)
{
    lua_json_encode(state, 1);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct container_notes notes = { .count = 0 };
    cJSON *c = container_from_json((const char *)data, size, &notes, err, sizeof err);
    lua_State *L;

    if (c == NULL)
        return 0;
    /* a state per input: every run frees all it allocates, so libFuzzer's
     * leak check stays meaningful (and cheap) */
    L = luaL_newstate();
    registrar_json_open(L, NULL);
    lua_pop(L, 1);
    lua_pushcfunction(L, encode_container);
    lua_json_push(L, c);
    if (lua_pcall(L, 1, 1, 0) == LUA_OK) {
        /* what we encode must be JSON cJSON can read back */
        size_t n;
        const char *s = lua_tolstring(L, -1, &n);
        cJSON *back = cJSON_ParseWithLength(s, n);
        if (back == NULL)
            abort();
        cJSON_Delete(back);
    }
    lua_close(L);
    cJSON_Delete(c);
    return 0;
}
