-- A registry entry as a Consul service, for the agent and catalog modes.
-- It reads the entry's service, whose shape every naming shares (address,
-- host_port, name, tags, env; docs/scripting.md, "The service").  The
-- registrator naming also gives id, attrs and check; without an id (the
-- default naming) the key serves as the id, as in the old tool.

local registrar = require "registrar"
local text = require "registrar.text"
local uri = require "registrar.uri"

local json = registrar.json
local service = {}

-- Consul's Meta rules: keys [A-Za-z0-9_-], up to 128 bytes, not "consul-";
-- values up to 512 bytes; 64 pairs.
local function meta_of(attrs, entry, config)
  local meta, n = json.object {}, 0
  for k, v in pairs(attrs or {}) do
    if type(k) == "string" and k:match("^[%w_-]+$") and #k <= 128 and not k:find("^consul%-")
       and type(v) == "string" and #v <= 512 and n < 60 then
      meta[k], n = v, n + 1
    end
  end
  meta.registrar_host = config.hostname
  meta.registrar_key = entry.key
  return meta
end

-- registrator's check table -> a Consul check definition.
local function check_of(c)
  if type(c) ~= "table" then return nil end
  local out = {
    Interval = c.interval, Timeout = c.timeout,
    DeregisterCriticalServiceAfter = c.deregister_after, Status = c.initial_status,
  }
  if c.http then out.HTTP = c.http
  elseif c.tcp then out.TCP = c.tcp
  elseif c.ttl then out.TTL, out.Interval = c.ttl, nil
  elseif c.args then out.Args = c.args
  else return nil end
  return out
end

-- ttl mode: a TTL check registrar passes every interval.  When registrar
-- stops, the service turns critical after the ttl and is removed after
-- deregister-critical-after (Consul's minimum is one minute).
local function ttl_check(id, config)
  local seconds = math.max(1, (config.ttl + 999) // 1000)
  return {
    CheckID = "registrar:" .. id, Name = "registrar ttl", TTL = seconds .. "s", Status = "passing",
    DeregisterCriticalServiceAfter = math.max(60, seconds * 5) .. "s",
  }
end

function service.describe(entry, config)
  local s = entry.service or {}
  local tags = json.array {}
  for _, tag in ipairs(s.tags or {}) do tags[#tags + 1] = tag end
  local env = s.env or {}
  return {
    id = s.id or entry.key,
    name = s.name or "service",
    address = s.address,
    port = math.tointeger(s.host_port) or 0,
    tags = tags,
    meta = meta_of(s.attrs, entry, config),
    check = check_of(s.check),
    datacenter = env.CONSUL_DC,
  }
end

-- The agent takes ids in URL paths, where Consul redirects any path with
-- an empty segment: an id made from a key ("/services/web/80/...") drops
-- its leading '/' and has ':' for the others.
local function agent_id(id)
  return (id:gsub("^/+", ""):gsub("/", ":"))
end

-- PUT /v1/agent/service/register
function service.agent_body(entry, config)
  local d = service.describe(entry, config)
  d.id = agent_id(d.id)
  local body = { ID = d.id, Name = d.name, Address = d.address, Port = d.port, Tags = d.tags, Meta = d.meta }
  local checks = json.array {}
  if d.check then checks[#checks + 1] = d.check end
  if config.service_ttl == "ttl" then checks[#checks + 1] = ttl_check(d.id, config) end
  if #checks > 0 then body.Checks = checks end
  return body, d
end

-- PUT /v1/catalog/register
function service.catalog_body(entry, config)
  local d = service.describe(entry, config)
  return {
    Datacenter = d.datacenter, Node = config.hostname, Address = config.ipaddress,
    Service = { ID = d.id, Service = d.name, Address = d.address, Port = d.port, Tags = d.tags, Meta = d.meta },
  }, d
end

-- nil and "what: status N: Consul's message" (its errors are plain text).
function service.failure(what, res)
  return nil, ("%s: status %d: %s"):format(what, res.status, text.trim(res.body or ""))
end

-- This host's document is no service: the agent and catalog modes keep it
-- as a KV key, <prefix_hosts>/<hostname> without the leading '/', and
-- wrap the backend's register/deregister to put it there.  A blocking
-- query watches services or a key, not both: the document is read again
-- whenever the services' watch comes back with nothing (every 10 minutes
-- on an idle host), so one deleted by hand is back within that.
function service.host_document(backend, client, config)
  local key = ((config.prefix_hosts or "/hosts"):gsub("/+$", "") .. "/" .. config.hostname):gsub("^/+", "")
  local path = "/v1/kv/" .. uri.escape_path(key)
  local register, deregister, advertised, watch = backend.register, backend.deregister, backend.advertised,
                                                   backend.watch
  local seen
  local function read_document()
    local res, err = client:request { method = "GET", path = path .. "?raw" }
    if not res then return nil, err end
    if res.status == 200 then return res.body end
    if res.status ~= 404 then return service.failure("GET " .. path, res) end
    return false
  end
  function backend.register(self, entry)
    if not entry.host then return register(self, entry) end
    local res, err = client:request { method = "PUT", path = path, body = entry.value }
    if not res then return nil, err end
    if res.status ~= 200 then return service.failure("PUT " .. path, res) end
    seen = entry.value
    return true
  end
  function backend.deregister(self, entry)
    if entry.key:gsub("^/+", "") ~= key then return deregister(self, entry) end
    local res, err = client:request { method = "DELETE", path = path }
    if not res then return nil, err end
    if res.status ~= 200 then return service.failure("DELETE " .. path, res) end
    seen = false
    return true
  end
  function backend.advertised(self)
    local out, err = advertised(self)
    if not out then return nil, err end
    local doc, derr = read_document()
    if doc == nil then return nil, derr end
    out["/" .. key], seen = doc or nil, doc
    return out
  end
  function backend.watch(self)
    local changes, err = watch(self)
    if not changes or #changes > 0 then return changes, err end
    local doc, derr = read_document()
    if doc == nil then return nil, derr end
    if doc ~= seen then changes[1] = { key = "/" .. key, value = doc or nil } end
    seen = doc
    return changes
  end
  return backend
end

-- The digest stored in Meta.registrar_digest and compared with it.
function service.digest(entry, config, mode)
  local body = mode == "catalog" and service.catalog_body(entry, config) or service.agent_body(entry, config)
  return registrar.digest(json.encode(body))
end

return service
