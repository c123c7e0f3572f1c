-- examples/: each site script, run through the pipeline as the daemon runs it.

local support = require "support"
local registrar = require "registrar"

local examples = support.scripts .. "/../examples/"

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
  end)

  describe("skydns.lua", function()
    it("writes CoreDNS's etcd layout with host and port", function()
      local e = support.entries(load("default", "skydns.lua"), support.container())[1]
      assert.equal("/skydns/local/registrar/etcd-4001/mesos-master-49155", e.key)
      assert.equal('{"host":"10.0.1.100","port":49155,"ttl":30}', e.value)
    end)

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
  end)
end)
