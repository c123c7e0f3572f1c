-- Loaded by busted before the specs: finds the scripts and support.lua.
local scripts = assert(os.getenv("REGISTRAR_SCRIPTS"), "REGISTRAR_SCRIPTS must name the scripts directory")
local here = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
package.path = scripts .. "/?.lua;" .. here .. "/?.lua;" .. package.path
