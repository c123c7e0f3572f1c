-- consulkv://HOST:PORT/PREFIX: a key per service, PREFIX + its key, holding
-- its document.  Beside each, an ownership record under
-- PREFIX/<prefix_hosts>/<hostname>/keys/ holds {key, value}: the keys this
-- host owns.  The record is written before the key and removed after it,
-- so a crash in between never leaves a key nobody owns.
--
-- advertised() and watch() read the whole PREFIX in one GET ?recurse (an
-- audit once, then a blocking query from its index): this host's records
-- say which keys are its own, and what each key holds now is compared, so
-- a key deleted or changed by hand is written back.  Other hosts' keys are
-- read but never changed.  Each change anywhere under PREFIX answers the
-- blocking query with all of PREFIX: give each cluster its own PREFIX.
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
local blocking = require "backends.consul.blocking"
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

-- A key this host's record names that is not there, and one that is not
-- the mode's kind (a session in prune mode, another one in ttl mode):
-- never equal to a wanted value, so the key is written again.
local MISSING = "\1registrar: no key\1"
local STALE = "\1registrar: a key of the other mode, or of another session\1"

function KV:current(item)
  if self.ttl then return item.Session ~= nil and item.Session == self.session_id end
  return item.Session == nil
end

-- The listing of PREFIX: {key = value} for this host's keys, by its records.
function KV:held(list)
  local at, out, records = {}, {}, self.records .. "/"
  for _, item in ipairs(type(list) == "table" and list or {}) do
    if type(item) == "table" and type(item.Key) == "string" then at[item.Key] = item end
  end
  for path, item in pairs(at) do
    if path:sub(1, #records) == records then
      local doc = json.decode(registrar.base64.decode(type(item.Value) == "string" and item.Value or "") or "")
      if type(doc) == "table" and type(doc.key) == "string" and type(doc.value) == "string" then
        local kv = at[self:path(doc.key)]
        if not kv or not self:current(item) then out[doc.key] = kv and STALE or MISSING
        elseif not self:current(kv) then out[doc.key] = STALE
        else out[doc.key] = registrar.base64.decode(type(kv.Value) == "string" and kv.Value or "") or "" end
      end
    end
  end
  return out
end

function KV:listing_path()
  return "/v1/kv/" .. (self.prefix ~= "" and uri.escape_path(self.prefix) .. "/" or "") .. "?recurse"
end

local function listing(res, path)
  if res.status == 404 then return {} end
  local list = json.decode(res.body)
  if res.status ~= 200 or type(list) ~= "table" then return nil, ("GET %s: status %d"):format(path, res.status) end
  return list
end

function KV:advertised()
  local path = self:listing_path()
  local res, err = self.client:request { method = "GET", path = path }
  if not res then return nil, err end
  local list, lerr = listing(res, path)
  if not list then return nil, lerr end
  local out = self:held(list)
  blocking.audited(self, out)
  self.index = blocking.index_of(res)
  return out
end

-- What changed for this host's keys since the last answer.
function KV:watch()
  if not self.index then return nil, "no index to watch from" end
  local path = self:listing_path()
  while true do
    local mark = blocking.mark(self)
    local res, index = blocking.by_index(self, path, self.index)
    if not res then self.index = nil; return nil, index end
    local list, lerr = listing(res, path)
    if not list then return nil, lerr end
    self.index = index
    local changes = blocking.diff(self, self:held(list), mark)
    for _, change in ipairs(changes) do
      if change.value == MISSING then change.value = nil end       -- deleted
    end
    if #changes > 0 then return changes end
  end
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
    blocking.track_writes(kv, function(entry) return entry.value end)
    if kv.ttl then
      local id, err = kv:new_session()
      if not id then return nil, err end
    end
    return kv
  end,
}
