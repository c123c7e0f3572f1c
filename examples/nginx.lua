-- An nginx upstream file, through the file backend:
--   registrar run --naming registrator --script examples/nginx.lua -B nginx:///etc/nginx/conf.d/up.conf
-- The file backend keeps its JSON at <path>.json; each change rewrites <path>
-- as `upstream <name> { server ip:port; }` blocks.  Names come from containers: only [A-Za-z0-9_.-] pass.

local registrar = require "registrar"
local file = require "backends.file"

local function render(services)
  local upstreams, names = {}, {}
  for _, doc in pairs(services) do
    if type(doc) == "table" and tostring(doc.name):match("^[%w_.-]+$") and math.tointeger(doc.port) then
      if not upstreams[doc.name] then upstreams[doc.name] = {}; names[#names + 1] = doc.name end
      local host = doc.address:find(":", 1, true) and ("[" .. doc.address .. "]") or doc.address
      table.insert(upstreams[doc.name], ("    server %s:%d;"):format(host, doc.port))
    end
  end
  table.sort(names)
  local out = {}
  for _, name in ipairs(names) do
    table.sort(upstreams[name])
    out[#out + 1] = ("upstream %s {\n%s\n}\n"):format(name, table.concat(upstreams[name], "\n"))
  end
  return table.concat(out)
end

registrar.backends.nginx = {
  open = function(uri, config)
    local path = uri:match("^nginx://(/.+)$") or error(("nginx: %q is not nginx:///PATH"):format(uri), 0)
    local backend = file.open("file://" .. path .. ".json", config)
    local apply = backend.apply
    function backend.apply(self, puts, deletes)
      local ok, err = apply(self, puts, deletes)
      if not ok then return nil, err end
      return registrar.file.replace(path, render(self.services))
    end
    return backend
  end,
}
