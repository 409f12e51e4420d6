// The `fail` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `fail`; it runs after `begin(ARGV)` (fragments.ts). */
export const FAIL: string = `--[[
  Fail a running task's attempt: retry it later, move it to its dead-letter queue, or end
  it failed.

  With a retry time the task goes back to scheduled or queued (\`place\`); with a
  dead-letter queue it is queued there (\`deadLetter\`, the event \`deadLetterEvent\` in
  src/kit/policy.ts makes); without either it ends failed, and its dependents are cancelled
  or released (\`cascade\`).

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): task:<id>, running, expiring, ended, keys, deps:<id>,
      {<queue>}:ready, {<queue>}:due, {<queue>}:g:<lane>, {<queue>}:groups (of its queue,
      or of its dead-letter queue), grouprun, counts, aging, result:<id>, results:ttl,
      events, wake
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] id
    ARGV[5] token: the claim's token
    ARGV[6] error JSON
    ARGV[7] retryAt (ms) or '' for a final failure
    ARGV[8] result JSON or ''
    ARGV[9] the result's expiresAt or ''
    ARGV[10] the result's completedAt or ''
    ARGV[11] the dead-letter queue to move the task to, or '' (then ARGV[7..10] are '')

  Output:
    finish(x), x = true, or false when the token is stale
]]
local id = ARGV[4]
local t = held(id, ARGV[5])
if not t then return finish(false) end
local err = cjson.decode(ARGV[6])
if ARGV[11] ~= '' then
  deadLetter(id, t, ARGV[11], err, ARGV[6])
  return finish(true)
end
local brief = {name = err.name, message = err.message}
if ARGV[7] ~= '' then
  local retryAt = tonumber(ARGV[7])
  unrun(id, t)
  redis.call('HDEL', tkey(id), 'token', 'lease', 'worker')
  place(id, t, retryAt, 'error', ARGV[6])
  emit('retrying', id, t.queue, t.attempts, {error = brief, retryAt = retryAt})
  return finish(true)
end
leave(id, t)
recount(t, 'failed')
local at = ended(t, ARGV[10])
redis.call('HSET', tkey(id), 'state', 'failed', 'completedAt', at, 'error', ARGV[6])
redis.call('ZADD', K_ENDED, at, id)
if ATTACH_RESULTS and ARGV[8] ~= '' then storeResult(id, ARGV[8], ARGV[9]) end
emit('failed', id, t.queue, t.attempts, {error = brief}, at)
cascade(id, 'failed')
return finish(true)
`;
