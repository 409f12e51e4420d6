// The `corrupt` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `corrupt`; it runs after `begin(ARGV)` (fragments.ts). */
export const CORRUPT: string = `--[[
  Fail a claimed task whose record the client could not read.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): task:<id>, running, grouprun, expiring, ended, counts,
      result:<id>, results:ttl, events
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] id
    ARGV[5] token: the claim's token
    ARGV[6] queue
    ARGV[7] what is wrong with the record

  Output:
    finish(x), x = true, or false when the token is stale
]]
local id = ARGV[4]
local token = redis.call('HGET', tkey(id), 'token')
if token ~= ARGV[5] then return finish(false) end
corrupt(id, ARGV[6], ARGV[7])
return finish(true)
`;
