-- registrar.pipeline: how the engine runs naming hooks, and how it reports
-- a hook that breaks the rules.

local support = require "support"

describe("the naming pipeline", function()
  before_each(function() support.configure() end)

  local function hooks(overrides)
    local h = support.naming("default")
    for k, v in pairs(overrides) do h[k] = v end
    return h
  end

  it("lets a site hook call the default it replaces", function()
    local default = support.naming("default")
    local h = hooks { key = function(s) return "/x" .. default.key(s) end }
    assert.equal("/x/services/prod/etc/4001/49155/50ccf6e665e0", support.entries(h, support.container())[1].key)
  end)

  it("names the hook's file and line when it returns the wrong type", function()
    local h = hooks { key = function() return 42 end }
    local ok, err = pcall(support.entries, h, support.container())
    assert.is_false(ok)
    assert.truthy(err:find("pipeline_spec.lua:%d+: key%(%) returned a number, not a string"), err)
  end)

  it("rejects a services() that does not return a list", function()
    local h = hooks { services = function() return "nope" end }
    local ok, err = pcall(support.entries, h, support.container())
    assert.is_false(ok)
    assert.truthy(err:find("services() returned a string", 1, true), err)
  end)

  it("skips a key with a '..' segment or an empty one, whoever built it", function()
    for _, bad in ipairs { "/services/../hosts/x", "/services//x", "" } do
      local h = hooks { key = function() return bad end }
      local entries
      local log = support.capture_log(function() entries = support.entries(h, support.container()) end)
      assert.same({}, entries)
      assert.truthy(log:find("service skipped", 1, true), log)
    end
  end)

  it("keeps the first of two services with one key", function()
    local h = hooks { key = function() return "/same" end }
    local entries
    local log = support.capture_log(function() entries = support.entries(h, support.container()) end)
    assert.equal(1, #entries)
    assert.truthy(log:find("two services have the key /same", 1, true))
  end)

  it("lets key() decline a service by returning nil", function()
    local h = hooks { key = function(s) if s.port == "4001" then return nil end return "/k/" .. s.port end }
    assert.same({ "/k/7001" }, support.keys_of(support.entries(h, support.container())))
  end)

  it("stores a string document as it is", function()
    local h = hooks { document = function(s) return s.ipaddress .. ":" .. s.host_port end }
    assert.equal("10.0.1.100:49155", support.entries(h, support.container())[1].value)
  end)

  it("requires services() and key()", function()
    local pipeline = require "registrar.pipeline"
    assert.has_error(function() pipeline.new { key = function() end } end,
      "no services(container) hook: the naming script must define one")
  end)
end)
