-- The kit's configuration (rockspec/lua/registrar/testing/config.lua)
-- against the engine's key table, engine/core/config_keys.def: the same
-- keys in the same order, of the same types, defaults and ranges, and the
-- daemon's refusals in its words.  (The agreement test compares what the
-- scripts see of it with a running `registrar check`.)

local config = require "registrar.testing.config"

local def = require("support").scripts .. "/../engine/core/config_keys.def"

-- Each KEY(...) row of the .def file: name, type and its options.
local function rows()
  local f = assert(io.open(def))
  local text = f:read("a")
  f:close()
  local out = {}
  for row in text:gmatch("\nKEY(%b())") do
    local name, kind = row:match('^%(CK_[%w_]+, "([%w_]+)", (%u+),')
    out[#out + 1] = {
      name = name, type = kind:lower(),
      default = row:match('%.def = "([^"]*)"'),
      min = tonumber(row:match("%.min = (%-?%d+)")), max = tonumber(row:match("%.max = (%-?%d+)")),
      secret = row:find(".secret = true", 1, true) ~= nil,
      words = row:match("%.words = WORDS(%b())"),
    }
  end
  return out
end

describe("the kit's configuration keys", function()
  it("are the engine's, in its order, with its types, defaults, ranges and secrets", function()
    local engine, kit = rows(), {}
    assert.is_true(#engine > 30)
    for i, k in ipairs(config.keys) do
      kit[i] = { name = k.name, type = k.type, default = k.default, min = k.min, max = k.max,
                 secret = k.secret or false, words = engine[i] and engine[i].words }
    end
    assert.same(engine, kit)
  end)

  it("choose among the engine's words", function()
    for _, row in ipairs(rows()) do
      if row.words then
        local words = {}
        for w in row.words:gmatch('"([^"]+)"') do words[#words + 1] = w end
        local ok, err = pcall(config.build, { [row.name] = "neither" })
        assert.is_false(ok)
        assert.equal(('%s: "neither" is not %s or %s (testing.new)')
                     :format(row.name, table.concat(words, ", ", 1, #words - 1), words[#words]), err)
      end
    end
  end)
end)

describe("the kit's configuration", function()
  local function refusal(given) local ok, err = pcall(config.build, given); assert.is_false(ok); return err end

  it("gives the documented defaults in their natural types", function()
    local v = config.build {}
    assert.equal(3000, v.interval)
    assert.equal("prune", v.service_ttl)
    assert.same({ "environment:ENVIRONMENT", "environment:NAME", "service:PORT", "service:HOST_PORT",
                  "service:HOSTNAME" }, v.prefix_path)
    assert.is_false(v.explicit)
    assert.same({}, v.site)
    assert.is_nil(v.statsd)
  end)

  it("reads values as the YAML file gives them", function()
    local v = config.build { interval = 5000, explicit = "yes", prefix_path = "label:team, service:PORT",
                             statsd = { host = "10.0.0.9" }, docker_tls_verify = true }
    assert.equal(5000, v.interval)
    assert.is_true(v.explicit)
    assert.same({ "label:team", "service:PORT" }, v.prefix_path)
    assert.same({ host = "10.0.0.9", port = 8125 }, v.statsd)
    assert.is_true(v.docker_tls_verify)
  end)

  it("refuses what the daemon refuses, in its words", function()
    assert.equal('interval: "3s" is not a whole number of milliseconds (testing.new)', refusal { interval = "3s" })
    assert.equal('interval: "5" is out of range: 10 to 86400000 milliseconds (testing.new)', refusal { interval = 5 })
    assert.equal('testing.new: unknown key "intervall" (see `registrar help config`)', refusal { intervall = 1 })
    assert.equal([[prefix_services: "services" must start with '/' (testing.new)]], refusal { prefix_services = "services" })
    assert.equal([[prefix_hosts: "/a/../b" has a relative segment ('.' or '..') (testing.new)]],
                 refusal { prefix_hosts = "/a/../b" })
    assert.equal('prefix_path: "planet:EARTH" has an unknown TYPE: use environment, string, service or label (testing.new)',
                 refusal { prefix_path = { "planet:EARTH" } })
    assert.equal('ttl: "2000" must be longer than interval, or entries expire between refreshes (testing.new)',
                 refusal { service_ttl = "ttl", ttl = 2000 })
    assert.equal('ipaddress: "10.0.0.300" is not an IPv4 or IPv6 address, nor a DNS name (testing.new)',
                 refusal { ipaddress = "10.0.0.300" })
    assert.equal([[hostname: "a/b" is not usable as a host name (empty, '/', or dots only) (testing.new)]],
                 refusal { hostname = "a/b" })
    assert.equal("password: (secret) contains control characters (testing.new)", refusal { password = "a\nb" })
    assert.equal('backend: "registry" is not a URI like etcd://HOST:PORT or file:///PATH (testing.new)',
                 refusal { backend = "registry" })
    assert.equal('site: "x" must be a map in the YAML file (testing.new)', refusal { site = "x" })
  end)

  it("takes the machine's name and address as localhost and 127.0.0.1 when a spec gives none", function()
    local v = config.build {}
    assert.equal("localhost", v.hostname)
    assert.equal("127.0.0.1", v.ipaddress)
  end)
end)
