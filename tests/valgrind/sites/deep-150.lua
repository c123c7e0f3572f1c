-- document(): a table 150 levels deep, past json.encode's limit of 100.
-- An error for the container (check exits 1), never a write past the stack.
function document(service)
  local doc = {}
  local t = doc
  for _ = 2, 150 do
    t[1] = {}
    t = t[1]
  end
  t[1] = service.port
  return doc
end
