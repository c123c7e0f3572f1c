-- scripts/backends/zookeeper.lua with registrar.zk.connect replaced by an
-- in-memory ZooKeeper: URIs, credentials, the key and record layout, the
-- compare-and-set steps, ownership, pruning of empty parents, and ttl
-- mode's ephemeral znodes and lost sessions; watch() over the fake's
-- one-shot watches.

local support = require "support"
local registrar = require "registrar"

local json = registrar.json

-- A ZooKeeper tree as the real one behaves for the calls the backend
-- makes: versions, ephemeral owners, parents that must exist, NOTEMPTY.
local function fake_zk(session)
  local zk = { nodes = { ["/"] = { data = "", version = 0, owner = 0 } }, calls = {}, session = session or 0x51,
               watches = { data = {}, exist = {}, child = {} }, events = {} }

  local function parent(path) return path:match("^(.*)/[^/]+$") end
  local function exists(path) return path == "" or zk.nodes[path] ~= nil end
  local function children(path)
    local out = {}
    for p in pairs(zk.nodes) do
      if p ~= "/" and parent(p) == (path == "/" and "" or path) then out[#out + 1] = p:match("[^/]+$") end
    end
    table.sort(out)
    return out
  end
  local function stat(node, path)
    return { version = node.version, ephemeral_owner = node.owner, num_children = #children(path),
             data_length = #node.data }
  end
  local function fail(op, path, code) return nil, op .. " " .. path .. ": " .. code, code end
  local function log(...) zk.calls[#zk.calls + 1] = table.concat({ ... }, " ") end

  -- One-shot watches, as ZooKeeper fires them: a data or exists watch on
  -- the znode's creation, change and deletion, a child watch on its
  -- children and its deletion.
  local function fire(path, type, kinds)
    for _, kind in ipairs(kinds) do
      if zk.watches[kind][path] then
        zk.watches[kind][path] = nil
        if zk.events[#zk.events] == nil or zk.events[#zk.events].path ~= path then
          zk.events[#zk.events + 1] = { type = type, path = path }
        end
      end
    end
  end
  local function touched(path, type)
    fire(path, type, type == "deleted" and { "data", "exist", "child" } or { "data", "exist" })
    if type ~= "changed" then fire(parent(path) == "" and "/" or parent(path), "child", { "child" }) end
  end
  local function watching(opts) return type(opts) == "table" and opts.watch end

  function zk:create(path, data, opts)
    opts = opts or {}
    log("create", path, opts.ephemeral and "ephemeral" or "persistent")
    if self.down then return fail("create", path, "connectionloss") end
    if zk.nodes[path] then return fail("create", path, "nodeexists") end
    if not exists(parent(path)) then
      if not opts.parents then return fail("create", path, "nonode") end
      local p = ""
      for segment in parent(path):gmatch("[^/]+") do
        p = p .. "/" .. segment
        zk.nodes[p] = zk.nodes[p] or { data = "", version = 0, owner = 0 }
      end
    end
    local up = zk.nodes[parent(path)]
    if up and up.owner ~= 0 then return fail("create", path, "nochildrenforephemerals") end
    zk.nodes[path] = { data = data or "", version = 0, owner = opts.ephemeral and zk.session or 0 }
    touched(path, "created")
    return path
  end

  function zk:get(path, opts)
    log("get", path)
    if self.down then return fail("get", path, "connectionloss") end
    local node = zk.nodes[path]
    if not node then return fail("get", path, "nonode") end
    if watching(opts) then zk.watches.data[path] = true end
    return node.data, stat(node, path)
  end

  function zk:set(path, data, version)
    log("set", path, tostring(version or -1))
    local node = zk.nodes[path]
    if not node then return fail("set", path, "nonode") end
    if version and version ~= -1 and version ~= node.version then return fail("set", path, "badversion") end
    node.data, node.version = data, node.version + 1
    touched(path, "changed")
    return stat(node, path)
  end

  function zk:delete(path, version)
    log("delete", path, tostring(version or -1))
    if self.down then return fail("delete", path, "connectionloss") end
    local node = zk.nodes[path]
    if not node then return fail("delete", path, "nonode") end
    if version and version ~= -1 and version ~= node.version then return fail("delete", path, "badversion") end
    if #children(path) > 0 then return fail("delete", path, "notempty") end
    zk.nodes[path] = nil
    touched(path, "deleted")
    return true
  end

  function zk:children(path, opts)
    log("children", path)
    if self.down then return fail("children", path, "connectionloss") end
    if not zk.nodes[path] then return fail("children", path, "nonode") end
    if watching(opts) then zk.watches.child[path] = true end
    return children(path)
  end

  function zk:exists(path, opts)
    log("exists", path)
    local node = zk.nodes[path]
    if watching(opts) then zk.watches[node and "data" or "exist"][path] = true end
    return node and stat(node, path) or false
  end

  -- the real one waits; this one says it would
  function zk:event()
    if zk.lost then
      local why = zk.lost
      zk.lost = nil
      return nil, why
    end
    if #zk.events == 0 then return nil, "fake: would wait" end
    return table.remove(zk.events, 1)
  end

  function zk:id() return zk.session end
  function zk:state() return "connected" end

  -- the session expires: its ephemeral znodes go, a new one begins
  function zk:expire()
    for p, node in pairs(zk.nodes) do
      if node.owner == zk.session then zk.nodes[p] = nil end
    end
    zk.session = zk.session + 1
    zk.watches, zk.events = { data = {}, exist = {}, child = {} }, {}
    zk.lost = "the session expired, and its watches with it"
  end

  function zk:data(path) return zk.nodes[path] and zk.nodes[path].data end
  return zk
end

describe("zookeeper backend", function()
  local backend, zk, connected, saved

  before_each(function()
    support.configure { prefix_hosts = "/hosts", prefix_services = "/services", service_ttl = "prune",
                        ttl = 12000, timeout = 5000 }
    backend = dofile(support.scripts .. "/backends/zookeeper.lua")
    zk, connected = fake_zk(), nil
    saved = registrar.zk.connect
    registrar.zk.connect = function(args)
      connected = args
      return zk
    end
  end)

  after_each(function() registrar.zk.connect = saved end)

  local function open(uri, config)
    local b = assert(backend.open(uri or "zk://127.0.0.1:2181", config or registrar.config))
    zk.calls = {}
    return b
  end

  local function config(fields)
    local c = {}
    for k, v in pairs(registrar.config) do c[k] = v end
    for k, v in pairs(fields) do c[k] = v end
    return c
  end

  local RECORD = "/hosts.records/mesos-master/%2Fservices%2Fweb%2F80"

  it("is registrar's backend for zk:// and zookeeper://", function()
    local load = require("registrar.backend").load
    assert.is_function(load("zk://127.0.0.1:2181", "test").open)
    assert.is_function(load("zookeeper://127.0.0.1:2181", "test").open)
  end)

  it("checks the URI: hosts, an optional chroot, no query", function()
    assert.has_no.errors(function() backend.check("zk://a:1,b:2,[::1]:3/chroot/x") end)
    assert.has_error(function() backend.check("zk://") end, 'zookeeper backend: "zk://" names no HOST:PORT')
    assert.has_error(function() backend.check("zk://a:1?x=1") end, 'zookeeper backend: "zk://a:1?x=1": the URI takes no query')
    assert.error_matches(function() backend.check("zk://a:1/x/../y") end, "chroot")
    assert.error_matches(function() backend.check("zk://u:secret@a:99999") end, "u:%*%*%*@")
  end)

  it("connects to every host with the default port, the ttl as session timeout, and the call timeout", function()
    open("zk://a,b:2182,[::1]")
    assert.same({ hosts = "a:2181,b:2182,[::1]:2181", session_timeout = 12000, timeout = 5000 }, connected)
  end)

  it("takes credentials from the URI, else from the config", function()
    open("zk://alice:s3cret@a:1")
    assert.equal("alice", connected.username)
    assert.equal("s3cret", connected.password)
    open("zk://a:1", config { username = "bob", password = "pw" })
    assert.equal("bob", connected.username)
    assert.equal("pw", connected.password)
    open("zk://a:1")
    assert.is_nil(connected.username)
    assert.is_nil(connected.password)
  end)

  it("makes this host's records directory at open, and fails when the server cannot", function()
    open()
    assert.equal("", zk:data("/hosts.records/mesos-master"))
    zk = fake_zk()
    zk.down = true
    local b, err = backend.open("zk://a:1", registrar.config)
    assert.is_nil(b)
    assert.matches("connectionloss", err)
  end)

  it("writes the record, then the key, creating parents, persistent in prune mode", function()
    local b = open()
    assert.is_true(b:register { key = "/services/web/80", value = '{"a":1}' })
    assert.equal("create " .. RECORD .. " persistent", zk.calls[1])
    assert.equal("create /services/web/80 persistent", zk.calls[2])
    assert.same({ key = "/services/web/80", value = '{"a":1}' }, json.decode(zk:data(RECORD)))
    assert.equal('{"a":1}', zk:data("/services/web/80"))
    assert.equal(0, zk.nodes["/services/web/80"].owner)
  end)

  it("escapes '%' and '/' in record names, so every key is one znode name", function()
    local b = open()
    assert.is_true(b:register { key = "/services/a%2Fb/80", value = "v" })
    assert.truthy(zk.nodes["/hosts.records/mesos-master/%2Fservices%2Fa%252Fb%2F80"])
    assert.same({ ["/services/a%2Fb/80"] = "v" }, b:advertised())
  end)

  it("leaves a znode that already holds the value alone, and sets a changed one by its version", function()
    local b = open()
    b:register { key = "/services/web/80", value = "one" }
    zk.calls = {}
    assert.is_true(b:register { key = "/services/web/80", value = "one" })
    for _, call in ipairs(zk.calls) do assert.not_matches("^set", call) end
    assert.is_true(b:register { key = "/services/web/80", value = "two" })
    assert.truthy(#zk.calls > 0)
    assert.equal("two", zk:data("/services/web/80"))
    assert.equal(1, zk.nodes["/services/web/80"].version)
    local sets = {}
    for _, call in ipairs(zk.calls) do if call:match("^set") then sets[#sets + 1] = call end end
    assert.same({ "set " .. RECORD .. " 0", "set /services/web/80 0" }, sets)
  end)

  it("tries again when someone changes the znode between its get and its set", function()
    local b = open()
    b:register { key = "/services/web/80", value = "one" }
    local get = zk.get
    local raced = false
    zk.get = function(self, path)
      local data, stat = get(self, path)
      if path == "/services/web/80" and not raced then
        raced = true
        zk.nodes[path].version = zk.nodes[path].version + 1     -- another writer
      end
      return data, stat
    end
    assert.is_true(b:register { key = "/services/web/80", value = "two" })
    assert.is_true(raced)
    assert.equal("two", zk:data("/services/web/80"))
  end)

  it("replaces an ephemeral znode with a persistent one in prune mode", function()
    local b = open()
    zk:create("/services/web/80", "old", { parents = true, ephemeral = true })
    assert.is_true(b:register { key = "/services/web/80", value = "new" })
    assert.equal(0, zk.nodes["/services/web/80"].owner)
    assert.equal("new", zk:data("/services/web/80"))
  end)

  it("advertises this host's keys by their records, with what the key's znode holds", function()
    local b = open()
    b:register { key = "/services/a", value = "A" }
    b:register { key = "/services/b", value = "B" }
    b:register { key = "/services/c", value = "C" }
    zk:set("/services/b", "changed by hand")
    zk:delete("/services/c")
    zk:create("/services/other", "another host's", { parents = true })
    local held = b:advertised()
    assert.equal("A", held["/services/a"])
    assert.equal("changed by hand", held["/services/b"])
    assert.is_string(held["/services/c"])               -- a record without its key: written again or pruned
    assert.not_equal("", held["/services/c"])
    assert.is_nil(held["/services/other"])
    local n = 0
    for _ in pairs(held) do n = n + 1 end
    assert.equal(3, n)
  end)

  it("advertises nothing before the records directory exists, and fails when the server does", function()
    local b = open()
    zk.nodes["/hosts.records/mesos-master"] = nil
    assert.same({}, b:advertised())
    zk.down = true
    local held, err = b:advertised()
    assert.is_nil(held)
    assert.matches("connectionloss", err)
  end)

  it("deregisters the key, then the parents it left empty up to the prefix, then the record", function()
    local b = open()
    b:register { key = "/services/web/80/32768/abc", value = "A" }
    b:register { key = "/services/web/81/32769/abc", value = "B" }
    zk:create("/services/theirs", '{"host":"other"}', { parents = true })
    zk.calls = {}
    assert.is_true(b:deregister { key = "/services/web/80/32768/abc", value = "A" })
    assert.equal("delete /services/web/80/32768/abc -1", zk.calls[1])
    assert.is_nil(zk.nodes["/services/web/80"])          -- emptied, removed
    assert.truthy(zk.nodes["/services/web/81/32769/abc"])
    assert.equal("delete " .. "/hosts.records/mesos-master/%2Fservices%2Fweb%2F80%2F32768%2Fabc -1", zk.calls[#zk.calls])
    assert.is_true(b:deregister { key = "/services/web/81/32769/abc", value = "B" })
    assert.is_nil(zk.nodes["/services/web"])
    assert.truthy(zk.nodes["/services"])                 -- the prefix stays
    assert.truthy(zk.nodes["/services/theirs"])
    assert.same({}, b:advertised())
  end)

  it("never removes a parent that holds data, and keeps a key with keys below it as a plain parent", function()
    local b = open()
    zk:create("/services/web", "a document of someone's", { parents = true })
    b:register { key = "/services/web/80/x", value = "A" }
    b:register { key = "/services/web/80", value = "B" }
    assert.is_true(b:deregister { key = "/services/web/80", value = "B" })
    assert.equal("", zk:data("/services/web/80"))         -- emptied: /services/web/80/x lives below
    assert.is_true(b:deregister { key = "/services/web/80/x", value = "A" })
    assert.is_nil(zk.nodes["/services/web/80"])
    assert.equal("a document of someone's", zk:data("/services/web"))
  end)

  it("counts a missing key as deregistered", function()
    local b = open()
    assert.is_true(b:deregister { key = "/services/never", value = "x" })
  end)

  it("puts everything under a chroot", function()
    local b = open("zk://a:1/registry")
    b:register { key = "/services/web/80", value = "A" }
    assert.equal("A", zk:data("/registry/services/web/80"))
    assert.truthy(zk.nodes["/registry/hosts.records/mesos-master/%2Fservices%2Fweb%2F80"])
    assert.same({ ["/services/web/80"] = "A" }, b:advertised())
    assert.is_true(b:deregister { key = "/services/web/80", value = "A" })
    assert.is_nil(zk.nodes["/registry/services/web"])
    assert.truthy(zk.nodes["/registry/services"])
  end)

  describe("in ttl mode", function()
    before_each(function()
      support.configure { prefix_hosts = "/hosts", prefix_services = "/services", service_ttl = "ttl",
                          ttl = 4000, timeout = 5000 }
    end)

    it("writes key and record as ephemeral znodes of the session, under persistent parents", function()
      local b = open()
      assert.is_true(b:register { key = "/services/web/80", value = "A", ttl = 4 })
      assert.equal(zk.session, zk.nodes["/services/web/80"].owner)
      assert.equal(zk.session, zk.nodes[RECORD].owner)
      assert.equal(0, zk.nodes["/services/web"].owner)
      assert.equal(4000, connected.session_timeout)
    end)

    it("advertises another session's znodes as stale, and replaces them", function()
      local b = open()
      zk:create("/services/web/80", "A", { parents = true, ephemeral = true })
      zk:create(RECORD, json.encode { key = "/services/web/80", value = "A" }, { ephemeral = true })
      zk.session = zk.session + 7                         -- they are an earlier registrar's
      local held = b:advertised()
      assert.not_equal("A", held["/services/web/80"])
      assert.is_true(b:register { key = "/services/web/80", value = "A" })
      assert.equal(zk.session, zk.nodes["/services/web/80"].owner)
      assert.equal(zk.session, zk.nodes[RECORD].owner)
      assert.same({ ["/services/web/80"] = "A" }, b:advertised())
    end)

    it("refresh() says nothing while the session lasts, and fails once when it was lost", function()
      local b = open()
      assert.is_true(b:refresh {})                         -- nothing written yet
      b:register { key = "/services/web/80", value = "A" }
      assert.is_true(b:refresh { {} })
      zk:expire()
      assert.is_nil(zk.nodes["/services/web/80"])
      local ok, err = b:refresh { {} }
      assert.is_nil(ok)
      assert.equal("session lost", err)
      b:register { key = "/services/web/80", value = "A" }  -- the engine writes everything again
      assert.is_true(b:refresh { {} })
      assert.equal(zk.session, zk.nodes["/services/web/80"].owner)
    end)
  end)
end)

describe("zookeeper backend watch()", function()
  local backend, zk, saved
  local A, B = "/services/a/80", "/services/b/80"
  local RECORDS = "/hosts.records/mesos-master/"

  before_each(function()
    support.configure { prefix_hosts = "/hosts", prefix_services = "/services", service_ttl = "prune",
                        ttl = 12000, timeout = 5000 }
    backend = dofile(support.scripts .. "/backends/zookeeper.lua")
    zk = fake_zk()
    saved = registrar.zk.connect
    registrar.zk.connect = function() return zk end
  end)

  after_each(function() registrar.zk.connect = saved end)

  -- a and b registered, audited, and the writes' own events taken
  local function watched()
    local b = assert(backend.open("zk://a:1", registrar.config))
    assert(b:register { key = A, value = "va" })
    assert(b:register { key = B, value = "vb" })
    assert.same({ [A] = "va", [B] = "vb" }, b:advertised())
    zk.events, zk.calls = {}, {}
    return b
  end

  it("waits asking nothing once the audit armed every key and the records", function()
    local b = watched()
    assert.same({ nil, "fake: would wait" }, { b:watch() })
    assert.same({}, zk.calls)
  end)

  it("reports a key deleted by hand as deleted, and one overwritten as it now is, watching each again", function()
    local b = watched()
    zk:delete(A)
    assert.same({ { key = A } }, b:watch())
    assert.is_true(zk.watches.exist[A], "watched for its coming back")
    zk.calls = {}
    zk:set(B, "theirs")
    assert.same({ { key = B, value = "theirs" } }, b:watch())
    assert.is_true(zk.watches.data[B])
  end)

  it("reports the key of a record taken away as deleted, so both are written back", function()
    local b = watched()
    zk:delete(RECORDS .. "%2Fservices%2Fa%2F80")
    assert.same({ { key = A } }, b:watch())
    assert.is_true(zk.watches.child["/hosts.records/mesos-master"])
  end)

  it("arms a key registered after the audit, and ignores one deregistered", function()
    local b = watched()
    assert(b:register { key = "/services/c/80", value = "vc" })
    assert.is_true(zk.watches.data["/services/c/80"])
    assert(b:deregister { key = A })
    zk.calls = {}
    -- the writes' own events: read again (the echo), nothing to report
    local changes = b:watch()
    while changes and changes[1] do
      assert.not_equal(A, changes[1].key)
      changes = b:watch()
    end
    zk:create(A, "someone else's", { parents = true })
    assert.same({ nil, "fake: would wait" }, { b:watch() })
  end)

  it("reports keys without the chroot the znodes sit under", function()
    local b = assert(backend.open("zk://a:1/chroot", registrar.config))
    assert(b:register { key = A, value = "va" })
    b:advertised()
    zk.events = {}
    zk:delete("/chroot" .. A)
    assert.same({ { key = A } }, b:watch())
  end)

  it("ends when the session and its watches are gone, and the next audit arms them again", function()
    local b = watched()
    zk:expire()
    assert.same({ nil, "the session expired, and its watches with it" }, { b:watch() })
    b:advertised()
    zk:delete(B)
    assert.same({ { key = B } }, b:watch())
  end)
end)

describe("registrar.zk outside the daemon", function()
  it("raises in connect, as registrar.http.request does, so specs replace it", function()
    assert.error_matches(function() registrar.zk.connect { hosts = "127.0.0.1:2181" } end,
                         "works only inside the registrar daemon")
  end)
end)
