// The `retry` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `retry`; it runs after `begin(ARGV)` (fragments.ts). */
export const RETRY: string = `--[[
  Queue a failed, cancelled or expired task again.

  Its attempts are reset and its ttl dropped; it takes back its dedupe key unless another
  task holds it (\`keyOwner\`, as \`holdsKey\` says; a throttled task may still hold it).

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): task:<id>, ended, keys, {<queue>}:ready, {<queue>}:due,
      {<queue>}:g:<lane>, {<queue>}:groups, rate:<bucket>, counts, aging, result:<id>,
      results:ttl, events, wake
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] id

  Output:
    finish(x), x = true, or false when it is not such a task
]]
local id = ARGV[4]
local t = load(id)
if not t or not FINAL[t.state] or t.state == 'completed' then return finish(false) end
t.attempts = 0
t.exp = nil
redis.call('HDEL', tkey(id), 'error', 'completedAt', 'startedAt', 'progress', 'exp')
redis.call('ZREM', K_ENDED, id)
-- Its start is forgotten (\`startedAt\` goes): it counts in its rate bucket no more.
if t.rkey then redis.call('ZREM', rateKey(t.rkey), id) end
if t.key and not keyOwner(t.key) then redis.call('HSET', K_KEYS, t.key, id) end
if ATTACH_RESULTS then deleteResult(id) end
place(id, t, NOW, 'attempts', 0)
emit('enqueued', id, t.queue, 0, {state = 'queued', retry = true})
return finish(true)
`;
