-- The container table the engine hands to naming, from `docker inspect`
-- output: engine/docker/container.c, rule by rule.
--
--   { id, name, image, hostname, env = {K = V}, labels = {}, state, running,
--     health, stop_timeout, network_mode,
--     networks = { <name> = {ip, ip6, gateway, mac} },
--     ports = { {port, proto, host_ip, host_port}, ... } }   -- sorted
--
-- Nothing in the input is trusted: a field of the wrong type is skipped,
-- and what is left out because it cannot be used (a value over 16 KiB, a
-- HostIp that is not an address, a protocol Docker does not publish) is
-- counted in the notes, the first one in words.

local json = require "registrar.testing.json"
local ip = require "registrar.testing.ip"

local container = {}

container.MAX_VALUE = 16384

local function is_object(v)
  if type(v) ~= "table" or json.is_array(v) then return false end
  return json.is_object(v) or next(v) == nil or type(next(v)) == "string"
end

local function is_array(v)
  if type(v) ~= "table" or json.is_object(v) then return false end
  return json.is_array(v) or next(v) == nil or math.type(next(v)) == "integer"
end

local function field(obj, name)
  if is_object(obj) then return obj[name] end
end

local function string_field(obj, name)
  local v = field(obj, name)
  return type(v) == "string" and v or nil
end

