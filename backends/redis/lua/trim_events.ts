// The `trimEvents` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `trimEvents`; it runs after `begin(ARGV)` (fragments.ts). */
export const TRIM_EVENTS: string = `--[[
  Delete the events older than a time.

  They come in time order: the trim stops at the first that is not older.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): events
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] before (ms)

  Output:
    how many were deleted
]]
local before = tonumber(ARGV[4])
local key = P .. 'events'
local start = '-'
while true do
  local page = redis.call('XRANGE', key, start, '+', 'COUNT', 500)
  if #page == 0 then return redis.call('XTRIM', key, 'MAXLEN', 0) end
  for _, entry in ipairs(page) do
    local ok, e = pcall(cjson.decode, entry[2][2] or 'null')
    local at = ok and type(e) == 'table' and tonumber(e.at)
    if at and at >= before then return redis.call('XTRIM', key, 'MINID', entry[1]) end
  end
  start = '(' .. page[#page][1]
end
`;
