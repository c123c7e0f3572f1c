-- examples/: each site script, run through the pipeline as the daemon runs it.

local support = require "support"
local registrar = require "registrar"

local examples = support.scripts .. "/../examples/"
local NAMINGS = { "default", "registrator" }

-- The naming plus one example on top, as `--naming N --script examples/X` does.
local function load(naming, example)
  local env = support.naming(naming)
  registrar.default = { key = env.key, document = env.document, name = env.name,
                        services = env.services, ignore = env.ignore }
  local chunk = assert(loadfile(examples .. example, "t", env))
  chunk()
  return env
end

describe("examples", function()
  before_each(function() support.configure() end)

  describe("teams.lua", function()
    it("files team containers under /teams/<team>/<name>/<host>:<port>", function()
      local c = support.container { labels = { team = "search" } }
      assert.same({ "/teams/search/etcd-4001/mesos-master:49155", "/teams/search/etcd-7001/mesos-master:49156" },
        support.keys_of(support.entries(load("default", "teams.lua"), c)))
    end)

    it("keeps the default layout without a team label", function()
      assert.equal("/services/prod/etc/4001/49155/50ccf6e665e0",
        support.entries(load("default", "teams.lua"), support.container())[1].key)
    end)

    it("escapes a team label that tries to climb out", function()
      local c = support.container { labels = { team = "../hosts" } }
      assert.equal("/teams/..%2Fhosts/etcd-4001/mesos-master:49155",
        support.entries(load("default", "teams.lua"), c)[1].key)
    end)

    for _, naming in ipairs(NAMINGS) do
      it("gives the same team keys under the " .. naming .. " naming, and its own layout to the rest", function()
        local c = support.container { labels = { team = "search" } }
        assert.same({ "/teams/search/etcd-4001/mesos-master:49155", "/teams/search/etcd-7001/mesos-master:49156" },
          support.keys_of(support.entries(load(naming, "teams.lua"), c)))
        local plain = support.entries(load(naming, "teams.lua"), support.container())
        assert.same(support.keys_of(support.entries(support.naming(naming), support.container())),
                    support.keys_of(plain))
      end)

      it("skips a service whose team label cannot be a segment, saying why, under the " .. naming .. " naming", function()
        local entries
        local log = support.capture_log(function()
          entries = support.entries(load(naming, "teams.lua"), support.container { labels = { team = ".." } })
        end)
        assert.same({}, entries)
        assert.truthy(log:find("container /jovial_albattani (50ccf6e665e0): label team is a relative path ('..'), " ..
                               "so it cannot be part of a key; service skipped", 1, true), log)
      end)
    end
  end)

  describe("skydns.lua", function()
    it("writes CoreDNS's etcd layout with host and port", function()
      local e = support.entries(load("default", "skydns.lua"), support.container())[1]
      assert.equal("/skydns/local/registrar/etcd-4001/mesos-master-49155", e.key)
      assert.equal('{"host":"10.0.1.100","port":49155,"ttl":30}', e.value)
    end)

    for _, naming in ipairs(NAMINGS) do
      it("gives every instance a host and a port under the " .. naming .. " naming", function()
        local list = support.entries(load(naming, "skydns.lua"), support.container())
        assert.same({ "/skydns/local/registrar/etcd-4001/mesos-master-49155",
                      "/skydns/local/registrar/etcd-7001/mesos-master-49156" }, support.keys_of(list))
        assert.equal('{"host":"10.0.1.100","port":49155,"ttl":30}', list[1].value)
        assert.equal('{"host":"10.0.1.100","port":49156,"ttl":30}', list[2].value)
      end)

      it("takes a port's own HostIp and a chosen network under the " .. naming .. " naming", function()
        local c = support.container()
        c.ports[1].host_ip = "192.168.1.5"
        assert.equal('{"host":"192.168.1.5","port":49155,"ttl":30}', support.entries(load(naming, "skydns.lua"), c)[1].value)
        support.configure { network = "bridge" }
        assert.equal('{"host":"172.17.0.2","port":4001,"ttl":30}',
                     support.entries(load(naming, "skydns.lua"), support.container())[1].value)
      end)
    end

    it("takes the zone from site.domain", function()
      support.configure { site = { domain = "svc.example.com" } }
      local e = support.entries(load("default", "skydns.lua"), support.container())[1]
      assert.equal("/skydns/com/example/svc/etcd-4001/mesos-master-49155", e.key)
    end)
  end)

  describe("traefik.lua", function()
    it("registers each instance as a load-balancer server URL", function()
      local c = support.container { env = { SERVICE_NAME = "api" } }
      local list = support.entries(load("registrator", "traefik.lua"), c)
      assert.equal("/traefik/http/services/api/loadBalancer/servers/mesos-master-49155/url", list[1].key)
      assert.equal("http://10.0.1.100:49155", list[1].value)
    end)

    for _, naming in ipairs(NAMINGS) do
      it("gives the same servers under the " .. naming .. " naming, IPv6 in brackets", function()
        local c = support.container { env = { SERVICE_NAME = "api" } }
        local list = support.entries(load(naming, "traefik.lua"), c)
        assert.same({ "/traefik/http/services/api/loadBalancer/servers/mesos-master-49155/url",
                      "/traefik/http/services/api/loadBalancer/servers/mesos-master-49156/url" }, support.keys_of(list))
        assert.same({ "http://10.0.1.100:49155", "http://10.0.1.100:49156" }, { list[1].value, list[2].value })
        support.configure { ipaddress = "fd00::5" }
        assert.equal("http://[fd00::5]:49155", support.entries(load(naming, "traefik.lua"), c)[1].value)
      end)
    end
  end)

  describe("nginx.lua", function()
    local dir

    before_each(function()
      dir = os.tmpname()
      os.remove(dir)
      os.execute("mkdir -p " .. dir)
    end)

    after_each(function() os.execute("rm -rf " .. dir) end)

    local function read(path)
      local f = assert(io.open(path))
      local text = f:read("a")
      f:close()
      return text
    end

    it("renders upstream blocks after each change, and refuses odd names", function()
      load("registrator", "nginx.lua")
      local b = registrar.backends.nginx.open("nginx://" .. dir .. "/up.conf", registrar.config)
      b:advertised()
      local function doc(name, port) return registrar.json.encode { name = name, address = "10.0.0.1", port = port } end
      assert.is_true(b:apply({ { key = "/a", value = doc("api", 8081) }, { key = "/b", value = doc("api", 8080) },
                               { key = "/c", value = doc("web", 80) },
                               { key = "/d", value = doc("x { } server evil", 1) } }, {}))
      assert.equal("upstream api {\n    server 10.0.0.1:8080;\n    server 10.0.0.1:8081;\n}\n" ..
                   "upstream web {\n    server 10.0.0.1:80;\n}\n", read(dir .. "/up.conf"))
      assert.is_true(b:apply({}, { { key = "/c" } }))
      assert.falsy(read(dir .. "/up.conf"):find("web", 1, true))
    end)

    -- What `run` does: the pipeline names the entries, with the backend's
    -- compare(), and the backend writes them.
    local function upstreams(naming, container)
      local env = load(naming, "nginx.lua")
      local nginx = registrar.backends.nginx
      local entries = require("registrar.pipeline").new(env, nginx.compare)(container)
      local b = nginx.open("nginx://" .. dir .. "/" .. naming .. ".conf", registrar.config)
      assert.same({}, b:advertised())
      assert.is_true(b:apply(entries, {}))
      return read(dir .. "/" .. naming .. ".conf"), entries, b
    end

    for _, naming in ipairs(NAMINGS) do
      it("renders a service's address and host port under the " .. naming .. " naming", function()
        local conf, entries, b = upstreams(naming, support.container())
        assert.equal("upstream etcd-4001 {\n    server 10.0.1.100:49155;\n}\n" ..
                     "upstream etcd-7001 {\n    server 10.0.1.100:49156;\n}\n", conf)
        -- what it keeps is what compare() says, so an unchanged service is not written again
        local held = b:advertised()
        for _, e in ipairs(entries) do assert.equal(e.compare, held[e.key]) end
      end)
    end

    it("renders the same file under both namings", function()
      local c = support.container { env = { SERVICE_NAME = "api" } }
      c.ports[2].host_ip = "fd00::7"
      local default = upstreams("default", c)
      assert.equal("upstream api {\n    server 10.0.1.100:49155;\n    server [fd00::7]:49156;\n}\n", default)
      assert.equal(default, (upstreams("registrator", c)))
    end)
  end)
end)
