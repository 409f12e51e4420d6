// The `deleteResults` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `deleteResults`; it runs after `begin(ARGV)` (fragments.ts). */
export const DELETE_RESULTS: string = `--[[
  Delete results.

  Input:
    KEYS: none; the keys are built from the prefix (ARGV[1]), see fragments.ts.
    Keys touched (after the prefix): result:<id>, results:ttl
    ARGV[1] prefix: every key's start, e.g. 'omniq:'
    ARGV[2] flags: two characters, '1' when results / events are attached (written here)
    ARGV[3] maxLen: the events stream's approximate MAXLEN
    ARGV[4..] task ids

  Output:
    1
]]
for i = 4, #ARGV do deleteResult(ARGV[i]) end
return 1
`;
