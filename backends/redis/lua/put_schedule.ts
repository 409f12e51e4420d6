// The `putSchedule` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `putSchedule`; it runs after `begin(ARGV)` (fragments.ts). */
export const PUT_SCHEDULE: string = `--[[
  Store a schedule, replacing any of the same id.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): schedule:<id>, schedules, schedules:next
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] id
    ARGV[5] definition JSON
    ARGV[6] paused: '1' or '0'
    ARGV[7] nextRunAt (ms) or ''
    ARGV[8] lastRunAt (ms) or ''

  Output:
    1
]]
local id = ARGV[4]
local k = P .. 'schedule:' .. id
redis.call('DEL', k)
redis.call('HSET', k, 'd', ARGV[5], 'paused', ARGV[6])
if ARGV[7] ~= '' then redis.call('HSET', k, 'next', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', k, 'last', ARGV[8]) end
redis.call('SADD', P .. 'schedules', id)
if ARGV[6] == '0' and ARGV[7] ~= '' then
  redis.call('ZADD', P .. 'schedules:next', tonumber(ARGV[7]), id)
else
  redis.call('ZREM', P .. 'schedules:next', id)
end
return 1
`;
