-- etcd's v3 API through its JSON gateway (POST /v3/kv/..., base64 keys and
-- values, int64 fields as strings).
--
-- Ownership: beside each key this host writes an ownership record,
--   <prefix_hosts>/<hostname>/keys/<key without its leading "/"> = {"key": <key>, "value": <value>},
-- in the same transaction.  advertised() reads only that range: this host's
-- keys, whatever the size of the shared prefix.  Keys other hosts own, or
-- anyone else wrote, are never read, changed or deleted.
--
-- Many changes go out as one transaction (up to 64 keys, etcd allowing
-- 128 operations, and about 1 MiB: etcd refuses 1.5).  ttl mode attaches every key and record to one lease for
-- this host, kept alive by one request per interval; when the lease is
-- lost, refresh() fails and the engine writes everything again under a
-- new one.
--
-- watch(): one watch stream (POST /v3/watch) from the revision of the
-- last audit on, over the range from the smallest to past the largest of
-- this host's keys, its records and the services prefix.  It reports
-- this host's keys that someone else changed or deleted (and keys whose
-- record was deleted), so the engine writes them back at once; other
-- hosts' keys in that range are skipped.  A watch that breaks (etcd
-- restarted, its history compacted past our revision, a key outside the
-- range) ends with nil, why: the engine audits, then watches again.

local registrar = require "registrar"

local json = registrar.json
local b64 = registrar.base64

local V3 = {}
V3.__index = V3

local MAX_OPS = 128
-- etcd sends a progress notice every 10 minutes (its default) on a watch
-- asking for them: past this with no word at all, the stream is taken for
-- dead and opened again.
local WATCH_SILENCE_MS = 15 * 60 * 1000
-- A key this host holds whose value is not as the mode writes it
-- (no lease in ttl mode, or another one; a lease in prune mode): never
-- equal to a wanted value, so the engine writes it again.
local STALE = "\1registrar: a key of the other mode, or of another lease\1"
-- A key this host's record names that is not there.
local MISSING = "\1registrar: no key\1"

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

-- Is the stored key inside the range the watch covers?  (Outside, the
-- watch is opened again, wider.)
function V3:watched(stored)
  return not self.range or (stored >= self.range.from and stored < self.range.to)
end

-- A transaction carries at most MAX_OPS operations and about
-- MAX_TXN_BYTES of keys and values: etcd refuses a request over 1.5 MiB
-- (--max-request-bytes), and a host document listing 10 000 containers'
-- keys is close to 1 MiB on its own.
local MAX_TXN_BYTES = 1024 * 1024

