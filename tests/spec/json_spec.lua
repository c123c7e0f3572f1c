-- registrar.json: what scripts rely on when they build documents.

local json = require("registrar").json

describe("registrar.json", function()
  it("writes object keys sorted, so one document is always the same bytes", function()
    assert.equal('{"a":1,"b":{"x":true,"y":false},"c":"z"}', json.encode { c = "z", a = 1, b = { y = false, x = true } })
  end)

  it("keeps [] and {} apart through decode and encode", function()
    assert.equal('{"list":[],"map":{}}', json.encode(json.decode('{"list":[],"map":{}}')))
    assert.equal("[]", json.encode(json.array {}))
    assert.equal("{}", json.encode(json.object {}))
    assert.equal("{}", json.encode {})
  end)

  it("writes sequences as arrays", function()
    assert.equal('[1,"two",3.5]', json.encode { 1, "two", 3.5 })
  end)

  it("round-trips null", function()
    assert.equal(json.null, json.decode("null"))
    assert.equal('{"a":null}', json.encode { a = json.null })
  end)

  it("escapes control characters and replaces bytes that are not UTF-8", function()
    assert.equal('"a\\nb\\u0001"', json.encode "a\nb\1")
    assert.equal('"caf\xef\xbf\xbd"', json.encode "caf\xe9")      -- U+FFFD, as it reads back
    assert.equal('"h\xc3\xa9"', json.encode "h\xc3\xa9")
  end)

  it("refuses what JSON cannot hold", function()
    assert.has_error(function() json.encode { f = print } end, "json.encode: cannot write a function as JSON")
    assert.has_error(function() json.encode(0 / 0) end)
    local t = {}
    t.self = t
    assert.has_error(function() json.encode(t) end)
    assert.has_error(function() json.encode { 1, 2, x = 3 } end)
  end)

  it("returns nil and a reason for text that is not JSON", function()
    local v, err = json.decode("{nope")
    assert.is_nil(v)
    assert.truthy(err:find("invalid JSON", 1, true))
    assert.is_nil((json.decode('{"a":1} trailing')))
    assert.is_nil((json.decode("")))
  end)

  it("writes deeply nested tables, up to 100 levels", function()
    local function nest(levels)
      local t = {}
      local c = t
      for _ = 2, levels do c.a = {} c = c.a end
      return t
    end
    -- 30 levels once wrote past the C stack Lua grants and crashed the daemon
    assert.equal(('{"a":'):rep(29) .. "{}" .. ("}"):rep(29), json.encode(nest(30)))
    assert.equal(100, select(2, json.encode(nest(100)):gsub("{", "")))
    assert.has_error(function() json.encode(nest(101)) end, "json.encode: tables nested deeper than 100")
  end)

  it("says a table that contains itself is a cycle, and a table used twice is not", function()
    local t = {}
    t.self = t
    assert.has_error(function() json.encode(t) end, "json.encode: a table contains itself (a cycle)")
    local list = { 1 }
    local inner = { list = list }
    inner.again = list
    assert.equal('{"again":[1],"list":[1]}', json.encode(inner))
    local a = { b = { c = {} } }
    a.b.c.up = a.b
    assert.has_error(function() json.encode { a } end, "json.encode: a table contains itself (a cycle)")
  end)

  it("reads what it writes, at any depth it writes", function()
    local text = ("["):rep(100) .. ("]"):rep(100)
    assert.equal(text, json.encode(json.decode(text)))
    local v, err = json.decode(("["):rep(101) .. ("]"):rep(101))
    assert.is_nil(v)
    assert.equal("JSON nested deeper than 100", err)
    v, err = json.decode(("["):rep(5000) .. ("]"):rep(5000))
    assert.is_nil(v)
    assert.truthy(err)
  end)

  it("keeps a value with an escaped NUL whole, reading the NUL as U+FFFD", function()
    assert.equal("a\u{FFFD}b", json.decode('"a\\u0000b"'))
    assert.equal("a\\u0000b", json.decode('"a\\\\u0000b"'))     -- an escaped backslash, then text
    assert.is_nil((json.decode('"a\0b"')))                     -- a raw NUL is never JSON
  end)

  it("gives the same text when what it wrote is read and written again", function()
    for _, v in ipairs { "caf\xe9", "\xff\xfe", { ["k\xff"] = "\x80" } } do
      local once = json.encode(v)
      assert.equal(once, json.encode(json.decode(once)))
    end
    -- a NUL is written escaped and read as U+FFFD; from there on it stays
    local read = json.decode(json.encode "a\0b")
    assert.equal("a\u{FFFD}b", read)
    assert.equal(json.encode(read), json.encode(json.decode(json.encode(read))))
  end)

  it("keeps keys that hold NUL bytes whole", function()
    assert.equal('{"a\\u0000b":1}', json.encode { ["a\0b"] = 1 })
    assert.equal('{"a":1,"a\\u0000x":2,"a\\u0000y":3}', json.encode { a = 1, ["a\0x"] = 2, ["a\0y"] = 3 })
    local t = {}
    t["x\0"] = t
    assert.has_error(function() json.encode(t) end, "json.encode: a table contains itself (a cycle)")
  end)

  it("reads 100 levels with a value at the bottom, as it writes them", function()
    local text = ("["):rep(100) .. "1" .. ("]"):rep(100)
    assert.equal(text, json.encode(json.decode(text)))
  end)

  it("stops at a million tables from a table used over and over #heavy", function()
    local t = { "x" }
    for _ = 1, 30 do t = { a = t, b = t } end          -- 2^30 tables to write
    assert.has_error(function() json.encode(t) end,
                     "json.encode: more than 1000000 tables (a table used many times over?)")
    t = { s = ("x"):rep(1 << 20) }
    for _ = 1, 8 do t = { a = t, b = t } end          -- 256 MiB of text from 511 tables
    assert.has_error(function() json.encode(t) end,
                     "json.encode: the text would be larger than 128 MiB (a table used many times over?)")
  end)

  it("names the byte where text stops being JSON", function()
    assert.equal("invalid JSON at byte 9 of 16", select(2, json.decode('{"a":1} trailing')))
    assert.equal("invalid JSON at byte 5 of 5", select(2, json.decode("[1,2,")))
  end)

  it("reads integers as integers", function()
    assert.equal(math.type(json.decode("42")), "integer")
    assert.equal(math.type(json.decode("4.5")), "float")
  end)
end)

describe("registrar.base64", function()
  local b64 = require("registrar").base64
  it("encodes and decodes with padding, as etcd's gateway wants", function()
    for _, s in ipairs { "", "f", "fo", "foo", "foob", "fooba", "foobar", "\0\255\1" } do
      assert.equal(s, b64.decode(b64.encode(s)))
    end
    assert.equal("L3NlcnZpY2Vz", b64.encode("/services"))
  end)

  it("returns nil and a reason for bad input", function()
    local v, err = b64.decode("ab$c")
    assert.is_nil(v)
    assert.truthy(err:find("invalid base64", 1, true))
  end)
end)
