-- The kit's fake registries (rockspec/lua/registrar/testing/registry.lua
-- and fake_*.lua) with the bundled backends: what each backend sends, that
-- the fake answers so the backend finds its writes again (a second resync
-- writes nothing), and the daemon's resync rules (prune only what this
-- host wrote, never while a container's naming fails; ttl mode).

local testing = require "registrar.testing"

local support = require "support"
local function site(text) return support.site_script(text, finally) end
local json = testing.json

local function kit_for(backend, more)
  local given = { hostname = "web-3", ipaddress = "10.0.0.5", backend = backend }
  for k, v in pairs(more or {}) do given[k] = v end
  return testing.new(given)
end

local web = testing.container { name = "web", image = "nginx", env = { ENVIRONMENT = "prod" }, ports = { "49155:80" } }
local api = testing.container { name = "api", image = "api", env = { ENVIRONMENT = "prod" }, ports = { "49160:8080" } }
local WEB_KEY = "/services/prod/80/49155/" .. web.hostname
local API_KEY = "/services/prod/8080/49160/" .. api.hostname

local BACKENDS = {
  "etcd://10.0.0.9:2379", "etcd2://10.0.0.9:2379", "consul://127.0.0.1:8500", "consul-catalog://127.0.0.1:8500",
  "consulkv://127.0.0.1:8500/registry", "zk://10.0.0.9:2181/chroot", "file:///var/lib/registrar/registry.json",
}

