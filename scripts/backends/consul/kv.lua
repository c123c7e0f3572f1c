-- consulkv://HOST:PORT/PREFIX: a key per service, PREFIX + its key, holding
-- its document.  Beside each, an ownership record under
-- PREFIX/<prefix_hosts>/<hostname>/keys/ holds {key, value}; advertised()
-- reads only those (this host's keys).  The record is written before the
-- key and removed after it, so a crash in between never leaves a key
-- nobody owns.
--
-- ttl mode: one session for this host (Behavior "delete"), and every key
-- and record is acquired with it.  Only open() and refresh() ever create
-- it, never a write: writes run many at a time (up to `concurrency`), and
-- each one finding no session and creating its own left keys locked by
-- sessions nobody renewed.  open() runs before any write, so the writes of
-- a start-up all find the session made there; refresh() renews it once
-- per interval and, when Consul says it is gone, makes the next one
-- before the engine writes everything again.  Before creating, the
-- sessions Consul lists under this host's name are looked at: a live one
-- (an earlier handle's, kept across a reload) is taken over, any other is
-- destroyed, so no key stays locked by a session nobody keeps alive.

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

-- GET/PUT path; the decoded JSON answer (nil if it is not JSON), or nil, why.
function KV:call(method, path)
  local res, err = self.client:request { method = method, path = path }
  if not res then return nil, err end
  if res.status ~= 200 then return nil, ("%s %s: status %d: %s"):format(method, path, res.status, res.body) end
  return json.decode(res.body), res
end

-- The sessions of earlier handles of this host and prefix: a live one that
-- fits is taken over (renewed at once: it is still alive), every other one
-- destroyed, with the keys it holds (they are written again).
function KV:adopt()
  local list = self:call("GET", "/v1/session/list")
  local mine = {}
  for _, s in ipairs(type(list) == "table" and list or {}) do
    if type(s) == "table" and s.Name == self.session_name and type(s.ID) == "string" then mine[#mine + 1] = s end
  end
  table.sort(mine, function(a, b) return (tonumber(a.CreateIndex) or 0) > (tonumber(b.CreateIndex) or 0) end)
  local adopted
  for _, s in ipairs(mine) do
    if not adopted and s.Behavior == "delete" and s.TTL == self.ttl .. "s"
       and self:call("PUT", "/v1/session/renew/" .. uri.escape(s.ID)) then
      adopted = s.ID
      registrar.log.info("consul: taking over session %s of this host", s.ID)
    else
      registrar.log.info("consul: destroying session %s, left by an earlier run of this host", s.ID)
      self:call("PUT", "/v1/session/destroy/" .. uri.escape(s.ID))
    end
  end
  return adopted
end

-- ttl mode: this host's session, created (or taken over) by open() and
-- refresh() only, one at a time.
function KV:new_session()
  if self.creating then return nil, "a session/create is already under way" end
  self.creating = true
  local id = self:adopt()
  local err
  if not id then
    local res, rerr = self.client:request {
      method = "PUT", path = "/v1/session/create",
      body = json.encode { Name = self.session_name, TTL = self.ttl .. "s", Behavior = "delete", LockDelay = "0s" },
    }
    local answer = res and json.decode(res.body)
    if not res then
      err = rerr
    elseif res.status ~= 200 or type(answer) ~= "table" or type(answer.ID) ~= "string" then
      err = ("session/create: status %d: %s"):format(res.status, res.body)
    else
      id = answer.ID
    end
  end
  self.creating = false
  if not id then return nil, err end
  self.session_id = id
  return id
end

function KV:set(path, value)
  local query = ""
  if self.ttl then
    -- never created here: a write that found none would race every other
    if not self.session_id then return nil, ("PUT %s: no Consul session; the next refresh creates one"):format(path) end
    query = "?acquire=" .. self.session_id
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

-- ttl mode: one renew per interval for every key.  A session Consul no
-- longer knows is replaced here, before the engine writes everything again
-- (this call's failure makes it do so), so those writes find the new one.
function KV:refresh()
  if self.renewing then return true end          -- the last interval's renew is still under way
  if not self.session_id then
    local id, err = self:new_session()
    if not id then return nil, err end
    return nil, ("new session %s: writing every key again"):format(id)
  end
  local id = self.session_id
  self.renewing = true
  local res, err = self.client:request { method = "PUT", path = "/v1/session/renew/" .. uri.escape(id) }
  self.renewing = false
  if not res then return nil, err end
  if res.status == 404 then
    registrar.log.warn("consul: session %s is gone; writing every key again under a new one", id)
    if self.session_id == id then self.session_id = nil end
    local new, cerr = self:new_session()
    return nil, ("session %s expired%s"):format(id, new and "" or ("; " .. tostring(cerr)))
  end
  if res.status ~= 200 then return nil, ("session/renew: status %d: %s"):format(res.status, res.body) end
  return true
end

return {
  -- open(): in ttl mode the session is made here, before any write runs.
  new = function(client, config, parsed)
    local prefix = join(parsed.path or "")
    local kv = setmetatable({
      client = client,
      host = config.hostname,
      prefix = prefix,
      records = join(parsed.path or "", config.prefix_hosts or "/hosts", config.hostname, "keys"),
      ttl = config.service_ttl == "ttl" and math.max(10, (config.ttl + 999) // 1000) or nil,
      session_name = "registrar " .. config.hostname .. (prefix ~= "" and (" /" .. prefix) or ""),
    }, KV)
    if kv.ttl then
      local id, err = kv:new_session()
      if not id then return nil, err end
    end
    return kv
  end,
}
