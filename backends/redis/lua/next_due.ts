// The `nextDue` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `nextDue`; it runs after `begin(ARGV)` (fragments.ts). */
export const NEXT_DUE: string = `--[[
  The earliest due time of a scheduled task in the queues, leaving out paused ones (a
  claim would take nothing from them; a resume wakes the workers).

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): {<queue>}:due, paused
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4..] queues

  Output:
    the due time (ms) as a string, or false when no task is scheduled
]]
local best = earliestDue(ARGV, 4)
if not best then return false end
return int(best)
`;
