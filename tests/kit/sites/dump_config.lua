-- One entry per container whose document is what the scripts see of the
-- configuration and the host: the agreement test compares the kit's with
-- the daemon's, key by key.
local registrar = require "registrar"

function services(container) return { { container = container } } end
function ignore() return false end
function name() return "config" end
function key(service) return "/config/" .. service.container.id end

function document()
  local config = {}
  for k, v in pairs(registrar.config) do config[k] = v end
  local defaults = {}
  for hook, fn in pairs(registrar.default) do defaults[hook] = type(fn) end
  return { config = config, host = registrar.host, default = defaults,
           modules = (function()
             local names = {}
             for k in pairs(registrar) do names[#names + 1] = k end
             table.sort(names)
             return names
           end)() }
end
