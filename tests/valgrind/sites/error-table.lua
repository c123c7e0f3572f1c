-- key(): raises a table, not a string.  The error text must be made
-- without calling a string function on it.
function key(service)
  error({ reason = "no key for " .. tostring(service.port) })
end
