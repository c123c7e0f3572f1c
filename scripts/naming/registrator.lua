-- naming: registrator.  The conventions of gliderlabs/registrator, which
-- users bring from it, read from env vars and labels:
--
--   SERVICE_NAME, SERVICE_ID, SERVICE_TAGS, SERVICE_IGNORE, SERVICE_CHECK_*
--   and any other SERVICE_<KEY> as an attribute; SERVICE_<port>_<KEY> for
--   one port beats the generic one; a label beats an env var.
--
-- Name: SERVICE_NAME, else the image's base name, plus "-<port>" when the
-- container publishes more than one port.  Id: SERVICE_ID, else
-- "<host>:<container name>:<port>" (plus ":udp").  Key:
-- <prefix_services>/<name>/<id>.  With `explicit: true` only containers
-- that set SERVICE_NAME are registered.

local registrar = require "registrar"
local address = require "registrar.address"
local keys = require "registrar.keys"
local settings = require "registrar.settings"

local json = registrar.json

local function label_of(service)
  local c = service.container
  return ("%s (%s)"):format(c.name or "?", (c.id or "?"):sub(1, 12))
end

local function id_of(service)
  if service.settings.id and service.settings.id ~= "" then return service.settings.id end
  local id = ("%s:%s:%s"):format(registrar.host.hostname, (service.container.name or ""):gsub("^/", ""),
                                 service.port)
  return service.proto == "udp" and (id .. ":udp") or id
end

-- SERVICE_CHECK_* as one check definition (the Consul backends speak it).
local function check_of(service)
  local s = service.settings
  local host = service.address:find(":", 1, true) and ("[" .. service.address .. "]") or service.address
  local check
  if s.check_http then
    check = { http = ("http://%s:%d%s"):format(host, service.host_port, s.check_http) }
  elseif s.check_https then
    check = { http = ("https://%s:%d%s"):format(host, service.host_port, s.check_https) }
  elseif settings.truthy(s.check_tcp) then
    check = { tcp = ("%s:%d"):format(host, service.host_port) }
  elseif s.check_ttl then
    check = { ttl = s.check_ttl }
  elseif s.check_script then
    local script = s.check_script:gsub("%$SERVICE_IP", service.address):gsub("%$SERVICE_PORT", tostring(service.host_port))
    check = { args = json.array { "sh", "-c", script } }
  else
    return nil
  end
  if not check.ttl then check.interval = s.check_interval or "10s" end
  check.timeout = s.check_timeout
  check.deregister_after = s.check_deregister_after
  check.initial_status = s.check_initial_status
  return check
end

-- Every setting that is not one of the named ones is an attribute.
local reserved = { name = true, id = true, tags = true, ignore = true, network = true }

local function attrs_of(service)
  local attrs = json.object {}
  for k, v in pairs(service.settings) do
    if not reserved[k] and not k:find("^check_") then attrs[k] = v end
  end
  return attrs
end

function services(container)
  local list, seen, ports = {}, {}, {}
  for _, p in ipairs(container.ports or {}) do
    local ip, port = address.of(container, p)
    local id = ip and ("%d/%s/%s/%d"):format(p.port, p.proto, ip, port)
    if id and not seen[id] then
      seen[id] = true
      ports[p.port .. "/" .. p.proto] = true
      list[#list + 1] = {
        container = container,
        env = container.env or {},
        labels = container.labels or {},
        settings = settings.of(container, p.port),
        port = tostring(p.port),
        proto = p.proto,
        address = ip,
        host_port = port,
      }
    end
  end
  local published = 0
  for _ in pairs(ports) do published = published + 1 end
  for _, service in ipairs(list) do
    service.several = published > 1
    service.id = id_of(service)
    service.tags = json.array(settings.list(service.settings.tags))
    service.attrs = attrs_of(service)
    service.check = check_of(service)
  end
  return list
end

function name(service)
  local named = service.settings.name
  if named and named ~= "" then return named end
  local image = (service.container.image or ""):gsub(":[^:/]*$", ""):match("([^/]+)$") or "service"
  return service.several and (image .. "-" .. service.port) or image
end

function ignore(service)
  local s = service.settings
  if settings.truthy(s.ignore) then return true end
  return registrar.config.explicit == true and (s.name == nil or s.name == "")
end

function key(service)
  local segments = {}
  for _, part in ipairs { { service.name, "SERVICE_NAME" }, { service.id, "SERVICE_ID" } } do
    local segment, why = keys.segment(part[1])
    if not segment then
      registrar.log.warn("container %s: %s %s, so it cannot be part of a key; service skipped",
                         label_of(service), part[2], why)
      return nil
    end
    segments[#segments + 1] = segment
  end
  return keys.join(registrar.config.prefix_services or "/services", segments)
end

function document(service)
  return {
    id = service.id,
    name = service.name,
    address = service.address,
    port = service.host_port,
    tags = service.tags,
    attrs = service.attrs,
    check = service.check,
    host = registrar.host.hostname,
  }
end
