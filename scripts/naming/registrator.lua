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
local keys = require "registrar.keys"
local services_of = require "registrar.services"
local settings = require "registrar.settings"

local json = registrar.json

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
  local list, ports, published = services_of.of(container), {}, 0
  for _, service in ipairs(list) do
    if not ports[service.port .. "/" .. service.proto] then
      ports[service.port .. "/" .. service.proto] = true
      published = published + 1
    end
  end
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
  local image = services_of.image_name(service.container)
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
    local segment = services_of.segment(service, part[1], part[2])
    if not segment then return nil end
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
