-- SERVICE_* settings a container gives itself, from its env and its labels,
-- read the way registrator reads them (users bring these conventions):
--
--   SERVICE_<KEY>          for every port
--   SERVICE_<port>_<KEY>   for one port; beats the generic one
--
-- At the same level a label beats an env var.  Keys come back lower-case:
-- SERVICE_CHECK_HTTP -> check_http.

local text = require "registrar.text"

local settings = {}

-- One pass over env and labels: the generic settings, and those of each
-- port.  Labels come second, so at the same level they win.  A caller
-- that asks for many ports parses once and passes the result to of().
function settings.parse(container)
  local found = { generic = {}, ports = {} }
  for _, source in ipairs { container.env or {}, container.labels or {} } do
    for name, value in pairs(source) do
      local key = type(name) == "string" and type(value) == "string" and name:match("^SERVICE_(.+)$")
      if key then
        key = key:lower()
        local number, rest = key:match("^(%d+)_(.+)$")
        if number then
          found.ports[number] = found.ports[number] or {}
          found.ports[number][rest] = value
        else
          found.generic[key] = value
        end
      end
    end
  end
  return found
end

-- settings.of(container, "4001") -> { name = ..., tags = ..., check_http = ... }
function settings.of(container, port, parsed)
  local found, out = parsed or settings.parse(container), {}
  for k, v in pairs(found.generic) do out[k] = v end
  for k, v in pairs(found.ports[tostring(port)] or {}) do out[k] = v end
  return out
end

-- "any value that is not empty, 0, false or no"
function settings.truthy(value)
  if value == nil or value == "" then return false end
  local v = value:lower()
  return v ~= "0" and v ~= "false" and v ~= "no"
end

function settings.list(value)
  local out = {}
  for item in (value or ""):gmatch("[^,]+") do
    item = text.trim(item)
    if item ~= "" then out[#out + 1] = item end
  end
  return out
end

return settings
