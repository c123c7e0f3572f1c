-- Per-team layout: /teams/<team label>/<service name>/<host>:<port>
--
--   registrar run --script examples/teams.lua -B etcd://10.0.0.5:2379
--
-- Containers without a `team` label keep the naming's own layout.  The
-- label comes from the container, so it goes through
-- registrar.services.segment like any other untrusted key segment: what
-- cannot be a segment skips the service, and the log says why.

local registrar = require "registrar"
local keys = require "registrar.keys"
local services = require "registrar.services"

function key(service)
  local team = service.labels.team
  if team == nil or team == "" then
    return registrar.default.key(service)
  end
  local segments = {}
  for _, part in ipairs { { team, "label team" }, { service.name, "service name" },
                          { registrar.host.hostname .. ":" .. service.host_port, "host and port" } } do
    local segment = services.segment(service, part[1], part[2])
    if not segment then return nil end
    segments[#segments + 1] = segment
  end
  return keys.join("/teams", segments)
end
