-- scripts/naming/registrator.lua: registrator's conventions.

local support = require "support"
local registrar = require "registrar"

describe("registrator naming", function()
  local naming

  before_each(function()
    support.configure()
    naming = support.naming("registrator")
  end)

  local function entries(c) return support.entries(naming, c) end
  local function one(c) return entries(c)[1] end
  local function doc(e) return registrar.json.decode(e.value) end

  local function redis(fields)
    return support.container(fields or {
      name = "/cache", image = "library/redis:7.2", env = {}, labels = {},
      ports = { { port = 6379, proto = "tcp", host_ip = "0.0.0.0", host_port = 32768 } },
    })
  end

  describe("names and ids", function()
    it("names a one-port container after its image's base name", function()
      local e = one(redis())
      assert.equal("redis", e.service.name)
      assert.equal("mesos-master:cache:6379", e.service.id)
      assert.equal("/services/redis/mesos-master:cache:6379", e.key)
    end)

    it("adds -<port> to the name when several ports are published", function()
      local list = entries(support.container { env = {} })
      assert.same({ "etcd-4001", "etcd-7001" }, { list[1].service.name, list[2].service.name })
    end)

    it("does not count the IPv6 twin of a binding as another port", function()
      local c = redis()
      c.ports[2] = { port = 6379, proto = "tcp", host_ip = "::", host_port = 32768 }
      assert.equal("redis", one(c).service.name)
      assert.equal(1, #entries(c))
    end)

    it("suffixes UDP ids with :udp", function()
      local c = redis()
      c.ports = { { port = 53, proto = "udp", host_ip = "0.0.0.0", host_port = 5353 } }
      assert.equal("mesos-master:cache:53:udp", one(c).service.id)
    end)

    it("takes SERVICE_NAME and SERVICE_ID", function()
      local c = redis()
      c.env = { SERVICE_NAME = "sessions", SERVICE_ID = "sessions-1" }
      assert.equal("/services/sessions/sessions-1", one(c).key)
    end)
  end)

  describe("precedence", function()
    it("lets SERVICE_<port>_NAME beat SERVICE_NAME", function()
      local c = support.container { env = { SERVICE_NAME = "generic", SERVICE_4001_NAME = "clients" } }
      local list = entries(c)
      assert.equal("clients", list[1].service.name)
      assert.equal("generic", list[2].service.name)
    end)

    it("lets a label beat an env var at the same level", function()
      local c = redis()
      c.env = { SERVICE_NAME = "from-env" }
      c.labels = { SERVICE_NAME = "from-label" }
      assert.equal("from-label", one(c).service.name)
    end)

    it("lets a port-specific env var beat a generic label", function()
      local c = redis()
      c.env = { SERVICE_6379_NAME = "port-env" }
      c.labels = { SERVICE_NAME = "generic-label" }
      assert.equal("port-env", one(c).service.name)
    end)

    it("ignores settings meant for another port", function()
      local c = redis()
      c.env = { SERVICE_80_NAME = "web" }
      assert.equal("redis", one(c).service.name)
    end)
  end)

  describe("tags and attributes", function()
    it("splits SERVICE_TAGS and keeps other SERVICE_ keys as attributes", function()
      local c = redis()
      c.env = { SERVICE_TAGS = "primary, eu ,", SERVICE_REGION = "eu-1", SERVICE_6379_WEIGHT = "5", OTHER = "x" }
      local d = doc(one(c))
      assert.same({ "primary", "eu" }, d.tags)
      assert.same({ region = "eu-1", weight = "5" }, d.attrs)
      assert.equal("10.0.1.100", d.address)
      assert.equal(32768, d.port)
      assert.equal("mesos-master", d.host)
    end)

    it("writes no tags as [] and no attributes as {}", function()
      local value = one(redis()).value
      assert.truthy(value:find('"tags":[]', 1, true))
      assert.truthy(value:find('"attrs":{}', 1, true))
    end)
  end)

  describe("checks", function()
    local function check(env)
      local c = redis()
      c.env = env
      return one(c).service.check
    end

    it("builds an HTTP check on the service's address", function()
      assert.same({ http = "http://10.0.1.100:32768/health", interval = "10s" }, check { SERVICE_CHECK_HTTP = "/health" })
    end)

    it("builds HTTPS, TCP, TTL and script checks", function()
      assert.equal("https://10.0.1.100:32768/ok", check({ SERVICE_CHECK_HTTPS = "/ok" }).http)
      assert.equal("10.0.1.100:32768", check({ SERVICE_CHECK_TCP = "true" }).tcp)
      assert.same({ ttl = "30s" }, check { SERVICE_CHECK_TTL = "30s" })
      assert.same({ "sh", "-c", "probe 10.0.1.100 32768" },
        check({ SERVICE_CHECK_SCRIPT = "probe $SERVICE_IP $SERVICE_PORT" }).args)
    end)

    it("carries interval, timeout, deregister-after and initial status", function()
      assert.same({ http = "http://10.0.1.100:32768/h", interval = "5s", timeout = "2s",
                    deregister_after = "1m", initial_status = "passing" },
        check { SERVICE_CHECK_HTTP = "/h", SERVICE_CHECK_INTERVAL = "5s", SERVICE_CHECK_TIMEOUT = "2s",
                SERVICE_CHECK_DEREGISTER_AFTER = "1m", SERVICE_CHECK_INITIAL_STATUS = "passing" })
    end)

    it("keeps check settings out of the attributes", function()
      local c = redis()
      c.env = { SERVICE_CHECK_HTTP = "/h" }
      assert.same({}, doc(one(c)).attrs)
    end)

    it("brackets an IPv6 address in check URLs", function()
      local c = redis()
      c.env = { SERVICE_CHECK_HTTP = "/h" }
      c.ports[1].host_ip = "::1"
      assert.equal("http://[::1]:32768/h", one(c).service.check.http)
    end)
  end)

  describe("which containers", function()
    it("skips SERVICE_IGNORE and SERVICE_<port>_IGNORE", function()
      local c = support.container { env = { SERVICE_7001_IGNORE = "yes" } }
      assert.same({ "/services/etcd-4001/mesos-master:jovial_albattani:4001" }, support.keys_of(entries(c)))
      c.labels = { SERVICE_IGNORE = "true" }
      assert.same({}, entries(c))
    end)

    it("registers only containers that name their service in explicit mode", function()
      support.configure { explicit = true }
      assert.same({}, entries(redis()))
      local c = support.container { env = { SERVICE_4001_NAME = "clients" } }
      assert.same({ "/services/clients/mesos-master:jovial_albattani:4001" }, support.keys_of(entries(c)))
    end)
  end)

  describe("untrusted names in keys", function()
    it("escapes '/' in SERVICE_NAME and refuses '..' as an id", function()
      local c = redis()
      c.env = { SERVICE_NAME = "../../hosts" }
      assert.equal("/services/..%2F..%2Fhosts/mesos-master:cache:6379", one(c).key)
      c.env = { SERVICE_ID = ".." }
      local list
      local log = support.capture_log(function() list = entries(c) end)
      assert.same({}, list)
      assert.truthy(log:find("/cache (50ccf6e665e0): SERVICE_ID is a relative path", 1, true), log)
    end)
  end)
end)

describe("address selection", function()
  local naming

  before_each(function()
    support.configure()
    naming = support.naming("default")
  end)

  local function addresses(c)
    local out = {}
    for i, e in ipairs(support.entries(naming, c)) do
      out[i] = e.service.ipaddress .. ":" .. e.service.host_port
    end
    return out
  end

  local function container()
    return support.container {
      networks = { bridge = { ip = "172.17.0.2" }, backend = { ip = "10.10.0.7", ip6 = "fd00::7" } },
      ports = {
        { port = 80, proto = "tcp", host_ip = "0.0.0.0", host_port = 8080 },
        { port = 81, proto = "tcp", host_ip = "192.168.1.5", host_port = 8081 },
        { port = 9000, proto = "tcp" },
      },
    }
  end

  it("uses the configured address, or a port's own HostIp, and skips unpublished ports", function()
    assert.same({ "10.0.1.100:8080", "192.168.1.5:8081" }, addresses(container()))
  end)

  it("uses the container's IP on the network the config names, with container ports", function()
    support.configure { network = "backend" }
    assert.same({ "10.10.0.7:80", "10.10.0.7:81", "10.10.0.7:9000" }, addresses(container()))
  end)

  it("lets SERVICE_NETWORK (env or label) choose the network", function()
    local c = container()
    c.labels = { SERVICE_NETWORK = "bridge" }
    assert.same({ "172.17.0.2:80", "172.17.0.2:81", "172.17.0.2:9000" }, addresses(c))
  end)

  it("falls back to published addresses when the container is not on that network", function()
    support.configure { network = "elsewhere" }
    assert.same({ "10.0.1.100:8080", "192.168.1.5:8081" }, addresses(container()))
  end)

  it("registers a host-network container's exposed ports on the host's address", function()
    local c = support.container {
      network_mode = "host", networks = { host = {} },
      ports = { { port = 9999, proto = "tcp", host_port = 9999 } },
    }
    assert.same({ "10.0.1.100:9999" }, addresses(c))
  end)
end)
