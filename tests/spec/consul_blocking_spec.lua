-- The bookkeeping under every Consul watch: which keys a listing may be
-- trusted on, and what it says changed.
local blocking = require "backends.consul.blocking"

local function backend()
  local b = {}
  function b:register() return true end
  function b:deregister() return true end
  return blocking.track_writes(b, function(entry) return entry.value end)
end

describe("consul blocking-query bookkeeping", function()
  it("reports a key deleted and one changed since the listing before", function()
    local b = backend()
    blocking.audited(b, { ["/a"] = "1", ["/b"] = "2" })
    local changes = blocking.diff(b, { ["/b"] = "3" }, blocking.mark(b))
    table.sort(changes, function(x, y) return x.key < y.key end)
    assert.same({ { key = "/a" }, { key = "/b", value = "3" } }, changes)
    assert.is_false(b.recheck)
  end)

  it("sees a key of ours go that no listing had shown yet", function()
    local b = backend()
    blocking.audited(b, {})
    b:register { key = "/new", value = "v" }
    assert.same({ { key = "/new" } }, blocking.diff(b, {}, blocking.mark(b)))
  end)

  it("takes no listing sent before a write's end as the truth on that key, and looks again soon", function()
    local b = backend()
    blocking.audited(b, {})
    local mark = blocking.mark(b)                 -- the query leaves
    b:register { key = "/a", value = "v" }        -- a write ends before its answer is read
    assert.same({}, blocking.diff(b, {}, mark))   -- not "deleted by someone else"
    assert.is_true(b.recheck)
    assert.same({ { key = "/a" } }, blocking.diff(b, {}, blocking.mark(b)))
    assert.is_false(b.recheck)
  end)

  it("forgets a key of ours deregistered", function()
    local b = backend()
    blocking.audited(b, { ["/a"] = "v" })
    b:deregister { key = "/a", value = "v" }
    assert.same({}, blocking.diff(b, {}, blocking.mark(b)))
  end)
end)
