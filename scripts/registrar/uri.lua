-- Registry URIs: scheme://[user[:password]@]host[:port][,host[:port]...][/path][?query]

local uri = {}

local function unescape(s)
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_host(text, default_port)
  local host, port = text:match("^%[([^%]]+)%]:?(%d*)$")   -- [::1]:2379
  if not host then host, port = text:match("^([^:]+):?(%d*)$") end
  if not host or host == "" then return nil end
  port = tonumber(port ~= "" and port or default_port)
  if not port or port < 1 or port > 65535 then return nil end
  return { host = host, port = port }
end

-- The URI as it may be shown in a message: "alice:secret@" becomes
-- "alice:***@", a bare token "t0ken@" becomes "***@".
function uri.redact(text)
  local scheme, authority, rest = text:match("^(%a[%w+.-]*://)([^/?#]*)(.*)$")
  if not scheme then return text end
  local userinfo, hosts = authority:match("^(.*)@(.-)$")
  if not userinfo then return text end
  local user = userinfo:match("^([^:]*):")
  return scheme .. (user and (user .. ":***") or "***") .. "@" .. hosts .. rest
end

-- Returns { scheme, user, password, hosts = {{host, port}...}, path, query = {} }
-- or nil and why.  Messages show the URI redacted.
function uri.parse(text, default_port)
  local scheme, rest = text:match("^(%a[%w+.-]*)://(.*)$")
  if not scheme then return nil, ("%q is not a URI"):format(uri.redact(text)) end
  local authority, path = rest:match("^([^/?]*)(.*)$")
  local query = {}
  local qs = path:match("%?(.*)$")
  path = path:gsub("%?.*$", "")
  for k, v in (qs or ""):gmatch("([^&=]+)=?([^&]*)") do query[unescape(k)] = unescape(v) end
  local result = { scheme = scheme, path = unescape(path), query = query, hosts = {} }
  local userinfo, hostlist = authority:match("^(.*)@(.*)$")
  if userinfo then
    local user, password = userinfo:match("^([^:]*):(.*)$")
    result.user = unescape(user or userinfo)
    result.password = password and unescape(password)
  else
    hostlist = authority
  end
  for part in hostlist:gmatch("[^,]+") do
    local h = parse_host(part, default_port)
    if not h then return nil, ("%q: %q is not HOST:PORT"):format(uri.redact(text), part) end
    result.hosts[#result.hosts + 1] = h
  end
  return result
end

-- "http://host:port" for each host (IPv6 in brackets).
function uri.endpoints(parsed, tls)
  local out = {}
  for _, h in ipairs(parsed.hosts) do
    local host = h.host:find(":", 1, true) and ("[" .. h.host .. "]") or h.host
    out[#out + 1] = ("%s://%s:%d"):format(tls and "https" or "http", host, h.port)
  end
  return out
end

-- Percent-encoding: a key's segments in a URL path, values in forms.
function uri.escape_path(path)
  return (path:gsub("[^%w%-%._~/!$&'()*+,;=:@]", function(c) return ("%%%02X"):format(c:byte()) end))
end

function uri.escape(text)
  return (text:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end))
end

return uri
