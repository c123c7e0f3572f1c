-- registrar.testing: run a site script outside the daemon, under busted
-- or plain lua5.4, with the results `registrar check` would print.
--
--   local testing = require "registrar.testing"
--   local kit = testing.new { script = "site.lua", hostname = "web-3", ipaddress = "10.0.0.5" }
--   local web = testing.container { name = "web", image = "nginx", ports = { "49155:80" },
--                                   env = { ENVIRONMENT = "prod" } }
--   local entries = kit:entries(web)          -- { {key, value, document, service}, ... }
--   assert.equal("/services/prod/80/49155/" .. web.hostname, entries[1].key)
--
-- testing.new takes the configuration keys of the YAML file
-- (`registrar help config`); the naming script, the site script and the
-- backend load in the daemon's order, in an environment of their own.
-- docs/site-script-kit.md tells where the kit cannot be the daemon.

local config = require "registrar.testing.config"
local container = require "registrar.testing.container"
local inspect = require "registrar.testing.inspect"
local json = require "registrar.testing.json"
local State = require "registrar.testing.state"

local testing = {}

-- registrar's version: the host document the engine writes says it.
testing.VERSION = "0.1.0"
testing.json = json

-- The default scripts: $REGISTRAR_SCRIPTS, as the daemon reads it, else
-- those installed with the rock (registrar/scripts/ on package.path).
function testing.scripts_dir()
  local env = os.getenv("REGISTRAR_SCRIPTS")
  if env and env ~= "" then return env end
  local found = package.searchpath("registrar.scripts.naming.default", package.path)
  if not found then
    error("registrar.testing: cannot find the default scripts: set REGISTRAR_SCRIPTS, "
          .. "or install the registrar-scripts rock", 2)
  end
  return (found:gsub("/naming/default%.lua$", ""))
end

---------------------------------------------------------------------------
-- containers

-- testing.inspect(fields) -> a `docker inspect` answer (registrar.testing.inspect)
testing.inspect = inspect.new

-- testing.from_inspect(answer[, peer_networks]) -> container, note | nil, why
testing.from_inspect = container.from_inspect

-- testing.container(fields or answer) -> the container table naming gets.
function testing.container(fields)
  local answer = (type(fields) == "table" and fields.Id) and fields or inspect.new(fields)
  local c, why = container.from_inspect(answer)
  if not c then error("registrar.testing.container: " .. why, 2) end
  return c
end

-- testing.read_inspect(path) -> the answers in a `docker inspect` file:
-- the list it prints, or one object.
function testing.read_inspect(path)
  local f, err = io.open(path, "rb")
  if not f then error("registrar.testing: " .. err, 2) end
  local text = f:read("a")
  f:close()
  local doc, why = json.decode(text)
  if doc == nil then error(("registrar.testing: %s: not JSON: %s"):format(path, why), 2) end
  if json.is_object(doc) then return { doc } end
  if not json.is_array(doc) then
    error(("registrar.testing: %s: not a `docker inspect` answer or a list of them"):format(path), 2)
  end
  return doc
end

-- testing.containers(path) -> the container tables of a `docker inspect` file.
function testing.containers(path)
  local out = {}
  for i, answer in ipairs(testing.read_inspect(path)) do
    local c, why = container.from_inspect(answer)
    if not c then error(("registrar.testing: container #%d of %s: %s"):format(i, path, why), 2) end
    out[i] = c
  end
  return out
end

---------------------------------------------------------------------------
-- a kit: one daemon's configuration and scripts

local Kit = {}
Kit.__index = Kit

-- testing.new(config[, options]) -> kit, or raises the line the daemon's
-- start-up would print.  options: scripts (the default scripts' dir),
-- files (path -> text: what registrar.file finds), echo_log (print the
-- scripts' log lines to stderr as they come), container_id (the id of the
-- container registrar runs in: registrar.host.container).
function testing.new(given, options)
  given, options = given or {}, options or {}
  local values = config.build(given, options.origin)
  local keys = {}
  for k in pairs(given) do keys[k] = true end
  local state = State.new(values, {
    scripts = options.scripts or testing.scripts_dir(), files = options.files, echo_log = options.echo_log,
    container_id = options.container_id, given = keys, origin = options.origin,
  })
  return setmetatable({
    state = state, registrar = state.registrar, config = state.registrar.config,
    log = state.log, files = state.files, signals = state.signals,
  }, Kit)
end

local function as_container(c)
  if type(c) == "table" and c.Id then return testing.container(c) end
  return c
end

-- The label the daemon's log and `check` give a container: "/web (3f2ad1a466ff)".
local function label(c)
  return ("%s (%s)"):format(type(c.name) == "string" and c.name or "?", (type(c.id) == "string" and c.id or "?"):sub(1, 12))
end

-- kit:try(container) -> entries | nil, message (a hook failed: the daemon
-- keeps that container's registrations as they were).
function Kit:try(c)
  return self.state:entries(as_container(c))
end

-- kit:entries(container) -> entries, or raises "container …: message".
function Kit:entries(c)
  c = as_container(c)
  local entries, why = self.state:entries(c)
  if not entries then error(("container %s: %s"):format(label(c), why), 2) end
  return entries
end

-- kit:keys(container) -> the keys, in order.
function Kit:keys(c)
  local out = {}
  for i, e in ipairs(self:entries(c)) do out[i] = e.key end
  return out
end

-- kit:warnings() -> the log lines at warn and error, as text.
function Kit:warnings()
  local out = {}
  for _, line in ipairs(self.log) do
    if line.level == "warn" or line.level == "error" then out[#out + 1] = line.message end
  end
  return out
end

-- kit:check(answers) -> what `registrar check --json --containers FILE`
-- prints for those `docker inspect` answers (or container tables):
-- { containers = { {index, container, note, error, entries = {{name, key, value}}, warnings}, … } }
function Kit:check(answers)
  local report, holders = { containers = json.array {} }, {}
  for i, answer in ipairs(answers) do
    local item = json.object { index = i }
    report.containers[i] = item
    local c, note = answer, nil
    if type(answer) ~= "table" or answer.id == nil then c, note = container.from_inspect(answer) end
    if not c then
      item.error = note
    else
      item.container, item.note = label(c), note
      local entries, why = self.state:entries(c)
      if not entries then
        item.error = why
      else
        item.entries = json.array {}
        for _, e in ipairs(entries) do
          local name = type(e.service.name) == "string" and e.service.name or nil
          item.entries[#item.entries + 1] = json.object { name = name, key = e.key, value = e.value }
          if holders[e.key] then
            item.warnings = item.warnings or json.array {}
            item.warnings[#item.warnings + 1] = ("key %s is named by containers %s and %s; keeping it for the first")
                                                :format(e.key, holders[e.key], item.container)
          else
            holders[e.key] = item.container
          end
        end
      end
    end
  end
  return report
end

-- kit:registry([options]) -> a fake registry for the kit's backend URI
-- (registrar.testing.registry).
function Kit:registry(options)
  return require("registrar.testing.registry").new(self, options)
end

return testing
