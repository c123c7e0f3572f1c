-- What both namings build services from: the places a container can be
-- reached at, how the log names a container, and key segments that refuse
-- (and say why) what a container cannot put in a key.
--
-- Every naming hands hooks services of one shape, the one services.of()
-- builds (docs/scripting.md, "The service"): address is text, host_port a
-- number, port the container port as text.  A naming adds fields of its
-- own; it does not rename or retype these.  Its documents may spell them
-- the old tool's way (the default naming's ipaddress, host_port as text).

local registrar = require "registrar"
local address = require "registrar.address"
local keys = require "registrar.keys"
local settings = require "registrar.settings"
local text = require "registrar.text"

local services = {}

-- "/web (3f2ad1a466ff)"
function services.label(container)
  return ("%s (%s)"):format(container.name or "?", (container.id or "?"):sub(1, 12))
end

-- "registry.local:5000/team/redis:7.2" -> "redis"
function services.image_name(container)
  local base = text.after_last(container.image or "", "/")
  base = base:match("^(.*):") or base          -- the tag: after the last ':'
  return base ~= "" and base or "service"
end

-- `-p` and `-P` bind a port on both wildcards, "0.0.0.0" and "::", and
-- Docker may give the two different host ports. Both stand for the host
-- address, so a port bound on the wildcard of that address's family skips
-- its twin on the other one; a port bound on one wildcard only keeps it.
local function twins_to_skip(container)
  local mine, other = "0.0.0.0", "::"
  if (registrar.host.ipaddress or ""):find(":", 1, true) then mine, other = "::", "0.0.0.0" end
  local bound, skip = {}, {}
  for _, p in ipairs(container.ports or {}) do
    if p.host_ip == mine then bound[p.port .. "/" .. p.proto] = true end
  end
  for _, p in ipairs(container.ports or {}) do
    if p.host_ip == other and bound[p.port .. "/" .. p.proto] then skip[p] = true end
  end
  return skip
end

-- service.ipaddress: what the default naming's services called address
-- before the namings shared one shape, kept for the site scripts written
-- then.  It is not a field of its own: reading or setting it reads or sets
-- address, so the two never disagree.
local Service = {
  __index = function(service, field)
    if field == "ipaddress" then return rawget(service, "address") end
  end,
  __newindex = function(service, field, value)
    rawset(service, field == "ipaddress" and "address" or field, value)
  end,
}

-- One service per (port, protocol, address, port there).
-- port is the container port (text); host_port the port at address (a
-- number); address the IP address it is reached at (text).
function services.of(container)
  local list, seen = {}, {}
  local skip = twins_to_skip(container)
  local parsed = settings.parse(container)
  local network = address.network(container, parsed) or false
  for _, p in ipairs(container.ports or {}) do
    local ip, port
    if not skip[p] then ip, port = address.of(container, p, network) end
    local id = ip and ("%d/%s/%s/%d"):format(p.port, p.proto, ip, port)
    if id and not seen[id] then
      seen[id] = true
      list[#list + 1] = setmetatable({
        container = container,
        env = container.env or {},
        labels = container.labels or {},
        settings = settings.of(container, p.port, parsed),
        port = tostring(p.port),
        proto = p.proto,
        host_ip = p.host_ip,
        host_port = port,
        address = ip,
      }, Service)
    end
  end
  return list
end

-- A key segment from container data, or nil after a warning naming the
-- container and where the value came from.
function services.segment(service, value, origin)
  local segment, why = keys.segment(value)
  if not segment then
    registrar.log.warn("container %s: %s %s, so it cannot be part of a key; service skipped",
                       services.label(service.container), origin, why)
  end
  return segment
end

return services
