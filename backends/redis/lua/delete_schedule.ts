// The `deleteSchedule` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `deleteSchedule`; it runs after `begin(ARGV)` (fragments.ts). */
export const DELETE_SCHEDULE: string = `--[[
  Delete a schedule.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): schedule:<id>, schedules, schedules:next
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] id

  Output:
    1 when it existed, else 0
]]
local id = ARGV[4]
redis.call('ZREM', P .. 'schedules:next', id)
redis.call('SREM', P .. 'schedules', id)
return redis.call('DEL', P .. 'schedule:' .. id)
`;
