-- The default naming: the old service-registrar's layout.
--
-- One service per published port.  Its document carries the old tool's
-- fields, its key is prefix_services followed by the prefix_path elements:
--
--   environment:X   the container's env var X (left out when unset)
--   label:X         the container's label X (left out when unset)
--   string:X        the text X
--   service:PORT    SERVICE_<port>_NAME, else the container port
--   service:FIELD   a document field: HOST_PORT, HOSTNAME, IMAGE, ...
--
-- Fixes over the old tool: env values keep every '='; each port keeps its
-- own HostIp; unpublished ports are skipped (unless a network is chosen,
-- see registrar/address.lua); a UDP port's PORT segment is "<port>:udp" so
-- TCP and UDP on one number do not share a key.

local registrar = require "registrar"
local keys = require "registrar.keys"
local services_of = require "registrar.services"
local settings = require "registrar.settings"
local text = require "registrar.text"

local json = registrar.json

local DEFAULT_PREFIX_PATH = {
  "environment:ENVIRONMENT", "environment:NAME",
  "service:PORT", "service:HOST_PORT", "service:HOSTNAME",
}

-- TAGS, a comma list, as the old tool read it: each item trimmed, and
-- kept even when nothing is left of it.
local function tags_of(env)
  local tags = json.array {}
  for tag in (env.TAGS or ""):gmatch("[^,]+") do
    tags[#tags + 1] = text.trim(tag)
  end
  return tags
end

-- One service per published port, in the shape every naming shares
-- (registrar/services.lua), plus its tags.  The old tool's spellings
-- (ipaddress, host_port as text) are the document's, not the service's.
function services(container)
  local list = services_of.of(container)
  for _, service in ipairs(list) do
    service.tags = tags_of(service.env)
  end
  return list
end

-- The service's name, as the old tool gave it to Consul.
function name(service)
  local named = service.settings.name
  if named and named ~= "" then return named end
  return services_of.image_name(service.container) .. "-" .. service.port
end

-- SERVICE_IGNORE, or SERVICE_<port>_IGNORE for one port (env or label).
function ignore(service)
  return settings.truthy(service.settings.ignore)
end

-- The old tool's document fields, by their upper-case prefix_path names.
local function field(service, name)
  local c = service.container
  local fields = {
    id = c.id, host = registrar.host.hostname, ipaddress = service.address,
    name = c.name and c.name:gsub("^/", ""), image = c.image, hostname = c.hostname,
    port = service.port, proto = service.proto, host_port = tostring(service.host_port),
  }
  return fields[name]
end

-- SERVICE_<port>_NAME (env, as the old tool read it, or label), else the port.
local function port_segment(service)
  local var = "SERVICE_" .. service.port .. "_NAME"
  local named, origin = service.labels[var], "label " .. var
  if named == nil or named == "" then named, origin = service.env[var], "env " .. var end
  local segment = (named and named ~= "") and named or service.port
  if service.proto ~= "tcp" then segment = segment .. ":" .. service.proto end
  return segment, (named and named ~= "") and origin or "port"
end

-- The value of one prefix_path element, and where it came from (for the log).
local function element(service, kind, value)
  if kind == "environment" then return service.env[value], "env " .. value end
  if kind == "label" then return service.labels[value], "label " .. value end
  if kind == "string" then return value, "prefix_path string:" .. value end
  if kind == "service" and value == "PORT" then return port_segment(service) end
  if kind == "service" then return field(service, value:lower()), "service:" .. value end
  error(("prefix_path element %q: unknown type %q"):format(kind .. ":" .. value, kind), 0)
end

function key(service)
  local segments = {}
  for _, spec in ipairs(registrar.config.prefix_path or DEFAULT_PREFIX_PATH) do
    local kind, value = spec:match("^(%a+):(.+)$")
    if not kind then error(("prefix_path element %q is not TYPE:VALUE"):format(spec), 0) end
    local text, origin = element(service, kind, value)
    if text ~= nil and text ~= "" then
      local segment = services_of.segment(service, text, origin)
      if not segment then return nil end
      segments[#segments + 1] = segment
    end
  end
  return keys.join(registrar.config.prefix_services or "/services", segments)
end

-- The old tool's document: its field names and types (ipaddress;
-- host_port and port as text).
function document(service)
  local c = service.container
  local env = json.object {}
  for k, v in pairs(service.env) do env[k] = v end
  return {
    id = c.id,
    host = registrar.host.hostname,
    ipaddress = service.address,
    env = env,
    tags = service.tags,
    name = c.name,
    image = c.image,
    hostname = c.hostname,
    port = service.port,
    proto = service.proto,
    host_port = tostring(service.host_port),
    path = service.key,
  }
end
