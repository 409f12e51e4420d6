// The `sweep` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `sweep`; it runs after `begin(ARGV)` (fragments.ts). */
export const SWEEP: string = `--[[
  Recover expired leases, expire unstarted tasks past their ttl, raise the priority of
  tasks that aged, purge final records.

  A stalled task gets another attempt while attempts remain, else moves to its dead-letter
  queue with a StalledError when it has one (\`deadLetter\`), else fails with that error
  (\`stallVerdict\` in src/kit/policy.ts). A member of \`aging\` whose time has come is
  popped and its task checked as \`hasAged\` does (queued, an ageAfter, a priority under 9,
  runAt + ageAfter passed): such a task is raised to priority 9 (AGED_PRIORITY) and
  re-scored in its ready set (same seq), with the event \`agedEvent\` makes (data { from },
  the priority it had); a member whose task was claimed, raised or ended since is dropped.
  A purged record takes its \`keys\` entry with it (an ended task with a throttle window
  keeps one, \`keepsKey\`), unless the entry names another task now (one took it over),
  and its start in its rate bucket (it counts no more, as \`rstart/\` goes with a record).
  Each part handles at most a batch.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): task:<id>, running, expiring, ended, tasks, keys,
      deps:<id>, {<queue>}:ready, {<queue>}:due, {<queue>}:g:<lane>, {<queue>}:groups (of
      a task's queue and of its dead-letter queue), grouprun, rate:<bucket>, counts, aging,
      result:<id>, results:ttl, events, wake
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] purgeBefore: purge final records that ended before this (ms), or '' to keep them
    ARGV[5] batch: the most entries each part handles

  Output:
    finish(x), x = true when a batch was full (call again)
]]
local purgeBefore, batch = tonumber(ARGV[4]), tonumber(ARGV[5])
local more = false
local stalled = redis.call('ZRANGEBYSCORE', K_RUNNING, '-inf', '(' .. NOW, 'LIMIT', 0, batch)
if #stalled == batch then more = true end
for _, id in ipairs(stalled) do
  local t = load(id)
  if t then
    unrun(id, t)
  else
    -- A damaged record: its group, if it has one, still counts it among its running tasks.
    local g = redis.pcall('HGET', tkey(id), 'group')
    unrun(id, {group = type(g) == 'string' and g or nil})
  end
  if t and t.state == 'running' then
    emit('stalled', id, t.queue, t.attempts, {attempt = t.attempts})
    if t.attempts < t.max then
      redis.call('HDEL', tkey(id), 'token', 'lease', 'worker')
      place(id, t, NOW)
    else
      local message = "the worker's lease expired on attempt " .. t.attempts
      local err = {name = 'StalledError', message = message}
      if t.dlq then
        deadLetter(id, t, t.dlq, err, cjson.encode(err))
      else
        endTask(id, t, 'failed', 'StalledError', message, {error = err})
      end
    end
  end
end
local expiring = redis.call('ZRANGEBYSCORE', K_EXPIRING, '-inf', NOW, 'LIMIT', 0, batch)
if #expiring == batch then more = true end
for _, id in ipairs(expiring) do
  local t = load(id)
  if t and UNSTARTED[t.state] and t.exp and t.exp <= NOW then
    endTask(id, t, 'expired', 'TaskExpiredError', 'expired before it started')
  else
    redis.call('ZREM', K_EXPIRING, id)
  end
end
local aging = redis.call('ZRANGEBYSCORE', K_AGING, '-inf', NOW_S, 'LIMIT', 0, batch)
if #aging == batch then more = true end
for _, id in ipairs(aging) do
  redis.call('ZREM', K_AGING, id)
  local t = load(id)
  if t and t.state == 'queued' and t.age and t.pri < 9 then
    local due = (tonumber(t.runAt) or NOW) + t.age
    if due <= NOW then
      local from = t.pri
      t.pri = 9
      redis.call('HSET', tkey(id), 'pri', '9')
      enready(id, t)
      emit('aged', id, t.queue, t.attempts, {from = from})
    else
      -- Not yet (a member that outlived its score): back at the task's own time.
      ages(id, t, due - t.age)
    end
  end
end
if purgeBefore then
  local ended = redis.call('ZRANGEBYSCORE', K_ENDED, '-inf', '(' .. purgeBefore, 'LIMIT', 0, batch)
  if #ended == batch then more = true end
  for _, id in ipairs(ended) do
    redis.call('ZREM', K_ENDED, id)
    local v = redis.call('TYPE', tkey(id)).ok == 'hash' and
      redis.call('HMGET', tkey(id), 'state', 'queue', 'key', 'rkey') or {}
    if v[1] and FINAL[v[1]] then
      count(v[2], v[1], -1)
      if v[3] and redis.call('HGET', K_KEYS, v[3]) == id then redis.call('HDEL', K_KEYS, v[3]) end
      if v[4] then redis.call('ZREM', rateKey(v[4]), id) end
      redis.call('DEL', tkey(id), P .. 'deps:' .. id)
      redis.call('ZREM', K_TASKS, id)
    end
  end
end
return finish(more)
`;
