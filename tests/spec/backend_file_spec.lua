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
    os.execute("rm -rf " .. path)
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
    assert.is_true(b:apply({ { key = "/services/a", value = '{"host":"mesos-master","port":"1"}' },
                             { key = "/services/b", value = '{"port":"2"}' } }, {}))
    local doc = read()
    assert.equal("mesos-master", doc.host)
    assert.equal("1", doc.services["/services/a"].port)
    assert.is_true(b:apply({}, { { key = "/services/a" } }))
    assert.is_nil(read().services["/services/a"])
    assert.same({ ["/services/b"] = '{"port":"2"}' }, b:advertised())
  end)

  it("advertises values byte for byte as they were written", function()
    local value = '{"a":[],"b":{},"c":"x"}'
    b:advertised()
    b:apply({ { key = "/services/k", value = value } }, {})
    assert.equal(value, b:advertised()["/services/k"])
  end)

  local function write(text)
    os.execute("mkdir -p " .. dir .. "/sub")
    local f = assert(io.open(path, "w"))
    f:write(text)
    f:close()
  end

  it("refuses a file that is not a registry, and writes nothing", function()
    write("not json")
    local advertised, err = b:advertised()
    assert.is_nil(advertised)
    assert.equal(path .. " is not a registrar registry (invalid JSON at byte 1 of 8); nothing was written: "
                 .. "move it away or choose another path", err)
    local ok, why = b:apply({ { key = "/services/k", value = "10.0.0.1:80" } }, {})
    assert.is_nil(ok)
    assert.truthy(why:find("is not a registrar registry", 1, true))
    local f = assert(io.open(path))
    assert.equal("not json", f:read("a"))
    f:close()
    assert.has_error(function() file.check("file://" .. path, registrar.config) end,
                     "file backend: " .. err)
  end)

  it("refuses another host's registry, and prunes none of it", function()
    local theirs = '{"host":"otherhost","services":{"/services/a":{"port":"1"},"/elsewhere/b":{"port":"2"}}}'
    write(theirs)
    local advertised, err = b:advertised()
    assert.is_nil(advertised)
    assert.truthy(err:find('is the registry of host "otherhost", not of this host ("mesos-master")', 1, true))
    assert.is_nil((b:apply({}, { { key = "/services/a" } })))
    local f = assert(io.open(path))
    assert.equal(theirs, f:read("a"))
    f:close()
  end)

  it("takes an empty file for an empty registry", function()
    write("")
    assert.same({}, b:advertised())
    assert.is_true(b:apply({ { key = "/services/k", value = "{}" } }, {}))
    assert.equal("mesos-master", read().host)
  end)

  it("prunes only the keys it wrote, wherever they are, and keeps what others put in", function()
    b:advertised()
    assert.is_true(b:apply({ { key = "/services/a", value = '{"port":"1"}' },
                             { key = "/teams/b", value = '{"port":"2"}' } }, {}))
    assert.same({ "/services/a", "/teams/b" }, read().owned)
    -- someone adds entries by hand, inside and outside the prefix
    local doc = read()
    doc.services["/services/by-hand"] = { port = "3" }
    doc.services["/elsewhere/c"] = { port = "4" }
    write(json.encode(doc))
    assert.same({ ["/services/a"] = '{"port":"1"}', ["/teams/b"] = '{"port":"2"}' }, b:advertised())
    assert.is_true(b:apply({}, { { key = "/teams/b" }, { key = "/services/by-hand" } }))
    assert.same({ ["/services/a"] = { port = "1" }, ["/services/by-hand"] = { port = "3" },
                  ["/elsewhere/c"] = { port = "4" } }, read().services)
    assert.same({ "/services/a" }, read().owned)
  end)

  it("takes a file written before `owned` to own what is under prefix_services", function()
    write('{"host":"mesos-master","services":{"/services/a":{"port":"1"},"/elsewhere/b":{"port":"2"}}}')
    assert.same({ ["/services/a"] = '{"port":"1"}' }, b:advertised())
    assert.is_true(b:apply({}, { { key = "/services/a" } }))
    assert.same({ ["/elsewhere/b"] = { port = "2" } }, read().services)
  end)

  it("refuses a path that is a device, a directory or a symbolic link", function()
    assert.has_error(function() file.check("file:///dev/null", registrar.config) end,
                     "file backend: /dev/null is a device, not a registry file; nothing was written there")
    os.execute("mkdir -p " .. path)
    assert.has_error(function() file.check("file://" .. path, registrar.config) end,
                     "file backend: " .. path .. " is a directory, not a registry file; nothing was written there")
    os.remove(path)
    os.execute("ln -s /dev/null " .. path)
    assert.has_error(function() file.check("file://" .. path, registrar.config) end)
    local ok, err = registrar.file.replace(path, "x")
    assert.is_nil(ok)
    assert.equal(path .. " is a symbolic link, not a regular file", err)
    assert.equal("symbolic link", registrar.file.kind(path))
  end)

  it("does not wait on a named pipe", function()
    os.execute("mkdir -p " .. dir .. "/sub && mkfifo " .. path)
    local advertised, err = b:advertised()
    assert.is_nil(advertised)
    assert.truthy(err:find("is a named pipe", 1, true))
    assert.is_nil((registrar.file.read(path)))
  end)

  it("removes the temporary files a killed registrar left, and only those", function()
    os.execute("mkdir -p " .. dir .. "/sub")
    -- pid 2^22+1 is above Linux's largest: never a running process
    for _, name in ipairs { "registry.json.tmp.4194305", "registry.json.tmp.1", "other.tmp.4194305" } do
      local f = assert(io.open(dir .. "/sub/" .. name, "w"))
      f:close()
    end
    file.open("file://" .. path, registrar.config)
    local p = io.popen("ls -A " .. dir .. "/sub")
    local listing = p:read("a")
    p:close()
    assert.equal("other.tmp.4194305\nregistry.json.tmp.1\n", listing)   -- pid 1 runs
    os.remove(dir .. "/sub/other.tmp.4194305")
    os.remove(dir .. "/sub/registry.json.tmp.1")
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
