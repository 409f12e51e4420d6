// The `fireTick` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

import { TASK_ARGS } from "./fragments.ts";

/** The Lua body of `fireTick`; it runs after `begin(ARGV)` (fragments.ts). */
export const FIRE_TICK: string = `--[[
  Fire one tick of a schedule: advance it and enqueue its task, as one step.

  The compare-and-set of the schedule's next tick makes one process out of many fire
  it; the task is inserted only when its id is new. A task with a dedupe key takes the
  key's entry only when no other task holds it (\`keyOwner\`, as \`holdsKey\` says; a
  tick's task has no key today).

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): schedule:<id>, schedules:next, task:<id>, tasks, seq,
      keys, deps:<id>, {<queue>}:ready, {<queue>}:due, {<queue>}:g:<lane>,
      {<queue>}:groups, rate:<bucket>, expiring, ended, counts, aging, result:<id>,
      results:ttl, events, wake
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] id: the schedule's id
    ARGV[5] tick: the tick fired (ms)
    ARGV[6] the next tick (ms) or '' when none follows
    ARGV[7] '1' when a task follows
    ARGV[8..] the task: TASK_ARGS (22) entries, as in enqueue (a tick is never debounced)

  Output:
    finish(x), x = true, or false when the compare-and-set failed
]]
local id, tick = ARGV[4], tonumber(ARGV[5])
local k = P .. 'schedule:' .. id
local v = redis.call('HMGET', k, 'paused', 'next')
if not v[1] or v[1] == '1' or not v[2] or tonumber(v[2]) ~= tick then return finish(false) end
setNext(k, id, ARGV[6])
redis.call('HSET', k, 'last', ARGV[5])
if ARGV[7] == '1' and redis.call('EXISTS', tkey(ARGV[8])) == 0 then
  local a = {}
  for j = 0, ${TASK_ARGS} - 1 do a[j + 1] = ARGV[8 + j] end
  insert(a)
  emit('schedule_fired', a[1], a[2], 0, {scheduleId = id, tick = tick})
end
return finish(true)
`;
