-- An etcd that answers as etcd 3.4 does for what the bundled backend asks:
-- GET /version; the v2 keys API (PUT, with prevExist and refresh=true;
-- DELETE, DELETE ?dir=true, GET ?recursive=true; X-Etcd-Index); the v3
-- JSON gateway (kv/txn, kv/range, kv/put, kv/deleterange, lease/grant,
-- lease/keepalive, auth/authenticate).  The two keyspaces are apart, as
-- in etcd 3.4.  Values are kept in memory.  No watches: the kit never
-- calls a backend's watch().
--
-- options: version ("3.4.23"; "2.3.8" for a v2-only server), users
-- ({name = password}: v3 asks for a token, v2 for basic auth).

local json = require "registrar.testing.json"
local codec = require "registrar.testing.modules"

local b64 = codec.base64

local Etcd = {}
Etcd.__index = Etcd

local fake = {}

function fake.new(options)
  options = options or {}
  return setmetatable({
    version = options.version or "3.4.23",
    users = options.users,
    v2 = { leaves = {}, dirs = {} },   -- key -> {value, index}; dir -> true
    v3 = {},                           -- key -> {value, lease, create_revision, mod_revision, version}
    leases = {},                       -- id (text) -> ttl
    tokens = {},
    revision = 1,
    next_lease = 7587862072784158721,
  }, Etcd)
end

local function answer(status, doc)
  return { status = status, body = json.encode(doc), headers = { ["content-type"] = "application/json" } }
end

---------------------------------------------------------------------------
-- v2

local function v2_error(status, code, message, key)
  return answer(status, { errorCode = code, message = message, cause = key, index = 0 })
end

