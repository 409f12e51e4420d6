// The `corrupt` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `corrupt`; it runs after `begin(ARGV)` (fragments.ts). */
export const CORRUPT: string = `--[[
  Fail a claimed task whose record the client could not read.

  Input:
    KEYS: none; the keys are built from the prefix (ARGV[1]), see fragments.ts.
    Keys touched (after the prefix): task:<id>, running, expiring, ended, counts,
      result:<id>, results:ttl, events
    ARGV[1] prefix: every key's start, e.g. 'omniq:'
    ARGV[2] flags: two characters, '1' when results / events are attached (written here)
    ARGV[3] maxLen: the events stream's approximate MAXLEN
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
