-- The kit's daemon state (rockspec/lua/registrar/testing/state.lua,
-- modules.lua, calls.lua): scripts load in the daemon's order, in globals
-- of their own, and see the registrar table and the faults the daemon gives.

local testing = require "registrar.testing"

local support = require "support"

local scripts = support.scripts
local function site(text) return support.site_script(text, finally) end

local web = testing.container { name = "web", image = "nginx", env = { ENVIRONMENT = "prod" }, ports = { "49155:80" } }

describe("a kit", function()
  it("loads the site script over the naming: registrar.default holds the hooks it replaced", function()
    local kit = testing.new { script = site [[
      local registrar = require "registrar"
      function key(service) return "/prod" .. registrar.default.key(service) end
    ]], hostname = "h1" }
    assert.same({ "/prod/services/prod/80/49155/" .. web.hostname }, kit:keys(web))
  end)

  it("keeps each kit's hooks and globals to itself", function()
    local a = testing.new { script = site [[function key() return "/a" end; shared = "a"]] }
    local b = testing.new { script = site [[function key() return "/b" end]] }
    assert.same({ "/a" }, a:keys(web))
    assert.same({ "/b" }, b:keys(web))
    assert.is_nil(rawget(_G, "key"))
    assert.is_nil(rawget(_G, "shared"))
    assert.equal("a", a.state.env.shared)
  end)

  it("finds a site script's own modules beside it, as the daemon's require does", function()
    local dir = os.tmpname()
    os.remove(dir)
    assert(os.execute("mkdir -p " .. dir))
    finally(function() os.execute("rm -rf " .. dir) end)
    local f = assert(io.open(dir .. "/layout.lua", "w"))
    f:write 'return { prefix = "/teams" }'
    f:close()
    f = assert(io.open(dir .. "/site.lua", "w"))
    f:write 'local layout = require "layout"; function key(s) return layout.prefix .. "/" .. s.name end'
    f:close()
    assert.same({ "/teams/nginx-80" }, testing.new({ script = dir .. "/site.lua" }):keys(web))
  end)

  it("hands scripts a read-only registrar.config without secrets, and the host", function()
    local kit = testing.new { hostname = "web-3", ipaddress = "10.0.0.5", password = "s3cret",
                              backend = "etcd://alice:s3cret@10.0.0.9:2379" }
    local r = kit.registrar
    assert.equal("etcd://alice:***@10.0.0.9:2379", r.config.backend)
    assert.is_nil(r.config.password)
    assert.same({ hostname = "web-3", ipaddress = "10.0.0.5" }, r.host)
    assert.has_error(function() r.config.interval = 1 end, 'registrar.config is read-only (tried to set "interval")')
    assert.equal("s3cret", kit.state:open_config().password)
  end)

  it("fails a container whose hook breaks a rule, naming the hook's file and line", function()
    local path = site [[
      function key(service)
        return 42
      end]]
    local kit = testing.new { script = path }
    local entries, why = kit:try(web)
    assert.is_nil(entries)
    assert.equal(path .. ":1: key() returned a number, not a string", why)
    assert.has_error(function() kit:entries(web) end,
                     ("container /web (%s): %s:1: key() returned a number, not a string"):format(web.id:sub(1, 12), path))
  end)

  it("stops a hook that never ends after script_instructions, as the daemon's budget does", function()
    local path = site "function key()\n  while true do end\nend\n"
    local kit = testing.new { script = path, script_instructions = 100000 }
    local _, why = kit:try(web)
    assert.equal(path .. ":2: stopped after 100000 instructions (script_instructions): a loop that never ends?", why)
  end)

  it("refuses registrar.http.request in a naming hook, as the daemon does", function()
    local kit = testing.new { script = site [[
      local registrar = require "registrar"
      function key() registrar.http.request { url = "http://x/" } end
    ]] }
    local _, why = kit:try(web)
    assert.matches("registrar.http.request must be called from a backend hook, not from naming", why, 1, true)
  end)

  it("fails to start as the daemon does, with its words", function()
    assert.has_error(function() testing.new { naming = "nope" } end,
                     ('naming: "nope" is not a naming script: no file %s/naming/nope.lua (testing.new)'):format(scripts))
    assert.has_error(function() testing.new { backend = "gopher://x:70" } end)
    local path = site "error('refused')"
    assert.same({ false, path .. ":1: refused" }, { pcall(testing.new, { script = path }) })
  end)

  it("keeps the log lines scripts write, at the configured level", function()
    local kit = testing.new { log_level = "warn", script = site [[
      local log = require("registrar").log
      log.info("not kept")
      log.warn("kept: %d", 42)
      log.error("kept too")
    ]] }
    assert.same({ { level = "warn", message = "kept: 42" }, { level = "error", message = "kept too" } }, kit.log)
  end)

  it("reads and writes files in memory, never on the disk", function()
    local kit = testing.new({}, { files = { ["/etc/team.conf"] = "search" } })
    local file = kit.registrar.file
    assert.equal("search", file.read "/etc/team.conf")
    assert.same({ nil, "/nope: No such file or directory", "missing" }, { file.read "/nope" })
    assert.is_true(file.replace("/var/lib/out", "x"))
    assert.equal("x", kit.files["/var/lib/out"])
    assert.equal("missing", file.kind "/var/lib/other")
  end)

  it("computes base64 and the digest as the engine does", function()
    local engine = require "registrar"
    local r = testing.new().registrar
    for _, s in ipairs { "", "a", "ab", "abc", "/services", "\0\255\1", ("x"):rep(1000) } do
      assert.equal(engine.base64.encode(s), r.base64.encode(s))
      assert.equal(s, r.base64.decode(r.base64.encode(s)))
      assert.equal(engine.digest(s), r.digest(s))
    end
    assert.same({ engine.base64.decode "ab$c" }, { r.base64.decode "ab$c" })
    assert.same({ engine.base64.decode "ab=c" }, { r.base64.decode "ab=c" })
  end)
end)

