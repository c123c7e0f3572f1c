-- scripts/backends/etcd.lua with registrar.http.request replaced: the
-- requests it makes, and what it makes of the answers.

local support = require "support"
local registrar = require "registrar"

describe("etcd backend, v2 keys API (etcd2://)", function()
  local etcd, requests, answers, saved_request

  before_each(function()
    support.configure()
    etcd = dofile(support.scripts .. "/backends/etcd.lua")
    requests, answers = {}, {}
    saved_request = registrar.http.request
    registrar.http.request = function(req)
      requests[#requests + 1] = req
      local answer = table.remove(answers, 1) or { status = 200, body = "{}" }
      if answer.fail then return nil, answer.fail end
      return answer
    end
  end)

  after_each(function() registrar.http.request = saved_request end)

  it("PUTs the document form-encoded under the key", function()
    local b = etcd.open("etcd2://127.0.0.1:2379", registrar.config)
    answers[1] = { status = 201, body = "{}" }
    assert.is_true(b:register { key = "/services/prod/etc/4001/49155/x", value = '{"a":"b c&d"}' })
    assert.equal("PUT", requests[1].method)
    assert.equal("http://127.0.0.1:2379/v2/keys/services/prod/etc/4001/49155/x", requests[1].url)
    assert.equal("value=%7B%22a%22%3A%22b%20c%26d%22%7D", requests[1].body)
    assert.equal("application/x-www-form-urlencoded", requests[1].headers["Content-Type"])
  end)

  it("adds the ttl in seconds in ttl mode", function()
    local b = etcd.open("etcd2://127.0.0.1:2379", registrar.config)
    b:register { key = "/k", value = "v", ttl = 12 }
    assert.equal("value=v&ttl=12", requests[1].body)
  end)

  it("escapes key segments in the URL", function()
    local b = etcd.open("etcd2://127.0.0.1:2379", registrar.config)
    b:register { key = "/services/a%2Fb/c d", value = "v" }
    assert.equal("http://127.0.0.1:2379/v2/keys/services/a%252Fb/c%20d", requests[1].url)
  end)

  it("reports etcd's error message with method, key and status", function()
    local b = etcd.open("etcd2://127.0.0.1:2379", registrar.config)
    answers[1] = { status = 403, body = '{"errorCode":102,"message":"Not a file"}' }
    local ok, err = b:register { key = "/k", value = "v" }
    assert.is_nil(ok)
    assert.equal("PUT /k: status 403: Not a file", err)
  end)

  it("moves to the next endpoint when one cannot be reached, and stays there", function()
    local b = etcd.open("etcd2://127.0.0.1:1,127.0.0.1:2", registrar.config)
    answers = { { fail = "Couldn't connect to server" }, { status = 200, body = "{}" }, { status = 200, body = "{}" } }
    assert.is_true(b:register { key = "/k", value = "v" })
    assert.is_true(b:register { key = "/k", value = "v" })
    assert.equal("http://127.0.0.1:1/v2/keys/k", requests[1].url)
    assert.equal("http://127.0.0.1:2/v2/keys/k", requests[2].url)
    assert.equal("http://127.0.0.1:2/v2/keys/k", requests[3].url)
  end)

  it("fails naming every endpoint when none answers", function()
    local b = etcd.open("etcd2://127.0.0.1:1,127.0.0.1:2", registrar.config)
    answers = { { fail = "refused" }, { fail = "refused" } }
    local ok, err = b:register { key = "/k", value = "v" }
    assert.is_nil(ok)
    assert.equal("PUT /v2/keys/k: http://127.0.0.1:1: refused; http://127.0.0.1:2: refused", err)
  end)

  it("advertises only this host's documents and skips foreign values", function()
    local b = etcd.open("etcd2://127.0.0.1:2379", registrar.config)
    answers[1] = { status = 200, body = registrar.json.encode {
      node = { key = "/services", dir = true, nodes = {
        { key = "/services/a", value = '{"host":"mesos-master","x":1}' },
        { key = "/services/b", value = '{"host":"other","x":2}' },
        { key = "/services/c", value = "not json at all" },
        { key = "/services/d", dir = true, nodes = {
          { key = "/services/d/e", value = '{"host":"mesos-master"}' } } },
      } } } }
    assert.same({
      ["/services/a"] = '{"host":"mesos-master","x":1}',
      ["/services/d/e"] = '{"host":"mesos-master"}',
    }, b:advertised())
    assert.equal("http://127.0.0.1:2379/v2/keys/services?recursive=true", requests[1].url)
  end)

  it("advertises nothing when the prefix does not exist", function()
    local b = etcd.open("etcd2://127.0.0.1:2379", registrar.config)
    answers[1] = { status = 404, body = '{"errorCode":100}' }
    assert.same({}, b:advertised())
  end)

  it("fails on an answer that is not etcd's", function()
    local b = etcd.open("etcd2://127.0.0.1:2379", registrar.config)
    answers[1] = { status = 200, body = "<html>proxy</html>" }
    local ok, err = b:advertised()
    assert.is_nil(ok)
    assert.truthy(err:find("not an etcd v2 answer", 1, true))
  end)

  it("deletes a key, then its directories while they are empty", function()
    local b = etcd.open("etcd2://127.0.0.1:2379", registrar.config)
    answers = { { status = 200 }, { status = 200 }, { status = 403 } }
    assert.is_true(b:deregister { key = "/services/prod/etc/4001/49155/x" })
    assert.equal("DELETE", requests[1].method)
    assert.equal("http://127.0.0.1:2379/v2/keys/services/prod/etc/4001/49155/x", requests[1].url)
    assert.equal("http://127.0.0.1:2379/v2/keys/services/prod/etc/4001/49155?dir=true", requests[2].url)
    assert.equal("http://127.0.0.1:2379/v2/keys/services/prod/etc/4001?dir=true", requests[3].url)
    assert.equal(3, #requests)
  end)

  it("counts a key already gone as deregistered", function()
    local b = etcd.open("etcd2://127.0.0.1:2379", registrar.config)
    answers = { { status = 404, body = "{}" }, { status = 403 } }
    assert.is_true(b:deregister { key = "/services/x/y" })
  end)
end)
