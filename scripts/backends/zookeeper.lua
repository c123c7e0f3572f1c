-- zk://HOST:PORT[,HOST:PORT...][/CHROOT]   (also zookeeper://)
--
-- The directory backends' layout on ZooKeeper: the naming's key is the
-- znode's path (under CHROOT, when the URI has one) and the znode's data
-- is the document.  Missing parents are created, persistent and empty.
--
-- Ownership: beside each key, a record under
--   <prefix_hosts>.records/<hostname>/<the key, '%' and '/' escaped as %25 and %2F>
-- holds {"key": <key>, "value": <document>}: one flat directory per host,
-- so advertised() is one children() call and a get() per key of this host,
-- whatever the size of the shared tree.  The record is written before the
-- key and removed after it, so a crash in between never leaves a key
-- nobody owns.  Keys other hosts own, or anyone else wrote, are never
-- read, changed or deleted.  The records sit beside <prefix_hosts>, not
-- under this host's document <prefix_hosts>/<hostname>, because in ttl
-- mode that document is ephemeral and an ephemeral znode has no children.
--
-- Credentials: zk://user:password@... or config username/password: digest
-- auth, and every znode registrar creates gets all rights for that digest
-- and read for everyone.  Without credentials znodes are open.
--
-- ttl mode: keys and records are ephemeral znodes of registrar's session,
-- which ZooKeeper removes when the session ends (registrar killed and the
-- session timeout, `ttl`, passed).  When the session expires anyway (a
-- long outage, a paused host), the engine's client starts a new one and
-- refresh() reports the old one lost, so everything is written again.
--
-- watch(): ZooKeeper's own watches, one-shot, left by the reads.  Each key
-- of this host carries one (a data watch; an exists watch while the znode
-- is missing), and the records' directory a child watch.  When one fires,
-- watch() reads that znode again, leaving the next watch, and reports
-- what it holds; a record gone from the directory is reported as its key
-- deleted, so the engine writes both back.  Our own writes fire our own
-- watches: one more get per key written, one more children() per key
-- added or removed.  Idle, nothing is asked: the session's pings keep the
-- watches, across a reconnect too; when the session expires they are
-- gone, zk:event() says so and the engine audits, which arms them again.

local registrar = require "registrar"
local uri = require "registrar.uri"
local keys = require "registrar.keys"

local json = registrar.json

local ZK = {}
ZK.__index = ZK

