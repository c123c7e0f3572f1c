-- The kit's registrar.json (rockspec/lua/registrar/testing/json.lua, pure
-- Lua and lua-cjson) against the engine's (registrar_json.c, loaded here
-- as build/lua/registrar.so): the same bytes out, the same values in.

local engine = require("registrar").json
local kit = require "registrar.testing.json"

local corpus = require("support").scripts .. "/../tests/fuzz/corpus-json/"

local function both(fn, ...)
  local ok_e, e, e2 = pcall(engine[fn], ...)
  local ok_k, k, k2 = pcall(kit[fn], ...)
  return { ok_e, e, e2 }, { ok_k, k, k2 }
end

-- What a decoded value holds, as text: types, tags, integers apart from
-- floats (inf included, which no encoder writes).
local function meaning(json, v)
  if type(v) == "number" then return math.type(v) .. ":" .. ("%.17g"):format(v) end
  if v == json.null then return "null" end
  if type(v) ~= "table" then return type(v) .. ":" .. tostring(v) end
  local keys = {}
  for k in pairs(v) do keys[#keys + 1] = k end
  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
  local out = {}
  for _, k in ipairs(keys) do out[#out + 1] = tostring(k) .. "=" .. meaning(json, v[k]) end
  return (json.is_array(v) and "[" or "{") .. table.concat(out, ",") .. (json.is_array(v) and "]" or "}")
end

describe("the kit's json.encode", function()
  local values = {
    { b = 1, a = { 1, 2 } },
    { tags = kit.array {}, meta = kit.object {} },
    {},
    { 1, 2, 3, "x", true, false },
    "plain",
    'quotes " and \\ backslashes / slashes',
    "controls \1\2\31\127 and \n\r\t",
    "utf-8: é ü ß 日本 😀",
    "not utf-8: \255\254 \192\175 (overlong) \237\160\128 (surrogate) \244\144\128\128 (past U+10FFFF) \226\130",
    0, -1, 42, math.maxinteger, math.mininteger,
    0.5, -0.0, 0.1 + 0.2, 1e15, 1e14 + 0.5, 123456789012345678, 3.141592653589793, 1e300, 2^53, 2^63, -1.5e-7,
    { ["\0key"] = "nul in a key", ["z"] = 1, ["Z"] = 2, ["é"] = 3, ["a\0"] = 4, ["a"] = 5 },
    { nested = { deeper = { deepest = { kit.array { kit.object {} } } } } },
  }

  for i, v in ipairs(values) do
    it("writes value " .. i .. " as the engine does", function()
      -- tag-aware: the kit's tags for the kit, the engine's for the engine
      local function retag(x, json)
        if type(x) ~= "table" then return x end
        local out = {}
        for k, item in pairs(x) do out[k] = retag(item, json) end
        if kit.is_array(x) then return json.array(out) end
        if kit.is_object(x) then return json.object(out) end
        return out
      end
      assert.equal(engine.encode(retag(v, engine)), kit.encode(v))
    end)
  end

  it("refuses what the engine refuses, in its words", function()
    local cycle = {}
    cycle.self = cycle
    local deep = {}
    local t = deep
    for _ = 1, 120 do t.next = {}; t = t.next end
    for _, bad in ipairs { { cycle }, { print }, { 0 / 0 }, { math.huge }, { { 1, 2, x = 3 } },
                           { { [1] = "a", [3] = "c" } }, { { [true] = 1 } }, { deep }, { coroutine.create(print) } } do
      local ok_e, e = pcall(engine.encode, bad[1])
      local ok_k, k = pcall(kit.encode, bad[1])
      assert.is_false(ok_e)
      assert.same({ false, e }, { ok_k, k })
    end
  end)

  it("writes json.null as null, as the engine does", function()
    assert.equal(engine.encode { a = engine.null }, kit.encode { a = kit.null })
  end)
end)

describe("the kit's json.decode", function()
  local texts = {
    '{"a":[],"b":null,"c":{}}', '[[],[[]],{"x":[]}]', ' [ ] ', '{"a":[ \n ]}', '"[]"', '["[]", "\\"[]"]',
    '[1, 2.5, -0, 1e3, 12345678901234567890, 9007199254740993]', '{"k":"\\u0000 and \\\\u0000"}',
    '"\\ud83d\\ude00 é"', '{"dup":1,"dup":2}', 'true', 'null', '  12  ', '[1.]', '[1e400]',
  }
  local f = io.popen("ls " .. corpus)
  for name in f:lines() do
    local file = io.open(corpus .. name, "rb")
    texts[#texts + 1] = file:read("a")
    file:close()
  end
  f:close()

  for i, text in ipairs(texts) do
    it("reads text " .. i .. " as the engine does", function()
      local e, k = both("decode", text)
      assert.equal(e[1], k[1])
      if e[2] == nil then
        assert.is_nil(k[2])
      else
        assert.equal(meaning(engine, e[2]), meaning(kit, k[2]))
        assert.equal(engine.is_array(e[2]), kit.is_array(k[2]))
      end
    end)
  end

  it("refuses what the engine refuses, naming a byte", function()
    for _, bad in ipairs { "{nope", "[1,]", "[-]", '{"a":1,}', "[NaN]", "[Infinity]", "[0x10]", "",
                           "[1] x", '"\\ud800"', "[+1]", "tru", "nul\0l", '"\\x"' } do
      local e, k = both("decode", bad)
      assert.is_nil(e[2], bad)
      assert.is_nil(k[2], bad)
      assert.matches("^invalid JSON at byte %d+ of %d+$", k[3])
      -- lua-cjson and cJSON point at the same byte, or one apart
      local eb, kb = tonumber(e[3]:match("byte (%d+)")), tonumber(k[3]:match("byte (%d+)"))
      assert.is_true(math.abs(eb - kb) <= 1, ("%q: engine %s, kit %s"):format(bad, e[3], k[3]))
    end
  end)

  it("refuses a number with a leading zero, which the engine's cJSON reads (a difference docs/site-script-kit.md names)", function()
    assert.same({ 1 }, engine.decode "[01]")
    assert.is_nil(kit.decode "[01]")
  end)

  it("refuses JSON nested deeper than the engine writes", function()
    local text = ("["):rep(101) .. ("]"):rep(101)
    assert.same({ engine.decode(text) }, { kit.decode(text) })
    text = ("["):rep(100) .. ("]"):rep(100)
    assert.equal(engine.encode(engine.decode(text)), kit.encode(kit.decode(text)))
  end)
end)
