-- SkyDNS / CoreDNS etcd layout: a DNS name per service instance.
--
--   registrar run --script examples/skydns.lua -B etcd3://127.0.0.1:2379
--
-- CoreDNS's etcd plugin (path /skydns, zone registrar.local) then answers
-- SRV and A queries for <name>.registrar.local.  Set site.domain in the
-- YAML config for another zone.  Use etcd3://: CoreDNS reads the v3 API.

local registrar = require "registrar"
local keys = require "registrar.keys"
local services = require "registrar.services"

local function domain()
  local site = registrar.config.site or {}
  return site.domain or "registrar.local"
end

-- /skydns/local/registrar/<name>/<instance>: the domain's labels reversed
function key(service)
  local path = {}
  for label in domain():gmatch("[^.]+") do table.insert(path, 1, label) end
  local name = services.segment(service, (service.name:lower():gsub("[^%w-]", "-")), "service name")
  local instance = name and services.segment(service, registrar.host.hostname .. "-" .. service.host_port, "host and port")
  if not instance then return nil end
  path[#path + 1] = name
  path[#path + 1] = instance
  return keys.join("/skydns", path)
end

function document(service)
  return { host = service.address, port = service.host_port, ttl = 30 }
end
