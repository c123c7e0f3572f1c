-- scripts/backends/file.lua against a real file in a temporary directory.

local support = require "support"
local registrar = require "registrar"

local json = registrar.json

describe("file backend", function()
  local file, dir, path, b

  before_each(function()
    support.configure()
    file = dofile(support.scripts .. "/backends/file.lua")
    dir = os.tmpname()
    os.remove(dir)
    path = dir .. "/sub/registry.json"
    b = file.open("file://" .. path, registrar.config)
  end)

  after_each(function()
    os.remove(path)
    os.remove(dir .. "/sub")
    os.remove(dir)
  end)

  local function read()
    local f = assert(io.open(path))
    local doc = json.decode(f:read("a"))
    f:close()
    return doc
  end

  it("advertises nothing when the file does not exist yet", function()
    assert.same({}, b:advertised())
  end)

  it("writes puts and deletes as one document, creating the directory", function()
    b:advertised()
    assert.is_true(b:apply({ { key = "/s/a", value = '{"host":"mesos-master","port":"1"}' },
                             { key = "/s/b", value = '{"port":"2"}' } }, {}))
    local doc = read()
    assert.equal("mesos-master", doc.host)
    assert.equal("1", doc.services["/s/a"].port)
    assert.is_true(b:apply({}, { { key = "/s/a" } }))
    assert.is_nil(read().services["/s/a"])
    assert.same({ ["/s/b"] = '{"port":"2"}' }, b:advertised())
  end)

  it("advertises values byte for byte as they were written", function()
    local value = '{"a":[],"b":{},"c":"x"}'
    b:advertised()
    b:apply({ { key = "/k", value = value } }, {})
    assert.equal(value, b:advertised()["/k"])
  end)

  it("rewrites a file that is not a registry file instead of failing", function()
    os.execute("mkdir -p " .. dir .. "/sub")
    local f = assert(io.open(path, "w"))
    f:write("not json")
    f:close()
    local advertised
    local log = support.capture_log(function() advertised = b:advertised() end)
    assert.same({}, advertised)
    assert.truthy(log:find("is not a registry file", 1, true))
    assert.is_true(b:apply({ { key = "/k", value = "10.0.0.1:80" } }, {}))
    assert.equal("10.0.0.1:80", read().services["/k"])
    assert.same({ ["/k"] = "10.0.0.1:80" }, b:advertised())
  end)

  it("leaves no temporary file behind", function()
    b:advertised()
    b:apply({ { key = "/k", value = "{}" } }, {})
    local p = io.popen("ls -A " .. dir .. "/sub")
    local listing = p:read("a")
    p:close()
    assert.equal("registry.json\n", listing)
  end)

  it("refuses a URI that is not an absolute path", function()
    assert.has_error(function() file.open("file://relative.json", registrar.config) end)
  end)
end)
