-- A registry reached at several endpoints: requests go to the one that
-- answered last, and move on to the next when it cannot be reached or
-- answers 5xx.  Shared by the etcd and Consul backends.

local registrar = require "registrar"

local Endpoints = {}
Endpoints.__index = Endpoints

local endpoints = {}

-- urls: { "http://h:p", ... }; defaults: fields every request gets
-- (tls, userpwd, headers).
function endpoints.new(urls, defaults)
  return setmetatable({ urls = urls, current = 1, defaults = defaults or {} }, Endpoints)
end

local function merged_headers(defaults, headers)
  if not defaults and not headers then return nil end
  local out = {}
  for k, v in pairs(defaults or {}) do out[k] = v end
  for k, v in pairs(headers or {}) do out[k] = v end
  return out
end

-- request{method, path, body, headers, timeout} -> response | nil, message
-- naming every endpoint tried.  (send: registrar.http.request, or .stream)
function Endpoints:request(req, send)
  local errors = {}
  local d = self.defaults
  send = send or registrar.http.request
  for attempt = 0, #self.urls - 1 do
    local i = (self.current - 1 + attempt) % #self.urls + 1
    local res, err = send {
      method = req.method, url = self.urls[i] .. req.path, body = req.body, timeout = req.timeout,
      headers = merged_headers(d.headers, req.headers), tls = d.tls, userpwd = d.userpwd,
    }
    if res and res.status < 500 then
      if self.current ~= i then
        registrar.log.info("registry: now using %s", self.urls[i])
        self.current = i
      end
      return res
    end
    errors[#errors + 1] = ("%s: %s"):format(self.urls[i], err or ("status " .. res.status))
  end
  return nil, ("%s %s: %s"):format(req.method or "GET", req.path, table.concat(errors, "; "))
end

-- The same, for a response read as it arrives (registrar.http.stream):
-- the stream, once its headers are in.
function Endpoints:stream(req)
  return self:request(req, registrar.http.stream)
end

return endpoints
