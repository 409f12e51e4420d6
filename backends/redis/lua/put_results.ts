// The `putResults` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `putResults`; it runs after `begin(ARGV)` (fragments.ts). */
export const PUT_RESULTS: string = `--[[
  Store results, each with its expiry.

  Input:
    KEYS: none; the keys are built from the prefix (ARGV[1]), see fragments.ts.
    Keys touched (after the prefix): result:<id>, results:ttl
    ARGV[1] prefix: every key's start, e.g. 'omniq:'
    ARGV[2] flags: two characters, '1' when results / events are attached (written here)
    ARGV[3] maxLen: the events stream's approximate MAXLEN
    ARGV[4..] groups of three: task id, result JSON, expiresAt (ms) or ''

  Output:
    1
]]
for i = 4, #ARGV, 3 do storeResult(ARGV[i], ARGV[i + 1], ARGV[i + 2]) end
return 1
`;
