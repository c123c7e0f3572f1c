-- file:///PATH: this host's services as one JSON document, for hosts with
-- no registry server (and for anything that reads a file: a load balancer
-- template, a monitoring agent).
--
--   { "host": "<hostname>", "services": { "<key>": <document>, ... },
--     "hosts": { "<prefix_hosts>/<hostname>": <this host's document> },
--     "owned": [ "<key>", ... ] }
--
-- Every change is one rewrite of the whole file through a temporary file
-- and a rename, so a reader sees the old file or the new one, never half.
--
-- The path is someone's file system: only a regular file that holds this
-- host's registry (or nothing, or an empty file) is ever replaced.  A
-- device, a directory, a link, another host's registry or a file that is
-- not a registry at all is refused with its path, and nothing is written.
-- `owned` lists the keys registrar wrote; only those are ever pruned.  An
-- entry someone else put in the file stays as it is.

local registrar = require "registrar"
local uri_text = require "registrar.uri"

local json = registrar.json
local file = {}

local Backend = {}
Backend.__index = Backend

local function path_of(uri)
  local path = uri:match("^file://(/.*)$")
  if not path or path:find("%c") then
    error(("file backend: %q is not file:///ABSOLUTE/PATH"):format(uri_text.redact(uri)), 0)
  end
  return path
end

-- The registry at path ({services, hosts, owned}, empty for no file); or
-- nil and why the file must not be touched.
local function read_registry(path, host)
  local kind = registrar.file.kind(path)
  if kind == "missing" then return { services = json.object {}, hosts = json.object {}, owned = {} } end
  if kind ~= "file" then
    return nil, ("%s is a %s, not a registry file; nothing was written there"):format(path, kind)
  end
  local text, err = registrar.file.read(path)
  if not text then return nil, err end
  if text:find("^%s*$") then return { services = json.object {}, hosts = json.object {}, owned = {} } end
  local doc, why = json.decode(text)
  if type(doc) ~= "table" or type(doc.services) ~= "table" then
    return nil, ("%s is not a registrar registry (%s); nothing was written: move it away or "
                 .. "choose another path"):format(path, why or "no services table")
  end
  if doc.host ~= host then
    return nil, ("%s is the registry of host %q, not of this host (%q); nothing was written: "
                 .. "move it away or choose another path"):format(path, tostring(doc.host), host)
  end
  return { services = doc.services, hosts = type(doc.hosts) == "table" and doc.hosts or json.object {},
           owned = type(doc.owned) == "table" and doc.owned or nil }
end

function file.check(uri, config)
  local path = path_of(uri)
  local registry, why = read_registry(path, config.hostname)
  if not registry then error("file backend: " .. why, 0) end
end

function file.open(uri, config)
  local path = path_of(uri)
  local cleaned = registrar.file.clean(path)
  if cleaned > 0 then
    registrar.log.info("file backend: removed %d temporary file(s) an earlier run left beside %s", cleaned, path)
  end
  local prefix = (config.prefix_services or "/services"):gsub("/+$", "")
  return setmetatable({ path = path, host = config.hostname, prefix = prefix .. "/" }, Backend)
end

-- Values are kept as the documents they encode, so the file reads as JSON.
local function as_document(value)
  local doc = json.decode(value)
  if type(doc) == "table" then return doc end
  return value
end

-- The keys registrar wrote.  A file from before `owned` was kept: what it
-- holds under prefix_services.
function Backend:owned_keys(registry)
  local owned = {}
  if registry.owned then
    for _, key in ipairs(registry.owned) do
      if type(key) == "string" then owned[key] = true end
    end
  else
    for key in pairs(registry.services) do
      if type(key) == "string" and key:sub(1, #self.prefix) == self.prefix then owned[key] = true end
    end
  end
  return owned
end

function Backend:advertised()
  local registry, why = read_registry(self.path, self.host)
  if not registry then return nil, why end
  local advertised = {}
  for key in pairs(self:owned_keys(registry)) do
    local doc = registry.services[key]
    if doc == nil then doc = registry.hosts[key] end
    if doc ~= nil then advertised[key] = type(doc) == "string" and doc or json.encode(doc) end
  end
  return advertised
end

-- The file is read again before each write: what is there now is what is
-- kept, and a file that stopped being ours is not overwritten.
-- self.services is what was last written (the nginx example renders it).
function Backend:apply(puts, deletes)
  local registry, why = read_registry(self.path, self.host)
  if not registry then return nil, why end
  local services, hosts, owned = registry.services, registry.hosts, self:owned_keys(registry)
  for _, entry in ipairs(puts) do
    -- this host's document beside the services, not among them
    local into = entry.host and hosts or services
    into[entry.key] = as_document(entry.value)
    owned[entry.key] = true
  end
  for _, entry in ipairs(deletes) do
    if owned[entry.key] then
      services[entry.key] = nil
      hosts[entry.key] = nil
    end
    owned[entry.key] = nil
  end
  local list = json.array {}
  for key in pairs(owned) do
    if services[key] ~= nil or hosts[key] ~= nil then list[#list + 1] = key end
  end
  table.sort(list)
  local ok, err = registrar.file.replace(self.path, json.encode {
    host = self.host,
    services = services,
    hosts = hosts,
    owned = list,
  } .. "\n")
  if not ok then return nil, err end
  self.services = services
  return true
end

return file
