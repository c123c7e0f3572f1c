-- etcd's v2 keys API: the old tool's layout.  One key per service holding
-- its JSON document; the document's "host" field says which host owns it,
-- and pruning only ever touches keys this host owns.
--
-- ttl mode: each key carries its own ttl (v2 has no leases and no
-- batches), so refresh() costs one request per key it is given (the
-- engine gives the keys whose ttl runs out before a later refresh could
-- reach them, in shares, several at once): PUT
-- ?ttl=N&refresh=true&prevExist=true, which sends no value and wakes no
-- watcher.  A key found gone is written again whole.
--
-- watch(): a long poll, GET ?wait=true&recursive=true&waitIndex=N, on the
-- directory holding the services prefix and this host's document, one
-- event per answer, from the index of the last audit on.  etcd keeps the
-- last 1000 events only: a watch that fell further behind is told so, and
-- the engine audits and watches again (in ttl mode it goes on from etcd's
-- index instead: its refreshes of every key find one deleted meanwhile).  An idle poll is asked again every
-- 10 minutes.

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

-- The deepest directory holding both paths ("" for the root).
local function common_dir(a, b)
  local dir = ""
  for segment in a:gmatch("/[^/]+") do
    if (b .. "/"):sub(1, #dir + #segment + 1) ~= dir .. segment .. "/" then break end
    dir = dir .. segment
  end
  return dir
end

local function keys_url(key)
  return "/v2/keys" .. uri.escape_path(key)
end

local FORM = { ["Content-Type"] = "application/x-www-form-urlencoded" }
local POLL_MS = 10 * 60 * 1000

function V2:register(entry)
  self.mine[entry.key] = true           -- before etcd has it: a watch event may come first
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
  self.mine[entry.key] = nil
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

-- etcd's index when it answered: a watch goes on after it.
local function etcd_index(res)
  return tonumber(res.headers and res.headers["x-etcd-index"] or "")
end

function V2:advertised()
  local res, err = self.client:request { method = "GET", path = keys_url(self.prefix) .. "?recursive=true" }
  if not res then return nil, err end
  if res.status ~= 200 and res.status ~= 404 then return failure("GET", self.prefix, res) end
  local out = {}
  if res.status == 200 then
    local doc, why = json.decode(res.body)
    if type(doc) ~= "table" or type(doc.node) ~= "table" then
      return nil, ("GET %s: not an etcd v2 answer (%s)"):format(self.prefix, why or "no node")
    end
    collect(doc.node, self.host, out)
  end
  local index = etcd_index(res)
  -- this host's document is outside the prefix: it is ours by its path
  local hres, herr = self.client:request { method = "GET", path = keys_url(self.host_key) }
  if not hres then return nil, herr end
  local hdoc = hres.status == 200 and json.decode(hres.body)
  if type(hdoc) == "table" and type(hdoc.node) == "table" and type(hdoc.node.value) == "string" then
    out[self.host_key] = hdoc.node.value
  elseif hres.status ~= 200 and hres.status ~= 404 then
    return failure("GET", self.host_key, hres)
  end
  self.mine = {}
  for key in pairs(out) do self.mine[key] = true end
  self.watch_from = index and index + 1
  return out
end

-- ttl mode: each key's ttl set again, its value left alone.
function V2:refresh(entries)
  for _, e in ipairs(entries) do
    local res, err = self.client:request {
      method = "PUT", path = keys_url(e.key), headers = FORM,
      body = ("ttl=%d&refresh=true&prevExist=true"):format(e.ttl),
    }
    if not res then return nil, err end
    if res.status == 404 then           -- expired, or deleted by hand: written again whole
      local ok, werr = self:register(e)
      if not ok then return nil, werr end
    elseif res.status ~= 200 then
      return failure("PUT", e.key, res)
    end
  end
  return true
end

-- What one v2 event means for this host's keys: {key, value} for each
-- key of ours it changed (a directory deleted takes every key below it).
function V2:changes(ev)
  local node = type(ev.node) == "table" and ev.node or {}
  local key, out = node.key, {}
  if type(key) ~= "string" then return out end
  local gone = ev.action == "delete" or ev.action == "expire" or ev.action == "compareAndDelete"
  if node.dir then
    if gone then
      for mine in pairs(self.mine) do
        if mine:sub(1, #key + 1) == key .. "/" then out[#out + 1] = { key = mine } end
      end
    end
  elseif self.mine[key] then
    out[#out + 1] = { key = key, value = (not gone) and node.value or nil }
  end
  return out
end

function V2:watch()
  while true do
    local path = keys_url(self.watch_dir) .. "?wait=true&recursive=true"
    if self.watch_from then path = path .. "&waitIndex=" .. self.watch_from end
    local res, err = self.client:request { method = "GET", path = path, timeout = POLL_MS }
    if not res then
      if not tostring(err):find("timed out", 1, true) then return nil, err end
    else
      local ev = json.decode(res.body)
      if type(ev) == "table" and ev.errorCode == 401 and self.ttl and tonumber(ev.index) then
        -- Fell out of etcd's last 1000 events, as ttl mode's own refreshes
        -- of many keys do each interval: go on from now.  The refreshes find
        -- a key deleted meanwhile (404); an audit here would rewrite them all.
        self.watch_from = tonumber(ev.index) + 1
      elseif res.status ~= 200 or type(ev) ~= "table" then
        if type(ev) == "table" and ev.errorCode == 401 then self.watch_from = nil end
        local why = type(ev) == "table" and (ev.message or "") .. (ev.cause and (" (" .. ev.cause .. ")") or "")
        return nil, ("GET %s: status %d: %s"):format(path, res.status, why or res.body)
      else
        local index = type(ev.node) == "table" and tonumber(ev.node.modifiedIndex)
        if index then self.watch_from = index + 1 end
        local changes = self:changes(ev)
        if #changes > 0 then return changes end
      end
    end
  end
end

return {
  new = function(client, config)
    local prefix = (config.prefix_services or "/services"):gsub("/+$", "")
    local host_key = (config.prefix_hosts or "/hosts"):gsub("/+$", "") .. "/" .. config.hostname
    return setmetatable({
      client = client,
      prefix = prefix,
      host = config.hostname,
      host_key = host_key,
      watch_dir = common_dir(prefix, host_key):gsub("^$", "/"),
      ttl = config.service_ttl == "ttl",
      refresh_in_shares = true,         -- a request per key: several shares at once
      mine = {},
    }, V2)
  end,
}
