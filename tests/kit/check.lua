-- The kit's `registrar check --json`: what the agreement test
-- (tests/integration/test_testkit_agreement.py) holds against the daemon.
--
--   lua5.4 tests/kit/check.lua CONTAINERS CONFIG.json
--
-- CONFIG.json holds the configuration keys the daemon reads from its YAML
-- file.  Prints the report on stdout and the scripts' log on stderr as
-- "level message" lines; a configuration or script that does not load
-- prints "registrar: why" and exits 2, as the daemon's start-up.

local testing = require "registrar.testing"

local containers, config_file = arg[1], arg[2]
local f = assert(io.open(config_file))
local given = assert(testing.json.decode(f:read("a")))
f:close()

local ok, kit = pcall(testing.new, given, { origin = config_file })
if not ok then
  io.stderr:write("registrar: ", tostring(kit), "\n")
  os.exit(2)
end
local report = kit:check(testing.read_inspect(containers))
for _, line in ipairs(kit.log) do io.stderr:write(line.level, " ", line.message, "\n") end
print(testing.json.encode(report))
for _, item in ipairs(report.containers) do
  if item.error then os.exit(1) end
end
