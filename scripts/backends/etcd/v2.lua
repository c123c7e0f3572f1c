-- etcd's v2 keys API: the old tool's layout.  One key per service holding
-- its JSON document; the document's "host" field says which host owns it,
-- and pruning only ever touches keys this host owns.  ttl mode writes each
-- key with a ttl every interval, as the old tool did.

local registrar = require "registrar"
local uri = require "registrar.uri"

local json = registrar.json

local V2 = {}
V2.__index = V2

local function failure(method, key, res)
  local doc = json.decode(res.body or "")
  local why = type(doc) == "table" and doc.message or res.body
  return nil, ("%s %s: status %d: %s"):format(method, key, res.status, why or "")
end

local function keys_url(key)
  return "/v2/keys" .. uri.escape_path(key)
end

local FORM = { ["Content-Type"] = "application/x-www-form-urlencoded" }

function V2:register(entry)
  local body = "value=" .. uri.escape(entry.value)
  if entry.ttl then body = body .. "&ttl=" .. entry.ttl end
  local res, err = self.client:request { method = "PUT", path = keys_url(entry.key), body = body, headers = FORM }
  if not res then return nil, err end
  if res.status ~= 200 and res.status ~= 201 then return failure("PUT", entry.key, res) end
  return true
end

-- Directories stay behind their last key in v2; remove the empty ones up
-- to the prefix (dir=true without recursive refuses a directory in use).
function V2:remove_empty_parents(key)
  local dir = key:match("^(.*)/[^/]*$")
  while dir and #dir > #self.prefix and dir:sub(1, #self.prefix + 1) == self.prefix .. "/" do
    local res = self.client:request { method = "DELETE", path = keys_url(dir) .. "?dir=true" }
    if not res or res.status ~= 200 then return end
    dir = dir:match("^(.*)/[^/]*$")
  end
end

function V2:deregister(entry)
  local res, err = self.client:request { method = "DELETE", path = keys_url(entry.key) }
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

function V2:advertised()
  local res, err = self.client:request { method = "GET", path = keys_url(self.prefix) .. "?recursive=true" }
  if not res then return nil, err end
  if res.status == 404 then return {} end
  if res.status ~= 200 then return failure("GET", self.prefix, res) end
  local doc, why = json.decode(res.body)
  if type(doc) ~= "table" or type(doc.node) ~= "table" then
    return nil, ("GET %s: not an etcd v2 answer (%s)"):format(self.prefix, why or "no node")
  end
  local out = {}
  collect(doc.node, self.host, out)
  -- this host's document is outside the prefix: it is ours by its path
  local hres, herr = self.client:request { method = "GET", path = keys_url(self.host_key) }
  if not hres then return nil, herr end
  local hdoc = hres.status == 200 and json.decode(hres.body)
  if type(hdoc) == "table" and type(hdoc.node) == "table" and type(hdoc.node.value) == "string" then
    out[self.host_key] = hdoc.node.value
  elseif hres.status ~= 200 and hres.status ~= 404 then
    return failure("GET", self.host_key, hres)
  end
  return out
end

return {
  new = function(client, config)
    return setmetatable({
      client = client,
      prefix = (config.prefix_services or "/services"):gsub("/+$", ""),
      host = config.hostname,
      host_key = (config.prefix_hosts or "/hosts"):gsub("/+$", "") .. "/" .. config.hostname,
    }, V2)
  end,
}
