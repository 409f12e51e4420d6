// The `progress` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `progress`; it runs after `begin(ARGV)` (fragments.ts). */
export const PROGRESS: string = `--[[
  Record a running task's progress, if the token still holds it.

  Input:
    KEYS: none; the keys are built from the prefix (ARGV[1]), see fragments.ts.
    Keys touched (after the prefix): task:<id>, events
    ARGV[1] prefix: every key's start, e.g. 'omniq:'
    ARGV[2] flags: two characters, '1' when results / events are attached (written here)
    ARGV[3] maxLen: the events stream's approximate MAXLEN
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
