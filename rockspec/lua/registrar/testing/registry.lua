-- A fake registry behind a kit: registrar.http.request and
-- registrar.zk.connect answer from an in-memory etcd, Consul or ZooKeeper
-- (by the backend URI's scheme), and every request is recorded, so a spec
-- sees what a backend script would send:
--
--   local reg = kit:registry()                 -- kit = testing.new { backend = "etcd://10.0.0.5:2379" }
--   assert(reg:sync { web, api })               -- as the daemon's resync: advertised, then writes
--   reg.requests[1]                             --> { method = "GET", url = "http://10.0.0.5:2379/version", path = "/version", … }
--   reg:keys()["/services/web/80"]              --> the document etcd now holds
--
-- options: server ("etcd", "consul", "zookeeper", or a function(request)
-- -> response, for a backend a site script defines), and the fake's own
-- options (registrar.testing.fake_etcd, fake_consul, fake_zookeeper).

local json = require "registrar.testing.json"
local container = require "registrar.testing.container"

local Registry = {}
Registry.__index = Registry

local registry = {}

local SERVERS = {
  etcd = "etcd", etcd2 = "etcd", etcd3 = "etcd",
  consul = "consul", ["consul-catalog"] = "consul", consulkv = "consul",
  zk = "zookeeper", zookeeper = "zookeeper",
}

local MAX_HEADERS = 32
local APPLY_BATCH = 256         -- changes in one apply() call, as the engine

function registry.new(kit, options)
  options = options or {}
  local state = kit.state
  local scheme = state.values.backend:match("^(%a[%w+.-]*)://") or ""
  local kind = options.server or SERVERS[scheme:gsub("%+https$", "")]
  local self = setmetatable({ kit = kit, state = state, requests = {}, written = {}, options = options }, Registry)
  if type(kind) == "function" then
    self.answer = kind
  elseif kind then
    self.server = require("registrar.testing.fake_" .. kind).new(options)
    self.kind = kind
  end
  state.registry = self
  return self
end

---------------------------------------------------------------------------
-- registrar.http.request, checked as registrar_http.c checks it

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function optional_string(req, field)
  local v = req[field]
  if v ~= nil and type(v) ~= "string" then
    error(("registrar.http.request: field '%s' must be a string, not a %s"):format(field, type(v)), 0)
  end
  return v
end

local function checked(req)
  local url = optional_string(req, "url")
  if url == nil then error("registrar.http.request: 'url' is required", 0) end
  for _, field in ipairs { "method", "unix_socket", "userpwd" } do optional_string(req, field) end
  if req.body ~= nil and type(req.body) ~= "string" then error("registrar.http.request: 'body' must be a string", 0) end
  if req.max_body ~= nil and not (math.type(req.max_body) == "integer" and req.max_body > 0) then
    error("registrar.http.request: 'max_body' must be a positive number of bytes", 0)
  end
  if req.timeout ~= nil and not math.tointeger(req.timeout) then
    error("bad argument #1 to 'request' (field 'timeout' has no integer representation)", 0)
  end
  local headers, n = {}, 0
  if req.headers ~= nil then
    if type(req.headers) ~= "table" then error("registrar.http.request: headers must map names to strings", 0) end
    for k, v in pairs(req.headers) do
      n = n + 1
      if n > MAX_HEADERS then error(("registrar.http.request: more than %d headers"):format(MAX_HEADERS), 0) end
      if type(k) ~= "string" or type(v) ~= "string" then
        error("registrar.http.request: headers must map names to strings", 0)
      end
      headers[k:lower()] = v
    end
  end
  if type(req.tls) == "table" then
    for _, field in ipairs { "ca_file", "cert_file", "key_file" } do
      if req.tls[field] ~= nil and type(req.tls[field]) ~= "string" then
        error(("registrar.http.request: field '%s' must be a string, not a %s"):format(field, type(req.tls[field])), 0)
      end
    end
  end
  return url, headers
end

-- Called by the kit's registrar.http.request, from a backend hook.
function Registry:http(req)
  local url, headers = checked(req)
  local scheme, authority, rest = url:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then return nil, ("URL rejected: Malformed input to a URL function (%s)"):format(url) end
  local path, qs = rest:match("^([^?#]*)%??([^#]*)")
  local query = {}
  for k, v in qs:gmatch("([^&=]+)=?([^&]*)") do query[unescape(k)] = unescape(v) end
  local request = {
    method = req.method or "GET", url = url, host = authority, path = rest ~= "" and rest or "/",
    headers = req.headers, body = req.body, userpwd = req.userpwd,
  }
  self.requests[#self.requests + 1] = request
  local parsed = { method = request.method, path = unescape(path ~= "" and path or "/"), query = query,
                   body = req.body, headers = headers, userpwd = req.userpwd }
  local res
  if self.server and self.kind ~= "zookeeper" then
    res = self.server:handle(parsed)
  elseif self.answer then
    res = self.answer(request)
    if res == nil then return nil, ("Failed to connect to %s: Connection refused"):format(authority) end
  else
    res = { status = 200, body = "" }
  end
  local out = { status = res.status, body = res.body or "", headers = {} }
  for k, v in pairs(res.headers or {}) do out.headers[k:lower()] = v end
  request.status = out.status
  return out
end

-- Called by the kit's registrar.zk.connect.
function Registry:zk_connect(params, guard)
  if type(params.hosts) ~= "string" or params.hosts == "" then
    error('registrar.zk.connect: \'hosts\' ("host:port,host:port") is required', 0)
  end
  if self.kind ~= "zookeeper" then return nil, "registrar.zk.connect: this fake registry is no ZooKeeper" end
  self.requests[#self.requests + 1] = { op = "connect", hosts = params.hosts, username = params.username }
  local z = self.server:connect(params, guard, self.requests)
  self.sessions = self.sessions or {}
  self.sessions[#self.sessions + 1] = z
  return z
end

---------------------------------------------------------------------------
-- the backend, called as the engine calls it

-- A hook's outcome as the engine reads it (backend.c, finish_call):
-- nothing or a true value is success; nil or false (and a message) is a
-- failure, and so is an error.
local function outcome(ok, ...)
  if not ok then return nil, (...) end
  if select("#", ...) == 0 then return true end
  local first, why = ...
  if first then return first end
  return nil, type(why) == "string" and why or "failed without a reason"
end

-- reg:open() -> the handle open(uri, config) returned, or nil and why.
function Registry:open()
  if self.handle then return self.handle end
  local backend = self.state.backend
  local handle, why = outcome(self.state:task(backend.open, self.state.values.backend, self.state:open_config()))
  if not handle then return nil, why end
  if type(handle) ~= "table" or not (handle.apply or (handle.register and handle.deregister)) then
    return nil, "open() returned no handle with apply, or register and deregister"
  end
  self.handle = handle
  return handle
end

-- reg:call(method, ...) -> the method's results, or nil and why: one call
-- of the handle's, e.g. reg:call("advertised").
function Registry:call(method, ...)
  local handle, why = self:open()
  if not handle then return nil, why end
  -- The fakes answer at once and have no clock: a watch() would poll them
  -- for ever.  A handle may have one; the kit never calls it.
  if method == "watch" then
    return nil, "registrar.testing: the fake registries answer no watch(); reg:sync() makes the resync"
  end
  if type(handle[method]) ~= "function" then return nil, ("the backend has no %s()"):format(method) end
  return outcome(self.state:task(handle[method], handle, ...))
end

-- This host's document, as engine/registry/hostdoc.c makes it: the time
-- kept when the registry holds the same document already.
function Registry:host_entry(keys, have)
  local values = self.state.values
  local key = values.prefix_hosts:gsub("/+$", "") .. "/" .. values.hostname
  local sorted = json.array {}
  for i, k in ipairs(keys) do sorted[i] = k end
  table.sort(sorted)
  local doc = json.object { keys = sorted, hostname = values.hostname, ipaddress = values.ipaddress,
                            services = #sorted, version = require("registrar.testing").VERSION }
  local held = have[key] and json.decode(have[key])
  local synced = type(held) == "table" and held.synced
  if type(held) == "table" then held.synced = nil end
  if not (synced and json.encode(held) == json.encode(doc)) then
    synced = self.options.now or os.date("!%Y-%m-%dT%H:%M:%SZ")
  end
  doc.synced = synced
  return { key = key, value = json.encode(doc), document = doc, host = true }
end

local function label(c)
  return ("%s (%s)"):format(c.name or "?", (c.id or "?"):sub(1, 12))
end

-- The entries the containers name, the first container keeping a key two
-- name; and whether every container's naming succeeded.
function Registry:wanted(containers)
  local want, order, complete = {}, {}, true
  self.failures = {}
  for _, c in ipairs(containers) do
    if type(c) == "table" and c.id == nil then c = assert(container.from_inspect(c)) end
    local entries, why = self.state:entries(c)
    if not entries then
      complete = false
      self.failures[#self.failures + 1] = { container = label(c), error = why }
    else
      for _, e in ipairs(entries) do
        if not want[e.key] then want[e.key], order[#order + 1] = e, e.key end
      end
    end
  end
  return want, order, complete
end

function Registry:write(puts, deletes)
  local handle = self.handle
  if handle.apply then
    local all = {}
    for _, e in ipairs(puts) do all[#all + 1] = { put = e } end
    for _, e in ipairs(deletes) do all[#all + 1] = { delete = e } end
    for first = 1, #all, APPLY_BATCH do
      local p, d = {}, {}
      for i = first, math.min(first + APPLY_BATCH - 1, #all) do
        if all[i].put then p[#p + 1] = all[i].put else d[#d + 1] = all[i].delete end
      end
      local ok, why = self:call("apply", p, d)
      if not ok then return nil, why end
    end
    return true
  end
  for _, e in ipairs(puts) do
    local ok, why = self:call("register", e)
    if not ok then return nil, ("register %s: %s"):format(e.key, why) end
  end
  for _, e in ipairs(deletes) do
    local ok, why = self:call("deregister", e)
    if not ok then return nil, ("deregister %s: %s"):format(e.key, why) end
  end
  return true
end

-- reg:sync(containers) -> {registered = {keys}, deregistered = {keys}}, or
-- nil and why: one resync as the daemon makes it.  The registry's entries
-- of this host (advertised()) are compared with what the containers name
-- (and this host's document); changed and new entries are written, and
-- entries no container names are removed, unless a container's naming
-- failed (reg.failures says which): they may be its.
function Registry:sync(containers)
  local handle, why = self:open()
  if not handle then return nil, why end
  local ttl = self.state.values.service_ttl == "ttl" and (self.state.values.ttl + 999) // 1000 or nil
  -- ttl mode, as the engine's interval: what it holds is kept alive first
  -- (refresh, else written again); a failed refresh has the next resync
  -- write everything again
  if ttl and self.audited then
    if not handle.refresh then
      self.rewrite = true
    elseif not self.rewrite then
      local ok, err = self:call("refresh", self.held or {})
      if not ok then
        self.rewrite = true
        return nil, err
      end
    end
  end
  local have = {}
  if handle.advertised then
    local got, err = self:call("advertised")
    if not got then return nil, err end
    if type(got) ~= "table" then return nil, ("advertised() returned a %s, not a table"):format(type(got)) end
    for k, v in pairs(got) do have[k] = type(v) == "table" and json.encode(v) or v end
  end
  local want, order, complete = self:wanted(containers)
  local host = self:host_entry(order, have)
  want[host.key], order[#order + 1] = host, host.key
  self.audited = true
  local puts, deletes, held = {}, {}, {}
  for _, key in ipairs(order) do
    local e = want[key]
    e.ttl = ttl
    local compare = type(e.compare) == "string" and e.compare or e.value
    if have[key] ~= compare or self.rewrite then puts[#puts + 1] = e end
    held[#held + 1] = e
  end
  if complete then
    for key, value in pairs(have) do
      if not want[key] then deletes[#deletes + 1] = { key = key, value = value } end
    end
    table.sort(deletes, function(a, b) return a.key < b.key end)
  end
  local ok, err = self:write(puts, deletes)
  if not ok then return nil, err end
  self.rewrite, self.held = nil, held
  local summary = { registered = json.array {}, deregistered = json.array {} }
  for _, e in ipairs(puts) do summary.registered[#summary.registered + 1] = e.key end
  for _, e in ipairs(deletes) do summary.deregistered[#summary.deregistered + 1] = e.key end
  if self.state.changed and (#puts > 0 or #deletes > 0) then
    local done, cerr = self.state:task(self.state.changed, summary)
    if not done then self.kit.registrar.log.warn("changed(): %s", cerr) end
  end
  return summary
end

---------------------------------------------------------------------------

-- reg:keys() -> what the registry holds now: key -> value (Consul's agent
-- and catalog: service id -> the service as Consul lists it).  For the
-- file backend, the file's services and host documents, each as its JSON.
function Registry:keys()
  if self.server then return self.server:keys() end
  local path = self.state.values.backend:match("^file://(/.*)$")
  local text = path and self.state.files[path]
  local doc = text and json.decode(text)
  local out = {}
  if type(doc) == "table" then
    for _, part in ipairs { doc.services or {}, doc.hosts or {} } do
      for k, v in pairs(part) do out[k] = type(v) == "table" and json.encode(v) or v end
    end
  end
  return out
end

return registry
