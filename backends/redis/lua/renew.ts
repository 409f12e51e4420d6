// The `renew` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `renew`; it runs after `begin(ARGV)` (fragments.ts). */
export const RENEW: string = `--[[
  Extend the lease of a running task, if the token still holds it.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): task:<id>, running
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] id
    ARGV[5] token: the claim's token
    ARGV[6] lease: the new lease (ms from now)

  Output:
    1 when renewed, 0 when the token is stale (a number, not JSON)
]]
local id, lease = ARGV[4], tonumber(ARGV[6])
if not held(id, ARGV[5]) then return 0 end
local untilMs = int(NOW + lease)
redis.call('HSET', tkey(id), 'lease', untilMs)
redis.call('ZADD', K_RUNNING, untilMs, id)
return 1
`;
