-- LuaRocks spec: registrar's default scripts and the site-script test kit.
--
--   luarocks --lua-version 5.4 make rockspec/registrar-scripts-0.1.0-1.rockspec --tree ~/.registrar-rocks
--
-- run from a clone.  The scripts install as registrar/scripts/ (naming/,
-- backends/, registrar/), the directory the daemon reads; the kit as
-- registrar.testing.  docs/site-script-kit.md tells how a team uses it.
rockspec_format = "3.0"
package = "registrar-scripts"
version = "0.1.0-1"   -- registrar's version (CMakeLists.txt), and the rockspec's first revision

source = {
  url = "git+file://.",   -- `luarocks make` builds the clone it runs in
}

description = {
  summary = "registrar's naming and backend scripts, and a kit to test site scripts with busted",
  detailed = [[
registrar keeps a service registry in step with a Docker host's containers;
Lua scripts decide what is written.  This rock holds those scripts and
registrar.testing, which runs a team's site script outside the daemon: the
container table the engine builds from `docker inspect`, the naming hooks
loaded as the daemon loads them, and fake registries that record what a
backend script sends.
]],
}

dependencies = {
  "lua >= 5.4, < 5.5",
  "lua-cjson >= 2.1.0",   -- Debian: lua-cjson
}

build = {
  type = "builtin",
  modules = {
    ["registrar.testing"] = "rockspec/lua/registrar/testing.lua",
    ["registrar.testing.calls"] = "rockspec/lua/registrar/testing/calls.lua",
    ["registrar.testing.config"] = "rockspec/lua/registrar/testing/config.lua",
    ["registrar.testing.container"] = "rockspec/lua/registrar/testing/container.lua",
    ["registrar.testing.fake_consul"] = "rockspec/lua/registrar/testing/fake_consul.lua",
    ["registrar.testing.fake_etcd"] = "rockspec/lua/registrar/testing/fake_etcd.lua",
    ["registrar.testing.fake_zookeeper"] = "rockspec/lua/registrar/testing/fake_zookeeper.lua",
    ["registrar.testing.inspect"] = "rockspec/lua/registrar/testing/inspect.lua",
    ["registrar.testing.ip"] = "rockspec/lua/registrar/testing/ip.lua",
    ["registrar.testing.json"] = "rockspec/lua/registrar/testing/json.lua",
    ["registrar.testing.modules"] = "rockspec/lua/registrar/testing/modules.lua",
    ["registrar.testing.registry"] = "rockspec/lua/registrar/testing/registry.lua",
    ["registrar.testing.state"] = "rockspec/lua/registrar/testing/state.lua",
    -- the default scripts, as the daemon's scripts directory holds them
    ["registrar.scripts.backends.consul"] = "scripts/backends/consul.lua",
    ["registrar.scripts.backends.consul.agent"] = "scripts/backends/consul/agent.lua",
    ["registrar.scripts.backends.consul.blocking"] = "scripts/backends/consul/blocking.lua",
    ["registrar.scripts.backends.consul.catalog"] = "scripts/backends/consul/catalog.lua",
    ["registrar.scripts.backends.consul.kv"] = "scripts/backends/consul/kv.lua",
    ["registrar.scripts.backends.consul.service"] = "scripts/backends/consul/service.lua",
    ["registrar.scripts.backends.etcd"] = "scripts/backends/etcd.lua",
    ["registrar.scripts.backends.etcd.v2"] = "scripts/backends/etcd/v2.lua",
    ["registrar.scripts.backends.etcd.v3"] = "scripts/backends/etcd/v3.lua",
    ["registrar.scripts.backends.file"] = "scripts/backends/file.lua",
    ["registrar.scripts.backends.zookeeper"] = "scripts/backends/zookeeper.lua",
    ["registrar.scripts.naming.default"] = "scripts/naming/default.lua",
    ["registrar.scripts.naming.registrator"] = "scripts/naming/registrator.lua",
    ["registrar.scripts.registrar.address"] = "scripts/registrar/address.lua",
    ["registrar.scripts.registrar.backend"] = "scripts/registrar/backend.lua",
    ["registrar.scripts.registrar.endpoints"] = "scripts/registrar/endpoints.lua",
    ["registrar.scripts.registrar.keys"] = "scripts/registrar/keys.lua",
    ["registrar.scripts.registrar.pipeline"] = "scripts/registrar/pipeline.lua",
    ["registrar.scripts.registrar.services"] = "scripts/registrar/services.lua",
    ["registrar.scripts.registrar.settings"] = "scripts/registrar/settings.lua",
    ["registrar.scripts.registrar.text"] = "scripts/registrar/text.lua",
    ["registrar.scripts.registrar.uri"] = "scripts/registrar/uri.lua",
  },
}
