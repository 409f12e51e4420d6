// The `putResults` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `putResults`; it runs after `begin(ARGV)` (fragments.ts). */
export const PUT_RESULTS: string = `--[[
  Store results, each with its expiry.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): result:<id>, results:ttl
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4..] groups of three: task id, result JSON, expiresAt (ms) or ''

  Output:
    1
]]
for i = 4, #ARGV, 3 do storeResult(ARGV[i], ARGV[i + 1], ARGV[i + 2]) end
return 1
`;
