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
    assert.equal('"caf\\ufffd"', json.encode "caf\xe9")
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
