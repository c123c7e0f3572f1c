-- What both namings build services from: the places a container can be
-- reached at, how the log names a container, and key segments that refuse
-- (and say why) what a container cannot put in a key.

local registrar = require "registrar"
local address = require "registrar.address"
local keys = require "registrar.keys"
local settings = require "registrar.settings"

local services = {}

-- "/web (3f2ad1a466ff)"
function services.label(container)
  return ("%s (%s)"):format(container.name or "?", (container.id or "?"):sub(1, 12))
end

-- "registry.local:5000/team/redis:7.2" -> "redis"
function services.image_name(container)
  return (container.image or ""):gsub(":[^:/]*$", ""):match("([^/]+)$") or "service"
end

-- One service per (port, protocol, address, port there): the IPv4 and IPv6
-- wildcard bindings Docker makes for `-p` are one service, not two.
-- port is the container port (text); host_port the port at address.
function services.of(container)
  local list, seen = {}, {}
  for _, p in ipairs(container.ports or {}) do
    local ip, port = address.of(container, p)
    local id = ip and ("%d/%s/%s/%d"):format(p.port, p.proto, ip, port)
    if id and not seen[id] then
      seen[id] = true
      list[#list + 1] = {
        container = container,
        env = container.env or {},
        labels = container.labels or {},
        settings = settings.of(container, p.port),
        port = tostring(p.port),
        proto = p.proto,
        host_ip = p.host_ip,
        host_port = port,
        address = ip,
      }
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
