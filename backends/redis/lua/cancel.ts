// The `cancel` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `cancel`; it runs after `begin(ARGV)` (fragments.ts). */
export const CANCEL: string = `--[[
  Cancel a task that is not final, and cascade to its dependents.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): task:<id>, {<queue>}:ready, {<queue>}:due,
      {<queue>}:g:<lane>, {<queue>}:groups, running, grouprun, expiring, ended, keys,
      deps:<id>, counts, aging, result:<id>, results:ttl, events, wake
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] id
    ARGV[5] reason

  Output:
    finish(x), x = true, or false when the task is final or unknown
]]
local id, reason = ARGV[4], ARGV[5]
local t = load(id)
if not t or FINAL[t.state] then return finish(false) end
endTask(id, t, 'cancelled', 'TaskCancelledError', reason, {reason = reason})
return finish(true)
`;
