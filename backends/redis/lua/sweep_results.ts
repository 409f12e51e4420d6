// The `sweepResults` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `sweepResults`; it runs after `begin(ARGV)` (fragments.ts). */
export const SWEEP_RESULTS: string = `--[[
  Delete the results whose ttl passed.

  Redis may have expired their keys already; the index says how many ended.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): result:<id>, results:ttl
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] now (ms)
    ARGV[5] batch: the most to delete

  Output:
    how many were deleted
]]
local ids = redis.call('ZRANGEBYSCORE', K_RESULT_TTL, '-inf', tonumber(ARGV[4]), 'LIMIT', 0,
  tonumber(ARGV[5]))
for _, id in ipairs(ids) do deleteResult(id) end
return #ids
`;