-- How long a string of n bytes is in base64.
local function b64_len(n) return 4 * ((n + 2) // 3) end

-- A change (a put or a delete of one entry) is a group of two operations,
-- its key and its record.  Sized here from the lengths alone; its
-- operations (base64 and all) are made only as its transaction goes out,
-- so a start-up's writes are never all in memory at once, encoded.
function V3:put_group(e)
  local record = json.encode { key = e.key, value = e.value }
  local stored, record_key = self:stored(e.key), self:record(e.key)
  return {
    size = b64_len(#stored) + b64_len(#e.value) + b64_len(#record_key) + b64_len(#record),
    alone = { 2, 1 },
    ops = function(lease)
      return {
        { requestPut = { key = b64.encode(stored), value = b64.encode(e.value), lease = lease } },
        { requestPut = { key = b64.encode(record_key), value = b64.encode(record), lease = lease } },
      }
    end,
  }
end

function V3:delete_group(e)
  local stored, record_key = self:stored(e.key), self:record(e.key)
  return {
    size = b64_len(#stored) + b64_len(#record_key),
    alone = { 1, 2 },
    ops = function()
      return {
        { requestDeleteRange = { key = b64.encode(stored) } },
        { requestDeleteRange = { key = b64.encode(record_key) } },
      }
    end,
  }
end

-- Groups go out together in one transaction, as many as fit; a group too
-- large for one goes out one operation per transaction, in the order of
-- group.alone (a record before its key, a key before its record), so a
-- crash in between never leaves a key nobody owns.  Each transaction is a
-- list of {group, only = the one operation, or nil for both}.
local function transactions(groups)
  local txns, txn, ops, bytes = {}, {}, 0, 0
  local function flush()
    if #txn > 0 then txns[#txns + 1] = txn end
    txn, ops, bytes = {}, 0, 0
  end
  for _, group in ipairs(groups) do
    if group.size > MAX_TXN_BYTES then
      flush()
      for _, i in ipairs(group.alone) do txns[#txns + 1] = { { group = group, only = i } } end
    else
      if ops + 2 > MAX_OPS or bytes + group.size > MAX_TXN_BYTES then flush() end
      txn[#txn + 1] = { group = group }
      ops, bytes = ops + 2, bytes + group.size
    end
  end
  flush()
  return txns
end

local function operations(txn, lease)
  local out = json.array {}
  for _, part in ipairs(txn) do
    local ops = part.group.ops(lease)
    if part.only then
      out[#out + 1] = ops[part.only]
    else
      out[#out + 1], out[#out + 2] = ops[1], ops[2]
    end
  end
  return out
end

function V3:apply(puts, deletes)
  local groups, lease = {}, nil
  if self.ttl and #puts > 0 then
    local err
    lease, err = self:lease()
    if not lease then return nil, err end
  end
  local widen = false
  for _, e in ipairs(puts) do
    local stored = self:stored(e.key)
    self.mine[stored] = true            -- before etcd has it: a watch event may come first
    widen = widen or not self:watched(stored)
    groups[#groups + 1] = self:put_group(e)
  end
  for _, e in ipairs(deletes) do
    self.mine[self:stored(e.key)] = nil
    groups[#groups + 1] = self:delete_group(e)
  end
  for _, txn in ipairs(transactions(groups)) do
    local doc, err = self:call("kv/txn", { success = operations(txn, lease) })
    if not doc then return nil, err end
  end
  if widen then self:stop_watch("a key outside the watched range") end
  return true
end

-- This host's keys, by its records, and what each key holds now: a key
-- deleted or changed by hand is seen (MISSING: written again if wanted,
-- its record removed if not).  A record or key that does not match the
-- mode (a lease in prune mode, another lease in ttl mode) reads as STALE,
-- so the key is written again the way the mode wants.
function V3:advertised()
  local from = self.records .. "/"
  local doc, err = self:call("kv/range", { key = b64.encode(from), range_end = b64.encode(prefix_end(from)) })
  if not doc then return nil, err end
  local keys, mine = {}, {}
  for _, kv in ipairs(doc.kvs or {}) do
    local record = json.decode(b64.decode(kv.value or "") or "")
    if type(record) == "table" and type(record.key) == "string" and type(record.value) == "string" then
      keys[#keys + 1] = record.key
      mine[self:stored(record.key)] = true
    end
  end
  local out, kerr = self:values(keys)
  if not out then return nil, kerr end
  self.mine = mine
  -- a watch goes on from here: what changes after this answer is its
  self.watch_from = tonumber(doc.header and doc.header.revision or 0) + 1
  return out
end

-- What each key holds, read in transactions of MAX_OPS ranges.
function V3:values(keys)
  local out = {}
  for first = 1, #keys, MAX_OPS do
    local success = json.array {}
    for i = first, math.min(first + MAX_OPS - 1, #keys) do
      success[#success + 1] = { requestRange = { key = b64.encode(self:stored(keys[i])) } }
    end
    local doc, err = self:call("kv/txn", { success = success })
    if not doc then return nil, err end
    for i, r in ipairs(doc.responses or {}) do
      local key = keys[first + i - 1]
      local kv = type(r) == "table" and r.response_range and (r.response_range.kvs or {})[1]
      if not kv then
        out[key] = MISSING
      else
        out[key] = self:current(kv.lease) and b64.decode(kv.value or "") or STALE
      end
    end
  end
  return out
end

-- Is a key's or record's lease the one the mode writes?
function V3:current(lease)
  lease = lease and lease ~= "0" and tostring(lease) or nil
  if self.ttl then return lease ~= nil and lease == self.lease_id end
  return lease == nil
end

-- ---- the watch --------------------------------------------------------------

function V3:stop_watch(why)
  if self.stream then
    self.stream:close()
    self.stream, self.range = nil, nil
    self.stopped = why
  end
end

-- The range: this host's keys, its document and records, and the
-- services prefix.
function V3:watch_range()
  local from, to = self.host_key, prefix_end(self.records .. "/")
  local services = self:stored(self.prefix .. "/")
  if services < from then from = services end
  if prefix_end(services) > to then to = prefix_end(services) end
  for stored in pairs(self.mine) do
    if stored < from then from = stored end
    if stored >= to then to = stored .. "\0" end
  end
  return { from = from, to = to }
end

function V3:open_watch()
  local range = self:watch_range()
  local body = json.encode { create_request = {
    key = b64.encode(range.from), range_end = b64.encode(range.to),
    start_revision = self.watch_from and tostring(self.watch_from) or nil,
    prev_kv = false, progress_notify = true,
  } }
  for attempt = 1, 2 do
    if self.user and not self.token then
      local ok, err = self:authenticate()
      if not ok then return nil, err end
    end
    local stream, err = self.client:stream {
      method = "POST", path = self.base .. "/watch", body = body,
      headers = self.token and { Authorization = self.token } or nil,
    }
    if not stream then return nil, err end
    local line = stream:read(self.timeout)
    local doc = line and json.decode(line)
    local result = type(doc) == "table" and doc.result
    if stream.status == 200 and type(result) == "table" and result.created then
      self.stream, self.range, self.stopped = stream, range, nil
      return true
    end
    stream:close()
    if attempt == 1 and self.user and stream.status == 401 then
      self.token = nil                  -- an expired token: once more with a new one
    else
      local why = type(doc) == "table" and (doc.error and (doc.error.message or doc.error) or doc.message)
      return nil, ("POST %s/watch: status %d: %s"):format(self.base, stream.status, tostring(why or line))
    end
  end
end

-- What the events mean for this host's keys: {key, value} (value nil:
-- gone), for keys this host holds.
function V3:changes(events)
  local out, records = {}, self.records .. "/"
  for _, ev in ipairs(events or {}) do
    local kv = type(ev) == "table" and ev.kv or {}
    local stored = b64.decode(kv.key or "") or ""
    local deleted = ev.type == "DELETE"
    if stored:sub(1, #records) == records then
      -- a record deleted by someone else: its key is written again (with it)
      local key = "/" .. stored:sub(#records + 1)
      if deleted and self.mine[self:stored(key)] then out[#out + 1] = { key = key } end
    elseif self.mine[stored] then
      local key = self.relative and "/" .. stored or stored
      local value
      if not deleted then value = self:current(kv.lease) and b64.decode(kv.value or "") or STALE end
      out[#out + 1] = { key = key, value = value }
    end
  end
  return out
end

function V3:watch()
  if not self.stream then
    local ok, err = self:open_watch()
    if not ok then return nil, err end
  end
  while true do
    local line, err = self.stream:read(WATCH_SILENCE_MS)
    if not line then
      local why = self.stopped or (err == "timeout" and "no word from etcd in 15 minutes") or err
      self:stop_watch(why)
      self.stream = nil
      return nil, why
    end
    local doc = json.decode(line)
    local result = type(doc) == "table" and doc.result
    if type(result) ~= "table" then
      self:stop_watch()
      return nil, "the watch answered " .. line:sub(1, 200)
    end
    if result.canceled or result.compact_revision and result.compact_revision ~= "0" then
      self:stop_watch()
      self.watch_from = nil
      return nil, ("etcd compacted its history past the watch's revision (to %s)%s")
                  :format(tostring(result.compact_revision or "?"),
                          result.cancel_reason and (": " .. result.cancel_reason) or "")
    end
    local revision = tonumber(result.header and result.header.revision)
    if revision then self.watch_from = revision + 1 end
    local changes = self:changes(result.events)
    if #changes > 0 then return changes end
  end
end

-- ttl mode: one keepalive for every key of this host.
function V3:refresh()
  if not self.lease_id then return true end
  local doc, err = self:call("lease/keepalive", { ID = self.lease_id })
  if not doc then return nil, err end
  local ttl = doc.result and tonumber(doc.result.TTL)
  if not ttl or ttl <= 0 then
    registrar.log.warn("etcd: lease %s expired, and with it this host's entries; writing them again", self.lease_id)
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
      host_key = hosts .. "/" .. config.hostname,
      prefix = (config.prefix_services or "/services"):gsub("/+$", ""),
      relative = relative,
      mine = {},
      timeout = config.timeout,
      ttl = config.service_ttl == "ttl" and math.max(1, (config.ttl + 999) // 1000) or nil,
    }, V3)
  end,
}
