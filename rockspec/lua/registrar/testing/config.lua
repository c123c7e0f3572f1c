-- registrar.config for the test kit: every key of engine/core/config_keys.def
-- with its type, default and range, and the checks the engine makes, so a
-- value the daemon refuses is refused here too, with the daemon's words.
-- A spec (tests/spec/kit_config_spec.lua) holds this table to the .def
-- file, and the agreement test to what the daemon hands its scripts.
--
-- Values come as the YAML file gives them: text, numbers, booleans, a list
-- for prefix_path, {host, port} for statsd, a table for site.

local config = {}

local WORDS = {
  log_level = { "debug", "info", "warn", "error" },
  log_format = { "text", "json" },
  service_ttl = { "prune", "ttl" },
  health = { "require", "ignore" },
  deregister = { "die", "stop" },
}

-- { name, type, default, min, max, check } in the order of the .def file.
config.keys = {
  { "docker", "string", "/var/run/docker.sock", check = "docker" },
  { "docker_tls_verify", "bool", "off" },
  { "docker_cert_path", "path" },
  { "interval", "ms", "3000", 10, 86400000 },
  { "ttl", "ms", "12000", 1000, 86400000, check = "ttl" },
  { "log", "path" },
  { "log_level", "choice", "info" },
  { "log_format", "choice", "text" },
  { "hostname", "string", check = "hostname" },
  { "ipaddress", "string", check = "ipaddress" },
  { "prefix_stats", "string", "registrar-service" },
  { "prefix_services", "string", "/services", check = "prefix" },
  { "prefix_hosts", "string", "/hosts", check = "prefix" },
  { "prefix_path", "list",
    "environment:ENVIRONMENT environment:NAME service:PORT service:HOST_PORT service:HOSTNAME",
    check = "prefix_path" },
  { "service_ttl", "choice", "prune" },
  { "backend", "string", "file:///var/lib/registrar/registry.json", check = "backend", shown = true },
  { "statsd", "hostport", port = 8125 },
  { "naming", "string", "default" },
  { "script", "path" },
  { "script_instructions", "count", "50000000", 100000, 100000000000 },
  { "script_timeout", "ms", "1000", 10, 600000 },
  { "script_memory", "mib", "512", 16, 65536 },
  { "health", "choice", "require" },
  { "network", "string" },
  { "explicit", "bool", "false" },
  { "register_self", "bool", "false" },
  { "concurrency", "count", "16", 1, 1024 },
  { "timeout", "ms", "5000", 100, 600000 },
  { "notify_wait", "ms", "500", 0, 600000 },
  { "listen", "string", check = "listen" },
  { "deregister", "choice", "die" },
  { "deregister_on_exit", "bool", "false" },
  { "username", "string" },
  { "password", "string", secret = true },
  { "token", "string", secret = true },
  { "ca_file", "path" },
  { "cert_file", "path" },
  { "key_file", "path" },
  { "site", "map", "{}" },
}

local by_name = {}
for _, k in ipairs(config.keys) do
  k.name, k.type, k.default, k.min, k.max = k[1], k[2], k[3], k[4], k[5]
  by_name[k.name] = k
end