describe("the kit's containers", function()
  it("publish HOST_PORT:PORT on both wildcards, as docker run -p does", function()
    local c = testing.container { ports = { "8080:80", "127.0.0.1:9090:90", "5353:53/udp" } }
    assert.same({
      { port = 53, proto = "udp", host_ip = "0.0.0.0", host_port = 5353 },
      { port = 53, proto = "udp", host_ip = "::", host_port = 5353 },
      { port = 80, proto = "tcp", host_ip = "0.0.0.0", host_port = 8080 },
      { port = 80, proto = "tcp", host_ip = "::", host_port = 8080 },
      { port = 90, proto = "tcp", host_ip = "127.0.0.1", host_port = 9090 },
    }, c.ports)
  end)

  it("list a host-mode container's exposed ports as published on the host", function()
    local c = testing.container { network_mode = "host", expose = { "9100" } }
    assert.same({ { port = 9100, proto = "tcp", host_port = 9100 } }, c.ports)
    assert.same({}, c.networks)
  end)

  it("leave out what the engine leaves out, and say so", function()
    local answer = testing.inspect { labels = { big = ("x"):rep(20000) }, ports = { { port = 80, host_port = 8080, host_ip = "nowhere" } } }
    local c, note = testing.from_inspect(answer)
    assert.same({}, c.labels)
    assert.same({ { port = 80, proto = "tcp" } }, c.ports)
    assert.equal("label big is 20000 bytes, over 16384: left out (and 1 more)", note)
    assert.same({ nil, 'the answer has no "Id"' }, { testing.from_inspect { Name = "/x" } })
  end)

  it("read a docker inspect file as check does", function()
    local list = testing.containers(scripts .. "/../tests/fixtures/worked-example.json")
    assert.equal(1, #list)
    assert.equal("/jovial_albattani", list[1].name)
    assert.same({ APP = "etcd", NAME = "etc", ENVIRONMENT = "prod", HOME = "/" }, list[1].env)
  end)
end)

describe("the kit's own container", function()
  it("gets no services unless register_self, as registrar's own container in the daemon", function()
    local me = testing.container { name = "registrar", ports = { "9090:9090" } }
    local kit = testing.new({}, { container_id = me.id })
    assert.same({}, kit:entries(me))
    assert.equal(1, #kit:entries(web))
    kit = testing.new({ register_self = true }, { container_id = me.id })
    assert.equal(1, #kit:entries(me))
  end)
end)
