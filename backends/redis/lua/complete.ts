// The `complete` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `complete`; it runs after `begin(ARGV)` (fragments.ts). */
export const COMPLETE: string = `--[[
  Complete a batch of running tasks, each fenced by its own token.

  The engine gathers the completions its workers send in one turn of the event loop into
  one call; each still completes alone, as its own call would (a stale token or an error
  leaves the others as they are), and releases its dependents (\`cascade\`).

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): task:<id>, running, expiring, ended, keys, deps:<id>,
      {<queue>}:ready, {<queue>}:due, {<queue>}:g:<lane>, {<queue>}:groups, grouprun,
      counts, aging, result:<id>, results:ttl, events, wake
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] n: how many completions
    ARGV[5..] n groups of five: id, token, result JSON, result expiresAt or '', completedAt
      (when the handler returned, ms)

  Output:
    finish(x), x = { {done, events, results}, … }, one per completion: done is true, false
    when the token is stale, or an error's message; events and results count the entries
    of the reply's events and results up to its own
]]
local function complete(id, token, result, expiresAt, completedAt)
  local t = held(id, token)
  if not t then return false end
  leave(id, t)
  recount(t, 'completed')
  local at = ended(t, completedAt)
  redis.call('HSET', tkey(id), 'state', 'completed', 'completedAt', at)
  redis.call('ZADD', K_ENDED, at, id)
  if ATTACH_RESULTS then storeResult(id, result, expiresAt) end
  emit('completed', id, t.queue, t.attempts, nil, at)
  cascade(id, 'completed')
  return true
end
local out = {}
for i = 0, tonumber(ARGV[4]) - 1 do
  local o = 5 + i * 5
  local e, r = #EVENTS, #RESULTS
  local ok, done = pcall(complete, ARGV[o], ARGV[o + 1], ARGV[o + 2], ARGV[o + 3], ARGV[o + 4])
  if not ok then
    -- What a failed completion emitted is dropped, as its own failed call would drop it.
    for j = #EVENTS, e + 1, -1 do EVENTS[j] = nil end
    for j = #RESULTS, r + 1, -1 do RESULTS[j] = nil end
    done = cjson.encode(type(done) == 'table' and tostring(done.err or 'error') or tostring(done))
  else
    done = done and 'true' or 'false'
  end
  -- As text (cjson's number formatting is slow, and these are small integers).
  out[#out + 1] = '[' .. done .. ',' .. int(#EVENTS) .. ',' .. int(#RESULTS) .. ']'
end
return finishJson('[' .. table.concat(out, ',') .. ']')
`;
