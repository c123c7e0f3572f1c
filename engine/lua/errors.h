/* errors.h: what a failed hook call says.  Every message starts with the
 * file:line of the Lua code that failed; a traceback after it goes to the
 * debug log; a memory error names the setting to change. */
#ifndef REGISTRAR_LUA_ERRORS_H
#define REGISTRAR_LUA_ERRORS_H

#include <lua.h>
#include <stddef.h>

struct budget_limits;

/* "file:line: " of the innermost Lua function on co's stack from level
 * on, or "" when there is none. */
void errors_where(lua_State *co, int level, char *buf, size_t len);

/* Makes the error object on top of co a message that says where: one that
 * is not a string (error({}), error()), or that Lua raised from C without
 * a position (a yield where none may be), gets the file:line of the
 * innermost Lua code from level on. */
void errors_locate(lua_State *co, int level);

/* The message handler for lua_pcall: located message and traceback. */
int errors_traceback(lua_State *L);

/* The error on top of `from` (status as lua_pcall/lua_resume returned it)
 * as one line in buf. */
void errors_describe(const struct budget_limits *limits, lua_State *from, int status, char *buf, size_t len);

#endif