-- An object's members in a fixed order: Docker's order is lost once the
-- text is read into a Lua table, so the kit takes them sorted.
local function members(obj)
  local names = {}
  if not is_object(obj) then return function() end end
  for k in pairs(obj) do if type(k) == "string" then names[#names + 1] = k end end
  table.sort(names)
  local i = 0
  return function()
    i = i + 1
    if names[i] then return names[i], obj[names[i]] end
  end
end

local Notes = {}
Notes.__index = Notes

function Notes:add(fmt, ...)
  self.count = self.count + 1
  if self.count == 1 then self.first = fmt:format(...) end
end

-- "env X is 70000 bytes, over 16384: left out (and 2 more)"
function Notes:text()
  if self.count == 0 then return nil end
  if self.count == 1 then return self.first end
  return ("%s (and %d more)"):format(self.first, self.count - 1)
end

local function new_notes() return setmetatable({ count = 0 }, Notes) end

local function fits(notes, kind, name, value_len)
  if #name <= container.MAX_VALUE and value_len <= container.MAX_VALUE then return true end
  local shown = #name > 40 and (name:sub(1, 40) .. "...") or name
  notes:add("%s%s%s is %d bytes, over %d: left out", kind, #name > 0 and " " or "", shown,
            math.max(#name, value_len), container.MAX_VALUE)
  return false
end

local function add_string(t, name, value)
  if value ~= nil and value ~= "" then t[name] = value end
end

local function add_text(t, name, value, notes)
  if value ~= nil and fits(notes, name, "", #value) then add_string(t, name, value) end
end

-- "K=V" list -> map; the value keeps every '=' after the first, the last
-- of a name wins, and "NAME" alone (an unset variable) is skipped.
local function env_map(list, notes)
  local env = json.object {}
  if not is_array(list) then return env end
  for _, kv in ipairs(list) do
    local name, value
    if type(kv) == "string" then name, value = kv:match("^([^=]+)=(.*)$") end
    if name and fits(notes, "env", name, #value) then env[name] = value end
  end
  return env
end

local function label_map(obj, notes)
  local out = json.object {}
  for name, value in members(obj) do
    if type(value) == "string" and fits(notes, "label", name, #value) then out[name] = value end
  end
  return out
end

-- Addresses go into documents and keys: only what parses as one.
local function address_field(obj, name, notes)
  local v = string_field(obj, name)
  if v == nil or v == "" or ip.valid(v) then return v end
  notes:add('%s "%s" is not an IP address: left out', name, v:sub(1, 40))
  return nil
end

local function networks_of(inspect, notes)
  local out = json.object {}
  for name, net in members(field(field(inspect, "NetworkSettings"), "Networks")) do
    if is_object(net) then
      local n = json.object {}
      add_string(n, "ip", address_field(net, "IPAddress", notes))
      add_string(n, "ip6", address_field(net, "GlobalIPv6Address", notes))
      add_string(n, "gateway", address_field(net, "Gateway", notes))
      add_string(n, "mac", string_field(net, "MacAddress"))
      out[name] = n
    end
  end
  return out
end

-- strtol(s, &end, 10): the number and what follows it.
local function strtol(s)
  local sign, digits, rest = s:match("^[ \t\n\v\f\r]*([+-]?)(%d+)(.*)$")
  if not digits then return nil, s end
  local n = math.tointeger(tonumber(digits)) or math.maxinteger
  return sign == "-" and -n or n, rest
end

local PROTOCOLS = { tcp = true, udp = true, sctp = true }

-- "4001/tcp" -> 4001, "tcp"; nil when it is not a port of a protocol
-- Docker publishes (the protocol goes into keys).
local function parse_port_key(key, notes)
  local port, rest = strtol(key)
  if not port or port < 1 or port > 65535 or (rest ~= "" and rest:sub(1, 1) ~= "/") then
    notes:add('port "%s" is not PORT/PROTOCOL: left out', key:sub(1, 40))
    return nil
  end
  if rest == "" then return port, "tcp" end
  local proto = rest:sub(2)
  if PROTOCOLS[proto] then return port, proto end
  notes:add('port %d has protocol "%s", not tcp, udp or sctp: left out', port, proto:sub(1, 40))
  return nil
end

local function parse_host_port(s)
  if s == nil or s == "" then return nil end
  local port, rest = strtol(s)
  if port and rest == "" and port >= 1 and port <= 65535 then return port end
end

local function add_port(ports, port, proto, host_ip, host_port)
  local p = json.object { port = port, proto = proto }
  if host_port then
    add_string(p, "host_ip", host_ip)
    p.host_port = host_port
  end
  ports[#ports + 1] = p
end

local function published_ports(ports, inspect, notes)
  for key, bindings in members(field(field(inspect, "NetworkSettings"), "Ports")) do
    local port, proto = parse_port_key(key, notes)
    if port then
      local bound = false
      for _, binding in ipairs(is_array(bindings) and bindings or {}) do
        local host_port = parse_host_port(string_field(binding, "HostPort"))
        local host_ip = string_field(binding, "HostIp")
        if host_port and (host_ip == nil or address_field(binding, "HostIp", notes) ~= nil) then
          add_port(ports, port, proto, host_ip, host_port)
          bound = true
        end
      end
      if not bound then add_port(ports, port, proto) end
    end
  end
end

-- Exposed ports Docker left out of NetworkSettings.Ports; in host mode
-- they are published as themselves.
local function exposed_ports(ports, inspect, host_mode, notes)
  for key in members(field(field(inspect, "Config"), "ExposedPorts")) do
    local port, proto = parse_port_key(key, notes)
    local known = false
    for _, p in ipairs(ports) do
      if p.port == port and p.proto == proto then known = true end
    end
    if port and not known then add_port(ports, port, proto, nil, host_mode and port or nil) end
  end
end

-- By port, protocol, then unpublished first, then address, then host port.
local function port_order(x, y)
  if x.port ~= y.port then return x.port < y.port end
  if x.proto ~= y.proto then return x.proto < y.proto end
  local ix, iy = x.host_ip or "", y.host_ip or ""
  if ix ~= iy then return ix < iy end
  return (x.host_port or 0) < (y.host_port or 0)
end

-- container.from_inspect(inspect[, peer_networks]) -> the table and the
-- notes' text (or nil), or nil and why the answer cannot be a container.
-- peer_networks: for network mode container:<id>, the other container's
-- `networks`, as the engine looks them up.
function container.from_inspect(inspect, peer_networks)
  if not is_object(inspect) then return nil, "the answer is not a JSON object" end
  local id = string_field(inspect, "Id")
  if id == nil or id == "" then return nil, 'the answer has no "Id"' end
  local notes = new_notes()
  local config = field(inspect, "Config")
  local mode = string_field(field(inspect, "HostConfig"), "NetworkMode")
  local state = field(inspect, "State")
  local c = json.object { id = id }
  add_text(c, "name", string_field(inspect, "Name"), notes)
  add_text(c, "image", string_field(config, "Image"), notes)
  add_text(c, "hostname", string_field(config, "Hostname"), notes)
  add_text(c, "network_mode", mode, notes)
  c.env = env_map(field(config, "Env"), notes)
  c.labels = label_map(field(config, "Labels"), notes)
  add_string(c, "state", string_field(state, "Status"))
  c.running = field(state, "Running") == true
  add_string(c, "health", string_field(field(state, "Health"), "Status"))
  local stop_timeout = field(config, "StopTimeout")
  if type(stop_timeout) == "number" then c.stop_timeout = math.tointeger(stop_timeout) or stop_timeout end
  c.networks = peer_networks or networks_of(inspect, notes)
  local ports = json.array {}
  published_ports(ports, inspect, notes)
  exposed_ports(ports, inspect, mode == "host", notes)
  table.sort(ports, port_order)
  c.ports = ports
  return c, notes:text()
end

return container
