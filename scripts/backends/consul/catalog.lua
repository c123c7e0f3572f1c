-- consul-catalog://: services written straight into the catalog, under a
-- node named after this host (PUT /v1/catalog/register), in the
-- datacenter the container names with CONSUL_DC (else the agent's).  The
-- catalog runs no checks, so entries cannot expire here: consul.check
-- refuses ttl mode.

local registrar = require "registrar"
local blocking = require "backends.consul.blocking"
local service = require "backends.consul.service"

local json = registrar.json

local Catalog = {}
Catalog.__index = Catalog

local failure = service.failure

function Catalog:put(path, body)
  return self.client:request {
    method = "PUT", path = path, body = json.encode(body), headers = { ["Content-Type"] = "application/json" },
  }
end

function Catalog:register(entry)
  local body, d = service.catalog_body(entry, self.config)
  body.Service.Meta.registrar_digest = service.digest(entry, self.config, "catalog")
  local res, err = self:put("/v1/catalog/register", body)
  if not res then return nil, err end
  if res.status ~= 200 then return failure("register " .. d.id, res) end
  self.where[entry.key] = { id = d.id, dc = d.datacenter }
  return true
end

function Catalog:deregister(entry)
  local where = self.where[entry.key]
  if not where then return true end
  local res, err = self:put("/v1/catalog/deregister",
    { Datacenter = where.dc, Node = self.config.hostname, ServiceID = where.id })
  if not res then return nil, err end
  if res.status ~= 200 then return failure("deregister " .. where.id, res) end
  self.where[entry.key] = nil
  return true
end

function Catalog:get(path)
  local res, err = self.client:request { method = "GET", path = path }
  if not res then return nil, err end
  if res.status ~= 200 then return failure("GET " .. path, res) end
  local doc = json.decode(res.body)
  if doc == nil then return nil, "GET " .. path .. ": not JSON" end
  return doc
end

-- The services of one datacenter's node marked as ours, into out.
function Catalog:collect(node, dc, out)
  for id, s in pairs(type(node) == "table" and type(node.Services) == "table" and node.Services or {}) do
    local meta = type(s.Meta) == "table" and s.Meta or {}
    if meta.registrar_host == self.config.hostname and meta.registrar_key then
      out[meta.registrar_key] = meta.registrar_digest or ""
      self.where[meta.registrar_key] = { id = id, dc = dc }
    end
  end
end

function Catalog:node_path(dc)
  return ("/v1/catalog/node/%s?dc=%s"):format(self.config.hostname, dc)
end

-- This host's node in every datacenter: the services marked as ours.
function Catalog:advertised()
  local dcs, err = self:get("/v1/catalog/datacenters")
  if not dcs then return nil, err end
  local out = {}
  self.index, self.local_dc = nil, type(dcs) == "table" and dcs[1] or nil   -- the nearest comes first
  for _, dc in ipairs(type(dcs) == "table" and dcs or {}) do
    local res, rerr = self.client:request { method = "GET", path = self:node_path(dc) }
    if not res then return nil, rerr end
    if res.status ~= 200 then return failure("GET " .. self:node_path(dc), res) end
    self:collect(json.decode(res.body), dc, out)
    if dc == self.local_dc then self.index = blocking.index_of(res) end
  end
  blocking.audited(self, out)
  return out
end

-- A blocking query on this host's node in the nearest datacenter.  With
-- services in others as well, there is nothing one query can watch: the
-- engine audits every interval instead.  A service registered in another
-- datacenter wakes no query here, so the wait is a minute: that is how
-- long such a host may go unaudited.
function Catalog:watch()
  for _, where in pairs(self.where) do
    if (where.dc or self.local_dc) ~= self.local_dc then     -- no dc: the agent's own
      return nil, "services in more than one datacenter: audited every interval instead"
    end
  end
  if not self.index then return nil, "no index to watch from" end
  local path = self:node_path(self.local_dc)
  local mark = blocking.mark(self)
  local res, index = blocking.by_index(self, path, self.index)
  if not res then self.index = nil; return nil, index end
  if res.status ~= 200 then return failure("GET " .. path, res) end
  self.index = index
  local now = {}
  self:collect(json.decode(res.body), self.local_dc, now)
  return blocking.diff(self, now, mark)
end

return {
  new = function(client, config)
    local catalog = setmetatable({ client = client, config = config, where = {}, wait = "1m" }, Catalog)
    return blocking.track_writes(catalog, function(entry) return service.digest(entry, config, "catalog") end)
  end,
}
