-- One service shape for every naming (docs/scripting.md, "The service"):
-- the table a hook gets has the same fields, names and types whichever
-- naming made it.  Only the documents keep each naming's own spelling.

local support = require "support"
local registrar = require "registrar"

local json = registrar.json

-- field -> Lua type (or "integer", "array") of what every naming hands hooks
local SHARED = {
  container = "table", env = "table", labels = "table", settings = "table",
  port = "string", proto = "string", host_ip = "string", host_port = "integer", address = "string",
  tags = "array", name = "string", key = "string",
}

local function kind(value)
  if math.type(value) == "integer" then return "integer" end
  if type(value) == "table" and json.is_array(value) then return "array" end
  return type(value)
end

local function services(naming, container)
  local list = {}
  for i, e in ipairs(support.entries(support.naming(naming), container)) do list[i] = e.service end
  return list
end

local function container()
  return support.container {
    env = { APP = "etcd", NAME = "etc", ENVIRONMENT = "prod", TAGS = "a, b", SERVICE_TAGS = "a,b" },
    ports = {
      { port = 4001, proto = "tcp", host_ip = "0.0.0.0", host_port = 49155 },
      { port = 53, proto = "udp", host_ip = "127.0.0.1", host_port = 5353 },
    },
  }
end

describe("the service every naming hands hooks", function()
  before_each(function() support.configure() end)

  for _, naming in ipairs { "default", "registrator" } do
    it("has the shared fields with their types under the " .. naming .. " naming", function()
      local list = services(naming, container())
      assert.equal(2, #list)
      for _, s in ipairs(list) do
        for field, want in pairs(SHARED) do
          assert.equal(want, kind(s[field]), naming .. ": service." .. field)
        end
      end
      assert.same({ "4001", "tcp", "0.0.0.0", 49155, "10.0.1.100" },
                  { list[1].port, list[1].proto, list[1].host_ip, list[1].host_port, list[1].address })
      assert.same({ "53", "udp", "127.0.0.1", 5353, "127.0.0.1" },
                  { list[2].port, list[2].proto, list[2].host_ip, list[2].host_port, list[2].address })
      assert.same({ "a", "b" }, list[1].tags)
      assert.equal(list[1].container.env, list[1].env)
    end)

    it("keeps ipaddress as another name for address under the " .. naming .. " naming", function()
      local s = services(naming, container())[1]
      assert.equal(s.address, s.ipaddress)
      s.ipaddress = "192.0.2.7"
      assert.equal("192.0.2.7", s.address)
      assert.is_nil(rawget(s, "ipaddress"))
    end)
  end

  it("gives the same shared fields under both namings", function()
    local default, registrator = services("default", container()), services("registrator", container())
    for i in ipairs(default) do
      for _, field in ipairs { "port", "proto", "host_ip", "host_port", "address", "container", "tags" } do
        assert.same(default[i][field], registrator[i][field], field)
      end
    end
  end)

  it("uses the container port and its IP on a chosen network, under both namings", function()
    support.configure { network = "bridge" }
    for _, naming in ipairs { "default", "registrator" } do
      local s = services(naming, support.container())[1]
      assert.same({ "172.17.0.2", 4001, "4001" }, { s.address, s.host_port, s.port }, naming)
    end
  end)

  it("leaves the documents their own spelling: the default naming's is the old tool's", function()
    local default = json.decode(support.entries(support.naming("default"), support.container())[1].value)
    assert.same({ "10.0.1.100", "49155", "4001" }, { default.ipaddress, default.host_port, default.port })
    assert.is_nil(default.address)
    local registrator = json.decode(support.entries(support.naming("registrator"), support.container())[1].value)
    assert.same({ "10.0.1.100", 49155 }, { registrator.address, registrator.port })
  end)

  it("lets a site hook change the address the default document shows, by either name", function()
    local naming = support.naming("default")
    local services_of = naming.services
    naming.services = function(c)
      local list = services_of(c)
      list[1].address, list[2].ipaddress = "192.0.2.1", "192.0.2.2"
      return list
    end
    local entries = support.entries(naming, support.container())
    assert.equal("192.0.2.1", json.decode(entries[1].value).ipaddress)
    assert.equal("192.0.2.2", json.decode(entries[2].value).ipaddress)
  end)
end)
