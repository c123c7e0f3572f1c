-- registrar.json for the test kit: the rules of the engine's encoder
-- (engine/lua/registrar_json.c) in plain Lua, and lua-cjson for reading.
--
-- The engine's encoder decides what the registry holds byte for byte (keys
-- sorted, [] kept apart from {}, U+FFFD for bytes that are not UTF-8), so
-- it is written out here rule by rule rather than left to cjson.encode,
-- which sorts nothing and escapes '/'.  Reading goes through cjson.decode;
-- Debian's lua-cjson cannot tell an empty array from an empty object, so
-- empty arrays are marked in the text before it reads them.

local cjson = require("cjson").new()
cjson.decode_invalid_numbers(false)   -- NaN, Infinity, 0x10: the engine refuses them too

local json = {}

local array_mt = { __name = "json.array" }
local object_mt = { __name = "json.object" }

json.null = cjson.null               -- a light userdata, as the engine's json.null

local MAX_DEPTH = 100
local MAX_TABLES = 1000000
local MAX_TEXT = 128 * 1024 * 1024

---------------------------------------------------------------------------
-- encoding

-- Every piece of text goes through here: the engine's ceiling on the text
-- is checked as it grows.
local function emit(out, piece)
  out.size = out.size + #piece
  if out.size > MAX_TEXT then
    error(("json.encode: the text would be larger than %d MiB (a table used many times over?)")
          :format(MAX_TEXT >> 20), 0)
  end
  out[#out + 1] = piece
end

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }

-- The length of the UTF-8 sequence at s[i], or nil when it is not one
-- (overlong, surrogate, past U+10FFFF, cut short): the engine's rules.
local function sequence_at(s, i)
  local c = s:byte(i)
  local len = c >= 0xf0 and c < 0xf8 and 4 or c >= 0xe0 and c < 0xf0 and 3 or c >= 0xc0 and c < 0xe0 and 2 or nil
  if not len then return nil end
  local ok = utf8.len(s:sub(i, i + len - 1)) == 1 and #s >= i + len - 1
  return ok and len or nil
end

