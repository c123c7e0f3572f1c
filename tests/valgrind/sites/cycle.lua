-- document(): a table that contains itself, three levels down.
-- An error for the container, never an endless encode.
function document(service)
  local doc = { port = service.port, inner = { list = { 1, 2 } } }
  doc.inner.list[3] = doc
  return doc
end
