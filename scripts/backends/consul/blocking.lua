-- Consul's blocking queries: GET ...?index=N&wait=10m answers when what the
-- path reads changed past index N, or when the wait ran out (the same
-- index back).  The watch() of each Consul mode is built on these.

local blocking = {}

local WAIT = "10m"
-- After a listing that had to leave out a key being written: soon again,
-- to see that key as it is once the write is done.
local RECHECK = "1s"
-- Consul adds up to wait/16 of jitter: the request waits past both.
local TIMEOUT_MS = 11 * 60 * 1000

local function get(client, path, query, header, wait)
  local sep = path:find("?", 1, true) and "&" or "?"
  local res, err = client:request { method = "GET", path = path .. sep .. query .. "&wait=" .. (wait or WAIT),
                                    timeout = TIMEOUT_MS }
  if not res then return nil, err end
  if res.status ~= 200 and res.status ~= 404 then
    return nil, ("GET %s: status %d: %s"):format(path, res.status, res.body or "")
  end
  local value = res.headers and res.headers[header]
  if not value then return nil, ("GET %s: no %s header: not a blocking query"):format(path, header) end
  return res, value
end

-- res and the new index, or nil, why.  An index that went back (Consul
-- restarted, or a snapshot was restored) breaks the watch: what it held
-- may be gone, so the engine audits.  backend.recheck (see diff) makes the
-- wait short; backend.wait, when set, replaces the 10 minutes.
function blocking.by_index(backend, path, index)
  local res, value = get(backend.client, path, "index=" .. index, "x-consul-index",
                         backend.recheck and RECHECK or backend.wait)
  if not res then return nil, value end
  local new = tonumber(value)
  if not new then return nil, ("GET %s: X-Consul-Index %q is not a number"):format(path, value) end
  if new < index then
    return nil, ("Consul's index went back from %d to %d (restarted, or restored from a snapshot)"):format(index, new)
  end
  return res, math.max(new, 1)         -- Consul: an index below 1 is taken as 1
end

-- res and the new content hash, or nil, why.

-- backend.seen is what the registry is believed to hold for this host:
-- the last listing, with each write of ours since laid over it (compare
-- gives the value a listing would show for an entry), so a key of ours
-- deleted before any listing showed it is still seen to go.
--
-- A listing read while a write of ours was under way may show it half
-- done (KV writes a record, then the key) or not yet, even when its answer
-- arrives after the write ended: keys written since the query was sent are
-- left out of the comparison until a later listing, which always comes
-- (each write moves the index).  Wraps the backend's register and
-- deregister to note when each key was last written.
function blocking.track_writes(backend, compare)
  backend.seen, backend.writing, backend.written, backend.writes = {}, {}, {}, 0
  for _, method in ipairs { "register", "deregister" } do
    local write = backend[method]
    backend[method] = function(self, entry)
      local key = entry.key
      self.writes = self.writes + 1
      self.writing[key] = (self.writing[key] or 0) + 1
      local ok, err = write(self, entry)
      self.writes = self.writes + 1
      self.writing[key] = self.writing[key] - 1
      if self.writing[key] == 0 then self.writing[key] = nil end
      self.written[key] = self.writes
      if ok then self.seen[key] = method == "register" and compare(entry) or nil end
      return ok, err
    end
  end
  return backend
end

-- An audit's listing: what is believed from now on.  Returns it.
function blocking.audited(backend, listing)
  backend.seen = {}
  for key, value in pairs(listing) do backend.seen[key] = value end
  return listing
end

-- Where the write count stands: before sending a query, for diff().
function blocking.mark(backend)
  return backend.writes
end

-- {key, value} for what differs between the last listing (backend.seen)
-- and this one, whose query was sent at mark; backend.seen becomes this
-- one, keys written meanwhile as they were, and backend.recheck says
-- whether there were any.
function blocking.diff(backend, now, mark)
  local changes, seen = {}, backend.seen or {}
  backend.recheck = false
  local function unsure(key)
    local left_out = backend.writing[key] or (backend.written[key] or 0) > mark
    backend.recheck = backend.recheck or left_out
    return left_out
  end
  for key, value in pairs(now) do
    if unsure(key) then now[key] = seen[key]
    elseif seen[key] ~= value then changes[#changes + 1] = { key = key, value = value } end
  end
  for key in pairs(seen) do
    if now[key] == nil then
      if unsure(key) then now[key] = seen[key]
      else changes[#changes + 1] = { key = key } end
    end
  end
  backend.seen = now
  return changes
end

-- The index (or hash) an audit's answer carries: the watch goes on from it.
function blocking.index_of(res)
  return tonumber(res.headers and res.headers["x-consul-index"] or "")
end

return blocking