local function encode_string(s, out)
  if not s:find('[%c"\\\127]') and utf8.len(s) then
    emit(out, '"' .. s .. '"')
    return
  end
  local parts, i, n = { '"' }, 1, #s
  while i <= n do
    local ch = s:sub(i, i)
    local c = ch:byte()
    if escapes[ch] then
      parts[#parts + 1] = escapes[ch]; i = i + 1
    elseif c < 0x20 or c == 0x7f then
      parts[#parts + 1] = ("\\u%04x"):format(c); i = i + 1
    elseif c < 0x80 then
      local j = s:find('[%c"\\\127\128-\255]', i) or n + 1
      parts[#parts + 1] = s:sub(i, j - 1); i = j
    else
      local len = sequence_at(s, i)
      if len then
        parts[#parts + 1] = s:sub(i, i + len - 1); i = i + len
      else
        parts[#parts + 1] = "\239\191\189"; i = i + 1     -- U+FFFD, as its bytes
      end
    end
  end
  parts[#parts + 1] = '"'
  emit(out, table.concat(parts))
end

local function encode_number(v, out)
  if math.type(v) == "integer" then
    emit(out, ("%d"):format(v))
  elseif v ~= v or v == math.huge or v == -math.huge then
    error(("json.encode: %f cannot be written as JSON"):format(v), 0)
  elseif v == math.floor(v) and math.abs(v) < 1e15 then
    emit(out, ("%.0f"):format(v))
  else
    emit(out, ("%.17g"):format(v))
  end
end

-- Keys compare as bytes, as the engine's memcmp does.  Lua's < uses the
-- collation of the locale, which is byte order only in the C locale.
local byte_order = (os.setlocale(nil, "collate") == "C" or os.setlocale(nil, "collate") == "POSIX")
  and function(a, b) return a < b end
  or function(a, b)
    local n = math.min(#a, #b)
    for i = 1, n do
      local x, y = a:byte(i), b:byte(i)
      if x ~= y then return x < y end
    end
    return #a < #b
  end

-- A list: its keys are exactly 1..n, n > 0.
local function list_length(t)
  local count, max = 0, 0
  for k in next, t do
    if math.type(k) ~= "integer" or k < 1 then return nil end
    if k > max then max = k end
    count = count + 1
  end
  return count > 0 and count == max and max or nil
end

local encode_value

local function encode_table(t, out, state, depth)
  if depth >= MAX_DEPTH then error(("json.encode: tables nested deeper than %d"):format(MAX_DEPTH), 0) end
  state.tables = state.tables + 1
  if state.tables > MAX_TABLES then
    error(("json.encode: more than %d tables (a table used many times over?)"):format(MAX_TABLES), 0)
  end
  if state.seen[t] then error("json.encode: a table contains itself (a cycle)", 0) end
  state.seen[t] = true
  local mt = getmetatable(t)
  local n = mt == array_mt and rawlen(t) or (mt ~= object_mt and list_length(t))
  if n then
    emit(out, "[")
    for i = 1, n do
      if i > 1 then emit(out, ",") end
      encode_value(rawget(t, i), out, state, depth + 1)
    end
    emit(out, "]")
  else
    local keys = {}
    for k in next, t do
      if type(k) ~= "string" then
        error(("json.encode: a table mixes list items and named keys (key %s)"):format(type(k)), 0)
      end
      keys[#keys + 1] = k
    end
    table.sort(keys, byte_order)
    emit(out, "{")
    for i, k in ipairs(keys) do
      if i > 1 then emit(out, ",") end
      encode_string(k, out)
      emit(out, ":")
      encode_value(rawget(t, k), out, state, depth + 1)
    end
    emit(out, "}")
  end
  state.seen[t] = nil          -- the same table may appear again beside itself
end

function encode_value(v, out, state, depth)
  local kind = type(v)
  if kind == "nil" or v == json.null then
    emit(out, "null")
  elseif kind == "boolean" then
    emit(out, v and "true" or "false")
  elseif kind == "number" then
    encode_number(v, out)
  elseif kind == "string" then
    encode_string(v, out)
  elseif kind == "table" then
    encode_table(v, out, state, depth)
  else
    error(("json.encode: cannot write a %s as JSON"):format(kind), 0)
  end
end

function json.encode(...)
  if select("#", ...) == 0 then error("bad argument #1 to 'encode' (value expected)", 2) end
  local out = { size = 0 }
  encode_value((...), out, { seen = {}, tables = 0 }, 0)
  return table.concat(out)
end

---------------------------------------------------------------------------
-- decoding

-- An escaped NUL would cut a value short in the engine's C strings: it
-- reads \u0000 as U+FFFD, and so does the kit.
local function without_nul_escapes(s)
  return (s:gsub("(\\+)u0000", function(run)
    if #run % 2 == 1 then return run:sub(1, -2) .. "\\ufffd" end
  end))
end

-- A string only the marking can make: the text holds no NUL by now.
local EMPTY = "\0registrar-kit: empty array\0"
local EMPTY_TEXT = '"\\u0000registrar-kit: empty array\\u0000"'

-- Each [] outside a string becomes [EMPTY], so the decoded table says it
-- was an array.
local function mark_empty_arrays(s)
  local out, from, at = {}, 1, 1
  while true do
    local j = s:find('["%[]', at)
    if not j then break end
    if s:byte(j) == 34 then
      local k = j + 1
      while true do
        local q = s:find('["\\]', k)
        if not q then return nil end          -- an unclosed string: cjson says where
        if s:byte(q) == 92 then k = q + 2 else at = q + 1; break end
      end
    else
      local close = s:match("^[ \t\r\n]*()%]", j + 1)
      if close then
        out[#out + 1] = s:sub(from, j) .. EMPTY_TEXT
        from = close
        at = close + 1
      else
        at = j + 1
      end
    end
  end
  out[#out + 1] = s:sub(from)
  return table.concat(out)
end

local function tag(v, depth)
  if type(v) == "number" then
    if v == math.floor(v) and math.abs(v) < 9007199254740992.0 then return math.tointeger(v) end
    return v
  end
  if type(v) ~= "table" then return v end
  if depth > MAX_DEPTH then error("deeper", 0) end
  local first = next(v)
  if first == nil then return setmetatable(v, object_mt) end
  if type(first) == "number" then
    if v[1] == EMPTY and v[2] == nil then v[1] = nil; return setmetatable(v, array_mt) end
    for i = 1, #v do v[i] = tag(v[i], depth + 1) end
    return setmetatable(v, array_mt)
  end
  for k, item in pairs(v) do v[k] = tag(item, depth + 1) end
  return setmetatable(v, object_mt)
end

local function failure(s, message)
  local at = tonumber(tostring(message):match("at character (%d+)")) or 1
  return nil, ("invalid JSON at byte %d of %d"):format(math.max(1, math.min(at, #s)), #s)
end

-- json.decode(text) -> value, or nil and why (text from a registry may be anything).
function json.decode(s)
  if type(s) == "number" then s = tostring(s) end
  if type(s) ~= "string" then
    error(("bad argument #1 to 'decode' (string expected, got %s)"):format(s == nil and "no value" or type(s)), 2)
  end
  local nul = s:find("\0", 1, true)
  if nul then return nil, ("invalid JSON at byte %d of %d"):format(nul, #s) end
  local text = without_nul_escapes(s)
  local marked = mark_empty_arrays(text)
  local ok, v = pcall(cjson.decode, marked or text)
  if not ok then
    if marked then ok, v = pcall(cjson.decode, text) end   -- where the text itself is wrong
    return failure(s, v)
  end
  local tagged
  ok, tagged = pcall(tag, v, 1)
  if not ok then return nil, ("JSON nested deeper than %d"):format(MAX_DEPTH) end
  return tagged
end

---------------------------------------------------------------------------
-- tags

local function tag_table(t, mt, name)
  if t == nil then t = {} end
  if type(t) ~= "table" then
    error(("bad argument #1 to '%s' (table expected, got %s)"):format(name, type(t)), 3)
  end
  return setmetatable(t, mt)
end

function json.array(t) return tag_table(t, array_mt, "array") end
function json.object(t) return tag_table(t, object_mt, "object") end
function json.is_array(t) return type(t) == "table" and getmetatable(t) == array_mt end
function json.is_object(t) return type(t) == "table" and getmetatable(t) == object_mt end

return json
