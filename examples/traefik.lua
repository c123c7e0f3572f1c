-- Traefik (v2) KV layout: each instance a load-balancer server of its
-- service, which Traefik's etcd or Consul KV provider reads.
--
--   registrar run --script examples/traefik.lua -B 'etcd3://127.0.0.1:2379?keys=relative'
--   registrar run --script examples/traefik.lua -B consulkv://127.0.0.1:8500
--
-- traefik/http/services/<name>/loadBalancer/servers/<host>-<port>/url = http://ip:port
-- (keys=relative: Traefik looks etcd keys up without a leading '/'; Consul
-- KV keys never have one)
-- Routers (which host name goes to which service) are configuration, kept
-- by hand next to these keys; only the instances come and go.

local registrar = require "registrar"
local services = require "registrar.services"

function key(service)
  local name = services.segment(service, service.name, "service name")
  local server = name and services.segment(service, registrar.host.hostname .. "-" .. service.host_port, "host and port")
  if not server then return nil end
  return ("/traefik/http/services/%s/loadBalancer/servers/%s/url"):format(name, server)
end

function document(service)
  local address = service.address
  if address:find(":", 1, true) then address = "[" .. address .. "]" end
  return ("http://%s:%d"):format(address, service.host_port)
end
