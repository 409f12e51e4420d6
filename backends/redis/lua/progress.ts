// The `progress` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `progress`; it runs after `begin(ARGV)` (fragments.ts). */
export const PROGRESS: string = `--[[
  Record a running task's progress, if the token still holds it.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): task:<id>, events
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] id
    ARGV[5] token: the claim's token
    ARGV[6] value: the progress (a number)

  Output:
    finish(x), x = true, or false when the token is stale
]]
local id = ARGV[4]
local t = held(id, ARGV[5])
if not t then return finish(false) end
local value = tonumber(ARGV[6])
redis.call('HSET', tkey(id), 'progress', ARGV[6])
emit('progress', id, t.queue, t.attempts, {progress = value})
return finish(true)
`;
