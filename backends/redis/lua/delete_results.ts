// The `deleteResults` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `deleteResults`; it runs after `begin(ARGV)` (fragments.ts). */
export const DELETE_RESULTS: string = `--[[
  Delete results.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): result:<id>, results:ttl
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4..] task ids

  Output:
    1
]]
for i = 4, #ARGV do deleteResult(ARGV[i]) end
return 1
`;
