-- scripts/backends/etcd.lua speaking v3 through the JSON gateway, with
-- registrar.http.request replaced: detection, request shapes, ownership
-- records, leases and tokens.

local support = require "support"
local registrar = require "registrar"

local json, b64 = registrar.json, registrar.base64

describe("etcd backend, v3 API", function()
  local etcd, requests, answers, saved

  local function answer(status, body) return { status = status, body = json.encode(body) } end

  before_each(function()
    support.configure { prefix_hosts = "/hosts", service_ttl = "prune", ttl = 12000 }
    etcd = dofile(support.scripts .. "/backends/etcd.lua")
    requests, answers = {}, {}
    saved = registrar.http.request
    registrar.http.request = function(req)
      requests[#requests + 1] = req
      local a = table.remove(answers, 1) or answer(200, {})
      if a.fail then return nil, a.fail end
      return a
    end
  end)

  after_each(function() registrar.http.request = saved end)

  local function open(uri, version)
    answers[1] = answer(200, { etcdserver = version or "3.4.23", etcdcluster = "3.4.0" })
    local b = etcd.open(uri or "etcd://127.0.0.1:2379", registrar.config)
    requests = {}
    return b
  end

  local function body(i) return json.decode(requests[i].body) end

  it("detects v3 on 3.4 (/v3), v3beta on 3.3, and v2 before", function()
    open()
    assert.truthy(open().call)
    local b = open(nil, "3.3.0")
    b:advertised()
    assert.equal("http://127.0.0.1:2379/v3beta/kv/range", requests[1].url)
    assert.is_nil(open(nil, "3.2.1").call)            -- the v2 handle has no call()
  end)

  it("puts a key and its ownership record in one transaction", function()
    local b = open()
    assert.is_true(b:apply({ { key = "/services/web/80", value = '{"a":1}' } }, {}))
    assert.equal("POST", requests[1].method)
    assert.equal("http://127.0.0.1:2379/v3/kv/txn", requests[1].url)
    local ops = body(1).success
    assert.equal(2, #ops)
    assert.equal("/services/web/80", b64.decode(ops[1].requestPut.key))
    assert.equal('{"a":1}', b64.decode(ops[1].requestPut.value))
    assert.equal("/hosts/mesos-master/keys/services/web/80", b64.decode(ops[2].requestPut.key))
    assert.same({ key = "/services/web/80", value = '{"a":1}' }, json.decode(b64.decode(ops[2].requestPut.value)))
  end)

  it("keeps each transaction under etcd's request size, a key too large for one after its record", function()
    local b = open()
    local big = string.rep("k", 700 * 1024)        -- a host document listing 10 000 containers is this large
    local puts = { { key = "/hosts/web-3", value = big } }
    for i = 1, 3 do puts[#puts + 1] = { key = "/services/s" .. i, value = string.rep("v", 300 * 1024) } end
    assert.is_true(b:apply(puts, {}))
    local seen = {}
    for i = 1, #requests do
      local ops, bytes = body(i).success, 0
      for _, op in ipairs(ops) do bytes = bytes + #op.requestPut.key + #op.requestPut.value end
      assert.is_true(bytes <= 1024 * 1024, ("transaction %d holds %d bytes"):format(i, bytes))
      for _, op in ipairs(ops) do seen[#seen + 1] = b64.decode(op.requestPut.key) end
    end
    assert.equal("/hosts/mesos-master/keys/hosts/web-3", seen[1])      -- its record first, alone
    assert.equal("/hosts/web-3", seen[2])
    assert.equal(8, #seen)                                              -- nothing left out
  end)

  it("splits many changes into transactions of at most 128 operations", function()
    local b = open()
    local puts = {}
    for i = 1, 100 do puts[i] = { key = "/k/" .. i, value = "v" } end
    assert.is_true(b:apply(puts, { { key = "/gone" } }))
    assert.equal(2, #requests)
    assert.equal(128, #body(1).success)
    assert.equal(74, #body(2).success)
    assert.same({ key = b64.encode("/gone") }, body(2).success[73].requestDeleteRange)
  end)

  it("advertises this host's keys by its records, with what each key holds now", function()
    local b = open()
    local function rec(k, v)
      return { key = b64.encode("/hosts/mesos-master/keys" .. k), value = b64.encode(json.encode { key = k, value = v }) }
    end
    local function held(v, lease)
      return { response_range = { kvs = { { key = "x", value = b64.encode(v), lease = lease } } } }
    end
    answers[1] = answer(200, { header = { revision = "41" },
                               kvs = { rec("/services/a", "A"), rec("/services/b", "B"), rec("/services/c", "C"),
                                       rec("/services/d", "D"),
                                       { key = b64.encode("/hosts/mesos-master/keys/x"), value = b64.encode("junk") } } })
    answers[2] = answer(200, { responses = { held("A"), held("B", "777"), { response_range = {} }, held("changed") } })
    local got = b:advertised()
    local range = body(1)
    assert.equal("/hosts/mesos-master/keys/", b64.decode(range.key))
    assert.equal("/hosts/mesos-master/keys0", b64.decode(range.range_end))
    assert.equal("http://127.0.0.1:2379/v3/kv/txn", requests[2].url)
    assert.same({ "/services/a", "/services/b", "/services/c", "/services/d" },
                (function() local k = {} for i, op in ipairs(body(2).success) do k[i] = b64.decode(op.requestRange.key) end return k end)())
    assert.equal("A", got["/services/a"])
    assert.equal("changed", got["/services/d"])        -- changed by hand: the engine writes it back
    assert.truthy(got["/services/b"]:find("other mode"))   -- a lease in prune mode
    assert.truthy(got["/services/c"]:find("no key"))       -- deleted by hand
    assert.equal(4, (function() local n = 0 for _ in pairs(got) do n = n + 1 end return n end)())
    assert.equal(42, b.watch_from)                    -- a watch goes on after this audit
  end)

  it("advertises nothing when there are no records (kvs absent)", function()
    local b = open()
    answers[1] = answer(200, { header = {} })
    assert.same({}, b:advertised())
  end)

  it("in ttl mode puts everything on one lease and keeps it alive with one request", function()
    support.configure { service_ttl = "ttl", ttl = 12000 }
    local b = open()
    answers = { answer(200, { ID = "6301558541941421352", TTL = "12" }), answer(200, {}) }
    b:apply({ { key = "/a", value = "1" }, { key = "/b", value = "2" } }, {})
    assert.equal("http://127.0.0.1:2379/v3/lease/grant", requests[1].url)
    assert.equal("12", body(1).TTL)
    for _, op in ipairs(body(2).success) do assert.equal("6301558541941421352", op.requestPut.lease) end
    answers[1] = answer(200, { result = { ID = "6301558541941421352", TTL = "12" } })
    assert.is_true(b:refresh { {}, {} })
    assert.equal(3, #requests)
    assert.same({ ID = "6301558541941421352" }, body(3))
  end)

  it("reports a lost lease so everything is written again under a new one", function()
    support.configure { service_ttl = "ttl", ttl = 12000 }
    local b = open()
    answers = { answer(200, { ID = "42", TTL = "12" }), answer(200, {}), answer(200, { result = { ID = "42" } }) }
    b:apply({ { key = "/a", value = "1" } }, {})
    local ok, err
    support.capture_log(function() ok, err = b:refresh { {} } end)
    assert.is_nil(ok)
    assert.equal("lease expired", err)
    answers = { answer(200, { ID = "43", TTL = "12" }), answer(200, {}) }
    b:apply({ { key = "/a", value = "1" } }, {})
    assert.equal("43", body(#requests).success[1].requestPut.lease)
  end)

  it("authenticates, sends the token, and renews it when etcd says it expired", function()
    support.configure { username = "reg", password = "pw" }
    local b = open()
    answers = {
      answer(200, { token = "T1" }),
      answer(401, { error = "etcdserver: invalid auth token", code = 16 }),
      answer(200, { token = "T2" }),
      answer(200, { kvs = nil }),
    }
    assert.same({}, b:advertised())
    assert.same({ name = "reg", password = "pw" }, body(1))
    assert.equal("T1", requests[2].headers.Authorization)
    assert.equal("T2", requests[4].headers.Authorization)
  end)

  it("takes credentials from the URI", function()
    local b = open("etcd://user:p%40ss@127.0.0.1:2379")
    answers = { answer(200, { token = "T" }), answer(200, {}) }
    b:advertised()
    assert.same({ name = "user", password = "p@ss" }, body(1))
  end)

  it("names status and etcd's message when a call fails", function()
    local b = open()
    answers[1] = answer(400, { error = "etcdserver: too many operations in txn request", code = 3 })
    local ok, err = b:apply({ { key = "/a", value = "1" } }, {})
    assert.is_nil(ok)
    assert.equal("POST /v3/kv/txn: status 400: etcdserver: too many operations in txn request", err)
  end)

  it("fails to open, naming the endpoints, when no etcd answers /version", function()
    answers = { { fail = "Couldn't connect to server" } }
    local b, err = etcd.open("etcd://127.0.0.1:1", registrar.config)
    assert.is_nil(b)
    assert.equal("GET /version: http://127.0.0.1:1: Couldn't connect to server", err)
  end)
end)
