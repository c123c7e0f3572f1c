-- Registry keys built from container data.  Env values, labels and names
-- are the container's to choose, so every piece that becomes a key segment
-- is checked here: no segment may climb out of its prefix or into another
-- host's entries.  '/' and '%' are escaped (%2F, %25); what cannot be
-- escaped safely is refused with the reason.

local keys = {}

local MAX_SEGMENT = 255
local MAX_KEY = 1024

-- Returns the segment as it goes into a key, or nil and why not.
function keys.segment(value)
  if type(value) == "number" then
    value = tostring(math.tointeger(value) or value)
  elseif type(value) ~= "string" then
    return nil, "is a " .. type(value) .. ", not text"
  end
  if value == "" then return nil, "is empty" end
  if #value > MAX_SEGMENT then return nil, ("is longer than %d bytes"):format(MAX_SEGMENT) end
  if value:find("%c") then return nil, "holds control characters" end
  if not utf8.len(value) then return nil, "is not UTF-8" end
  if value == "." or value == ".." then return nil, "is a relative path ('" .. value .. "')" end
  return (value:gsub("[%%/]", { ["%"] = "%25", ["/"] = "%2F" }))
end

-- The pipeline's last check on a whole key, whoever built it.
function keys.check(key)
  if type(key) ~= "string" then return nil, "is a " .. type(key) .. ", not a string" end
  if key == "" then return nil, "is empty" end
  if key:sub(1, 1) ~= "/" then return nil, "does not start with '/'" end
  if #key > MAX_KEY then return nil, ("is longer than %d bytes"):format(MAX_KEY) end
  if key:find("%c") then return nil, "holds control characters" end
  if not utf8.len(key) then return nil, "is not UTF-8" end
  if key:find("//", 1, true) then return nil, "has an empty segment ('//')" end
  for segment in key:gmatch("[^/]+") do
    if segment == "." or segment == ".." then
      return nil, "has a relative segment ('" .. segment .. "')"
    end
  end
  return true
end

-- prefix .. "/" .. segments, with exactly one '/' between each.
function keys.join(prefix, segments)
  local key = (prefix or ""):gsub("/+$", "")
  for _, segment in ipairs(segments) do
    key = key .. "/" .. segment
  end
  return key
end

return keys
