-- scripts/naming/default.lua: the old service-registrar's layout.

local support = require "support"
local registrar = require "registrar"

describe("default naming", function()
  local naming

  before_each(function()
    support.configure()
    naming = support.naming("default")
  end)

  local function keys(container)
    return support.keys_of(support.entries(naming, container))
  end

  describe("the worked example of behaviour.md section 2", function()
    it("keys one service per published port", function()
      assert.same({
        "/services/prod/etc/4001/49155/50ccf6e665e0",
        "/services/prod/etc/7001/49156/50ccf6e665e0",
      }, keys(support.container()))
    end)

    it("uses SERVICE_<port>_NAME as the port segment", function()
      local c = support.container()
      c.env.SERVICE_4001_NAME = "etcd_clients"
      c.env.SERVICE_7001_NAME = "etcd_peers"
      assert.same({
        "/services/prod/etc/etcd_clients/49155/50ccf6e665e0",
        "/services/prod/etc/etcd_peers/49156/50ccf6e665e0",
      }, keys(c))
    end)

    it("stores the old tool's document, byte for byte", function()
      local entries = support.entries(naming, support.container())
      assert.equal(
        '{"env":{"APP":"etcd","ENVIRONMENT":"prod","NAME":"etc"},"host":"mesos-master",' ..
        '"host_port":"49155","hostname":"50ccf6e665e0",' ..
        '"id":"50ccf6e665e0f0e0a6b2f7e1c8d3a4b5c6d7e8f90a1b2c3d4e5f60718293a4f0",' ..
        '"image":"coreos/etcd","ipaddress":"10.0.1.100","name":"/jovial_albattani",' ..
        '"path":"/services/prod/etc/4001/49155/50ccf6e665e0","port":"4001","proto":"tcp","tags":[]}',
        entries[1].value)
    end)
  end)

  describe("document", function()
    it("keeps an env value containing '=' whole", function()
      local c = support.container()
      c.env.OPTS = "a=b=c"
      local doc = registrar.json.decode(support.entries(naming, c)[1].value)
      assert.equal("a=b=c", doc.env.OPTS)
    end)

    it("splits TAGS on commas", function()
      local c = support.container()
      c.env.TAGS = "db, primary,eu"
      local doc = registrar.json.decode(support.entries(naming, c)[1].value)
      assert.same({ "db", "primary", "eu" }, doc.tags)
    end)

    it("writes an empty environment as {} and no tags as []", function()
      local c = support.container { env = {} }
      local value = support.entries(naming, c)[1].value
      assert.truthy(value:find('"env":{}', 1, true))
      assert.truthy(value:find('"tags":[]', 1, true))
    end)
  end)

  describe("addresses", function()
    it("gives a port bound to one HostIp that address, and only that port", function()
      local c = support.container()
      c.ports[1].host_ip = "192.168.5.5"
      local entries = support.entries(naming, c)
      assert.equal("192.168.5.5", registrar.json.decode(entries[1].value).ipaddress)
      assert.equal("10.0.1.100", registrar.json.decode(entries[2].value).ipaddress)
    end)

    it("makes one service of the IPv4 and IPv6 wildcard bindings of a port", function()
      local c = support.container {
        ports = {
          { port = 80, proto = "tcp", host_ip = "0.0.0.0", host_port = 32768 },
          { port = 80, proto = "tcp", host_ip = "::", host_port = 32768 },
        },
      }
      assert.same({ "/services/prod/etc/80/32768/50ccf6e665e0" }, keys(c))
    end)

    -- Docker allocates the two wildcards' ports apart; after other
    -- containers took ports on one family only, `-P` gives them different
    -- numbers, and the IPv6 one is not reachable at an IPv4 ipaddress.
    local function twins_apart()
      return support.container {
        ports = {
          { port = 80, proto = "tcp", host_ip = "0.0.0.0", host_port = 32780 },
          { port = 80, proto = "tcp", host_ip = "::", host_port = 32781 },
        },
      }
    end

    it("keeps the IPv4 twin when the two wildcards got different host ports", function()
      assert.same({ "/services/prod/etc/80/32780/50ccf6e665e0" }, keys(twins_apart()))
    end)

    it("keeps the IPv6 twin when ipaddress is an IPv6 address", function()
      support.configure { ipaddress = "fd00::5" }
      local entries = support.entries(naming, twins_apart())
      assert.same({ "/services/prod/etc/80/32781/50ccf6e665e0" }, support.keys_of(entries))
      assert.equal("fd00::5", registrar.json.decode(entries[1].value).ipaddress)
    end)

    it("keeps a port bound on the IPv6 wildcard only", function()
      local c = support.container {
        ports = { { port = 80, proto = "tcp", host_ip = "::", host_port = 32781 } },
      }
      assert.same({ "/services/prod/etc/80/32781/50ccf6e665e0" }, keys(c))
    end)

    it("skips an exposed port that is not published", function()
      local c = support.container {
        ports = {
          { port = 80, proto = "tcp" },
          { port = 443, proto = "tcp", host_ip = "0.0.0.0", host_port = 32770 },
        },
      }
      assert.same({ "/services/prod/etc/443/32770/50ccf6e665e0" }, keys(c))
    end)

    it("keeps TCP and UDP on the same port number apart", function()
      local c = support.container {
        ports = {
          { port = 53, proto = "tcp", host_ip = "0.0.0.0", host_port = 53 },
          { port = 53, proto = "udp", host_ip = "0.0.0.0", host_port = 53 },
        },
      }
      assert.same({
        "/services/prod/etc/53/53/50ccf6e665e0",
        "/services/prod/etc/53:udp/53/50ccf6e665e0",
      }, keys(c))
    end)
  end)

  describe("prefix_path", function()
    it("leaves out an environment element whose variable is unset", function()
      local c = support.container { env = { NAME = "etc" } }
      assert.same({ "/services/etc/4001/49155/50ccf6e665e0", "/services/etc/7001/49156/50ccf6e665e0" }, keys(c))
    end)

    it("takes string, label and service field elements", function()
      support.configure {
        prefix_path = { "string:teams", "label:team", "service:IMAGE", "service:HOST", "service:PORT" },
        prefix_services = "/registry/",
      }
      local c = support.container { labels = { team = "search" } }
      assert.equal("/registry/teams/search/coreos%2Fetcd/mesos-master/4001", keys(c)[1])
    end)

    it("rejects an unknown element type, naming it", function()
      support.configure { prefix_path = { "bogus:X" } }
      assert.has_error(function() keys(support.container()) end,
        'prefix_path element "bogus:X": unknown type "bogus"')
    end)
  end)

  describe("untrusted container data in keys", function()
    local function attempt(env_name, value)
      local c = support.container()
      c.env[env_name] = value
      local result
      local log = support.capture_log(function() result = keys(c) end)
      return result, log
    end

    it("escapes '/' so a value cannot climb out of the prefix", function()
      local result = attempt("NAME", "../../hosts/other")
      assert.equal("/services/prod/..%2F..%2Fhosts%2Fother/4001/49155/50ccf6e665e0", result[1])
    end)

    it("refuses '..' as a whole segment and names container and variable", function()
      local result, log = attempt("NAME", "..")
      assert.same({}, result)
      assert.truthy(log:find("/jovial_albattani (50ccf6e665e0): env NAME is a relative path", 1, true), log)
    end)

    it("refuses control characters", function()
      local result, log = attempt("ENVIRONMENT", "prod\nevil")
      assert.same({}, result)
      assert.truthy(log:find("env ENVIRONMENT holds control characters", 1, true), log)
    end)

    it("refuses bytes that are not UTF-8", function()
      local result, log = attempt("NAME", "caf\xe9")
      assert.same({}, result)
      assert.truthy(log:find("env NAME is not UTF-8", 1, true), log)
    end)

    it("refuses an over-long value", function()
      local result, log = attempt("NAME", string.rep("x", 300))
      assert.same({}, result)
      assert.truthy(log:find("longer than 255 bytes", 1, true), log)
    end)

    it("escapes '%' so an escape cannot be forged", function()
      local result = attempt("NAME", "a%2Fb")
      assert.equal("/services/prod/a%252Fb/4001/49155/50ccf6e665e0", result[1])
    end)

    it("refuses a SERVICE_<port>_NAME of '..'", function()
      local result = attempt("SERVICE_4001_NAME", "..")
      assert.same({ "/services/prod/etc/7001/49156/50ccf6e665e0" }, result)
    end)
  end)

  describe("service names", function()
    local function name_of(c, i)
      return support.entries(naming, c)[i or 1].service.name
    end

    it("prefers SERVICE_<port>_NAME, then SERVICE_NAME, then image-port", function()
      local c = support.container()
      assert.equal("etcd-4001", name_of(c))
      c.env.SERVICE_NAME = "kv"
      assert.equal("kv", name_of(c))
      c.env.SERVICE_4001_NAME = "clients"
      assert.equal("clients", name_of(c))
      assert.equal("kv", name_of(c, 2))
    end)

    it("drops registry and tag from the image", function()
      local c = support.container { image = "registry.local:5000/team/redis:7.2" }
      assert.equal("redis-4001", name_of(c))
    end)
  end)

  describe("which containers get services", function()
    it("skips a container with SERVICE_IGNORE, and one port with SERVICE_<port>_IGNORE", function()
      local c = support.container()
      c.env.SERVICE_7001_IGNORE = "true"
      assert.same({ "/services/prod/etc/4001/49155/50ccf6e665e0" }, keys(c))
      c.labels.SERVICE_IGNORE = "1"
      assert.same({}, keys(c))
    end)

    it("waits for a container with a health check to be healthy", function()
      assert.same({}, keys(support.container { health = "starting" }))
      assert.same({}, keys(support.container { health = "unhealthy" }))
      assert.equal(2, #keys(support.container { health = "healthy" }))
    end)

    it("registers regardless of health with health: ignore", function()
      support.configure { health = "ignore" }
      assert.equal(2, #keys(support.container { health = "unhealthy" }))
    end)

    it("gives a paused container no services", function()
      assert.same({}, keys(support.container { state = "paused" }))
    end)
  end)
end)
