-- A `docker inspect` answer from a few fields, so a spec can say what a
-- container is in the words of `docker run`, and the kit turns it into
-- the container table exactly as it turns Docker's own answers:
--
--   inspect {
--     name = "web", image = "nginx:1.25", id = "3f2a…" (made up when absent),
--     env = { ENVIRONMENT = "prod" } or { "ENVIRONMENT=prod" },
--     labels = { team = "search" },
--     ports = { "49155:80", "127.0.0.1:8080:80", "[::1]:8443:443", "5353:53/udp",
--               { port = 80, host_port = 49155, host_ip = "0.0.0.0", proto = "tcp" } },
--     expose = { "9000", "53/udp" },            -- exposed, not published
--     network_mode = "bridge",                  -- or "host", "container:<id>", a name
--     networks = { bridge = { ip = "172.17.0.2", gateway = "172.17.0.1" } },
--     state = "running", health = "healthy", stop_timeout = 30, hostname = "web-1",
--   }
--
-- "HOST_PORT:PORT" publishes on both wildcards, 0.0.0.0 and ::, as Docker
-- does for `-p`; give a HostIp to publish on one address.

local json = require "registrar.testing.json"

local inspect = {}

local KNOWN = {
  id = true, name = true, image = true, hostname = true, env = true, labels = true, ports = true,
  expose = true, network_mode = true, networks = true, state = true, running = true, health = true,
  stop_timeout = true,
}

local function bad(what, value, why)
  error(("registrar.testing.inspect: %s %s: %s"):format(what, value, why), 3)
end

-- "[ip:]host_port:port[/proto]" -> bindings
local function parse_publish(spec)
  local rest, proto = spec:match("^(.-)/(%a+)$")
  rest, proto = rest or spec, proto or "tcp"
  local host_ip, host_port, port = rest:match("^%[([^%]]+)%]:(%d+):(%d+)$")
  if not host_ip then host_ip, host_port, port = rest:match("^([^:]+):(%d+):(%d+)$") end
  if not host_ip then host_port, port = rest:match("^(%d+):(%d+)$") end
  if not port then
    bad("port", ("%q"):format(spec), 'is not "HOST_PORT:PORT[/PROTO]" or "IP:HOST_PORT:PORT[/PROTO]" '
        .. '(an exposed port goes in expose)')
  end
  local ips = host_ip and { host_ip } or { "0.0.0.0", "::" }
  local out = {}
  for _, address in ipairs(ips) do out[#out + 1] = { HostIp = address, HostPort = host_port } end
  return port .. "/" .. proto, out
end

local function add_ports(ports, exposed, list)
  for i, p in ipairs(list or {}) do
    local key, bindings
    if type(p) == "string" then
      key, bindings = parse_publish(p)
    elseif type(p) == "table" and math.tointeger(p.port) then
      key = ("%d/%s"):format(p.port, p.proto or "tcp")
      bindings = {}
      if p.host_port then bindings[1] = { HostIp = p.host_ip or "0.0.0.0", HostPort = tostring(p.host_port) } end
    else
      bad("ports", "item " .. i, "is neither a \"HOST_PORT:PORT\" string nor a {port = N, host_port = N} table")
    end
    ports[key] = ports[key] or json.array {}
    for _, b in ipairs(bindings) do table.insert(ports[key], json.object(b)) end
    exposed[key] = json.object {}
  end
end

local function env_list(env)
  local out = json.array {}
  if env == nil then return out end
  if #env > 0 then
    for _, kv in ipairs(env) do out[#out + 1] = kv end
    return out
  end
  local names = {}
  for k in pairs(env) do names[#names + 1] = k end
  table.sort(names)
  for _, k in ipairs(names) do out[#out + 1] = k .. "=" .. tostring(env[k]) end
  return out
end

local function networks_of(networks, mode)
  local out = json.object {}
  if networks == nil then
    if mode ~= "host" and not mode:find("^container:") and mode ~= "none" then
      out.bridge = json.object { IPAddress = "172.17.0.2", Gateway = "172.17.0.1", GlobalIPv6Address = "" }
    end
    return out
  end
  for name, n in pairs(networks) do
    out[name] = json.object { IPAddress = n.ip or "", GlobalIPv6Address = n.ip6 or "", Gateway = n.gateway or "",
                              MacAddress = n.mac }
  end
  return out
end

-- A made-up id that stays the same for the same name: 64 hex digits.
local function id_for(name)
  local h, out = 0, {}
  for i = 1, 8 do
    for c in (name .. i):gmatch(".") do h = (h * 31 + c:byte()) & 0xffffffff end
    out[i] = ("%08x"):format(h)
  end
  return table.concat(out)
end

function inspect.new(fields)
  fields = fields or {}
  for k in pairs(fields) do
    if not KNOWN[k] then bad("field", tostring(k), "is not one of id, name, image, hostname, env, labels, ports, "
                              .. "expose, network_mode, networks, state, running, health, stop_timeout") end
  end
  local name = fields.name or "web"
  if name:sub(1, 1) ~= "/" then name = "/" .. name end
  local id = fields.id or id_for(name)
  local mode = fields.network_mode or "default"
  local ports, exposed = json.object {}, json.object {}
  add_ports(ports, exposed, fields.ports)
  for _, e in ipairs(fields.expose or {}) do
    local key = tostring(e):find("/", 1, true) and tostring(e) or (tostring(e) .. "/tcp")
    exposed[key] = json.object {}
    -- Docker lists an exposed port with no binding, but none at all under host networking
    if ports[key] == nil and mode ~= "host" then ports[key] = json.null end
  end
  local state = fields.state or "running"
  local labels = json.object {}
  for k, v in pairs(fields.labels or {}) do labels[k] = v end
  return json.object {
    Id = id,
    Name = name,
    State = json.object {
      Status = state, Running = fields.running == nil and (state == "running" or state == "paused") or fields.running,
      Paused = state == "paused",
      Health = fields.health and json.object { Status = fields.health } or nil,
    },
    Config = json.object {
      Hostname = fields.hostname or id:sub(1, 12),
      Image = fields.image or "busybox",
      Env = env_list(fields.env),
      Labels = labels,
      ExposedPorts = exposed,
      StopTimeout = fields.stop_timeout,
    },
    HostConfig = json.object { NetworkMode = mode },
    NetworkSettings = json.object { Ports = ports, Networks = networks_of(fields.networks, mode) },
  }
end

return inspect
