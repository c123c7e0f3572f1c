-- A Consul agent that answers as Consul does for what the bundled
-- backends ask: the agent's services and their checks, the catalog, KV
-- (?recurse, ?raw, ?acquire) and sessions.  In memory, one datacenter.
--
-- options: token (requests must carry it in X-Consul-Token), datacenter ("dc1").

local json = require "registrar.testing.json"
local codec = require "registrar.testing.modules"

local Consul = {}
Consul.__index = Consul

local fake = {}

function fake.new(options)
  options = options or {}
  return setmetatable({
    token = options.token,
    datacenter = options.datacenter or "dc1",
    services = {},      -- agent: id -> service as GET /v1/agent/services shows it
    checks = {},        -- agent: check id -> {status, service}
    nodes = {},         -- catalog: node -> {address, services = {id -> service}}
    kv = {},            -- key -> {value, session, index}
    sessions = {},      -- id -> {ID, Name, TTL, Behavior, CreateIndex}
    index = 10,
  }, Consul)
end

local function reply(status, body, kind)
  return { status = status, body = body or "", headers = { ["content-type"] = kind or "text/plain; charset=utf-8" } }
end

local function reply_json(doc) return reply(200, json.encode(doc), "application/json") end

function Consul:bump()
  self.index = self.index + 1
  return self.index
end

---------------------------------------------------------------------------
-- agent

function Consul:agent_register(body)
  local s = json.decode(body or "")
  if type(s) ~= "table" or type(s.Name) ~= "string" or s.Name == "" then
    return reply(400, "Missing service name")
  end
  local id = type(s.ID) == "string" and s.ID ~= "" and s.ID or s.Name
  self.services[id] = json.object {
    ID = id, Service = s.Name, Tags = s.Tags or json.array {}, Meta = s.Meta or json.object {},
    Port = s.Port or 0, Address = s.Address or "", Datacenter = self.datacenter,
  }
  for _, c in ipairs(type(s.Checks) == "table" and s.Checks or {}) do
    local check_id = c.CheckID or ("service:" .. id)
    self.checks[check_id] = { status = c.Status or "critical", service = id, definition = c }
  end
  self:bump()
  return reply(200)
end

function Consul:agent_deregister(id)
  if not self.services[id] then return reply(404, ('Unknown service ID "%s". Ensure that the service ID is passed, '
                                                   .. 'not the service name.'):format(id)) end
  self.services[id] = nil
  for check_id, c in pairs(self.checks) do if c.service == id then self.checks[check_id] = nil end end
  self:bump()
  return reply(200)
end

function Consul:check_pass(id)
  if not self.checks[id] then return reply(404, ('Unknown check ID "%s"'):format(id)) end
  self.checks[id].status = "passing"
  return reply(200)
end

---------------------------------------------------------------------------
-- catalog

function Consul:catalog_register(body)
  local r = json.decode(body or "")
  if type(r) ~= "table" or type(r.Node) ~= "string" then return reply(400, "Must provide node") end
  local node = self.nodes[r.Node] or { address = r.Address, services = {} }
  self.nodes[r.Node] = node
  node.address = r.Address or node.address
  if type(r.Service) == "table" then
    local s = r.Service
    local id = s.ID or s.Service
    node.services[id] = json.object { ID = id, Service = s.Service, Tags = s.Tags or json.array {},
                                      Meta = s.Meta or json.object {}, Port = s.Port or 0, Address = s.Address or "" }
  end
  self:bump()
  return reply_json(true)
end

function Consul:catalog_deregister(body)
  local r = json.decode(body or "")
  if type(r) ~= "table" or type(r.Node) ~= "string" then return reply(400, "Must provide node") end
  local node = self.nodes[r.Node]
  if node and r.ServiceID then node.services[r.ServiceID] = nil
  elseif node then self.nodes[r.Node] = nil end
  self:bump()
  return reply_json(true)
end

function Consul:catalog_node(name)
  local node = self.nodes[name]
  if not node then return reply_json(json.null) end
  local services = json.object {}
  for id, s in pairs(node.services) do services[id] = s end
  return reply_json { Node = json.object { Node = name, Address = node.address, Datacenter = self.datacenter },
                      Services = services }
end

---------------------------------------------------------------------------
-- KV and sessions

function Consul:kv_entry(key)
  local e = self.kv[key]
  return json.object { Key = key, Value = e.value ~= "" and codec.base64.encode(e.value) or json.null, Flags = 0,
                       Session = e.session, LockIndex = e.session and 1 or 0, CreateIndex = e.index, ModifyIndex = e.index }
end

