-- One daemon's scripts, loaded as engine/lua/script.c loads them, in a
-- global environment of their own so that two kit states (two tests, two
-- configurations) never see each other's hooks:
--
--   1. package.path: the site script's directory, then the scripts
--   2. the naming script (`naming`: default, registrator or a file)
--   3. registrar.default: the naming's hooks, before the site script
--   4. the site script (`script`)
--   5. the backend for `backend` (registrar.backend.load: its check())
--   6. the pipeline over the hooks, with the backend's compare()
--   7. changed(summary), if a script defines it

local calls = require "registrar.testing.calls"
local modules = require "registrar.testing.modules"

local State = {}
State.__index = State

local STANDARD = {
  "assert", "collectgarbage", "error", "getmetatable", "ipairs", "next", "pairs", "pcall", "print",
  "rawequal", "rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber", "tostring", "type",
  "xpcall", "_VERSION", "warn",
}
local LIBRARIES = { "coroutine", "debug", "io", "math", "os", "string", "table", "utf8" }

local function is_file(path)
  local f = io.open(path, "r")
  if not f then return false end
  local ok, _, code = f:read(0)
  f:close()
  return ok ~= nil or code ~= 21          -- 21: EISDIR, a directory opens but does not read
end

-- The globals a script sees, with require, dofile, loadfile and load bound
-- to them: a module a script requires shares its globals, as in the daemon.
local function environment(state, path)
  local env, loaded = {}, state.loaded
  for _, name in ipairs(STANDARD) do env[name] = _G[name] end
  for _, name in ipairs(LIBRARIES) do env[name] = _G[name]; loaded[name] = _G[name] end
  env._G = env
  loaded._G = env
  env.package = {
    path = path, cpath = "", config = package.config, loaded = loaded, preload = {},
    searchpath = package.searchpath, searchers = {},
  }
  loaded.package = env.package

  function env.loadfile(file, mode, ...)
    if select("#", ...) > 0 then return loadfile(file, mode or "bt", ...) end
    return loadfile(file, mode or "bt", env)
  end
  function env.load(chunk, name, mode, ...)
    if select("#", ...) > 0 then return load(chunk, name, mode or "bt", ...) end
    return load(chunk, name, mode or "bt", env)
  end
  function env.dofile(file)
    local chunk, err = env.loadfile(file)
    if not chunk then error(err, 2) end
    return chunk()
  end
  function env.require(name)
    if type(name) ~= "string" then
      error(("bad argument #1 to 'require' (string expected, got %s)"):format(type(name)), 2)
    end
    if loaded[name] ~= nil then return loaded[name] end
    local file, tried = package.searchpath(name, env.package.path)
    if not file then
      error(("module '%s' not found:\n\tno field package.preload['%s']\n\t%s"):format(name, name, tried), 2)
    end
    local chunk, err = loadfile(file, "bt", env)
    if not chunk then
      error(("error loading module '%s' from file '%s':\n\t%s"):format(name, file, err), 2)
    end
    local result = chunk(name, file)
    if result ~= nil then loaded[name] = result end
    if loaded[name] == nil then loaded[name] = true end
    return loaded[name], file
  end
  return env
end

-- Where a value came from, as the daemon's messages say it.
local function origin(options, key)
  return options.given and options.given[key] and (options.origin or "testing.new") or "default"
end

-- "default" and "registrator" name scripts of ours; anything else is a file.
local function naming_file(values, dir, options)
  local naming = values.naming
  local path = (naming:find("/", 1, true) or naming:find(".lua", 1, true)) and naming
               or (dir .. "/naming/" .. naming .. ".lua")
  if not is_file(path) then
    error(('naming: "%s" is not a naming script: no file %s (%s)'):format(naming, path, origin(options, "naming")), 0)
  end
  return path
end

local function site_path(script)
  if not script then return "" end
  local dir = script:match("^(.*)/[^/]*$")
  return dir and (dir .. "/?.lua;") or "./?.lua;"
end

-- state.new(values, options) -> the loaded state, or raises what the
-- daemon's start-up would print (without "registrar: ").
-- values: registrar.testing.config.build's; options: {scripts, files,
-- echo_log, container_id (the container registrar would run in), given
-- (the keys set, for messages), origin}
function State.new(values, options)
  local self = setmetatable({
    values = values,
    loaded = {},
    log = {},
    files = options.files or {},
    metrics = {},
    signals = {},
    tasks = setmetatable({}, { __mode = "k" }),
    echo_log = options.echo_log,
    container_id = options.container_id,
    limits = { instructions = values.script_instructions, timeout_ms = values.script_timeout },
  }, State)
  local dir = options.scripts
  self.env = environment(self, ("%s%s/?.lua;%s/?/init.lua"):format(site_path(values.script), dir, dir))
  self.registrar = modules.new(self)
  self.loaded.registrar = self.registrar

  self:load(naming_file(values, dir, options))
  local defaults = {}
  for _, hook in ipairs { "services", "name", "key", "document", "ignore" } do defaults[hook] = self.env[hook] end
  self.registrar.default = defaults
  if values.script then
    if not is_file(values.script) then
      error(("script: no such file %s (%s)"):format(values.script, origin(options, "script")), 0)
    end
    self:load(values.script)
  end
  self.backend = self:call(function()
    return self.env.require("registrar.backend").load(values.backend, origin(options, "backend"))
  end)
  self.pipeline = self:call(function()
    return self.env.require("registrar.pipeline").new(nil, self.backend.compare)
  end)
  local changed = self.env.changed
  if changed ~= nil and type(changed) ~= "function" then
    error(("hook changed is a %s, not a function"):format(type(changed)), 0)
  end
  self.changed = changed
  return self
end

function State:load(path)
  local chunk, err = loadfile(path, "t", self.env)
  if not chunk then error(err, 0) end
  self:call(chunk)
end

-- Runs fn under the budget, inline as naming hooks run; raises the message.
function State:call(fn, ...)
  return calls.must(self.limits, nil, fn, ...)
end

-- Runs fn as a backend hook: registrar.http and registrar.zk may be called.
-- Returns true, results... or false, message.
function State:task(fn, ...)
  return calls.run(self.limits, self.tasks, fn, ...)
end

-- The naming pipeline over one container: entries, or nil and the message
-- `registrar check` prints after "error: ".
function State:entries(container)
  local ok, entries = calls.run(self.limits, nil, self.pipeline, container)
  if not ok then return nil, entries end
  return entries
end

-- The configuration open(uri, config) is given, secrets included.
function State:open_config()
  return modules.open_config(self.values)
end

return State
