// The `deleteSchedule` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `deleteSchedule`; it runs after `begin(ARGV)` (fragments.ts). */
export const DELETE_SCHEDULE: string = `--[[
  Delete a schedule.

  Input:
    KEYS: none; the keys are built from the prefix (ARGV[1]), see fragments.ts.
    Keys touched (after the prefix): schedule:<id>, schedules, schedules:next
    ARGV[1] prefix: every key's start, e.g. 'omniq:'
    ARGV[2] flags: two characters, '1' when results / events are attached (written here)
    ARGV[3] maxLen: the events stream's approximate MAXLEN
    ARGV[4] id

  Output:
    1 when it existed, else 0
]]
local id = ARGV[4]
redis.call('ZREM', P .. 'schedules:next', id)
redis.call('SREM', P .. 'schedules', id)
return redis.call('DEL', P .. 'schedule:' .. id)
`;
