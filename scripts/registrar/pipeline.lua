-- The naming pipeline the engine runs for each container:
--
--   services(container) -> for each service: ignore? name, key, document
--
-- and returns the entries to register: { key, value, service, document }.
-- value is the document as stored (JSON text when it is a table).  A
-- backend that stores something other than the value gives a compare(entry)
-- function, and entry.compare is what the engine compares with what the
-- backend advertises.  The hooks are the globals the naming and site
-- scripts define, resolved once, when the pipeline is made.  A hook that breaks a rule raises an error
-- naming its own file:line; the engine then keeps that container's
-- previous registrations.

local registrar = require "registrar"
local keys = require "registrar.keys"
local services = require "registrar.services"

local json = registrar.json
local pipeline = {}

local function defined_at(fn)
  local info = debug.getinfo(fn, "S")
  return ("%s:%d"):format(info.short_src, info.linedefined)
end

local function fail(fn, message, ...)
  error(("%s: " .. message):format(defined_at(fn), ...), 0)
end

-- Paused and, unless health is ignored, not-yet-healthy containers cannot
-- serve: they have no services until that changes.  Nor does the container
-- registrar itself runs in (registrar.host.container), unless register_self:
-- its image publishes nothing a registry wants.
local function serving(container)
  if container.state == "paused" then return false end
  if container.id ~= nil and container.id == registrar.host.container and not registrar.config.register_self then
    return false
  end
  local health = container.health
  if health and health ~= "healthy" and registrar.config.health ~= "ignore" then
    return false
  end
  return true
end

function pipeline.new(hooks, compare)
  hooks = hooks or {
    services = _G.services, name = _G.name, key = _G.key,
    document = _G.document, ignore = _G.ignore,
  }
  for _, hook in ipairs { "services", "name", "key", "document", "ignore" } do
    local fn = hooks[hook]
    if fn ~= nil and type(fn) ~= "function" then
      error(("naming hook %s is a %s, not a function"):format(hook, type(fn)), 0)
    end
  end
  if not hooks.services then error("no services(container) hook: the naming script must define one", 0) end
  if not hooks.key then error("no key(service) hook: the naming script must define one", 0) end

  local function entry_for(service, container)
    if hooks.ignore and hooks.ignore(service) then return nil end
    if hooks.name then
      local name = hooks.name(service)
      if name ~= nil and type(name) ~= "string" then
        fail(hooks.name, "name() returned a %s, not a string", type(name))
      end
      service.name = name
    end
    local key = hooks.key(service)
    if key == nil then return nil end              -- key() may decline a service
    if type(key) ~= "string" then fail(hooks.key, "key() returned a %s, not a string", type(key)) end
    local ok, why = keys.check(key)
    if not ok then
      registrar.log.warn("container %s: key %q %s; service skipped", services.label(container), key, why)
      return nil
    end
    service.key = key
    local document = hooks.document and hooks.document(service) or ""
    local value = document
    if type(document) == "table" then
      local ok, text = pcall(json.encode, document)
      if not ok then fail(hooks.document, "document() returned a table that is not JSON: %s", text) end
      value = text
    elseif type(document) ~= "string" then
      fail(hooks.document, "document() returned a %s, not a table or string", type(document))
    end
    local entry = { key = key, value = value, service = service, document = document }
    if compare then entry.compare = compare(entry, registrar.config) end
    return entry
  end

  return function(container)
    if not serving(container) then return {} end
    local list = hooks.services(container)
    if type(list) ~= "table" then
      fail(hooks.services, "services() returned a %s, not a list of services", type(list))
    end
    local entries, seen = {}, {}
    for i, service in ipairs(list) do
      if type(service) ~= "table" then
        fail(hooks.services, "services() item %d is a %s, not a table", i, type(service))
      end
      local entry = entry_for(service, container)
      if entry and seen[entry.key] then
        registrar.log.warn("container %s: two services have the key %s; keeping the first",
                           services.label(container), entry.key)
      elseif entry then
        seen[entry.key] = true
        entries[#entries + 1] = entry
      end
    end
    return entries
  end
end

return pipeline
