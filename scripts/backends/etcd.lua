-- etcd://HOST:PORT[,HOST:PORT...]: the old tool's etcd layout through the
-- v2 keys API.  One key per service holding its JSON document; the
-- document's "host" field says which host owns it, and pruning only ever
-- touches keys this host owns.
--
-- Endpoints are tried in order; the one that answered is kept until it
-- fails.  Failures return nil and a message naming method, key and reason.

local registrar = require "registrar"
local uri = require "registrar.uri"

local json = registrar.json
local etcd = {}

local Backend = {}
Backend.__index = Backend

function etcd.open(text, config)
  local parsed, err = uri.parse(text, 2379)
  if not parsed then error("etcd backend: " .. err, 0) end
  if #parsed.hosts == 0 then error(("etcd backend: %q names no HOST:PORT"):format(text), 0) end
  local tls = parsed.scheme:find("https", 1, true) ~= nil
  return setmetatable({
    endpoints = uri.endpoints(parsed, tls),
    current = 1,
    prefix = (config.prefix_services or "/services"):gsub("/+$", ""),
    host = config.hostname,
    tls = tls and { ca_file = config.ca_file, cert_file = config.cert_file, key_file = config.key_file } or nil,
    userpwd = config.username and (config.username .. ":" .. (config.password or "")) or nil,
  }, Backend)
end

-- One request, moving on to the next endpoint when one cannot be reached.
function Backend:request(method, path, body)
  local errors = {}
  for attempt = 0, #self.endpoints - 1 do
    local i = (self.current - 1 + attempt) % #self.endpoints + 1
    local res, err = registrar.http.request {
      method = method,
      url = self.endpoints[i] .. path,
      body = body,
      headers = body and { ["Content-Type"] = "application/x-www-form-urlencoded" } or nil,
      tls = self.tls,
      userpwd = self.userpwd,
    }
    if res and res.status < 500 then
      self.current = i
      return res
    end
    errors[#errors + 1] = ("%s: %s"):format(self.endpoints[i], err or ("status " .. res.status))
  end
  return nil, ("%s %s: %s"):format(method, path, table.concat(errors, "; "))
end

local function failure(method, key, res)
  local doc = json.decode(res.body or "")
  local why = type(doc) == "table" and doc.message or res.body
  return nil, ("%s %s: status %d: %s"):format(method, key, res.status, why or "")
end

local function keys_url(key)
  return "/v2/keys" .. uri.escape_path(key)
end

function Backend:register(entry)
  local body = "value=" .. uri.escape(entry.value)
  if entry.ttl then body = body .. "&ttl=" .. entry.ttl end
  local res, err = self:request("PUT", keys_url(entry.key), body)
  if not res then return nil, err end
  if res.status ~= 200 and res.status ~= 201 then return failure("PUT", entry.key, res) end
  return true
end

-- Directories stay behind their last key in v2; remove the empty ones up
-- to the prefix (dir=true without recursive refuses a directory in use).
function Backend:remove_empty_parents(key)
  local dir = key:match("^(.*)/[^/]*$")
  while dir and #dir > #self.prefix and dir:sub(1, #self.prefix + 1) == self.prefix .. "/" do
    local res = self:request("DELETE", keys_url(dir) .. "?dir=true")
    if not res or res.status ~= 200 then return end
    dir = dir:match("^(.*)/[^/]*$")
  end
end

function Backend:deregister(entry)
  local res, err = self:request("DELETE", keys_url(entry.key))
  if not res then return nil, err end
  if res.status ~= 200 and res.status ~= 404 then return failure("DELETE", entry.key, res) end
  self:remove_empty_parents(entry.key)
  return true
end

-- Leaves under the prefix whose document names this host.  Values that
-- are not JSON documents belong to someone else and are skipped.
local function collect(node, host, out)
  if node.dir then
    for _, child in ipairs(node.nodes or {}) do collect(child, host, out) end
    return
  end
  local doc = type(node.value) == "string" and json.decode(node.value)
  if type(doc) == "table" and doc.host == host then out[node.key] = node.value end
end

function Backend:advertised()
  local res, err = self:request("GET", keys_url(self.prefix) .. "?recursive=true")
  if not res then return nil, err end
  if res.status == 404 then return {} end
  if res.status ~= 200 then return failure("GET", self.prefix, res) end
  local doc, why = json.decode(res.body)
  if type(doc) ~= "table" or type(doc.node) ~= "table" then
    return nil, ("GET %s: not an etcd v2 answer (%s)"):format(self.prefix, why or "no node")
  end
  local out = {}
  collect(doc.node, self.host, out)
  return out
end

return etcd
