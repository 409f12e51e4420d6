// The `claim` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `claim`; it runs after `begin(ARGV)` (fragments.ts). */
export const CLAIM: string = `--[[
  Claim up to \`limit\` due tasks from the queues, in the order given.

  Promotes each queue's scheduled tasks that are due (a task that ages enters \`aging\`,
  see \`ages\`; one with a lane its lane's set, \`enready\`), then pops its queued ones
  without a lane (as many as still fit, in one ZPOPMIN a round), then, while the claim is
  not full, takes those with a lane (a group or a rate limit, \`laneOf\`) round-robin
  between lanes, each lane's head started only while its group runs fewer tasks than its
  groupLimit and its rate bucket has started fewer than its limit in the window
  (\`claimGroups\`, mirroring \`#claimGroups\` and \`#groupHead\` in
  backends/records/queue.ts, and \`laneRoom\`). A paused queue (in the set \`paused\`,
  see pause_queue.ts) has its due tasks promoted all the same (so they are not reported
  due again), and none taken, with a lane or not. A popped task past its ttl expires
  instead; one whose record is not a valid task is failed (\`corrupt\`). A claimed task is
  \`running\` with a fresh token and a lease on the server's clock.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): task:<id>, {<queue>}:ready, {<queue>}:due,
      {<queue>}:g:<lane>, {<queue>}:groups, {<queue>}:gcursor, grouprun, rate:<bucket>,
      running, expiring, ended, keys, deps:<id>, counts, aging, result:<id>, results:ttl,
      events, wake, paused
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

-- Note a rate-limited task's start in its bucket (\`rstart/\` in \`indexKeys\`,
-- backends/records/space.ts): once, at its latest start. The starts no task of the bucket
-- can count any more (older than its longest window, \`widen\`) are dropped first, so the
-- set holds a window's starts; the key lives a window past the last.
local function started(id, t)
  local k, w = rateKey(t.rkey), widen(t.rkey, t.rper)
  redis.call('ZREMRANGEBYSCORE', k, '0', int(NOW - w))
  redis.call('ZADD', k, NOW_S, id)
  redis.call('PEXPIRE', k, int(w))
end

-- Start a queued task taken from a ready set: running, with a fresh token and lease.
-- \`record\` is its CLAIM_FIELDS values as read, returned with those written here.
local function start(id, t, record, q)
  n = n + 1
  t.attempts = t.attempts + 1
  local attempts, token = int(t.attempts), base .. ':' .. n
  recount(t, 'running')
  redis.call('HSET', tkey(id), 'state', 'running', 'attempts', attempts,
    'token', token, 'lease', leaseS, 'startedAt', NOW_S, 'worker', worker)
  redis.call('ZADD', K_RUNNING, leaseS, id)
  enrun(t)
  if t.rkey then started(id, t) end
  if t.exp then redis.call('ZREM', K_EXPIRING, id) end
  emit('started', id, q, t.attempts)
  record[AT.state] = 'running'
  record[AT.attempts] = attempts
  record[AT.token] = token
  record[AT.lease] = leaseS
  record[AT.startedAt] = NOW_S
  record[AT.worker] = worker
  tasks[n] = {id, record}
end

-- Whether a lane's head t may start now (\`laneRoom\` in src/kit/policy.ts): with a group,
-- while the group runs fewer tasks than the head's groupLimit (1 when it has none); with a
-- rate limit, while fewer than its limit of its bucket's tasks started in the window
-- (NOW - per, NOW] (those this call started included). A lane has no room for the rest of
-- the call once it has none: its counts only grow in the call, and its head stays.
local function room(t)
  if t.group and (tonumber(redis.call('HGET', K_GROUPRUN, t.group)) or 0) >= (t.glim or 1) then
    return false
  end
  if t.rkey and redis.call('ZCOUNT', rateKey(t.rkey), '(' .. int(NOW - t.rper), '+inf') >=
      t.rlim then
    return false
  end
  return true
end

-- Start the head of lane g of queue q (\`#groupHead\` in backends/records/queue.ts): its
-- first task by priority, then FIFO, when it has room (\`room\`). An entry that is no
-- queued task of this queue and lane is dropped (a damaged record is failed, an expired
-- task expires) and the next one looked at. Returns whether it started one; \`full\` notes
-- the lane without room.
local function takeHead(q, g, full)
  local k = groupKey(q, g)
  while true do
    local top = redis.call('ZRANGE', k, '0', '0')
    if #top == 0 then return false end
    local id = top[1]
    local t, why, record = loadRecord(id)
    local live = t and t.state == 'queued' and t.queue == q and laneOf(t) == g
    if live and not (t.exp and t.exp <= NOW) then
      if not room(t) then
        full[g] = true
        return false
      end
      unready(id, t)
      start(id, t, record, q)
      return true
    end
    unlane(id, q, g)
    if live then
      endTask(id, t, 'expired', 'TaskExpiredError', 'expired before it started')
    elseif not t and why ~= 'missing' then
      corrupt(id, q, why)
    end
  end
end

-- Claim queue q's tasks with a lane round-robin (\`#claimGroups\` in
-- backends/records/queue.ts): from the lane after the one its lane claims served last (its
-- cursor), the head of each lane in turn (\`takeHead\`), one per lane a round, wrapping past
-- the last lane, until the claim is full or a round takes nothing; the cursor is then the
-- lane served last. The lanes are those with queued tasks (\`{<queue>}:groups\`,
-- lexicographic), so the next lane after X is one ZRANGEBYLEX, whatever the backlog.
local function claimGroups(q)
  local gk, ck = groupsKey(q), cursorKey(q)
  -- A queue without tasks with a lane pays this one call.
  if redis.call('EXISTS', gk) == 0 then return end
  local first = redis.call('GET', ck) or nil
  local full, last = {}, nil
  local from = first
  repeat
    local took, seen = false, {}
    local after, wrapped = from, from == nil
    while n < limit do
      local after1 = redis.call('ZRANGEBYLEX', gk, after and ('(' .. after) or '-', '+',
        'LIMIT', '0', '1')
      if #after1 == 0 then
        if wrapped then break end
        wrapped, after = true, nil
      else
        local g = after1[1]
        if seen[g] then break end
        seen[g], after = true, g
        if not full[g] and takeHead(q, g, full) then took, last = true, g end
      end
    end
    from = last
  until not took or n >= limit
  if last and last ~= first then redis.call('SET', ck, last) end
end

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
      enready(id, t)
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
          start(id, t, record, q)
        end
      end
    end
  end
  if open and n < limit then claimGroups(q) end
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
