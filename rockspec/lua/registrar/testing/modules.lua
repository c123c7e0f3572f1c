-- The `registrar` table a kit state's scripts get, as engine/lua/modules.c
-- assembles it, its C modules replaced by plain Lua:
--
--   json, base64, digest, log, metrics, file, http, zk, docker,
--   config (read-only), host, backends, default (set after naming loads)
--
-- What the engine does outside the process is kept in the state: log
-- lines in state.log, files in state.files, signals in state.signals.
-- registrar.http and registrar.zk hand requests to the fake registry
-- attached to the state (registrar.testing.registry), and only from a
-- backend hook, as in the daemon.

local json = require "registrar.testing.json"

local modules = {}

local function check_string(v, n, fname)
  if type(v) == "number" then return tostring(v) end
  if type(v) ~= "string" then
    error(("bad argument #%d to '%s' (string expected, got %s)"):format(n, fname, v == nil and "no value" or type(v)), 3)
  end
  return v
end

---------------------------------------------------------------------------
-- base64 and digest: registrar_base64.c, registrar_digest.c

local ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
local SEXTET = {}
for i = 1, 64 do SEXTET[ALPHABET:byte(i)] = i - 1 end

local base64 = {}

function base64.encode(s)
  s = check_string(s, 1, "encode")
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local v = (a << 16) | ((b or 0) << 8) | (c or 0)
    out[#out + 1] = ALPHABET:sub((v >> 18) + 1, (v >> 18) + 1) .. ALPHABET:sub(((v >> 12) & 63) + 1, ((v >> 12) & 63) + 1)
                    .. (b and ALPHABET:sub(((v >> 6) & 63) + 1, ((v >> 6) & 63) + 1) or "=")
                    .. (c and ALPHABET:sub((v & 63) + 1, (v & 63) + 1) or "=")
  end
  return table.concat(out)
end

function base64.decode(s)
  s = check_string(s, 1, "decode")
  local out, v, bits = {}, 0, 0
  local i = 1
  while i <= #s and s:byte(i) ~= 61 do
    local d = SEXTET[s:byte(i)]
    if not d then return nil, ("invalid base64 at byte %d"):format(i) end
    v, bits = ((v << 6) | d) & 0xffffff, bits + 6
    if bits >= 8 then
      bits = bits - 8
      out[#out + 1] = string.char((v >> bits) & 0xff)
    end
    i = i + 1
  end
  for j = i, #s do
    if s:byte(j) ~= 61 then return nil, ("invalid base64 at byte %d"):format(j) end
  end
  return table.concat(out)
end

modules.base64 = base64

-- FNV-1a, 64 bits: Lua's integers wrap as the C unsigned long long does.
local function digest(s)
  s = check_string(s, 1, "digest")
  local h = -3750763034362895579          -- 14695981039346656037 as a signed 64-bit integer
  for i = 1, #s do
    h = (h ~ s:byte(i)) * 1099511628211
  end
  return ("%016x"):format(h)
end

---------------------------------------------------------------------------
-- log: registrar_log.c, lines kept in the state

local LEVELS = { debug = 1, info = 2, warn = 3, error = 4, warning = 3 }
local NAMES = { "debug", "info", "warn", "error" }

local function new_log(state)
  local log = {}
  local threshold = LEVELS[state.values.log_level] or 2
  local function at(level)
    return function(...)
      if level < threshold then return end
      local message
      if select("#", ...) <= 1 then message = tostring((...)) else message = string.format(...) end
      state.log[#state.log + 1] = { level = NAMES[level], message = message }
      if state.echo_log then io.stderr:write(("%-5s %s\n"):format(NAMES[level], message)) end
    end
  end
  log.debug, log.info, log.warn, log.error = at(1), at(2), at(3), at(4)
  function log.enabled(level)
    local n = type(level) == "string" and LEVELS[level:lower()]
    if not n then error("bad argument #1 to 'enabled' (not a log level)", 2) end
    return n >= threshold
  end
  return log
end

---------------------------------------------------------------------------
-- metrics: kept in the state (the daemon also sends them to statsd)

local function new_metrics(state)
  local values = state.metrics
  return {
    increment = function(name, n)
      name = check_string(name, 1, "increment")
      values[name] = (values[name] or 0) + (n ~= nil and math.tointeger(n) or 1)
    end,
    gauge = function(name, v) values[check_string(name, 1, "gauge")] = v + 0.0 end,
    timing = function(name, ms) values[check_string(name, 1, "timing")] = ms + 0.0 end,
    value = function(name) return (values[check_string(name, 1, "value")] or 0) + 0.0 end,
  }
end

---------------------------------------------------------------------------
-- file: registrar_file.c over the state's files, never the disk

local function new_file(state)
  local files = state.files
  local file = {}
  function file.kind(path)
    path = check_string(path, 1, "kind")
    return files[path] ~= nil and "file" or "missing"
  end
  function file.read(path)
    path = check_string(path, 1, "read")
    if files[path] == nil then return nil, path .. ": No such file or directory", "missing" end
    return files[path]
  end
  function file.replace(path, text)
    files[check_string(path, 1, "replace")] = check_string(text, 2, "replace")
    return true
  end
  function file.clean(path)
    check_string(path, 1, "clean")
    return 0
  end
  return file
end

---------------------------------------------------------------------------
-- http, zk, docker: only from a backend hook (or changed()), as the engine

local function in_task(state)
  local co, main = coroutine.running()
  return not main and state.tasks[co] and coroutine.isyieldable()
end

local function new_http(state)
  local http = {}
  function http.request(req)
    if type(req) ~= "table" then
      error(("bad argument #1 to 'request' (table expected, got %s)"):format(req == nil and "no value" or type(req)), 2)
    end
    if not in_task(state) then
      error("registrar.http.request must be called from a backend hook, "
            .. "not from naming or a coroutine of the script's own", 2)
    end
    if not state.registry then
      error("registrar.http.request: no fake registry answers here (testing: kit:registry() attaches one)", 2)
    end
    return state.registry:http(req)
  end
  return http
end

local function new_zk(state)
  return {
    connect = function(params)
      if type(params) ~= "table" then
        error(("bad argument #1 to 'connect' (table expected, got %s)"):format(type(params)), 2)
      end
      if not state.registry then
        error("registrar.zk.connect: no fake registry answers here (testing: kit:registry() attaches one)", 2)
      end
      return state.registry:zk_connect(params, function(method)
        if not in_task(state) then
          error(("registrar.zk: %s must be called from a backend hook, "
                 .. "not from naming or a coroutine of the script's own"):format(method), 3)
        end
      end)
    end,
  }
end

local function new_docker(state)
  return {
    signal = function(target, signal)
      if not in_task(state) then
        error("registrar.docker.signal must be called from changed() or a backend hook", 2)
      end
      local who = type(target) == "table" and (target.id or target.name) or target
      state.signals[#state.signals + 1] = { container = who, signal = signal }
      return true
    end,
  }
end

---------------------------------------------------------------------------
-- config and host: registrar_config.c

-- A value as registrar.config holds it: lists and the site map as the
-- engine pushes them (tagged tables), everything else as it is.
local function config_value(name, v)
  if name == "site" then
    local function copy(t)
      if type(t) ~= "table" then return t end
      local out = {}
      for k, item in pairs(t) do out[k] = copy(item) end
      local first = next(out)
      if first ~= nil and math.type(first) == "integer" then return json.array(out) end
      return json.object(out)
    end
    return copy(v)
  end
  if type(v) == "table" then
    local out = {}
    for k, item in pairs(v) do out[k] = item end
    return out
  end
  return v
end

-- A URI as logs and registrar.config show it (text_redact_uri): the
-- password after "user:", or a bare token, as ***.
function modules.redact(uri)
  local start = uri:find("://", 1, true)
  if not start then return uri end
  start = start + 3
  local stop = (uri:find("[/?#]", start) or #uri + 1) - 1
  local authority = uri:sub(start, stop)
  local at = authority:match(".*()@")
  if not at then return uri end
  local colon = authority:sub(1, at - 1):find(":", 1, true)
  if colon then return uri:sub(1, start + colon - 2) .. ":***" .. uri:sub(start + at - 1) end
  return uri:sub(1, start - 1) .. "***" .. uri:sub(start + at - 1)
end

local function readonly(values)
  return setmetatable({}, {
    __index = values,
    __newindex = function(_, k)
      error(('registrar.config is read-only (tried to set "%s")'):format(tostring(k)), 0)
    end,
    __pairs = function() return next, values, nil end,
  })
end

-- registrar.config's values: every key set, but the secrets; backend shown
-- with its password redacted.
function modules.visible_config(values)
  local shown = {}
  for name, v in pairs(values) do
    if name ~= "password" and name ~= "token" then shown[name] = config_value(name, v) end
  end
  if shown.backend then shown.backend = modules.redact(shown.backend) end
  return shown
end

-- The copy of the configuration open(uri, config) gets: with the secrets.
function modules.open_config(values)
  local full = modules.visible_config(values)
  full.password, full.token = values.password, values.token
  return full
end

function modules.new(state)
  return {
    base64 = base64,
    config = readonly(modules.visible_config(state.values)),
    digest = digest,
    docker = new_docker(state),
    file = new_file(state),
    host = { hostname = state.values.hostname, ipaddress = state.values.ipaddress, container = state.container_id },
    http = new_http(state),
    json = { encode = json.encode, decode = json.decode, array = json.array, object = json.object,
             is_array = json.is_array, null = json.null },
    log = new_log(state),
    metrics = new_metrics(state),
    zk = new_zk(state),
    backends = {},
  }
end

return modules
