// The `pauseSchedule` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `pauseSchedule`; it runs after `begin(ARGV)` (fragments.ts). */
export const PAUSE_SCHEDULE: string = `--[[
  Pause or resume a schedule.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): schedule:<id>, schedules:next, events
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] id
    ARGV[5] paused: '1' to pause, '0' to resume
    ARGV[6] nextRunAt (ms) or '', when resuming

  Output:
    finish(x), x = true, or false when unknown or already in that state
]]
local id, paused = ARGV[4], ARGV[5]
local k = P .. 'schedule:' .. id
local cur = redis.call('HGET', k, 'paused')
if not cur or cur == paused then return finish(false) end
redis.call('HSET', k, 'paused', paused)
if paused == '1' then
  redis.call('ZREM', P .. 'schedules:next', id)
else
  setNext(k, id, ARGV[6])
end
emit(paused == '1' and 'schedule_paused' or 'schedule_resumed', nil, nil, 0,
  {scheduleId = id})
return finish(true)
`;
