-- scripts/backends/consul.lua with registrar.http.request replaced: the
-- requests each mode makes, as Consul's HTTP API documents them.

local support = require "support"
local registrar = require "registrar"

local json = registrar.json

describe("consul backends", function()
  local consul, requests, answers, saved

  before_each(function()
    support.configure { token = "acl-token", service_ttl = "prune", ttl = 12000, prefix_hosts = "/hosts" }
    consul = dofile(support.scripts .. "/backends/consul.lua")
    requests, answers = {}, {}
    saved = registrar.http.request
    registrar.http.request = function(req)
      requests[#requests + 1] = req
      return table.remove(answers, 1) or { status = 200, body = "true" }
    end
  end)

  after_each(function() registrar.http.request = saved end)

  -- a registrator-named entry, as the pipeline makes it
  local function entry()
    local naming = support.naming("registrator")
    local c = support.container { env = { SERVICE_NAME = "api", SERVICE_TAGS = "v1", SERVICE_REGION = "eu",
                                          SERVICE_CHECK_HTTP = "/health", SERVICE_CHECK_TIMEOUT = "2s" } }
    return support.entries(naming, c)[1]
  end

  local function open(uri)
    registrar.config.backend = uri
    return consul.open(uri, registrar.config)
  end

  describe("agent (consul://)", function()
    it("registers with PUT, PascalCase fields, the check and this host's Meta", function()
      local b = open("consul://127.0.0.1:8500")
      assert.is_true(b:register(entry()))
      local r = requests[1]
      assert.equal("PUT", r.method)
      assert.equal("http://127.0.0.1:8500/v1/agent/service/register", r.url)
      assert.equal("acl-token", r.headers["X-Consul-Token"])
      local body = json.decode(r.body)
      assert.equal("mesos-master:jovial_albattani:4001", body.ID)
      assert.equal("api", body.Name)
      assert.equal("10.0.1.100", body.Address)
      assert.equal(49155, body.Port)
      assert.same({ "v1" }, body.Tags)
      assert.equal("eu", body.Meta.region)
      assert.equal("mesos-master", body.Meta.registrar_host)
      assert.equal("/services/api/mesos-master:jovial_albattani:4001", body.Meta.registrar_key)
      assert.equal(16, #body.Meta.registrar_digest)
      assert.same({ { HTTP = "http://10.0.1.100:49155/health", Interval = "10s", Timeout = "2s" } }, body.Checks)
    end)

    it("compares a digest of the registration, which changes with it", function()
      open("consul://127.0.0.1:8500")
      local e = entry()
      local before = consul.compare(e, registrar.config)
      e.service.tags[2] = "v2"
      assert.are_not.equal(before, consul.compare(e, registrar.config))
    end)

    it("advertises only services whose Meta names this host, by their key", function()
      local b = open("consul://127.0.0.1:8500")
      answers[1] = { status = 200, body = json.encode {
        mine = { ID = "mine", Meta = { registrar_host = "mesos-master", registrar_key = "/k", registrar_digest = "d" } },
        theirs = { ID = "theirs", Meta = { registrar_host = "other", registrar_key = "/t" } },
        plain = { ID = "plain" },
      } }
      answers[2] = { status = 404, body = "" }     -- no host document yet
      assert.same({ ["/k"] = "d" }, b:advertised())
      assert.equal("http://127.0.0.1:8500/v1/kv/hosts/mesos-master?raw", requests[2].url)
      b:deregister { key = "/k" }
      assert.equal("http://127.0.0.1:8500/v1/agent/service/deregister/mine", requests[3].url)
      assert.equal("PUT", requests[3].method)
    end)

    it("keeps this host's document as a KV key, and advertises it", function()
      local b = open("consul://127.0.0.1:8500")
      assert.is_true(b:register { key = "/hosts/mesos-master", value = '{"services":0}', host = true })
      assert.equal("PUT", requests[1].method)
      assert.equal("http://127.0.0.1:8500/v1/kv/hosts/mesos-master", requests[1].url)
      assert.equal('{"services":0}', requests[1].body)
      answers = { { status = 200, body = "{}" }, { status = 200, body = '{"services":0}' } }
      assert.same({ ["/hosts/mesos-master"] = '{"services":0}' }, b:advertised())
      assert.is_true(b:deregister { key = "/hosts/mesos-master" })
      assert.equal("DELETE", requests[4].method)
      assert.equal("http://127.0.0.1:8500/v1/kv/hosts/mesos-master", requests[4].url)
    end)

    it("makes an id from a key safe for a URL path", function()
      local b = open("consul://127.0.0.1:8500")
      local e = support.entries(support.naming("default"), support.container())[1]
      b:register(e)
      assert.equal("services:prod:etc:4001:49155:50ccf6e665e0", json.decode(requests[1].body).ID)
    end)

    it("adds a TTL check in ttl mode and passes it on refresh", function()
      support.configure { token = "acl-token", service_ttl = "ttl", ttl = 12000 }
      local b = open("consul://127.0.0.1:8500")
      local e = entry()
      b:register(e)
      local checks = json.decode(requests[1].body).Checks
      assert.same({ CheckID = "registrar:mesos-master:jovial_albattani:4001", Name = "registrar ttl", TTL = "12s",
                    Status = "passing", DeregisterCriticalServiceAfter = "60s" }, checks[2])
      assert.is_true(b:refresh { e })
      assert.equal("http://127.0.0.1:8500/v1/agent/check/pass/registrar%3Amesos-master%3Ajovial_albattani%3A4001",
                   requests[2].url)
      answers[1] = { status = 404, body = "CheckID not found" }
      assert.is_nil((b:refresh { e }))
    end)
  end)

  describe("catalog (consul-catalog://)", function()
    it("registers the node and service in the container's datacenter", function()
      local b = open("consul-catalog://127.0.0.1:8500")
      local e = entry()
      e.service.container.env.CONSUL_DC = "dc2"
      b:register(e)
      local body = json.decode(requests[1].body)
      assert.equal("http://127.0.0.1:8500/v1/catalog/register", requests[1].url)
      assert.equal("dc2", body.Datacenter)
      assert.equal("mesos-master", body.Node)
      assert.equal("10.0.1.100", body.Address)
      assert.equal("api", body.Service.Service)
      assert.equal(49155, body.Service.Port)
      b:deregister { key = e.key }
      assert.same({ Datacenter = "dc2", Node = "mesos-master", ServiceID = "mesos-master:jovial_albattani:4001" },
                  json.decode(requests[2].body))
    end)
  end)

  describe("kv (consulkv://)", function()
    it("writes the ownership record first, then the key, under the prefix", function()
      local b = open("consulkv://127.0.0.1:8500/registry")
      assert.is_true(b:register { key = "/services/a/1", value = '{"x":1}' })
      assert.equal("http://127.0.0.1:8500/v1/kv/registry/hosts/mesos-master/keys/services/a/1", requests[1].url)
      assert.same({ key = "/services/a/1", value = '{"x":1}' }, json.decode(requests[1].body))
      assert.equal("http://127.0.0.1:8500/v1/kv/registry/services/a/1", requests[2].url)
      assert.equal('{"x":1}', requests[2].body)
      b:deregister { key = "/services/a/1" }
      assert.equal("DELETE", requests[3].method)
      assert.equal("http://127.0.0.1:8500/v1/kv/registry/services/a/1", requests[3].url)
      assert.equal("http://127.0.0.1:8500/v1/kv/registry/hosts/mesos-master/keys/services/a/1", requests[4].url)
    end)

    it("fails when Consul answers false (a key another session holds)", function()
      support.configure { token = "t", service_ttl = "ttl", ttl = 12000 }
      answers = { { status = 200, body = "[]" }, { status = 200, body = '{"ID":"sess-1"}' },
                  { status = 200, body = "false" } }
      local b = open("consulkv://127.0.0.1:8500")
      local ok, err = b:register { key = "/a", value = "v" }
      assert.is_nil(ok)
      assert.truthy(err:find("status 200: false", 1, true))
      assert.equal("http://127.0.0.1:8500/v1/session/list", requests[1].url)
      assert.same({ Name = "registrar mesos-master", TTL = "12s", Behavior = "delete", LockDelay = "0s" },
                  json.decode(requests[2].body))
      assert.equal("http://127.0.0.1:8500/v1/kv/hosts/mesos-master/keys/a?acquire=sess-1", requests[3].url)
    end)

    it("makes the ttl session in open(), once, and never in a write", function()
      support.configure { token = "t", service_ttl = "ttl", ttl = 12000 }
      answers = { { status = 200, body = "[]" }, { status = 200, body = '{"ID":"sess-1"}' } }
      local b = open("consulkv://127.0.0.1:8500/registry")
      assert.equal(2, #requests)
      for i = 1, 3 do assert.is_true(b:register { key = "/k" .. i, value = "v" }) end
      local creates = 0
      for _, r in ipairs(requests) do
        if r.url:find("/v1/session/create", 1, true) then creates = creates + 1 end
        if r.url:find("/v1/kv/", 1, true) then assert.truthy(r.url:find("?acquire=sess-1", 1, true)) end
      end
      assert.equal(1, creates)
      assert.equal("registrar mesos-master /registry", json.decode(requests[2].body).Name)
    end)

    it("takes over a live session of this host and destroys the others", function()
      support.configure { token = "t", service_ttl = "ttl", ttl = 12000 }
      local function s(id, index, ttl)
        return { ID = id, Name = "registrar mesos-master", Behavior = "delete", TTL = ttl or "12s", CreateIndex = index }
      end
      answers = {
        { status = 200, body = json.encode { s("old", 3), s("other-ttl", 9, "30s"), s("new", 7),
                                              { ID = "theirs", Name = "registrar web-2", Behavior = "delete", TTL = "12s" } } },
        { status = 200, body = "true" },                     -- destroy other-ttl (the newest, but not ours to keep)
        { status = 200, body = '[{"ID":"new"}]' },          -- renew new: alive, taken over
        { status = 200, body = "true" },                     -- destroy old
      }
      local b = open("consulkv://127.0.0.1:8500")
      assert.equal("http://127.0.0.1:8500/v1/session/destroy/other-ttl", requests[2].url)
      assert.equal("http://127.0.0.1:8500/v1/session/renew/new", requests[3].url)
      assert.equal("http://127.0.0.1:8500/v1/session/destroy/old", requests[4].url)
      assert.equal(4, #requests)
      b:register { key = "/a", value = "v" }
      assert.equal("http://127.0.0.1:8500/v1/kv/hosts/mesos-master/keys/a?acquire=new", requests[5].url)
    end)

    it("renews once per refresh and makes the next session when Consul lost it", function()
      support.configure { token = "t", service_ttl = "ttl", ttl = 12000 }
      answers = { { status = 200, body = "[]" }, { status = 200, body = '{"ID":"sess-1"}' } }
      local b = open("consulkv://127.0.0.1:8500")
      assert.is_true(b:refresh {})
      assert.equal("http://127.0.0.1:8500/v1/session/renew/sess-1", requests[3].url)
      answers = { { status = 404, body = "Session id 'sess-1' not found" }, { status = 200, body = "[]" },
                  { status = 200, body = '{"ID":"sess-2"}' } }
      local ok, err = b:refresh {}
      assert.is_nil(ok)                                      -- so the engine writes everything again
      assert.truthy(err:find("session sess-1 expired", 1, true))
      assert.equal("http://127.0.0.1:8500/v1/session/create", requests[6].url)
      b:register { key = "/a", value = "v" }
      assert.equal("http://127.0.0.1:8500/v1/kv/hosts/mesos-master/keys/a?acquire=sess-2", requests[7].url)
    end)

    it("fails open() when no session can be made, so nothing is written without one", function()
      support.configure { token = "t", service_ttl = "ttl", ttl = 12000 }
      answers = { { status = 200, body = "[]" }, { status = 403, body = "Permission denied" } }
      local b, err = open("consulkv://127.0.0.1:8500")
      assert.is_nil(b)
      assert.truthy(err:find("session/create: status 403: Permission denied", 1, true))
    end)

    it("advertises what this host's records name, as the keys hold it now", function()
      local b = open("consulkv://127.0.0.1:8500")
      local function item(k, value, session)
        return { Key = k, Session = session, Value = registrar.base64.encode(value) }
      end
      local function rec(k, session)
        return item("hosts/mesos-master/keys" .. k, json.encode { key = k, value = "v" .. k }, session)
      end
      answers[1] = { status = 200, headers = { ["x-consul-index"] = "7" }, body = json.encode {
        rec("/a"), item("a", "v/a"),                         -- as written
        rec("/b", "some-session"), item("b", "v/b"),        -- a record of ttl mode
        rec("/c"),                                           -- its key deleted by hand
        rec("/d"), item("d", "changed by hand"),
        item("e", "someone else's"), { Key = "x", Value = json.null },
      } }
      local seen = b:advertised()
      assert.equal("v/a", seen["/a"])
      assert.equal("changed by hand", seen["/d"])
      for _, key in ipairs { "/b", "/c" } do                 -- never equal to what is wanted: written again
        assert.is_string(seen[key])
        assert.are_not.equal("v" .. key, seen[key])
      end
      assert.is_nil(seen["/e"])                               -- not this host's
      assert.equal("http://127.0.0.1:8500/v1/kv/?recurse", requests[1].url)
    end)
  end)
end)
