-- Text helpers that take linear time on any input.  Container data is
-- hostile, and a Lua pattern that backtracks over it, such as the usual
-- trim `^%s*(.-)%s*$`, takes quadratic time: one container's 60 000
-- spaces held the whole daemon for seconds.  Every pattern here either is
-- anchored and backtracks once, or matches one character class.

local text = {}

-- "  a b  " -> "a b"
function text.trim(s)
  local first = s:find("%S")
  if not first then return "" end
  return s:match("^.*%S", first)
end

-- "a/b/c" -> "c": everything after the last `sep` (a single character).
function text.after_last(s, sep)
  return s:match("^.*%" .. sep .. "(.*)$") or s
end

return text
