-- SERVICE_* settings a container gives itself, from its env and its labels,
-- read the way registrator reads them (users bring these conventions):
--
--   SERVICE_<KEY>          for every port
--   SERVICE_<port>_<KEY>   for one port; beats the generic one
--
-- At the same level a label beats an env var.  Keys come back lower-case:
-- SERVICE_CHECK_HTTP -> check_http.

local settings = {}

local function collect(source, port, out, from_port)
  for name, value in pairs(source or {}) do
    local key = type(name) == "string" and name:match("^SERVICE_(.+)$")
    if key and type(value) == "string" then
      key = key:lower()
      local number, rest = key:match("^(%d+)_(.+)$")
      if number then
        if number == port then
          out[rest], from_port[rest] = value, true
        end
      elseif not from_port[key] then
        out[key] = value
      end
    end
  end
end

-- settings.of(container, "4001") -> { name = ..., tags = ..., check_http = ... }
function settings.of(container, port)
  local out, from_port = {}, {}
  port = tostring(port)
  collect(container.env, port, out, from_port)
  collect(container.labels, port, out, from_port)
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
    item = item:match("^%s*(.-)%s*$")
    if item ~= "" then out[#out + 1] = item end
  end
  return out
end

return settings
