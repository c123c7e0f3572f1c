-- A ZooKeeper tree behind the kit's registrar.zk.connect, as ZooKeeper
-- answers the calls the bundled backend makes: versions, parents that
-- must exist, ephemeral znodes owned by a session (and no children under
-- them), NOTEMPTY, and each failure as nil, message, code.
--
-- options: session_id, the first session's id (0x51).

local ZooKeeper = {}
ZooKeeper.__index = ZooKeeper

local fake = {}

function fake.new(options)
  options = options or {}
  return setmetatable({ nodes = { ["/"] = { data = "", version = 0, owner = 0, zxid = 0 } },
                        next_session = options.session_id or 0x51, zxid = 0 }, ZooKeeper)
end

local function parent(path) return path:match("^(.*)/[^/]+$") end

function ZooKeeper:children_of(path)
  local out = {}
  local under = path == "/" and "" or path
  for p in pairs(self.nodes) do
    if p ~= "/" and parent(p) == under then out[#out + 1] = p:match("[^/]+$") end
  end
  table.sort(out)
  return out
end

function ZooKeeper:stat(path)
  local node = self.nodes[path]
  return { version = node.version, cversion = 0, aversion = 0, ephemeral_owner = node.owner,
           data_length = #node.data, num_children = #self:children_of(path),
           czxid = node.zxid, mzxid = node.zxid, pzxid = node.zxid, ctime = 0, mtime = 0 }
end

local function failure(op, path, code, words)
  return nil, ("%s %s: %s"):format(op, path, words), code
end

local WORDS = { nonode = "no node", nodeexists = "node exists", badversion = "bad version",
                notempty = "directory not empty", nochildrenforephemerals = "no children for ephemerals" }

-- A session: the calls of docs/scripting.md's registrar.zk, for one client.
local Session = {}
Session.__index = Session

local function fail(op, path, code) return failure(op, path, code, WORDS[code]) end

local function bad_version(node, version) return version and version ~= -1 and version ~= node.version end

-- What each call does to the tree, once the guard has let it through.
local calls = {}

function calls.create(z, tree, path, data, opts)
  opts = opts or {}
  if tree.nodes[path] then return fail("create", path, "nodeexists") end
  local up = parent(path) == "" and "/" or parent(path)
  if not tree.nodes[up] then
    if not opts.parents then return fail("create", path, "nonode") end
    local p = ""
    for segment in up:gmatch("[^/]+") do
      p = p .. "/" .. segment
      if not tree.nodes[p] then
        if tree.nodes[parent(p) == "" and "/" or parent(p)].owner ~= 0 then
          return fail("create", path, "nochildrenforephemerals")
        end
        tree.zxid = tree.zxid + 1
        tree.nodes[p] = { data = "", version = 0, owner = 0, zxid = tree.zxid }
      end
    end
  end
  if tree.nodes[up].owner ~= 0 then return fail("create", path, "nochildrenforephemerals") end
  tree.zxid = tree.zxid + 1
  tree.nodes[path] = { data = data or "", version = 0, owner = opts.ephemeral and z.session or 0, zxid = tree.zxid }
  return path
end

function calls.get(_, tree, path)
  if not tree.nodes[path] then return fail("get", path, "nonode") end
  return tree.nodes[path].data, tree:stat(path)
end

function calls.set(_, tree, path, data, version)
  local node = tree.nodes[path]
  if not node then return fail("set", path, "nonode") end
  if bad_version(node, version) then return fail("set", path, "badversion") end
  node.data, node.version = data, node.version + 1
  return tree:stat(path)
end

function calls.delete(_, tree, path, version)
  local node = tree.nodes[path]
  if not node then return fail("delete", path, "nonode") end
  if bad_version(node, version) then return fail("delete", path, "badversion") end
  if #tree:children_of(path) > 0 then return fail("delete", path, "notempty") end
  tree.nodes[path] = nil
  return true
end

function calls.children(_, tree, path)
  if not tree.nodes[path] then return fail("children", path, "nonode") end
  return tree:children_of(path)
end

function calls.exists(_, tree, path)
  return tree.nodes[path] and tree:stat(path) or false
end

-- z:create(...), z:get(...), …: only from a backend hook (the guard
-- raises otherwise, as the engine's registrar.zk), each one recorded.
for op, call in pairs(calls) do
  Session[op] = function(self, path, ...)
    self.guard("z:" .. op)
    self.requests[#self.requests + 1] = { op = op, path = path, args = table.pack(...) }
    if type(path) ~= "string" or path:sub(1, 1) ~= "/" or (path ~= "/" and path:sub(-1) == "/") then
      return failure(op, tostring(path), "error", "bad arguments")
    end
    return call(self, self.tree, path, ...)
  end
end

function Session:id() return self.session end
function Session:state() return "connected" end

-- connect(params, guard, requests) -> a session; guard(method) raises
-- outside a backend hook, as the engine's registrar.zk does.
function ZooKeeper:connect(params, guard, requests)
  local id = self.next_session
  self.next_session = id + 1
  return setmetatable({ tree = self, session = id, params = params, guard = guard, requests = requests }, Session)
end

-- The session ends on the server's side (a long outage): its ephemeral
-- znodes go, and the client starts a new one at once, as the engine's
-- does: z:id() changes.
function ZooKeeper:expire(z)
  for p, node in pairs(self.nodes) do
    if node.owner == z.session then self.nodes[p] = nil end
  end
  z.session = self.next_session
  self.next_session = self.next_session + 1
end

-- What the registry holds: znode path -> data (the root left out).
function ZooKeeper:keys()
  local out = {}
  for p, node in pairs(self.nodes) do if p ~= "/" then out[p] = node.data end end
  return out
end

return fake
