-- etcd's v3 API through its JSON gateway (POST /v3/kv/..., base64 keys and
-- values, int64 fields as strings).
--
-- Ownership: beside each key this host writes an ownership record,
--   <prefix_hosts>/<hostname>/keys/<key without its leading "/"> = {"key": <key>, "value": <value>},
-- in the same transaction.  advertised() reads only that range: this host's
-- keys, whatever the size of the shared prefix.  Keys other hosts own, or
-- anyone else wrote, are never read, changed or deleted.
--
-- Many changes go out as one transaction (up to 64 keys; etcd allows 128
-- operations).  ttl mode attaches every key and record to one lease for
-- this host, kept alive by one request per interval; when the lease is
-- lost, refresh() fails and the engine writes everything again under a
-- new one.

local registrar = require "registrar"

local json = registrar.json
local b64 = registrar.base64

local V3 = {}
V3.__index = V3

local MAX_OPS = 128

-- The smallest key after every key starting with prefix.
local function prefix_end(prefix)
  for i = #prefix, 1, -1 do
    local byte = prefix:byte(i)
    if byte < 255 then return prefix:sub(1, i - 1) .. string.char(byte + 1) end
  end
  return "\0"
end

function V3:authenticate()
  local res, err = self.client:request {
    method = "POST", path = self.base .. "/auth/authenticate",
    body = json.encode { name = self.user, password = self.password },
  }
  if not res then return nil, err end
  local doc = json.decode(res.body)
  if res.status ~= 200 or type(doc) ~= "table" or not doc.token then
    return nil, ("authenticating as %q: status %d: %s"):format(self.user, res.status,
      type(doc) == "table" and (doc.message or doc.error) or res.body)
  end
  self.token = doc.token
  return true
end

local function expired_token(res, doc)
  local why = type(doc) == "table" and (doc.error or doc.message) or ""
  return res.status == 401 or tostring(why):find("invalid auth token", 1, true) ~= nil
end

-- POST <base>/<method> with a JSON body; the decoded answer, or nil, why.
function V3:call(method, body)
  if self.user and not self.token then
    local ok, err = self:authenticate()
    if not ok then return nil, err end
  end
  for attempt = 1, 2 do
    local res, err = self.client:request {
      method = "POST", path = self.base .. "/" .. method, body = json.encode(body),
      headers = self.token and { Authorization = self.token } or nil,
    }
    if not res then return nil, err end
    local doc = json.decode(res.body)
    if attempt == 1 and self.user and expired_token(res, doc) then
      local ok, aerr = self:authenticate()       -- tokens expire: once more with a new one
      if not ok then return nil, aerr end
    elseif res.status ~= 200 or type(doc) ~= "table" then
      return nil, ("POST %s/%s: status %d: %s"):format(self.base, method, res.status,
        type(doc) == "table" and (doc.message or doc.error) or res.body)
    else
      return doc
    end
  end
end

-- The key as etcd stores it: as named, or without its leading '/' for
-- readers that expect that (?keys=relative: Traefik and other libkv users).
function V3:stored(key)
  return self.relative and key:gsub("^/+", "") or key
end

function V3:record(key)
  return self.records .. "/" .. key:gsub("^/+", "")
end

-- ttl mode: this host's lease, granted on first use.
function V3:lease()
  if self.lease_id then return self.lease_id end
  local doc, err = self:call("lease/grant", { TTL = tostring(self.ttl) })
  if not doc then return nil, err end
  if not doc.ID then return nil, "lease/grant answered without an ID" end
  self.lease_id = tostring(doc.ID)     -- int64: kept as the string etcd sent
  return self.lease_id
end

function V3:apply(puts, deletes)
  local ops, lease = {}, nil
  if self.ttl and #puts > 0 then
    local err
    lease, err = self:lease()
    if not lease then return nil, err end
  end
  for _, e in ipairs(puts) do
    ops[#ops + 1] = { requestPut = { key = b64.encode(self:stored(e.key)), value = b64.encode(e.value), lease = lease } }
    local record = json.encode { key = e.key, value = e.value }
    ops[#ops + 1] = { requestPut = { key = b64.encode(self:record(e.key)), value = b64.encode(record), lease = lease } }
  end
  for _, e in ipairs(deletes) do
    ops[#ops + 1] = { requestDeleteRange = { key = b64.encode(self:stored(e.key)) } }
    ops[#ops + 1] = { requestDeleteRange = { key = b64.encode(self:record(e.key)) } }
  end
  for first = 1, #ops, MAX_OPS do
    local success = json.array {}
    for i = first, math.min(first + MAX_OPS - 1, #ops) do success[#success + 1] = ops[i] end
    local doc, err = self:call("kv/txn", { success = success })
    if not doc then return nil, err end
  end
  return true
end

-- This host's records.  A record that does not match the mode (a lease in
-- prune mode, another lease in ttl mode) is left out, so its key is written
-- again the way the mode wants.
function V3:advertised()
  local from = self.records .. "/"
  local doc, err = self:call("kv/range", { key = b64.encode(from), range_end = b64.encode(prefix_end(from)) })
  if not doc then return nil, err end
  local out = {}
  for _, kv in ipairs(doc.kvs or {}) do
    local lease = kv.lease and kv.lease ~= "0" and tostring(kv.lease) or nil
    local current
    if self.ttl then current = lease ~= nil and lease == self.lease_id else current = lease == nil end
    local record = current and json.decode(b64.decode(kv.value or "") or "")
    if type(record) == "table" and type(record.key) == "string" and type(record.value) == "string" then
      out[record.key] = record.value
    end
  end
  return out
end

-- ttl mode: one keepalive for every key of this host.
function V3:refresh(entries)
  if not self.lease_id then return true end
  local doc, err = self:call("lease/keepalive", { ID = self.lease_id })
  if not doc then return nil, err end
  local ttl = doc.result and tonumber(doc.result.TTL)
  if not ttl or ttl <= 0 then
    registrar.log.warn("etcd: lease %s of %d entries expired; writing them again", self.lease_id, #entries)
    self.lease_id = nil
    return nil, "lease expired"
  end
  return true
end

return {
  new = function(client, config, base, user, password, relative)
    local hosts = (config.prefix_hosts or "/hosts"):gsub("/+$", "")
    return setmetatable({
      client = client,
      base = base,
      user = user,
      password = password,
      records = hosts .. "/" .. config.hostname .. "/keys",
      relative = relative,
      ttl = config.service_ttl == "ttl" and math.max(1, (config.ttl + 999) // 1000) or nil,
    }, V3)
  end,
}
