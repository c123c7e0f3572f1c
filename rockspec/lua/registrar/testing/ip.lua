-- IP address text as inet_pton(3) reads it: the engine keeps only
-- addresses that parse (a HostIp, a network's IPAddress, config ipaddress),
-- so the kit must draw the same line.

local ip = {}

-- Four decimal parts 0..255, no leading zeros (glibc refuses octal).
function ip.v4(s)
  local parts = 0
  for part in (s .. "."):gmatch("([^.]*)%.") do
    parts = parts + 1
    if not part:match("^%d%d?%d?$") or (#part > 1 and part:sub(1, 1) == "0") or tonumber(part) > 255 then
      return false
    end
  end
  return parts == 4 and not s:find("%.$") and not s:find("^%.")
end

local function groups_ok(text, max)
  if text == "" then return 0 end
  local n = 0
  for group in (text .. ":"):gmatch("([^:]*):") do
    if not group:match("^%x%x?%x?%x?$") then return nil end
    n = n + 1
  end
  return n <= max and n or nil
end

-- Up to eight groups of 1-4 hex digits, one "::" for a run of zeros, and
-- an IPv4 address as the last 32 bits.
function ip.v6(s)
  if s == "" or s:find("[^%x:.]") then return false end
  local head, last = s:match("^(.*):([^:]*%.[^:]*)$")
  local width = 8
  if head then
    if not ip.v4(last) then return false end
    s, width = head .. ":", 6
    if s:sub(-2) == "::" then s = s:sub(1, -1) else s = s:sub(1, -2) end
  end
  local left, right = s:match("^(.-)::(.*)$")
  if left then
    if right:find("::", 1, true) then return false end
    if left:sub(-1) == ":" or right:sub(1, 1) == ":" then return false end
    local a, b = groups_ok(left, width), groups_ok(right, width)
    return a ~= nil and b ~= nil and a + b < width
  end
  return groups_ok(s, width) == width
end

function ip.valid(s)
  return type(s) == "string" and (ip.v4(s) or ip.v6(s))
end

return ip
