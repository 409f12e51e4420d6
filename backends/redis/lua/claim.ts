// The `claim` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `claim`; it runs after `begin(ARGV)` (fragments.ts). */
export const CLAIM: string = `--[[
  Claim up to \`limit\` due tasks from the queues, in the order given.

  Promotes each queue's scheduled tasks that are due (a task that ages enters \`aging\`,
  see \`ages\`), then pops queued ones (as many as still fit, in one ZPOPMIN a round). A paused queue (in the set \`paused\`, see
  pause_queue.ts) has its due tasks promoted all the same (so they are not reported due
  again), and none taken. A popped task past its ttl expires instead; one whose
  record is not a valid task is failed (\`corrupt\`). A claimed task is \`running\` with a
  fresh token and a lease on the server's clock.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): task:<id>, {<queue>}:ready, {<queue>}:due, running,
      expiring, ended, keys, deps:<id>, counts, aging, result:<id>, results:ttl, events, wake,
      paused
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] limit: the most tasks to claim
    ARGV[5] lease: the lease (ms)
    ARGV[6] worker: the claiming worker's id
    ARGV[7] tokenBase: each claim's token is tokenBase .. ':' .. n
    ARGV[8..] queues, in the order to take from

  Output:
    finish(x), x = { tasks = { {id, {values of CLAIM_FIELDS}}, … }, drained, due }: with
    fewer tasks than the limit, drained is true and due the earliest due time of a
    scheduled task in the queues that are not paused (absent when none is), as
    \`nextDue\` would answer
]]
local limit, lease, worker, base = tonumber(ARGV[4]), tonumber(ARGV[5]), ARGV[6], ARGV[7]
local tasks, n = {}, 0
local leaseS = int(NOW + lease)
for qi = 8, #ARGV do
  if n >= limit then break end
  local q = ARGV[qi]
  local due = redis.call('ZRANGEBYSCORE', dueKey(q), '-inf', NOW_S, 'LIMIT', '0', '1000')
  for _, id in ipairs(due) do
    redis.call('ZREM', dueKey(q), id)
    local t = load(id)
    if t and t.state == 'scheduled' then
      recount(t, 'queued')
      redis.call('HSET', tkey(id), 'state', 'queued')
      redis.call('ZADD', readyKey(q), score(t), id)
      ages(id, t, tonumber(t.runAt) or NOW)
    end
  end
  local open = not queuePaused(q)
  while open and n < limit do
    local top = redis.call('ZPOPMIN', readyKey(q), int(limit - n))
    if #top == 0 then break end
    for i = 1, #top, 2 do
      local id = top[i]
      local t, why, record = loadRecord(id)
      if not t then
        if why ~= 'missing' then corrupt(id, q, why) end
      elseif t.state == 'queued' then
        if t.exp and t.exp <= NOW then
          endTask(id, t, 'expired', 'TaskExpiredError', 'expired before it started')
        else
          n = n + 1
          t.attempts = t.attempts + 1
          local attempts, token = int(t.attempts), base .. ':' .. n
          recount(t, 'running')
          redis.call('HSET', tkey(id), 'state', 'running', 'attempts', attempts,
            'token', token, 'lease', leaseS, 'startedAt', NOW_S, 'worker', worker)
          redis.call('ZADD', K_RUNNING, leaseS, id)
          if t.exp then redis.call('ZREM', K_EXPIRING, id) end
          emit('started', id, q, t.attempts)
          -- The record as it is now: the fields read above, with those just written.
          record[AT.state] = 'running'
          record[AT.attempts] = attempts
          record[AT.token] = token
          record[AT.lease] = leaseS
          record[AT.startedAt] = NOW_S
          record[AT.worker] = worker
          tasks[n] = {id, record}
        end
      end
    end
  end
end
local x = {tasks = tasks}
if n < limit then
  -- Every queue is drained: the worker asks next when a scheduled task is due, so the
  -- answer comes with this reply.
  x.drained = true
  local due = earliestDue(ARGV, 8)
  if due then x.due = int(due) end
end
return finish(x)
`;
