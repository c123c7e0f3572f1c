-- An nginx upstream file, through the file backend, under either naming:
--   registrar run --script examples/nginx.lua -B nginx:///etc/nginx/conf.d/up.conf
-- <path>.json (the file backend's) keeps each service's {name, address, port}, as compare() makes
-- it; each change rewrites <path> as `upstream <name> { server ip:port; }` blocks.
-- Names come from containers: only [A-Za-z0-9_.-] pass.

local registrar = require "registrar"
local file = require "backends.file"

local function render(records)
  local upstreams, names = {}, {}
  for _, r in pairs(records) do
    if type(r) == "table" and tostring(r.name):match("^[%w_.-]+$") and math.tointeger(r.port) then
      if not upstreams[r.name] then upstreams[r.name] = {}; names[#names + 1] = r.name end
      local host = r.address:find(":", 1, true) and ("[" .. r.address .. "]") or r.address
      table.insert(upstreams[r.name], ("    server %s:%d;"):format(host, r.port))
    end
  end
  table.sort(names)
  local out = {}
  for i, name in ipairs(names) do
    table.sort(upstreams[name])
    out[i] = ("upstream %s {\n%s\n}\n"):format(name, table.concat(upstreams[name], "\n"))
  end
  return table.concat(out)
end

registrar.backends.nginx = {
  compare = function(entry)   -- the same record whichever naming made the service
    local s = entry.service
    return registrar.json.encode { name = s.name, address = s.address, port = s.host_port }
  end,
  open = function(uri, config)
    local path = uri:match("^nginx://(/.+)$") or error(("nginx: %q is not nginx:///PATH"):format(uri), 0)
    local backend = file.open("file://" .. path .. ".json", config)
    local apply = backend.apply
    function backend.apply(self, puts, deletes)
      local records = {}   -- what compare() made (an entry made by hand: its value)
      for i, e in ipairs(puts) do records[i] = { key = e.key, value = e.compare or e.value, host = e.host } end
      local ok, err = apply(self, records, deletes)
      if not ok then return nil, err end
      return registrar.file.replace(path, render(self.services))
    end
    return backend
  end,
}