function Consul:kv_call(method, key, query, body)
  if method == "PUT" then
    local held = self.kv[key] and self.kv[key].session
    if query.acquire then
      if not self.sessions[query.acquire] then
        return reply(500, ("invalid session %q"):format(query.acquire))
      end
      if held and held ~= query.acquire then return reply_json(false) end
      held = query.acquire
    end
    self.kv[key] = { value = body or "", session = held, index = self:bump() }
    return reply_json(true)
  elseif method == "DELETE" then
    if query.recurse then
      for k in pairs(self.kv) do if k:sub(1, #key) == key then self.kv[k] = nil end end
    else
      self.kv[key] = nil
    end
    self:bump()
    return reply_json(true)
  elseif method == "GET" then
    if query.recurse then
      local names = {}
      for k in pairs(self.kv) do if k:sub(1, #key) == key then names[#names + 1] = k end end
      if #names == 0 then return reply(404) end
      table.sort(names)
      local list = json.array {}
      for i, k in ipairs(names) do list[i] = self:kv_entry(k) end
      return reply_json(list)
    end
    if not self.kv[key] then return reply(404) end
    if query.raw then return reply(200, self.kv[key].value) end
    return reply_json(json.array { self:kv_entry(key) })
  end
  return reply(405)
end

function Consul:session_create(body)
  local r = json.decode(body ~= "" and body or "{}")
  if type(r) ~= "table" then return reply(400, "Request decode failed") end
  local n = self:bump()
  local id = ("%08x-0000-4000-8000-%012x"):format(n, n)
  self.sessions[id] = json.object { ID = id, Name = r.Name or "", TTL = r.TTL or "", Behavior = r.Behavior or "release",
                                    LockDelay = 15000000000, CreateIndex = n, ModifyIndex = n }
  return reply_json { ID = id }
end

-- The session ends (its TTL ran out, or destroy): "delete" takes its keys along.
function Consul:end_session(id)
  local s = self.sessions[id]
  if not s then return false end
  self.sessions[id] = nil
  for k, e in pairs(self.kv) do
    if e.session == id then
      if s.Behavior == "delete" then self.kv[k] = nil else e.session = nil end
    end
  end
  return true
end

function Consul:session(action, id)
  if action == "list" then
    local list = json.array {}
    for _, s in pairs(self.sessions) do list[#list + 1] = s end
    table.sort(list, function(a, b) return a.CreateIndex < b.CreateIndex end)
    return reply_json(list)
  elseif action == "renew" then
    if not self.sessions[id] then return reply(404, ("Session id '%s' not found"):format(id)) end
    return reply_json(json.array { self.sessions[id] })
  elseif action == "destroy" then
    self:end_session(id)
    return reply_json(true)
  end
  return reply(404)
end

---------------------------------------------------------------------------

-- handle(request) -> response: {method, path (unescaped), query, body, headers}
function Consul:handle(r)
  if self.token and r.headers["x-consul-token"] ~= self.token then
    return reply(403, "Permission denied")
  end
  local m, p = r.method, r.path
  if m == "PUT" and p == "/v1/agent/service/register" then return self:agent_register(r.body) end
  local id = p:match("^/v1/agent/service/deregister/(.+)$")
  if m == "PUT" and id then return self:agent_deregister(id) end
  if m == "GET" and p == "/v1/agent/services" then
    local out = json.object {}
    for sid, s in pairs(self.services) do out[sid] = s end
    return reply_json(out)
  end
  id = p:match("^/v1/agent/check/pass/(.+)$")
  if m == "PUT" and id then return self:check_pass(id) end
  if m == "PUT" and p == "/v1/catalog/register" then return self:catalog_register(r.body) end
  if m == "PUT" and p == "/v1/catalog/deregister" then return self:catalog_deregister(r.body) end
  if m == "GET" and p == "/v1/catalog/datacenters" then return reply_json(json.array { self.datacenter }) end
  local node = p:match("^/v1/catalog/node/(.+)$")
  if m == "GET" and node then return self:catalog_node(node) end
  local key = p:match("^/v1/kv/(.*)$")
  if key then return self:kv_call(m, key, r.query, r.body) end
  if m == "PUT" and p == "/v1/session/create" then return self:session_create(r.body) end
  if m == "GET" and p == "/v1/session/list" then return self:session("list") end
  local action, sid = p:match("^/v1/session/(%a+)/(.+)$")
  if m == "PUT" and action then return self:session(action, sid) end
  return reply(404, "404 page not found")
end

-- What the registry holds: agent services and catalog services by id (as
-- tables), KV keys (with a leading '/') by their value.
function Consul:keys()
  local out = {}
  for id, s in pairs(self.services) do out[id] = s end
  for _, node in pairs(self.nodes) do
    for id, s in pairs(node.services) do out[id] = s end
  end
  for k, e in pairs(self.kv) do out["/" .. k] = e.value end
  return out
end

return fake