-- Values advertised() gives for a key this host's record names but whose
-- znode is missing, or is of the other mode (ephemeral in prune mode,
-- another session's in ttl mode): never equal to a wanted value, so the
-- key is written again if it is wanted and removed if it is not.
local MISSING = "\1registrar: no znode\1"
local STALE = "\1registrar: a znode of the other mode, or of another session\1"

local function escape(key)
  return (key:gsub("[%%/]", function(c) return ("%%%02X"):format(c:byte()) end))
end

local function unescape(name)
  return (name:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parent(path)
  return path:match("^(.+)/[^/]+$")
end

local function parse(text)
  local parsed, err = uri.parse(text, 2181)
  if not parsed then error("zookeeper backend: " .. err, 0) end
  if #parsed.hosts == 0 then
    error(("zookeeper backend: %q names no HOST:PORT"):format(uri.redact(text)), 0)
  end
  if next(parsed.query) then
    error(("zookeeper backend: %q: the URI takes no query"):format(uri.redact(text)), 0)
  end
  local root = parsed.path:gsub("/+$", "")
  if root ~= "" then
    local ok, why = keys.check(root)
    if not ok then error(("zookeeper backend: %q: chroot %q %s"):format(uri.redact(text), root, why), 0) end
  end
  local hosts = {}
  for _, h in ipairs(parsed.hosts) do
    hosts[#hosts + 1] = (h.host:find(":", 1, true) and "[" .. h.host .. "]" or h.host) .. ":" .. h.port
  end
  return parsed, root, table.concat(hosts, ",")
end

local zookeeper = {}

-- One client session per servers and credentials for the life of the
-- scripts' state: an open() that fails (the server is down) and is tried
-- again keeps the session it had, and with it its ephemeral znodes.  (The
-- engine shares sessions across a reload too.)
local sessions = {}

function zookeeper.check(text)
  parse(text)
end

-- The key's znode, and its ownership record's.
function ZK:path(key) return self.root .. key end
function ZK:record(key) return self.records .. "/" .. escape(key) end

-- Is the znode the kind the mode writes: persistent in prune mode, of
-- this session in ttl mode?
function ZK:current(stat)
  if self.ttl then return stat.ephemeral_owner ~= 0 and stat.ephemeral_owner == self.zk:id() end
  return stat.ephemeral_owner == 0
end

-- data at path, in the mode's kind of znode; nothing is written when it
-- is there already.  A znode of the other kind is replaced; versions make
-- each step a compare-and-set, so a writer racing us is never overwritten
-- blindly.
function ZK:put(path, data)
  for _ = 1, 5 do
    local ok, err, code = self.zk:create(path, data, { parents = true, ephemeral = self.ttl ~= nil })
    if ok then return true end
    if code ~= "nodeexists" then return nil, err end
    local have, stat
    have, stat, code = self.zk:get(path)
    if have then
      if self:current(stat) then
        if have == data then return true end
        ok, err, code = self.zk:set(path, data, stat.version)
        if ok then return true end
      else
        ok, err, code = self.zk:delete(path, stat.version)
        if not ok and code == "notempty" then
          return nil, ("%s: a znode of the other mode that has children cannot be replaced"):format(path)
        end
      end
      if not ok and code ~= "badversion" and code ~= "nonode" then return nil, err end
    elseif code ~= "nonode" then
      return nil, stat
    end
  end
  return nil, path .. ": changed by someone else on every attempt"
end

function ZK:register(entry)
  local ok, err = self:put(self:record(entry.key), json.encode { key = entry.key, value = entry.value })
  if not ok then return nil, err end
  self.mine[entry.key] = true           -- recorded: a record missing from now on was taken away
  ok, err = self:put(self:path(entry.key), entry.value)
  if not ok then return nil, err end
  if self.ttl then self.session = self.session or self.zk:id() end
  if not self.armed[entry.key] then     -- else watch() arms it at its next turn
    self.armed[entry.key] = self.zk:exists(self:path(entry.key), { watch = true }) ~= nil
  end
  return true
end

-- Parents a delete left empty (no data, no children), up to the prefix
-- (prefix_services, or the key's first segment for a key outside it):
-- compare-and-delete, so a parent another host has just written to stays.
function ZK:remove_empty_parents(key)
  local stop = key:sub(1, #self.prefix + 1) == self.prefix .. "/" and self.prefix or key:match("^/[^/]*")
  stop = self.root .. stop
  local dir = parent(self:path(key))
  while dir and #dir > #stop and dir:sub(1, #stop + 1) == stop .. "/" do
    local data, stat = self.zk:get(dir)
    if not data or data ~= "" or stat.num_children ~= 0 then return end
    if not self.zk:delete(dir, stat.version) then return end
    dir = parent(dir)
  end
end

function ZK:deregister(entry)
  self.mine[entry.key], self.armed[entry.key] = nil, nil     -- its watch firing once more is ignored
  local path = self:path(entry.key)
  local ok, err, code = self.zk:delete(path)
  if not ok and code == "notempty" then
    -- another key lives below this one: keep the znode as a plain parent
    ok, err, code = self.zk:set(path, "")
  end
  if not ok and code ~= "nonode" then return nil, err end
  self:remove_empty_parents(entry.key)
  ok, err, code = self.zk:delete(self:record(entry.key))
  if not ok and code ~= "nonode" then return nil, err end
  return true
end

-- What the key's znode holds (MISSING or STALE when it is not there as
-- the mode wants it), leaving a watch on it: a data watch, or an exists
-- watch while it is missing (a get leaves none on a missing znode).
function ZK:read(key)
  local path = self:path(key)
  for _ = 1, 5 do
    local data, stat, why = self.zk:get(path, { watch = true })
    if data then return self:current(stat) and data or STALE end
    if why ~= "nonode" then return nil, stat end
    local there, err = self.zk:exists(path, { watch = true })
    if there == nil then return nil, err end
    if not there then return MISSING end
  end
  return nil, path .. ": created and deleted again on every attempt"
end

-- This host's keys, by its records, with their watches armed.
function ZK:advertised()
  local names, err, code = self.zk:children(self.records, { watch = true })
  if not names then
    if code == "nonode" then return {} end
    return nil, err
  end
  local out = {}
  self.mine, self.armed, self.dir_armed = {}, {}, true
  for _, name in ipairs(names) do
    local key = unescape(name)
    if key:sub(1, 1) == "/" then
      local value, why = self:read(key)
      if not value then return nil, why end
      out[key], self.mine[key], self.armed[key] = value, true, true
    end
  end
  return out
end

-- Arms what is not armed yet: the records' directory, whose listing
-- also tells which of our records were taken away ({key = K}: written
-- back with the key), and each key of ours.
function ZK:arm()
  local changes = {}
  if not self.dir_armed then
    local names, err, code = self.zk:children(self.records, { watch = true })
    if not names then
      if code ~= "nonode" then return nil, err end
      local there, eerr = self.zk:exists(self.records, { watch = true })   -- for it to come back
      if there == nil then return nil, eerr end
      names = {}
    end
    self.dir_armed = true
    local recorded = {}
    for _, name in ipairs(names) do recorded[unescape(name)] = true end
    for key in pairs(self.mine) do
      if not recorded[key] then changes[#changes + 1] = { key = key } end
    end
  end
  for key in pairs(self.mine) do
    if not self.armed[key] then
      local there, err = self.zk:exists(self:path(key), { watch = true })
      if there == nil then return nil, err end
      self.armed[key] = true
    end
  end
  return changes
end

function ZK:watch()
  while true do
    local changes, err = self:arm()
    if not changes then return nil, err end
    if #changes > 0 then return changes end
    local ev, why = self.zk:event()
    if not ev then
      self.armed, self.dir_armed = {}, false
      return nil, why
    end
    if ev.path == self.records then
      self.dir_armed = false            -- listed again at the top of the loop
    else
      local key = ev.path:sub(1, #self.root) == self.root and ev.path:sub(#self.root + 1)
      if key and self.mine[key] then    -- else: a key we let go of, or not ours
        local value, rerr = self:read(key)
        if not value then
          self.armed[key] = nil
          return nil, rerr
        end
        return { { key = key, value = value ~= MISSING and value or nil } }     -- nil: deleted
      end
    end
  end
end

-- ttl mode: the session keeps every ephemeral znode alive by itself; a
-- new session means the old one's znodes are gone.
function ZK:refresh()
  local id = self.zk:id()
  if self.session and id ~= self.session then
    registrar.log.warn("zookeeper: session 0x%x ended, and with it this host's ephemeral entries; writing them again",
                       self.session)
    self.session = nil
    return nil, "session lost"
  end
  return true
end

function zookeeper.open(text, config)
  local parsed, root, hosts = parse(text)
  local user = parsed.user or config.username
  local password = parsed.password or config.password
  local params = {
    hosts = hosts, username = user, password = user and password or nil,
    session_timeout = config.ttl, timeout = config.timeout,
  }
  local id = table.concat({ hosts, user or "", password or "", tostring(config.ttl), tostring(config.timeout) }, "\n")
  local zk = sessions[id]
  if not zk then
    local err
    zk, err = registrar.zk.connect(params)
    if not zk then return nil, err end
    sessions[id] = zk
  end
  local prefix_hosts = (config.prefix_hosts or "/hosts"):gsub("/+$", "")
  local self = setmetatable({
    zk = zk,
    root = root,
    prefix = (config.prefix_services or "/services"):gsub("/+$", ""),
    records = root .. (prefix_hosts == "" and "/" or prefix_hosts) .. ".records/" .. escape(config.hostname),
    ttl = config.service_ttl == "ttl" and config.ttl or nil,
    mine = {},                          -- this host's keys, recorded
    armed = {},                         -- keys with a watch on them in this session
    dir_armed = false,                  -- the records' directory has its child watch
  }, ZK)
  -- the records' directory: proves the server answers and the credentials
  -- may create there
  local ok, cerr, code = zk:create(self.records, "", { parents = true })
  if not ok and code ~= "nodeexists" then return nil, cerr end
  return self
end

return zookeeper
