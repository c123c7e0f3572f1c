-- services(): 10000 services for a container, each with its own name, key
-- and document: the engine copies out, compares and prints them all.
-- Under valgrind that takes seconds: only the first container of a run
-- gets 10000 (check.sh runs the others in the same process), the rest 3.
local containers = 0

function services(container)
  local list, owner = {}, container.id:sub(1, 12)
  containers = containers + 1
  for i = 1, containers == 1 and 10000 or 3 do
    list[i] = { port = i, proto = "tcp", owner = owner }
  end
  return list
end

function ignore(service)
  return false
end

function name(service)
  return "many-" .. service.port
end

function key(service)
  return "/many/" .. service.owner .. "/" .. service.port
end

function document(service)
  return { port = service.port, proto = service.proto }
end
