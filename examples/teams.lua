-- Per-team layout: /teams/<team label>/<service name>/<host>:<port>
--
--   registrar run --script examples/teams.lua -B etcd://10.0.0.5:2379
--
-- Containers without a `team` label keep the default layout.  The label
-- comes from the container, so it goes through registrar.keys like any
-- other untrusted key segment.

local registrar = require "registrar"
local keys = require "registrar.keys"

function key(service)
  local team = service.labels.team
  if team == nil or team == "" then
    return registrar.default.key(service)
  end
  local segments = {}
  for _, value in ipairs { team, service.name, registrar.host.hostname .. ":" .. service.host_port } do
    local segment, why = keys.segment(value)
    if not segment then
      registrar.log.warn("container %s: %q %s; service skipped", service.container.name, value, why)
      return nil
    end
    segments[#segments + 1] = segment
  end
  return keys.join("/teams", segments)
end
