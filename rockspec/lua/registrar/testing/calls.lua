-- Hook calls as the engine makes them (engine/lua/script.c, budget.c,
-- errors.c, task.c): each call runs in a coroutine of its own, under the
-- instruction budget and the time budget, and a failure comes back as
-- the message the daemon would log, "file:line: why".
--
-- The kit's fakes answer at once, so nothing a backend calls ever waits;
-- a hook that yields on its own is the daemon's "attempt to yield from
-- outside a coroutine".

local calls = {}

local STEP = 10000            -- instructions between budget checks, as budget.c

local function count_text(n)
  if n % 1000000 == 0 then return ("%d million"):format(n // 1000000) end
  return ("%d"):format(n)
end

-- "file:line: " of the first Lua function on co's stack from level on.
local function where(co, level)
  while true do
    local info = debug.getinfo(co, level, "Sl")
    if not info then return "" end
    if info.currentline and info.currentline > 0 then return ("%s:%d: "):format(info.short_src, info.currentline) end
    level = level + 1
  end
end

-- The error value as the daemon reports it: a string as it is (its
-- traceback cut off), anything else with the place it was raised.
local function describe(err, co, level)
  if type(err) == "string" and err ~= "attempt to yield from outside a coroutine" then return err end
  if type(err) == "string" then return where(co, level) .. err end
  return ("%s(error object is a %s value)"):format(where(co, level), type(err))
end

-- calls.run(limits, tasks, fn, ...) -> true, results... | false, message
-- limits: {instructions, timeout_ms}; tasks: the set of coroutines the
-- kit's registrar.http / registrar.zk accept calls from (nil for naming).
function calls.run(limits, tasks, fn, ...)
  local used, started = 0, os.clock()
  local stopped
  local function hook()
    if stopped then return end
    used = used + STEP
    if used > limits.instructions then
      stopped = ("stopped after %s instructions (script_instructions): a loop that never ends?")
                :format(count_text(limits.instructions))
    elseif (os.clock() - started) * 1000 > limits.timeout_ms then
      stopped = ("stopped after %d ms (script_timeout): a loop that never ends, or slow "
                 .. "library calls on large data?"):format(limits.timeout_ms)
    end
    if stopped then error(stopped, 2) end
  end
  local raised
  local co = coroutine.create(function(...)
    return xpcall(fn, function(err)
      -- levels from here: where, describe, this handler, then the raiser
      raised = describe(err, coroutine.running(), 4)
      return raised
    end, ...)
  end)
  if tasks then tasks[co] = true end
  debug.sethook(co, hook, "", STEP)
  local resumed = table.pack(coroutine.resume(co, ...))
  if tasks then tasks[co] = nil end
  if coroutine.status(co) == "suspended" then
    local message = where(co, 1) .. "attempt to yield from outside a coroutine"
    coroutine.close(co)
    return false, message
  end
  if not resumed[1] then return false, describe(resumed[2], co, 0) end
  if not resumed[2] then return false, raised or describe(resumed[3], co, 0) end
  local elapsed = (os.clock() - started) * 1000
  if elapsed > limits.timeout_ms then
    return false, ("took %d ms, over script_timeout (%d ms): a pattern that backtracks, or a "
                   .. "library call on large data?"):format(elapsed // 1, limits.timeout_ms)
  end
  return true, table.unpack(resumed, 3, resumed.n)
end

-- calls.must(limits, tasks, fn, ...) -> results, or raises the message.
function calls.must(limits, tasks, fn, ...)
  local results = table.pack(calls.run(limits, tasks, fn, ...))
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

return calls
