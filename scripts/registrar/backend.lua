-- Finds the backend script for a registry URI.  The scheme picks it:
-- a site script's registrar.backends[scheme] first, then
-- scripts/backends/<scheme>.lua (with a few aliases and "+https" variants).

local registrar = require "registrar"
local uri_text = require "registrar.uri"

local backend = {}

local aliases = {
  etcd2 = "etcd", etcd3 = "etcd",
  ["consul-catalog"] = "consul", consulkv = "consul",
  zk = "zookeeper",
}

function backend.scheme(uri)
  return uri:match("^(%a[%w+.-]*)://")
end

-- A backend may have check(uri, config): it raises an error for a URI or a
-- setting it can never serve, so start-up (or a reload) fails at once
-- rather than open() failing at every retry.
local function check(module, origin, uri, where)
  if type(module) ~= "table" or type(module.open) ~= "function" then
    error(("%s: a backend must be a table with open(uri, config)"):format(origin), 0)
  end
  if type(module.check) == "function" then
    local ok, why = pcall(module.check, uri, registrar.config)
    if not ok then error(("%s (%s)"):format(tostring(why), where), 0) end
  end
  return module
end

function backend.load(uri, where)
  local scheme = backend.scheme(uri)
  if not scheme then
    error(("backend: %q is not a URI like etcd://HOST:PORT (%s)"):format(uri_text.redact(uri), where), 0)
  end
  local own = registrar.backends[scheme]
  if own then return check(own, "registrar.backends." .. scheme, uri, where) end
  local base = scheme:gsub("%+https$", "")
  local name = aliases[base] or base
  local path, tried = package.searchpath("backends." .. name, package.path)
  if not path then
    local files = {}
    for file in tried:gmatch("no file '([^']+)'") do files[#files + 1] = file end
    error(("backend: unknown scheme %q in %s (%s): no registrar.backends[%q] in a site script, no %s")
          :format(scheme, uri_text.redact(uri), where, scheme, table.concat(files, ", no ")), 0)
  end
  return check(dofile(path), path, uri, where)
end

return backend
