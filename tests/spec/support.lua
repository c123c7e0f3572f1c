-- Helpers shared by the specs: load a script the way the engine does (its
-- hooks land in a table of their own), set the configuration, and build
-- containers in the shape the engine hands to naming.

local registrar = require "registrar"

local support = {}

local scripts = assert(os.getenv("REGISTRAR_SCRIPTS"), "run the specs through ctest (REGISTRAR_SCRIPTS unset)")
support.scripts = scripts

-- The configuration a spec starts from: the documented defaults.
function support.configure(overrides)
  local config = registrar.config
  for k in pairs(config) do config[k] = nil end
  config.prefix_services = "/services"
  config.prefix_path = {
    "environment:ENVIRONMENT", "environment:NAME",
    "service:PORT", "service:HOST_PORT", "service:HOSTNAME",
  }
  config.hostname = "mesos-master"
  config.ipaddress = "10.0.1.100"
  config.health = "require"
  for k, v in pairs(overrides or {}) do config[k] = v end
  registrar.host.hostname = config.hostname
  registrar.host.ipaddress = config.ipaddress
  return config
end

-- Runs scripts/<path> with its globals in a table of their own.
function support.load_script(path, env)
  env = env or setmetatable({}, { __index = _G })
  local chunk = assert(loadfile(scripts .. "/" .. path, "t", env))
  chunk()
  return env
end

function support.naming(name)
  return support.load_script("naming/" .. (name or "default") .. ".lua")
end

-- A container as the engine passes it; fields can be overridden.
function support.container(fields)
  local c = {
    id = "50ccf6e665e0f0e0a6b2f7e1c8d3a4b5c6d7e8f90a1b2c3d4e5f60718293a4f0",
    name = "/jovial_albattani",
    image = "coreos/etcd",
    hostname = "50ccf6e665e0",
    env = { APP = "etcd", NAME = "etc", ENVIRONMENT = "prod" },
    labels = {},
    state = "running",
    running = true,
    network_mode = "bridge",
    networks = { bridge = { ip = "172.17.0.2", gateway = "172.17.0.1" } },
    ports = {
      { port = 4001, proto = "tcp", host_ip = "0.0.0.0", host_port = 49155 },
      { port = 7001, proto = "tcp", host_ip = "0.0.0.0", host_port = 49156 },
    },
  }
  for k, v in pairs(fields or {}) do c[k] = v end
  return c
end

-- The pipeline the engine runs, over the hooks of a naming table.
function support.entries(naming, container)
  local pipeline = require "registrar.pipeline"
  return pipeline.new(naming)(container)
end

function support.keys_of(entries)
  local out = {}
  for i, e in ipairs(entries) do out[i] = e.key end
  return out
end

-- A site script of the given text in a temporary file; returns its path.
-- finally: busted's, which a spec sees and this module does not; the file
-- is removed when the spec ends.
function support.site_script(text, finally)
  local path = os.tmpname()
  local f = assert(io.open(path, "w"))
  f:write(text)
  f:close()
  finally(function() os.remove(path) end)
  return path
end

-- Captures registrar.log output for the duration of fn.
function support.capture_log(fn)
  local lines, saved = {}, {}
  for _, level in ipairs { "debug", "info", "warn", "error" } do
    saved[level] = registrar.log[level]
    registrar.log[level] = function(fmt, ...)
      lines[#lines + 1] = level .. " " .. (select("#", ...) > 0 and fmt:format(...) or fmt)
    end
  end
  local ok, err = pcall(fn)
  for level, f in pairs(saved) do registrar.log[level] = f end
  if not ok then error(err, 0) end
  return table.concat(lines, "\n")
end

return support
