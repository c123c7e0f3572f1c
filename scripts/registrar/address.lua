-- Where a service is reached, for both namings:
--
--   * a network chosen by the container (SERVICE_NETWORK, env or label) or
--     by the config (`network`): the container's IP there and the
--     container port (internal addresses; unpublished ports count too);
--   * else a port bound to one HostIp: that address and the host port;
--   * else the configured host address (`ipaddress`) and the host port.
--
-- Host networking needs nothing special: the engine lists a host-mode
-- container's exposed ports as published on the host's address.

local registrar = require "registrar"
local settings = require "registrar.settings"

local address = {}

local function wildcard(ip)
  return ip == nil or ip == "" or ip == "0.0.0.0" or ip == "::"
end

-- The network a container's services are registered on, if any.
-- parsed: settings.parse(container), when the caller has it.
function address.network(container, parsed)
  local chosen = settings.of(container, "", parsed).network
  if chosen == nil or chosen == "" then chosen = registrar.config.network end
  if chosen == nil or chosen == "" then return nil end
  return chosen
end

-- address.of(container, port_entry[, network]) -> ip, port (numbers) or nil
-- network: address.network(container), when the caller has it.
function address.of(container, p, network)
  if network == nil then network = address.network(container) end
  local net = network and (container.networks or {})[network]
  if net and net.ip then return net.ip, p.port end
  if net and net.ip6 then return net.ip6, p.port end
  if not p.host_port then return nil end
  if wildcard(p.host_ip) then return registrar.host.ipaddress, p.host_port end
  return p.host_ip, p.host_port
end

return address