-- What the kit takes when the daemon would ask the machine (`hostname -f`,
-- the default route's address): a test must not depend on the machine.
config.machine = { hostname = "localhost", ipaddress = "127.0.0.1" }

local UNIT = { ms = "milliseconds", mib = "MiB" }

local function fail(key, value, why, origin)
  if key.secret then error(("%s: (secret) %s (%s)"):format(key.name, why, origin), 0) end
  error(('%s: "%s" %s (%s)'):format(key.name, tostring(value):sub(1, 200), why, origin), 0)
end

local function has_control(s) return s:find("%c") ~= nil end

-- A YAML scalar's text.
local function scalar(key, v, origin)
  if type(v) == "boolean" then return v and "true" or "false" end
  if math.type(v) == "integer" then return ("%d"):format(v) end
  if type(v) == "number" then return tostring(v) end
  if type(v) ~= "string" then
    error(("%s: expected a single value, not a list or map (%s)"):format(key.name, origin), 0)
  end
  return v
end

-- text_to_long: digits, '-' allowed before them, nothing else.
local function whole_number(s)
  local sign, digits = s:match("^(-?)(%d+)$")
  if not digits then return nil end
  local n = math.tointeger(tonumber(digits))
  if not n then return nil end
  return sign == "-" and -n or n
end

local convert = {}

function convert.string(key, v, origin)
  v = scalar(key, v, origin)
  if has_control(v) then fail(key, v, "contains control characters", origin) end
  return v
end
convert.path = convert.string

local function number(key, v, origin)
  v = scalar(key, v, origin)
  local n = whole_number(v)
  local unit = key.type == "count" and (key.name == "concurrency" and "requests" or "instructions")
               or UNIT[key.type]
  if not n then fail(key, v, "is not a whole number of " .. unit, origin) end
  if n < key.min or n > key.max then
    fail(key, v, ("is out of range: %d to %d %s"):format(key.min, key.max, unit), origin)
  end
  return n
end
convert.ms, convert.count, convert.mib = number, number, number

local BOOLS = { [""] = false, ["0"] = false, ["false"] = false, ["no"] = false, ["off"] = false,
                ["1"] = true, ["true"] = true, ["yes"] = true, ["on"] = true }

function convert.bool(key, v, origin)
  v = scalar(key, v, origin)
  if BOOLS[v] == nil then fail(key, v, "is not a boolean (true or false)", origin) end
  return BOOLS[v]
end

function convert.choice(key, v, origin)
  v = scalar(key, v, origin)
  local words = WORDS[key.name]
  for _, w in ipairs(words) do if w == v then return v end end
  local listed = table.concat(words, ", ", 1, #words - 1) .. " or " .. words[#words]
  fail(key, v, "is not " .. listed, origin)
end

function convert.list(key, v, origin)
  local out = {}
  if type(v) == "table" then
    for _, item in ipairs(v) do
      if type(item) ~= "string" then fail(key, "(list)", "holds an element that is not a string", origin) end
      out[#out + 1] = item
    end
  else
    for item in scalar(key, v, origin):gmatch("[^ ,\t]+") do out[#out + 1] = item end
  end
  for _, item in ipairs(out) do
    if has_control(item) then fail(key, item, "contains control characters", origin) end
  end
  return out
end

function convert.hostport(key, v, origin)
  local text
  if type(v) == "table" then
    if type(v.host) ~= "string" then fail(key, "(map)", "needs host: and port:", origin) end
    text = v.host .. ":" .. (v.port ~= nil and scalar(key, v.port, origin) or tostring(key.port))
  else
    text = scalar(key, v, origin)
  end
  local host, port = text:match("^(.+):([^:]*)$")
  port = port and whole_number(port)
  if not host or not port or port < 1 or port > 65535 then fail(key, text, "is not HOST:PORT", origin) end
  return { host = host, port = port }
end

function convert.map(key, v, origin)
  if type(v) ~= "table" then fail(key, v, "must be a map in the YAML file", origin) end
  return v
end

---------------------------------------------------------------------------
-- the checks the types cannot make (config.c's check_*)

local is_ip = require("registrar.testing.ip").valid

local function dns_name(v)
  if #v == 0 or #v > 253 or v:sub(-1) == "-" then return false end
  local letter = false
  for label in (v .. "."):gmatch("([^.]*)%.") do
    if label == "" or #label > 63 or label:find("[^%w-]") or label:sub(1, 1) == "-" or label:sub(-1) == "-" then
      return false
    end
    letter = letter or label:find("[%a-]") ~= nil
  end
  return not v:find("%.$") and letter
end

local checks = {}

function checks.backend(key, v, origin)
  if not v:match("^%a[%w+.-]*://") then fail(key, v, "is not a URI like etcd://HOST:PORT or file:///PATH", origin) end
end

function checks.prefix(key, v, origin)
  if v:sub(1, 1) ~= "/" then fail(key, v, "must start with '/'", origin) end
  if #v > 255 then fail(key, v, "is longer than 255 bytes", origin) end
  if not utf8.len(v) then fail(key, v, "is not UTF-8", origin) end
  if v:find("//", 1, true) then fail(key, v, "has an empty segment ('//')", origin) end
  for segment in v:gmatch("[^/]+") do
    if segment == "." or segment == ".." then fail(key, v, "has a relative segment ('.' or '..')", origin) end
  end
end

function checks.prefix_path(key, list, origin)
  local types = { environment = true, string = true, service = true, label = true }
  for _, elem in ipairs(list) do
    local kind, rest = elem:match("^([^:]*):(.*)$")
    if not kind or kind == "" or rest == "" then fail(key, elem, "is not TYPE:VALUE", origin) end
    if not types[kind] then
      fail(key, elem, "has an unknown TYPE: use environment, string, service or label", origin)
    end
  end
end

function checks.docker(key, v, origin)
  if v:sub(1, 1) == "/" or v:match("^unix:///.") then return end
  local host = v:match("^tcp://(.*)$")
  if not host then fail(key, v, "is not a socket path, unix:///PATH or tcp://HOST:PORT", origin) end
  if host == "" or host:find("^[:/]") or host:find("@", 1, true) then fail(key, v, "has no HOST (tcp://HOST:PORT)", origin) end
  local port = host:sub(1, 1) == "[" and host:match("%]:([^/]*)") or (host:sub(1, 1) ~= "[" and host:match(":([^/]*)"))
  if port then
    local n = whole_number(port)
    if not n or n < 1 or n > 65535 then fail(key, v, "has a port that is not 1 to 65535", origin) end
  end
end

function checks.listen(key, v, origin)
  local host, port = v:match("^%[(.+)%]:(%d+)$")
  if not host then host, port = v:match("^([^:]+):(%d+)$") end
  if not host then port = v:match("^(%d+)$") end
  local n = port and #port <= 5 and whole_number(port)
  if not n or n > 65535 then fail(key, v, "is not PORT, HOST:PORT or [ADDRESS]:PORT", origin) end
end

function checks.ttl(key, v, origin, values)
  if values.service_ttl == "ttl" and values.ttl <= values.interval then
    fail(key, v, "must be longer than interval, or entries expire between refreshes", origin)
  end
end

function checks.hostname(key, v, origin)
  if v == "" or v:find("/", 1, true) or v == "." or v == ".." then
    fail(key, v, "is not usable as a host name (empty, '/', or dots only)", origin)
  end
end

function checks.ipaddress(key, v, origin)
  if not (is_ip(v) or dns_name(v)) then fail(key, v, "is not an IPv4 or IPv6 address, nor a DNS name", origin) end
end

---------------------------------------------------------------------------

-- config.build(given, origin) -> values (every key that is set, secrets
-- included), or raises "key: "value" why (origin)" as the daemon's start-up.
function config.build(given, origin)
  origin = origin or "testing.new"
  for name in pairs(given) do
    if not by_name[name] then
      error(('%s: unknown key "%s" (see `registrar help config`)'):format(origin, tostring(name)), 0)
    end
  end
  local values = {}
  for _, key in ipairs(config.keys) do
    local v = given[key.name]
    local where = v ~= nil and origin or "default"
    if v == nil then v = config.machine[key.name] or key.default end
    if v ~= nil then
      if key.type == "map" and v == "{}" then v = {} end
      values[key.name] = convert[key.type](key, v, where)
    end
  end
  for _, key in ipairs(config.keys) do
    if key.check and values[key.name] ~= nil then
      checks[key.check](key, values[key.name], given[key.name] ~= nil and origin or "default", values)
    end
  end
  return values
end

function config.secret(name) return by_name[name] and by_name[name].secret or false end

return config
