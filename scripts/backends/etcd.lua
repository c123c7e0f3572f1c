-- etcd://HOST:PORT[,HOST:PORT...]   the API is detected: v3 (JSON gateway) when
--                                   the server has it, else v2
-- etcd2://... etcd3://...           force one API
-- etcd+https://... (and etcd2+https, etcd3+https): TLS with ca_file,
--                                   cert_file, key_file
--
-- etcd3://...?keys=relative: v3 keys written without their leading '/', as
--                                   readers built on libkv (Traefik) look them up
--
-- Credentials: etcd://user:password@host:port, or config username/password
-- (v3: an auth token; v2: basic auth).  Endpoints are tried in order; the
-- one that answered is kept until it fails.

local registrar = require "registrar"
local endpoints = require "registrar.endpoints"
local uri = require "registrar.uri"

local json = registrar.json
local etcd = {}

-- "/v3" on 3.4 and later, "/v3beta" on 3.3; nil before (v2 only).
local function v3_base(version)
  local major, minor = tostring(version or ""):match("^(%d+)%.(%d+)")
  major, minor = tonumber(major), tonumber(minor)
  if not major or major < 3 or (major == 3 and minor < 3) then return nil end
  return (major == 3 and minor == 3) and "/v3beta" or "/v3"
end

local function server_version(client)
  local res, err = client:request { method = "GET", path = "/version" }
  if not res then return nil, err end
  local doc = json.decode(res.body)
  if res.status ~= 200 or type(doc) ~= "table" or not doc.etcdserver then
    return nil, ("GET /version: status %d: is this etcd?"):format(res.status)
  end
  return doc.etcdserver
end

local function parse(text)
  local parsed, err = uri.parse(text, 2379)
  if not parsed then error("etcd backend: " .. err, 0) end
  if #parsed.hosts == 0 then error(("etcd backend: %q names no HOST:PORT"):format(uri.redact(text)), 0) end
  local keys = parsed.query.keys
  if keys ~= nil and keys ~= "relative" then
    error(("etcd backend: %q: keys=%s is not keys=relative"):format(uri.redact(text), keys), 0)
  end
  if keys and parsed.scheme:match("^etcd2") then
    error(("etcd backend: %q: keys=relative needs the v3 API (etcd3://); v2 keys always start with '/'")
          :format(uri.redact(text)), 0)
  end
  return parsed
end

function etcd.check(text)
  parse(text)
end

function etcd.open(text, config)
  local parsed = parse(text)
  local tls = parsed.scheme:find("+https", 1, true) ~= nil
  local forced = parsed.scheme:match("^etcd(%d)")
  local user = parsed.user or config.username
  local password = parsed.password or config.password
  local client = endpoints.new(uri.endpoints(parsed, tls), {
    tls = tls and { ca_file = config.ca_file, cert_file = config.cert_file, key_file = config.key_file } or nil,
    userpwd = (forced == "2" and user) and (user .. ":" .. (password or "")) or nil,
  })
  if forced == "2" then return require("backends.etcd.v2").new(client, config) end
  local version, verr = server_version(client)
  if not version then return nil, verr end
  local base = v3_base(version)
  if forced == "3" or base then
    registrar.log.info("etcd %s: speaking the v3 API (%s)", version, base or "/v3")
    return require("backends.etcd.v3").new(client, config, base or "/v3", user, password,
                                           parsed.query.keys == "relative")
  end
  if parsed.query.keys then
    return nil, ("etcd %s speaks only the v2 API, whose keys always start with '/': keys=relative cannot be kept")
                :format(version)
  end
  registrar.log.info("etcd %s: speaking the v2 API", version)
  if user then client.defaults.userpwd = user .. ":" .. (password or "") end
  return require("backends.etcd.v2").new(client, config)
end

return etcd
