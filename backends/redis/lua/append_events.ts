// The `appendEvents` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `appendEvents`; it runs after `begin(ARGV)` (fragments.ts). */
export const APPEND_EVENTS: string = `--[[
  Append events to the stream.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): events
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4..] event JSON documents

  Output:
    their stream ids
]]
local ids = {}
for i = 4, #ARGV do
  ids[#ids + 1] = redis.call('XADD', P .. 'events', 'MAXLEN', '~', MAXLEN, '*', 'e', ARGV[i])
end
return ids
`;
