-- A team's busted spec for its site script, examples/teams.lua, with the
-- test kit of the registrar-scripts rock (docs/site-script-kit.md):
--
--   eval "$(luarocks --lua-version 5.4 path --tree ~/.registrar-rocks)"
--   lua5.4 /usr/bin/busted examples/spec/teams_spec.lua     # Debian's busted, under Lua 5.4
--
-- No daemon, no Docker, no registry: the kit loads the site script over
-- the default naming as `registrar run --script examples/teams.lua` does.

local testing = require "registrar.testing"

local here = debug.getinfo(1, "S").source:match("^@(.*)/spec/[^/]*$") or "."

describe("teams.lua", function()
  local kit

  before_each(function()
    kit = testing.new { script = here .. "/teams.lua", hostname = "web-3", ipaddress = "10.0.0.5" }
  end)

  it("files a team's container under /teams/<team>/<name>/<host>:<port>", function()
    local search = testing.container { name = "search", image = "search/api:2.1", labels = { team = "search" },
                                       ports = { "49155:8080" } }
    assert.same({ "/teams/search/api-8080/web-3:49155" }, kit:keys(search))
  end)

  it("leaves a container without a team label to the default layout", function()
    local web = testing.container { name = "web", image = "nginx", env = { ENVIRONMENT = "prod" },
                                    ports = { "49156:80" } }
    local entry = kit:entries(web)[1]
    assert.equal("/services/prod/80/49156/" .. web.hostname, entry.key)
    assert.equal("10.0.0.5", entry.document.ipaddress)
  end)

  it("skips a team label that cannot be a key segment, and says why", function()
    local bad = testing.container { name = "sneaky", labels = { team = ".." }, ports = { "49157:80" } }
    assert.same({}, kit:entries(bad))
    assert.matches("label team is a relative path", kit:warnings()[1], 1, true)
  end)

  it("writes one etcd v3 transaction per change, beside this host's ownership record", function()
    kit = testing.new { script = here .. "/teams.lua", hostname = "web-3", ipaddress = "10.0.0.5",
                        backend = "etcd://10.0.0.9:2379" }
    local reg = kit:registry()
    local search = testing.container { name = "search", image = "search/api", labels = { team = "search" },
                                       ports = { "49155:8080" } }
    assert.truthy(reg:sync { search })
    assert.equal("http://10.0.0.9:2379/v3/kv/txn", reg.requests[#reg.requests].url)
    local held = reg:keys()
    assert.equal("/teams/search/api-8080/web-3:49155", held["/teams/search/api-8080/web-3:49155"] and
                 testing.json.decode(held["/teams/search/api-8080/web-3:49155"]).path)
    assert.truthy(held["/hosts/web-3/keys/teams/search/api-8080/web-3:49155"])
    -- a second resync finds everything in place: nothing is written
    local again = reg:sync { search }
    assert.same({}, again.registered)
  end)
end)
