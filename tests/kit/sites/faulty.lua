-- Hooks that break the rules, one container each: the kit must report
-- each fault in the daemon's words (tests/kit/check.lua, `registrar check`).
local registrar = require "registrar"

local faults = {
  ["/cache"] = function() return 42 end,                          -- key() returned a number
  ["/search-api"] = function() error({}) end,                     -- an error that is no string
  ["/weird"] = function() coroutine.yield() end,                  -- a yield where none may be
  ["/node-exporter"] = function() while true do end end,          -- the instruction budget
  ["/backend-net"] = function() return "relative/key" end,       -- refused by keys.check: skipped, logged
}

function key(service)
  local fault = faults[service.container.name]
  if fault then return fault() end
  return registrar.default.key(service)
end

function name(service)
  if service.container.name == "/v6-only" then return { "not", "a", "string" } end
  return registrar.default.name(service)
end

function document(service)
  if service.container.name == "/on-network" then return print end
  local doc = registrar.default.document(service)
  if service.container.name == "/twin_of_jovial" then doc.again = doc end   -- a cycle
  return doc
end
