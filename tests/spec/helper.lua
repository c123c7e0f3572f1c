-- Loaded by busted before the specs: finds the scripts and support.lua.
local scripts = assert(os.getenv("REGISTRAR_SCRIPTS"), "REGISTRAR_SCRIPTS must name the scripts directory")
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
-- and the site-script test kit (registrar.testing), which the kit_* specs hold to the engine
package.path = scripts .. "/?.lua;" .. here .. "/?.lua;" .. scripts .. "/../rockspec/lua/?.lua;" .. package.path
