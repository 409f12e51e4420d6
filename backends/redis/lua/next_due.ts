// The `nextDue` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `nextDue`; it runs after `begin(ARGV)` (fragments.ts). */
export const NEXT_DUE: string = `--[[
  The earliest due time of a scheduled task in the queues.

  Input:
    KEYS: none; the keys are built from the prefix (ARGV[1]), see fragments.ts.
    Keys touched (after the prefix): {<queue>}:due
    ARGV[1] prefix: every key's start, e.g. 'omniq:'
    ARGV[2] flags: two characters, '1' when results / events are attached (written here)
    ARGV[3] maxLen: the events stream's approximate MAXLEN
    ARGV[4..] queues

  Output:
    the due time (ms) as a string, or false when no task is scheduled
]]
local best = earliestDue(ARGV, 4)
if not best then return false end
return int(best)
`;