local function parents(key)
  local out = {}
  local dir = key:match("^(.*)/[^/]*$")
  while dir and dir ~= "" do
    out[#out + 1] = dir
    dir = dir:match("^(.*)/[^/]*$")
  end
  return out
end

local function form(body)
  local out = {}
  for k, v in (body or ""):gmatch("([^&=]+)=?([^&]*)") do
    out[k] = (v:gsub("+", " "):gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
  end
  return out
end

function Etcd:v2_node(key, recursive)
  local leaf = self.v2.leaves[key]
  if leaf then
    return json.object { key = key, value = leaf.value, modifiedIndex = leaf.index, createdIndex = leaf.index }
  end
  if not (self.v2.dirs[key] or key == "") then return nil end
  local node = json.object { key = key ~= "" and key or nil, dir = true }
  local children = {}
  for k in pairs(self.v2.leaves) do if k:match("^(.*)/[^/]*$") == key then children[#children + 1] = k end end
  for k in pairs(self.v2.dirs) do if k:match("^(.*)/[^/]*$") == key then children[#children + 1] = k end end
  table.sort(children)
  if #children > 0 then
    node.nodes = json.array {}
    for _, child in ipairs(children) do
      local sub = self.v2.leaves[child] and self:v2_node(child)
                  or (recursive and self:v2_node(child, true) or json.object { key = child, dir = true })
      node.nodes[#node.nodes + 1] = sub
    end
  end
  return node
end

function Etcd:keys_api(method, key, query, body)
  self.revision = self.revision + 1
  if method == "PUT" then
    if self.v2.dirs[key] then return v2_error(403, 102, "Not a file", key) end
    for _, dir in ipairs(parents(key)) do
      if self.v2.leaves[dir] then return v2_error(400, 104, "Not a directory", dir) end
    end
    local values, leaf = form(body), self.v2.leaves[key]
    local exist, refresh = query.prevExist or values.prevExist, (query.refresh or values.refresh) == "true"
    -- refresh=true: a new ttl for a key that is there, its value left as it is
    if refresh and values.value then return v2_error(400, 211, "Value provided on refresh", key) end
    if refresh and not tonumber(values.ttl) then return v2_error(400, 212, "A TTL must be provided on refresh", key) end
    if not leaf and (exist == "true" or refresh) then return v2_error(404, 100, "Key not found", key) end
    if leaf and exist == "false" then return v2_error(412, 105, "Key already exists", key) end
    local action = exist == "true" and "update" or exist == "false" and "create" or "set"
    if refresh then
      leaf.ttl, leaf.index = tonumber(values.ttl), self.revision
      return answer(200, { action = action, node = self:v2_node(key) })
    end
    for _, dir in ipairs(parents(key)) do self.v2.dirs[dir] = true end
    self.v2.leaves[key] = { value = values.value or "", index = self.revision, ttl = tonumber(values.ttl) }
    return answer(leaf and 200 or 201, { action = action, node = self:v2_node(key) })
  elseif method == "DELETE" then
    if self.v2.leaves[key] then
      self.v2.leaves[key] = nil
      return answer(200, { action = "delete", node = json.object { key = key } })
    end
    if query.dir == "true" and self.v2.dirs[key] then
      if self:v2_node(key).nodes then return v2_error(403, 108, "Directory not empty", key) end
      self.v2.dirs[key] = nil
      return answer(200, { action = "delete", node = json.object { key = key, dir = true } })
    end
    return v2_error(404, 100, "Key not found", key)
  elseif method == "GET" then
    local node = self:v2_node(key == "/" and "" or key, query.recursive == "true")
    if not node then return v2_error(404, 100, "Key not found", key) end
    return answer(200, { action = "get", node = node })
  end
  return v2_error(405, 0, "Method Not Allowed", key)
end

---------------------------------------------------------------------------
-- v3

local function range_of(req)
  local key = b64.decode(req.key or "") or ""
  local stop = req.range_end and b64.decode(req.range_end) or nil
  return key, stop
end

function Etcd:matching(key, stop)
  local out = {}
  for k in pairs(self.v3) do
    if (stop == nil and k == key) or (stop ~= nil and k >= key and (stop == "\0" or k < stop)) then out[#out + 1] = k end
  end
  table.sort(out)
  return out
end

function Etcd:put(req)
  local key = b64.decode(req.key or "")
  if not key or key == "" then return nil, "etcdserver: key is not provided" end
  local lease = req.lease and req.lease ~= "0" and tostring(req.lease) or nil
  if lease and not self.leases[lease] then return nil, "etcdserver: requested lease not found" end
  self.revision = self.revision + 1
  local old = self.v3[key]
  self.v3[key] = { value = b64.decode(req.value or "") or "", lease = lease,
                   create_revision = old and old.create_revision or self.revision, mod_revision = self.revision,
                   version = old and old.version + 1 or 1 }
  return json.object { header = json.object { revision = tostring(self.revision) } }
end

function Etcd:delete_range(req)
  local key, stop = range_of(req)
  local deleted = 0
  for _, k in ipairs(self:matching(key, stop)) do self.v3[k] = nil; deleted = deleted + 1 end
  if deleted > 0 then self.revision = self.revision + 1 end
  return json.object { header = json.object { revision = tostring(self.revision) },
                       deleted = deleted > 0 and tostring(deleted) or nil }
end

function Etcd:range(req)
  local key, stop = range_of(req)
  local kvs = json.array {}
  for _, k in ipairs(self:matching(key, stop)) do
    local kv = self.v3[k]
    kvs[#kvs + 1] = json.object {
      key = b64.encode(k), value = b64.encode(kv.value), lease = kv.lease,
      create_revision = tostring(kv.create_revision), mod_revision = tostring(kv.mod_revision),
      version = tostring(kv.version),
    }
  end
  -- etcd leaves empty fields out: no kvs, no count, when nothing matched
  return json.object { header = json.object { revision = tostring(self.revision) },
                       kvs = #kvs > 0 and kvs or nil, count = #kvs > 0 and tostring(#kvs) or nil }
end

function Etcd:txn(req)
  local responses = json.array {}
  for _, op in ipairs(type(req.success) == "table" and req.success or {}) do
    local done, err
    if op.requestPut then
      done, err = self:put(op.requestPut)
      if done then done = json.object { response_put = done } end
    elseif op.requestDeleteRange then
      done = json.object { response_delete_range = self:delete_range(op.requestDeleteRange) }
    elseif op.requestRange then
      done = json.object { response_range = self:range(op.requestRange) }
    else
      err = "etcdserver: unknown operation in txn"
    end
    if not done then return nil, err end
    responses[#responses + 1] = done
  end
  return json.object { header = json.object { revision = tostring(self.revision) }, succeeded = true,
                       responses = responses }
end

function Etcd:grant(req)
  local id = tostring(self.next_lease)
  self.next_lease = self.next_lease + 1
  self.leases[id] = tonumber(req.TTL) or 0
  return json.object { header = json.object {}, ID = id, TTL = tostring(self.leases[id]) }
end

function Etcd:keepalive(req)
  local id = tostring(req.ID)
  if not self.leases[id] then return json.object { result = json.object { header = json.object {}, ID = id } } end
  return json.object { result = json.object { header = json.object {}, ID = id, TTL = tostring(self.leases[id]) } }
end

-- The lease runs out (a registrar that stopped refreshing): its keys go.
function Etcd:expire(id)
  for k, kv in pairs(self.v3) do if kv.lease == id then self.v3[k] = nil end end
  self.leases[id] = nil
end

function Etcd:authenticate(req)
  if not self.users or self.users[req.name] == nil or self.users[req.name] ~= req.password then
    return nil, "etcdserver: authentication failed, invalid user ID or password", 400
  end
  local token = ("token.%s.%d"):format(req.name, self.revision)
  self.tokens[token] = req.name
  return json.object { header = json.object {}, token = token }
end

local V3 = {
  ["kv/txn"] = Etcd.txn, ["kv/range"] = Etcd.range, ["kv/put"] = Etcd.put,
  ["kv/deleterange"] = Etcd.delete_range, ["lease/grant"] = Etcd.grant, ["lease/keepalive"] = Etcd.keepalive,
}

function Etcd:v3_call(method, body, headers)
  local req = json.decode(body or "")
  if type(req) ~= "table" then return answer(400, { error = "invalid JSON", code = 3 }) end
  if method == "auth/authenticate" then
    local doc, err, status = self:authenticate(req)
    if not doc then return answer(status, { error = err, message = err, code = 3 }) end
    return answer(200, doc)
  end
  if self.users and not self.tokens[headers.authorization or ""] then
    return answer(401, { error = "etcdserver: invalid auth token", message = "etcdserver: invalid auth token", code = 16 })
  end
  local handler = V3[method]
  if not handler then return answer(404, { error = "Not Found", code = 5 }) end
  local doc, err = handler(self, req)
  if not doc then return answer(400, { error = err, message = err, code = 3 }) end
  return answer(200, doc)
end

---------------------------------------------------------------------------

local function v3_base(version)
  local major, minor = version:match("^(%d+)%.(%d+)")
  major, minor = tonumber(major), tonumber(minor)
  if major < 3 or (major == 3 and minor < 3) then return nil end
  return major == 3 and minor == 3 and "/v3beta" or "/v3"
end

-- handle(request) -> response, for a request the registry has parsed:
-- {method, path (unescaped), query = {}, body, headers (lower-case names)}
function Etcd:handle(r)
  if r.path == "/version" then
    return answer(200, { etcdserver = self.version, etcdcluster = self.version:gsub("%.%d+$", ".0") })
  end
  local key = r.path:match("^/v2/keys(/.*)$") or (r.path == "/v2/keys" and "/")
  if key then
    if self.users then
      local user = r.userpwd and r.userpwd:match("^([^:]*):")
      if not user or self.users[user] ~= r.userpwd:sub(#user + 2) then
        return v2_error(401, 110, "The request requires user authentication", key)
      end
    end
    local res = self:keys_api(r.method, key, r.query, r.body)
    res.headers["x-etcd-index"] = tostring(self.revision)   -- where a v2 watch would go on from
    return res
  end
  local base = v3_base(self.version)
  local method = base and r.path:sub(1, #base + 1) == base .. "/" and r.path:sub(#base + 2)
  if method and r.method == "POST" then return self:v3_call(method, r.body, r.headers) end
  return { status = 404, body = "404 page not found\n", headers = { ["content-type"] = "text/plain" } }
end

-- What the registry holds: key -> value, of the keyspace the backend writes.
function Etcd:keys()
  local out = {}
  if v3_base(self.version) then
    for k, kv in pairs(self.v3) do out[k] = kv.value end
  end
  for k, leaf in pairs(self.v2.leaves) do out[k] = leaf.value end
  return out
end

return fake
