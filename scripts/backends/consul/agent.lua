-- consul://: services through the local agent (PUT /v1/agent/service/register).
-- advertised() lists the agent's services and keeps those whose Meta says
-- this host registered them; deregistration is by service id.
--
-- watch(): the agent's service list takes no blocking queries, but the
-- agent copies its services into the catalog under its node name at once:
-- a blocking query on that node (GET /v1/catalog/node/<node>?index=) says
-- when to read the agent's list again.  A service of ours deregistered or
-- changed by hand is registered again.

local registrar = require "registrar"
local blocking = require "backends.consul.blocking"
local service = require "backends.consul.service"
local uri = require "registrar.uri"

local json = registrar.json

local Agent = {}
Agent.__index = Agent

local failure = service.failure

function Agent:register(entry)
  local body, d = service.agent_body(entry, self.config)
  body.Meta.registrar_digest = service.digest(entry, self.config, "agent")
  local res, err = self.client:request {
    method = "PUT", path = "/v1/agent/service/register", body = json.encode(body),
    headers = { ["Content-Type"] = "application/json" },
  }
  if not res then return nil, err end
  if res.status ~= 200 then return failure("register " .. d.id, res) end
  self.ids[entry.key] = d.id
  return true
end

function Agent:deregister(entry)
  local id = self.ids[entry.key]
  if not id then return true end       -- never registered here: nothing to remove
  local res, err = self.client:request { method = "PUT", path = "/v1/agent/service/deregister/" .. uri.escape(id) }
  if not res then return nil, err end
  if res.status ~= 200 and res.status ~= 404 then return failure("deregister " .. id, res) end
  self.ids[entry.key] = nil
  return true
end

-- The agent's services that are this host's: {key = digest}.
function Agent:held(res)
  if res.status ~= 200 then return failure("GET /v1/agent/services", res) end
  local services = json.decode(res.body)
  if type(services) ~= "table" then return nil, "GET /v1/agent/services: not JSON" end
  local out = {}
  for id, s in pairs(services) do
    local meta = type(s) == "table" and type(s.Meta) == "table" and s.Meta or {}
    if meta.registrar_host == self.config.hostname and meta.registrar_key then
      out[meta.registrar_key] = meta.registrar_digest or ""
      self.ids[meta.registrar_key] = id
    end
  end
  return out
end

function Agent:list()
  local res, err = self.client:request { method = "GET", path = "/v1/agent/services" }
  if not res then return nil, err end
  return self:held(res)
end

function Agent:advertised()
  local out, err = self:list()
  if not out then return nil, err end
  blocking.audited(self, out)
  return out
end

-- The agent's node name, as the catalog knows it.
function Agent:node()
  if self.node_name then return self.node_name end
  local res, err = self.client:request { method = "GET", path = "/v1/agent/self" }
  if not res then return nil, err end
  local doc = json.decode(res.body)
  local name = res.status == 200 and type(doc) == "table" and type(doc.Config) == "table" and doc.Config.NodeName
  if type(name) ~= "string" then return failure("GET /v1/agent/self", res) end
  self.node_name = name
  return name
end

-- What changed for this host's services since the last listing; {} when
-- the blocking query's wait ran out with nothing changed.
function Agent:watch()
  local node, err = self:node()
  if not node then return nil, err end
  local path = "/v1/catalog/node/" .. uri.escape(node)
  local mark = blocking.mark(self)
  local res, index = blocking.by_index(self, path, self.index or 0)
  if not res then self.index = nil; return nil, index end
  self.index = index
  local now, lerr = self:list()
  if not now then return nil, lerr end
  return blocking.diff(self, now, mark)
end

-- ttl mode: pass each service's TTL check.  An agent that lost one (it
-- restarted) makes the engine register everything again.
function Agent:refresh(entries)
  for _, entry in ipairs(entries) do
    local id = self.ids[entry.key]
    if id then
      local res, err = self.client:request { method = "PUT", path = "/v1/agent/check/pass/" .. uri.escape("registrar:" .. id) }
      if not res then return nil, err end
      if res.status ~= 200 then return failure("pass check registrar:" .. id, res) end
    end
  end
  return true
end

return {
  new = function(client, config)
    -- a request per service to pass its check: several shares at once
    local agent = setmetatable({ client = client, config = config, ids = {}, refresh_in_shares = true }, Agent)
    return blocking.track_writes(agent, function(entry) return service.digest(entry, config, "agent") end)
  end,
}