describe("a fake registry", function()
  for _, backend in ipairs(BACKENDS) do
    for _, mode in ipairs { "prune", "ttl" } do
      if not (backend:find("catalog", 1, true) and mode == "ttl") then
        it(("takes %s's writes, finds them again and prunes only this host's (%s mode)"):format(backend, mode), function()
          local reg = kit_for(backend, { service_ttl = mode }):registry()
          local first = assert(reg:sync { web, api })
          local keys = { table.unpack(first.registered) }
          table.sort(keys)
          assert.same({ "/hosts/web-3", WEB_KEY, API_KEY }, keys)
          local second = assert(reg:sync { web, api })
          -- ttl mode with a backend that has no refresh() (the file): everything is written again
          local rewrites = mode == "ttl" and reg.handle.refresh == nil
          assert.same(rewrites and first.registered or {}, second.registered)
          local third = assert(reg:sync { web })
          assert.same({ API_KEY }, third.deregistered)
        end)
      end
    end
  end

  it("shows what the etcd v3 backend sends: one transaction, key and ownership record", function()
    local reg = kit_for("etcd://10.0.0.9:2379"):registry()
    assert(reg:sync { web })
    local txn = reg.requests[#reg.requests]
    assert.equal("POST", txn.method)
    assert.equal("/v3/kv/txn", txn.path)
    local keys = {}
    for _, op in ipairs(json.decode(txn.body).success) do
      keys[#keys + 1] = kit_for("etcd://x:1").registrar.base64.decode(op.requestPut.key)
    end
    assert.same({ WEB_KEY, "/hosts/web-3/keys" .. WEB_KEY, "/hosts/web-3", "/hosts/web-3/keys/hosts/web-3" }, keys)
    assert.equal("10.0.0.5", json.decode(reg:keys()[WEB_KEY]).ipaddress)
  end)

  it("shows what the etcd v2 backend sends: the old tool's form PUT", function()
    local reg = kit_for("etcd2://10.0.0.9:2379"):registry()
    assert(reg:sync { web })
    local put
    for _, r in ipairs(reg.requests) do if r.method == "PUT" and r.path:find("/v2/keys/services", 1, true) then put = r end end
    assert.equal("http://10.0.0.9:2379/v2/keys" .. WEB_KEY, put.url)
    assert.matches("^value=%%7B", put.body)
  end)

  it("answers etcd v2's prevExist and refresh=true as etcd 3.4 does", function()
    local etcd = kit_for("etcd2://10.0.0.9:2379"):registry().server
    local function put(key, body)
      local res = etcd:handle { method = "PUT", path = "/v2/keys" .. key, query = {}, body = body, headers = {} }
      return res.status, json.decode(res.body)
    end
    local function refused(key, body)
      local status, doc = put(key, body)
      return { status, doc.errorCode }
    end
    assert.equal(201, (put("/a/b", "value=x&ttl=30")))
    local status, doc = put("/a/b", "ttl=40&refresh=true&prevExist=true")
    assert.same({ 200, "update", "x" }, { status, doc.action, doc.node.value })   -- the value stays
    assert.equal(40, etcd.v2.leaves["/a/b"].ttl)
    assert.same({ 404, 100 }, refused("/a/c", "ttl=40&refresh=true"))
    assert.same({ 400, 211 }, refused("/a/b", "ttl=40&refresh=true&value=y"))
    assert.same({ 400, 212 }, refused("/a/b", "refresh=true"))
    assert.same({ 412, 105 }, refused("/a/b", "value=z&prevExist=false"))
    status, doc = put("/a/d", "value=z&prevExist=false")
    assert.same({ 201, "create" }, { status, doc.action })
    assert.equal("x", etcd.v2.leaves["/a/b"].value)
  end)

  it("calls no watch(): the fakes answer at once, so a spec resyncs instead", function()
    local path = site [[
      local registrar = require "registrar"
      registrar.backends.watched = { open = function()
        return {
          register = function() return true end, deregister = function() return true end,
          watch = function() error("the kit called watch()") end,
        } end }]]
    local kit = testing.new { hostname = "web-3", ipaddress = "10.0.0.5", script = path, backend = "watched://x" }
    local reg = kit:registry { server = function() return { status = 200 } end }
    assert(reg:sync { web })
    local ok, why = reg:call("watch")
    assert.is_nil(ok)
    assert.matches("answer no watch()", why, 1, true)
  end)

  it("shows what the Consul agent backend sends, and lists the service as Consul would", function()
    local reg = kit_for("consul://127.0.0.1:8500"):registry()
    assert(reg:sync { web })
    local service = reg:keys()[WEB_KEY:sub(2):gsub("/", ":")]
    assert.equal("nginx-80", service.Service)
    assert.equal(49155, service.Port)
    assert.equal("web-3", service.Meta.registrar_host)
  end)

  it("needs the ACL token when the fake Consul asks for one", function()
    local reg = kit_for("consul://127.0.0.1:8500"):registry { token = "t0ken" }
    local ok, why = reg:sync { web }
    assert.is_nil(ok)
    assert.matches("status 403: Permission denied", why, 1, true)
    reg = kit_for("consul://127.0.0.1:8500", { token = "t0ken" }):registry { token = "t0ken" }
    assert.truthy(reg:sync { web })
  end)

  it("keeps ZooKeeper's ephemeral znodes in ttl mode, and writes them again after the session expires", function()
    local reg = kit_for("zk://10.0.0.9:2181", { service_ttl = "ttl" }):registry()
    assert(reg:sync { web })
    assert.truthy(reg:keys()[WEB_KEY])
    reg.server:expire(reg.sessions[1])
    assert.is_nil(reg:keys()[WEB_KEY])
    local ok, why = reg:sync { web }
    assert.is_nil(ok)
    assert.equal("session lost", why)
    assert(reg:sync { web })
    assert.truthy(reg:keys()[WEB_KEY])
  end)

  it("puts etcd v3 keys on a lease in ttl mode, and writes them again when it runs out", function()
    local reg = kit_for("etcd://10.0.0.9:2379", { service_ttl = "ttl" }):registry()
    assert(reg:sync { web })
    local lease = reg.handle.lease_id
    assert.truthy(lease)
    reg.server:expire(lease)
    local ok, why = reg:sync { web }
    assert.is_nil(ok)
    assert.equal("lease expired", why)
  end)

  it("prunes nothing while a container's naming fails: the entries may be its", function()
    local kit = testing.new { hostname = "web-3", ipaddress = "10.0.0.5", backend = "etcd://10.0.0.9:2379",
                              script = site 'local r = require "registrar"\nfunction key(s) if s.container.name == "/api" then error("broken") end return r.default.key(s) end' }
    local reg = kit:registry()
    reg.server:put { key = kit.registrar.base64.encode "/hosts/web-3/keys/services/gone",
                     value = kit.registrar.base64.encode(json.encode { key = "/services/gone", value = "x" }) }
    local summary = assert(reg:sync { web, api })
    assert.same({}, summary.deregistered)
    assert.matches("broken", reg.failures[1].error)
    summary = assert(reg:sync { web })
    assert.same({ "/services/gone" }, summary.deregistered)
  end)

  it("runs changed() after a sync that wrote something, where it may signal a container", function()
    local path = site [[
      local registrar = require "registrar"
      function changed(summary)
        registrar.docker.signal("nginx-proxy", "HUP")
        registrar.log.info("changed: %d registered", #summary.registered)
      end]]
    local kit = testing.new { hostname = "web-3", ipaddress = "10.0.0.5", script = path }
    local reg = kit:registry()
    assert(reg:sync { web })
    assert.same({ { container = "nginx-proxy", signal = "HUP" } }, kit.signals)
    assert.same({ level = "info", message = "changed: 2 registered" }, kit.log[#kit.log])
    assert(reg:sync { web })
    assert.equal(1, #kit.signals)
  end)

  it("answers a backend a site script defines with the function it is given", function()
    local path = site [[
      local registrar = require "registrar"
      registrar.backends.webhook = { open = function(uri)
        return {
          register = function(_, e)
            local res, err = registrar.http.request { method = "POST", url = uri:gsub("^webhook", "http"), body = e.value }
            if not res then return nil, err end
            return res.status < 300 or nil, "status " .. res.status
          end,
          deregister = function() return true end,
        } end }]]
    local kit = testing.new { hostname = "web-3", ipaddress = "10.0.0.5", script = path, backend = "webhook://hooks:8080/in" }
    local reg = kit:registry { server = function() return { status = 202 } end }
    assert(reg:sync { web })
    assert.equal("http://hooks:8080/in", reg.requests[1].url)
    assert.equal("POST", reg.requests[1].method)
    reg = kit:registry { server = function() return { status = 500 } end }
    local ok, why = reg:sync { web }
    assert.is_nil(ok)
    assert.matches("status 500", why)
  end)
end)
