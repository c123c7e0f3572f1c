-- Consul, in three modes, by scheme:
--
--   consul://HOST:PORT          the local agent's service API (Consul's usual way)
--   consul-catalog://HOST:PORT  the catalog API, as the old tool did
--   consulkv://HOST:PORT/PREFIX a KV key per service holding its document
--   (each also as +https: consul+https://, with ca_file, cert_file, key_file)
--
-- The ACL token comes from config `token` (env CONSUL_HTTP_TOKEN) and goes
-- in the X-Consul-Token header, never in a URL or a log line.
-- Services are marked as this host's with Meta registrar_host, so pruning
-- only ever removes what this registrar wrote.

local registrar = require "registrar"
local endpoints = require "registrar.endpoints"
local uri = require "registrar.uri"

local json = registrar.json
local consul = {}

local MODES = { consul = "agent", ["consul-catalog"] = "catalog", consulkv = "kv" }

local function mode_of(scheme)
  return MODES[(scheme:gsub("%+https$", ""))]
end

local function parse(text, config)
  local parsed, err = uri.parse(text, 8500)
  if not parsed then error("consul backend: " .. err, 0) end
  local mode = mode_of(parsed.scheme)
  if not mode then error(("consul backend: unknown scheme %q"):format(parsed.scheme), 0) end
  if #parsed.hosts == 0 then error(("consul backend: %q names no HOST:PORT"):format(uri.redact(text)), 0) end
  if parsed.user then
    error(("consul backend: %q holds credentials, which Consul does not take in a URI; "
           .. "set token (CONSUL_HTTP_TOKEN) instead"):format(uri.redact(text)), 0)
  end
  if mode == "catalog" and config.service_ttl == "ttl" then
    error("consul-catalog backend: the catalog runs no checks, so its entries cannot expire in ttl mode; "
          .. "use service_ttl: prune, or consul:// (TTL checks) or consulkv:// (sessions)", 0)
  end
  return parsed, mode
end

function consul.check(text, config)
  parse(text, config)
end

function consul.open(text, config)
  local parsed, mode = parse(text, config)
  local tls = parsed.scheme:find("+https", 1, true) ~= nil
  local client = endpoints.new(uri.endpoints(parsed, tls), {
    tls = tls and { ca_file = config.ca_file, cert_file = config.cert_file, key_file = config.key_file } or nil,
    headers = config.token and { ["X-Consul-Token"] = config.token } or nil,
  })
  local backend, err = require("backends.consul." .. mode).new(client, config, parsed)
  if not backend or mode == "kv" then return backend, err end      -- KV keeps it as any other key
  return require("backends.consul.service").host_document(backend, client, config)
end

-- What the agent and catalog modes compare: a digest of the registration
-- they would send, so any change to it (name, tags, check, ttl mode) is
-- written again.
function consul.compare(entry, config)
  local mode = mode_of(config.backend:match("^(%a[%w+.-]*)://") or "")
  if mode == "kv" then return nil end
  return require("backends.consul.service").digest(entry, config, mode)
end

return consul
