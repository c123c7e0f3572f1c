-- file:///PATH: this host's services as one JSON document, for hosts with
-- no registry server (and for anything that reads a file: a load balancer
-- template, a monitoring agent).
--
--   { "host": "<hostname>", "services": { "<key>": <document>, ... } }
--
-- Every change is one rewrite of the whole file through a temporary file
-- and a rename, so a reader sees the old file or the new one, never half.

local registrar = require "registrar"

local json = registrar.json
local file = {}

local Backend = {}
Backend.__index = Backend

local function path_of(uri)
  local path = uri:match("^file://(/.*)$")
  if not path or path:find("%c") then
    error(("file backend: %q is not file:///ABSOLUTE/PATH"):format(uri), 0)
  end
  return path
end

function file.check(uri)
  path_of(uri)
end

function file.open(uri, config)
  local path = path_of(uri)
  return setmetatable({ path = path, host = config.hostname, services = nil }, Backend)
end

-- Values are kept as the documents they encode, so the file reads as JSON.
local function as_document(value)
  local doc = json.decode(value)
  if type(doc) == "table" then return doc end
  return value
end

-- The file is this host's alone: what it holds is what we advertise.  A
-- file that is not ours to read (corrupt, foreign) is replaced, not trusted.
function Backend:advertised()
  local text, err, missing = registrar.file.read(self.path)
  local services = {}
  if text then
    local doc, why = json.decode(text)
    if type(doc) == "table" and type(doc.services) == "table" then
      services = doc.services
    else
      registrar.log.warn("file backend: %s is not a registry file (%s); it will be rewritten",
                         self.path, why or "no services table")
    end
  elseif not missing then
    return nil, err
  end
  local advertised = {}
  for key, doc in pairs(services) do
    advertised[key] = type(doc) == "string" and doc or json.encode(doc)
  end
  self.services = json.object {}
  for key, value in pairs(advertised) do self.services[key] = as_document(value) end
  return advertised
end

function Backend:apply(puts, deletes)
  local services = self.services or json.object {}
  for _, entry in ipairs(puts) do services[entry.key] = as_document(entry.value) end
  for _, entry in ipairs(deletes) do services[entry.key] = nil end
  local ok, err = registrar.file.replace(self.path, json.encode {
    host = self.host,
    services = services,
  } .. "\n")
  if not ok then return nil, err end
  self.services = services
  return true
end

return file
