-- consulkv://HOST:PORT/PREFIX: a key per service, PREFIX + its key, holding
-- its document.  Beside each, an ownership record under
-- PREFIX/<prefix_hosts>/<hostname>/keys/ holds {key, value}; advertised()
-- reads only those (this host's keys).  The record is written before the
-- key and removed after it, so a crash in between never leaves a key
-- nobody owns.  ttl mode: one session with a ttl for this host
-- (Behavior "delete"); every key is acquired with it, one renew per
-- interval keeps them, and a lost session makes the engine write
-- everything again under a new one.

local registrar = require "registrar"
local uri = require "registrar.uri"

local json = registrar.json

local KV = {}
KV.__index = KV

local function join(...)
  local parts = {}
  for _, p in ipairs { ... } do
    for segment in p:gmatch("[^/]+") do parts[#parts + 1] = segment end
  end
  return table.concat(parts, "/")
end

function KV:path(key) return join(self.prefix, key) end
function KV:record(key) return self.records .. "/" .. join(key) end

function KV:session()
  if self.session_id then return self.session_id end
  local res, err = self.client:request {
    method = "PUT", path = "/v1/session/create",
    body = json.encode { Name = "registrar " .. self.host, TTL = self.ttl .. "s", Behavior = "delete", LockDelay = "0s" },
  }
  if not res then return nil, err end
  local doc = json.decode(res.body)
  if res.status ~= 200 or type(doc) ~= "table" or not doc.ID then
    return nil, ("session/create: status %d: %s"):format(res.status, res.body)
  end
  self.session_id = doc.ID
  return doc.ID
end

function KV:set(path, value)
  local query = ""
  if self.ttl then
    local session, err = self:session()
    if not session then return nil, err end
    query = "?acquire=" .. session
  end
  local res, err = self.client:request { method = "PUT", path = "/v1/kv/" .. uri.escape_path(path) .. query, body = value }
  if not res then return nil, err end
  if res.status ~= 200 or not res.body:find("true", 1, true) then
    return nil, ("PUT %s: status %d: %s"):format(path, res.status, res.body)
  end
  return true
end

function KV:delete(path)
  local res, err = self.client:request { method = "DELETE", path = "/v1/kv/" .. uri.escape_path(path) }
  if not res then return nil, err end
  if res.status ~= 200 then return nil, ("DELETE %s: status %d"):format(path, res.status) end
  return true
end

function KV:register(entry)
  local ok, err = self:set(self:record(entry.key), json.encode { key = entry.key, value = entry.value })
  if not ok then return nil, err end
  return self:set(self:path(entry.key), entry.value)
end

function KV:deregister(entry)
  local ok, err = self:delete(self:path(entry.key))
  if not ok then return nil, err end
  return self:delete(self:record(entry.key))
end

-- The records that match the mode (no session in prune mode, ours in ttl
-- mode); others are written again the way the mode wants.
function KV:advertised()
  local res, err = self.client:request { method = "GET", path = "/v1/kv/" .. uri.escape_path(self.records) .. "/?recurse" }
  if not res then return nil, err end
  if res.status == 404 then return {} end
  local list = json.decode(res.body)
  if res.status ~= 200 or type(list) ~= "table" then
    return nil, ("GET %s: status %d"):format(self.records, res.status)
  end
  local out = {}
  for _, item in ipairs(list) do
    local doc = json.decode(registrar.base64.decode(type(item.Value) == "string" and item.Value or "") or "")
    local current = (self.ttl and item.Session ~= nil and item.Session == self.session_id)
                    or (not self.ttl and item.Session == nil)
    if current and type(doc) == "table" and type(doc.key) == "string" and type(doc.value) == "string" then
      out[doc.key] = doc.value
    end
  end
  return out
end

function KV:refresh()
  if not self.session_id then return true end
  local res, err = self.client:request { method = "PUT", path = "/v1/session/renew/" .. self.session_id }
  if not res then return nil, err end
  if res.status ~= 200 then
    registrar.log.warn("consul: session %s is gone; writing every key again", self.session_id)
    self.session_id = nil
    return nil, "session expired"
  end
  return true
end

return {
  new = function(client, config, parsed)
    return setmetatable({
      client = client,
      host = config.hostname,
      prefix = join(parsed.path or ""),
      records = join(parsed.path or "", config.prefix_hosts or "/hosts", config.hostname, "keys"),
      ttl = config.service_ttl == "ttl" and math.max(10, (config.ttl + 999) // 1000) or nil,
    }, KV)
  end,
}
