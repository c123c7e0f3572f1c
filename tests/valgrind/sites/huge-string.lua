-- document(): a string of 8 MiB, stored as is.  It is copied out of the
-- Lua state and printed; nothing may be cut short or read past its end.
local huge = ("0123456789abcdef"):rep(1 << 19)

function document(service)
  return huge .. service.key
end
