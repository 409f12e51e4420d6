// The Lua shared by every script of the Redis engine: `LIB`, the helpers each body calls
// (`begin`, `load`, `place`, `deadLetter`, `endTask`, `cascade`, `insert`, `setNext`,
// `finish` …), and the layouts the client and the scripts agree on (`CLAIM_FIELDS`,
// `TASK_ARGS`). The bodies, one per file beside this one, are joined to `LIB` by mod.ts: the
// helpers exist once, not in every script.
//
// The keys, under the prefix P (ARGV[1]), as the helpers name them:
//   P task:<id> (hash), P {<queue>}:ready and P {<queue>}:due (sorted sets), P running,
//   P expiring, P ended, P tasks (sorted sets), P seq (counter), P keys (hash, dedupe key
//   to the id of the task that holds or held it), P deps:<id> (sorted set of dependents),
//   P counts (hash), P result:<id> (string), P results:ttl (sorted set), P events
//   (stream), P wake (pub/sub channel), P paused (set of paused queues), P aging (sorted
//   set, queued ids that age, by the time they do); for lanes (`laneOf`: a task's group,
//   or without one "\1" and its rate bucket), P {<queue>}:g:<lane> (sorted set, a lane's
//   queued ids, scored as a ready set), P {<queue>}:groups (sorted set, the queue's lanes
//   with queued tasks, all at score 0, so in lexicographic order), P {<queue>}:gcursor
//   (string, the lane its lane claims served last); P grouprun (hash, group to its number
//   of running tasks); P rate:<bucket> (sorted set, a rate bucket's starts, each task at
//   its latest, and the bucket's longest window).
//   docs/engines/redis.md says what each holds.
//
// The rules the helpers apply are those of src/kit/policy.ts, in Lua because the script
// must decide inside the call: `depsDone` and `cascade` mirror `dependencyVerdict` and
// `dependencyCancel`, `index` mirrors `readyState`, `produce` mirrors `endResult`,
// `deadLetter` emits the event `deadLetterEvent` makes (and moves the task as
// `Failure.deadLetter` says); `queuePaused` reads the pause `TaskQueue.setQueuePaused` set;
// `ages` indexes a queued task by when `hasAged` turns true (the sweep raises it, sweep.ts);
// `keyOwner` mirrors `holdsKey`, and `leave` keeps a key entry as `keepsKey` says; the
// enqueue script's `debounce` mirrors `debounceReplaces` and `debouncedEvent`. Groups and rate
// limits mirror the record engines (backends/records/): `laneOf` is the kit's, `enready` and
// `unready` keep the per-lane ready sets and the queue's lane set as `indexKeys` keeps
// `gready/` (backends/records/space.ts), `unrun` the running count as it keeps `grun/`, the
// claim's `started` a bucket's starts as it keeps `rstart/`, and the claim's lane pass is
// `#claimGroups` and `#groupHead` (backends/records/queue.ts), its room `laneRoom`.

/**
 * The fields of a task record that a claim reads and returns, in this order: those the
 * engine reads into a task, the claim's own `token` and `lease`, and `seq` (the claim
 * script checks it). A claim returns their values alone (an absent field as `false`): half
 * the strings of the whole hash, which the server makes, encodes and the client parses.
 */
export const CLAIM_FIELDS = [
  "v",
  "state",
  "task",
  "d",
  "queue",
  "pri",
  "runAt",
  "max",
  "odf",
  "deps",
  "attempts",
  "exp",
  "rttl",
  "key",
  "links",
  "startedAt",
  "completedAt",
  "progress",
  "error",
  "token",
  "lease",
  "seq",
  "worker",
  "dlq",
  "age",
  "kuntil",
  "group",
  "glim",
  "rkey",
  "rlim",
  "rper",
] as const;

/** Helpers shared by every body; `begin` sets the state of one call. */
export const LIB: string = `
local FIELDS = {'id', 'state', 'queue', 'pri', 'seq', 'attempts', 'runAt', 'exp', 'max',
  'rttl', 'key', 'odf', 'deps', 'token', 'dlq', 'age', 'kuntil', 'group', 'glim', 'rkey',
  'rlim', 'rper'}
-- What a claim reads and returns (CLAIM_FIELDS), and each one's place in it.
-- (Literals both: a library's top level may not call \`ipairs\` as it loads.)
local RECORD = {${CLAIM_FIELDS.map((f) => `'${f}'`).join(", ")}}
local AT = {${CLAIM_FIELDS.map((f, i) => `['${f}'] = ${i + 1}`).join(", ")}}
local STATES = {waiting = true, scheduled = true, queued = true, running = true,
  completed = true, failed = true, cancelled = true, expired = true}
local FINAL = {completed = true, failed = true, cancelled = true, expired = true}
local UNSTARTED = {waiting = true, scheduled = true, queued = true}

-- The state of one call, set by \`begin\`. COUNTS holds the changes of the per-state counts,
-- written once by \`finish\` (a claim of ten tasks moves two counters, not twenty).
local P, ATTACH_RESULTS, ATTACH_EVENTS, MAXLEN, NOW, NOW_S
local EVENTS, RESULTS, WAKE, COUNTS
local K_TASKS, K_RUNNING, K_EXPIRING, K_ENDED, K_KEYS, K_COUNTS, K_RESULT_TTL, K_EVENTS
local K_AGING, K_GROUPRUN

local function begin(argv)
  if argv[1] ~= P then
    P = argv[1]
    K_TASKS = P .. 'tasks'
    K_RUNNING = P .. 'running'
    K_EXPIRING = P .. 'expiring'
    K_ENDED = P .. 'ended'
    K_KEYS = P .. 'keys'
    K_COUNTS = P .. 'counts'
    K_EVENTS = P .. 'events'
    -- A result's key expires with its ttl; \`P results:ttl\` (ids by expiry) lets a sweep
    -- count the results it ends.
    K_RESULT_TTL = P .. 'results:ttl'
    -- Queued ids of tasks with an ageAfter and a priority under 9, by runAt + ageAfter
    -- (\`ages\`); a member may be stale (its task claimed, raised or ended since): the
    -- sweep drops it.
    K_AGING = P .. 'aging'
    -- Group to its number of running tasks (\`enrun\`, \`unrun\`); a group with none has no
    -- field.
    K_GROUPRUN = P .. 'grouprun'
  end
  ATTACH_RESULTS = string.sub(argv[2], 1, 1) == '1'
  ATTACH_EVENTS = string.sub(argv[2], 2, 2) == '1'
  MAXLEN = argv[3]
  local clock = redis.call('TIME')
  local ms = math.floor(tonumber(clock[2]) / 1000)
  NOW = tonumber(clock[1]) * 1000 + ms
  NOW_S = clock[1] .. string.format('%03d', ms)
  EVENTS, RESULTS, WAKE, COUNTS = {}, {}, {}, {}
end

-- An integer as text for redis.call.
local function int(n) return string.format('%d', n) end

local function tkey(id) return P .. 'task:' .. id end
local function readyKey(q) return P .. '{' .. q .. '}:ready' end
local function dueKey(q) return P .. '{' .. q .. '}:due' end
-- A group's queued tasks in a queue (scored as its ready set), and the queue's groups that
-- have some (score 0: lexicographic), and the group its grouped claims served last.
local function groupKey(q, g) return P .. '{' .. q .. '}:g:' .. g end
local function groupsKey(q) return P .. '{' .. q .. '}:groups' end
local function cursorKey(q) return P .. '{' .. q .. '}:gcursor' end
-- A rate bucket's starts (\`NewTask.rate\`): task id to its latest start (ms), each task
-- once, and the member '' (no task id is empty) scored minus the longest window (ms) of a
-- task counted in it, which the members are kept for (\`widen\`).
local function rateKey(b) return P .. 'rate:' .. b end

-- The lane a task is claimed in (\`laneOf\` in src/kit/policy.ts): its group, or without
-- one its rate bucket behind a \\1 (no group name has a control character), or nil: its
-- queue's ready set.
local function laneOf(t)
  if t.group then return t.group end
  if t.rkey then return '\\1' .. t.rkey end
  return nil
end

-- Whether a queue is paused (\`TaskQueue.setQueuePaused\`): a claim takes nothing from it.
local function queuePaused(q) return redis.call('SISMEMBER', P .. 'paused', q) == 1 end

local function count(q, state, d)
  if q and STATES[state] then
    local f = state .. ':' .. q
    COUNTS[f] = (COUNTS[f] or 0) + d
  end
end

-- Why a key is not a task hash, after HGETALL or HMGET failed or found nothing.
local function notTask(k, reply)
  if reply.err then return 'the key holds a ' .. redis.call('TYPE', k).ok .. ', not a hash' end
  return 'missing'
end

-- Check and convert the control fields read into \`t\`, or nil and why.
local function checked(t)
  if not STATES[t.state or ''] then return nil, 'no valid state' end
  if not t.queue then return nil, 'no queue' end
  t.pri = tonumber(t.pri)
  t.seq = tonumber(t.seq)
  t.attempts = tonumber(t.attempts)
  t.max = tonumber(t.max)
  if not (t.pri and t.seq and t.attempts and t.max) then return nil, 'a bad number field' end
  if t.deps == nil or t.deps == '[]' then
    t.depList = {}
  else
    local ok, deps = pcall(cjson.decode, t.deps)
    if not ok or type(deps) ~= 'table' then return nil, 'bad dependencies' end
    t.depList = deps
  end
  if t.exp then t.exp = tonumber(t.exp) end
  if t.rttl then t.rttl = tonumber(t.rttl) end
  if t.age then
    t.age = tonumber(t.age)
    if not t.age then return nil, 'a bad number field' end
  end
  if t.kuntil then
    t.kuntil = tonumber(t.kuntil)
    if not t.kuntil then return nil, 'a bad number field' end
  end
  if t.glim then
    t.glim = tonumber(t.glim)
    if not t.glim then return nil, 'a bad number field' end
  end
  if t.rkey then
    t.rlim, t.rper = tonumber(t.rlim), tonumber(t.rper)
    if not (t.rlim and t.rper) then return nil, 'a bad number field' end
  end
  return t
end

-- The fields \`names\` of a task, checked, or nil (and why) when the key is not a
-- well-formed task hash; then the values as HMGET gave them (an absent one is false).
-- (A pcall'd read instead of TYPE first: one call on the common path.)
local function read(id, names)
  local k = tkey(id)
  local v = redis.pcall('HMGET', k, unpack(names))
  if v.err then return nil, notTask(k, v) end
  local t = {}
  for i, f in ipairs(names) do if v[i] then t[f] = v[i] end end
  if not t.state and redis.call('EXISTS', k) == 0 then return nil, 'missing' end
  local c, why = checked(t)
  return c, why, v
end

-- A task's control fields (FIELDS), or nil and why.
local function load(id) return read(id, FIELDS) end

-- A task's RECORD fields, or nil and why, and their values as HMGET gave them.
local function loadRecord(id) return read(id, RECORD) end

-- Set a schedule's next tick (ms, as text), or clear it (''), with its place among the
-- unpaused schedules by next tick.
local function setNext(k, id, at)
  if at == '' then
    redis.call('HDEL', k, 'next')
    redis.call('ZREM', P .. 'schedules:next', id)
  else
    redis.call('HSET', k, 'next', at)
    redis.call('ZADD', P .. 'schedules:next', tonumber(at), id)
  end
end

local function emit(type_, id, q, attempts, data, at)
  if id and q and attempts and attempts > 0 and not data then
    -- The common shape (started, completed) as text at once: cjson formats every number
    -- with a slow printf, and \`at\` is the call's clock (or the given time), text already.
    EVENTS[#EVENTS + 1] = '{"type":"' .. type_ .. '","taskId":' .. cjson.encode(id) ..
      ',"queue":' .. cjson.encode(q) .. ',"at":' .. (at or NOW_S) .. ',"attempt":' ..
      int(attempts) .. '}'
    return
  end
  local e = {type = type_, taskId = id, queue = q, at = tonumber(at) or NOW, data = data}
  if attempts and attempts > 0 then e.attempt = attempts end
  EVENTS[#EVENTS + 1] = e
end

-- Store a result; expiresAt is its expiry (ms) as text, or '' or nil for none.
local function storeResult(id, json, expiresAt)
  local k = P .. 'result:' .. id
  local at = tonumber(expiresAt)
  if at then
    redis.call('ZADD', K_RESULT_TTL, expiresAt, id)
    if at <= NOW then
      redis.call('DEL', k)
    else
      redis.call('SET', k, json, 'PXAT', expiresAt)
    end
  else
    redis.call('ZREM', K_RESULT_TTL, id)
    redis.call('SET', k, json)
  end
end

local function deleteResult(id)
  redis.call('DEL', P .. 'result:' .. id)
  redis.call('ZREM', K_RESULT_TTL, id)
end

-- A result this script made (an end other than completion).
local function produce(id, t, state, name, message)
  local r = {v = 1, taskId = id, state = state, error = {name = name, message = message},
    completedAt = NOW}
  if t and t.rttl then r.expiresAt = NOW + t.rttl end
  if ATTACH_RESULTS then storeResult(id, cjson.encode(r), r.expiresAt and int(r.expiresAt))
  else RESULTS[#RESULTS + 1] = r end
end

-- Move a task to another state in the counts; the caller writes \`state\` to the hash along
-- with its other fields (one HSET).
local function recount(t, state)
  if t.state ~= state then
    count(t.queue, t.state, -1)
    count(t.queue, state, 1)
  end
  t.state = state
end

local function score(t)
  return int((9 - t.pri) * 17592186044416 + t.seq)
end

-- Put a queued task in its ready set: its queue's, or, for a task with a lane (a group or a
-- rate limit: \`laneOf\`), its lane's (the lane then in the queue's set of groups), as
-- \`indexKeys\` puts it in \`ready/\` or \`gready/\` (backends/records/space.ts). Also a
-- re-score (the same member).
local function enready(id, t)
  local lane = laneOf(t)
  if lane then
    redis.call('ZADD', groupKey(t.queue, lane), score(t), id)
    redis.call('ZADD', groupsKey(t.queue), '0', lane)
  else
    redis.call('ZADD', readyKey(t.queue), score(t), id)
  end
end

-- Take a task out of lane \`lane\` of queue q (a no-op when it is not there); a lane whose
-- set empties leaves the queue's set of groups.
local function unlane(id, q, lane)
  local k = groupKey(q, lane)
  if redis.call('ZREM', k, id) == 1 and redis.call('EXISTS', k) == 0 then
    redis.call('ZREM', groupsKey(q), lane)
  end
end

-- Take a task out of its ready set (a no-op when it is not there).
local function unready(id, t)
  local lane = laneOf(t)
  if lane then
    unlane(id, t.queue, lane)
  else
    redis.call('ZREM', readyKey(t.queue), id)
  end
end

-- Keep bucket b's starts for at least \`per\` ms: its longest window is raised to it when
-- shorter (or unknown, the key then made), and the key then lives that long. Returns the
-- window. Every task of the bucket widens it as it is stored and as it starts, so a start
-- is trimmed only once no task of the bucket can count it. A bucket idle for its longest
-- window has no start left to count: its key goes, and its window with it (see
-- docs/engines/redis.md for what that forgets).
local function widen(b, per)
  local k = rateKey(b)
  local w = tonumber(redis.call('ZSCORE', k, ''))
  if w and -w >= per then return -w end
  redis.call('ZADD', k, int(-per), '')
  redis.call('PEXPIRE', k, int(per))
  return per
end

-- A claimed task of a group counts among its group's running tasks (\`grun/\` in
-- \`indexKeys\`).
local function enrun(t)
  if t.group then redis.call('HINCRBY', K_GROUPRUN, t.group, '1') end
end

-- Take a task out of \`running\`; a grouped one that was there no longer counts among its
-- group's running tasks. Every path out of \`running\` comes here (\`leave\`, \`deadLetter\`,
-- a retry, the stall sweep, \`corrupt\`), so the count falls once per claim.
local function unrun(id, t)
  if redis.call('ZREM', K_RUNNING, id) == 1 and t and t.group then
    if redis.call('HINCRBY', K_GROUPRUN, t.group, '-1') <= 0 then
      redis.call('HDEL', K_GROUPRUN, t.group)
    end
  end
end

-- Note when a task just queued (put in its ready set) with this \`runAt\` ages: at runAt +
-- ageAfter, when \`hasAged\` (src/kit/policy.ts) turns true, if its priority is under 9
-- (AGED_PRIORITY). The sweep raises it then (sweep.ts). Every path into a ready set calls
-- this: \`index\` (enqueue, retry, release, stall, dead-letter move) and the claim's
-- promotion of due tasks.
local function ages(id, t, runAt)
  if t.age and t.pri < 9 then redis.call('ZADD', K_AGING, int(runAt + t.age), id) end
end

-- Index a task where its due time says: scheduled (by due time) or queued (by priority,
-- FIFO). Returns the new state, which the caller writes with \`runAt\`.
local function index(id, t, runAt)
  if runAt > NOW then
    recount(t, 'scheduled')
    redis.call('ZADD', dueKey(t.queue), int(runAt), id)
  else
    recount(t, 'queued')
    enready(id, t)
    ages(id, t, runAt)
  end
  if t.exp then redis.call('ZADD', K_EXPIRING, int(t.exp), id) end
  WAKE[t.queue] = true
  return t.state
end

-- Put a task where its due time says, writing its state, \`runAt\` and any other fields
-- given as name, value pairs.
local function place(id, t, runAt, ...)
  local s = index(id, t, runAt)
  redis.call('HSET', tkey(id), 'state', s, 'runAt', int(runAt), ...)
  return s
end

-- Move a running task that has spent its attempts to its dead-letter queue \`to\`: queued
-- there now (in that queue's ready set and counts), its attempts reset, its claim, progress
-- and dead-letter queue cleared, \`errJson\` its error. The event, as \`deadLetterEvent\` makes
-- it, is in the queue it leaves, at the attempt that spent its last try, with data
-- { to, error }. No result is written and its dependents keep waiting: it has not ended.
local function deadLetter(id, t, to, err, errJson)
  emit('dead_lettered', id, t.queue, t.attempts,
    {to = to, error = {name = err.name, message = err.message}})
  unrun(id, t)
  redis.call('HDEL', tkey(id), 'token', 'lease', 'worker', 'progress', 'dlq', 'exp')
  count(t.queue, t.state, -1)
  t.queue, t.state, t.attempts, t.dlq, t.exp = to, 'queued', 0, nil, nil
  count(to, 'queued', 1)
  place(id, t, NOW, 'queue', to, 'attempts', '0', 'error', errJson)
end

-- The id of the task that holds dedupe key \`key\` now, or nil (\`holdsKey\` in
-- src/kit/policy.ts): the task its \`P keys\` entry names, while it is live, and once it
-- has ended, until its throttle window (\`kuntil\`, ms) closes on this server's clock. A
-- missing task, or an ended one without a window or past it, holds nothing: the next task
-- with the key takes the entry over. (A record written before \`kuntil\` has none.)
-- Its state follows the id (a debounced enqueue decides by it).
local function keyOwner(key)
  local id = redis.call('HGET', K_KEYS, key)
  if not id then return nil end
  local v = redis.pcall('HMGET', tkey(id), 'state', 'kuntil')
  if v.err or not v[1] then return nil end
  if not FINAL[v[1]] then return id, v[1] end
  local u = tonumber(v[2])
  if u and u > NOW then return id, v[1] end
  return nil
end

-- Take a task out of every live index (it is about to become final). A running task is in
-- no ready or due set (claiming popped it, and every path back to them leaves \`running\`),
-- and only a task with a ttl is in \`expiring\`. Its key entry goes too, unless it has a
-- throttle window (\`kuntil\`): then it keeps it (\`keepsKey\`), and \`keyOwner\` judges it
-- (\`holdsKey\`) when the key comes again; the purge of its record drops it (sweep.ts).
local function leave(id, t)
  if t.state ~= 'running' then
    unready(id, t)
    redis.call('ZREM', dueKey(t.queue), id)
  end
  unrun(id, t)
  if t.exp then redis.call('ZREM', K_EXPIRING, id) end
  if t.token then redis.call('HDEL', tkey(id), 'token', 'lease', 'worker') end
  if t.key and not t.kuntil and redis.call('HGET', K_KEYS, t.key) == id then
    redis.call('HDEL', K_KEYS, t.key)
  end
end

local function depsDone(t)
  for _, d in ipairs(t.depList) do
    local st = redis.call('HGET', tkey(d), 'state')
    if st then
      if t.odf == 'run' then
        if not FINAL[st] then return false end
      elseif st ~= 'completed' then
        return false
      end
    end
  end
  return true
end

local cascade

-- End a live task other than by completion, produce its result, and cascade.
local function endTask(id, t, state, name, message, data)
  leave(id, t)
  recount(t, state)
  redis.call('HSET', tkey(id), 'state', state, 'completedAt', NOW_S,
    'error', cjson.encode({name = name, message = message}))
  redis.call('ZADD', K_ENDED, NOW_S, id)
  produce(id, t, state, name, message)
  emit(state, id, t.queue, t.attempts, data)
  cascade(id, state)
end

-- The earliest due time of a scheduled task in the queues argv[from], argv[from + 1] …, or nil.
-- A paused queue's tasks are left out: a worker would wake for them and take nothing (its
-- resume wakes the workers instead).
local function earliestDue(argv, from)
  local best
  for i = from, #argv do
    local top = redis.call('ZRANGE', dueKey(argv[i]), '0', '0', 'WITHSCORES')
    if #top > 0 and not queuePaused(argv[i]) then
      local s = tonumber(top[2])
      if not best or s < best then best = s end
    end
  end
  return best
end

-- Release or cancel the waiting dependents of a task that just became final.
cascade = function(id, state)
  local waiting = redis.call('ZRANGE', P .. 'deps:' .. id, '0', '-1')
  for _, did in ipairs(waiting) do
    local d = load(did)
    if d and d.state == 'waiting' then
      if state ~= 'completed' and d.odf == 'cancel' then
        local reason = 'dependency ' .. id .. ' ' .. state
        endTask(did, d, 'cancelled', 'TaskCancelledError', reason,
          {reason = reason, dependency = id})
      elseif depsDone(d) then
        local s = place(did, d, tonumber(d.runAt) or NOW)
        emit(s == 'scheduled' and 'scheduled' or 'enqueued', did, d.queue, d.attempts,
          {state = s, released = true})
      end
    end
  end
end

-- Fail a task whose record is not OmniQ's or is damaged; another program's key is left as
-- it is. The worker and the other tasks carry on.
local function corrupt(id, q, why)
  local message = 'the task record ' .. tkey(id) .. ' is not a valid OmniQ task (' .. why ..
    '); it was failed without running'
  local k = tkey(id)
  if redis.call('TYPE', k).ok == 'hash' then
    local v = redis.call('HMGET', k, 'state', 'group')
    local st = v[1]
    if STATES[st or ''] then count(q, st, -1) end
    count(q, 'failed', 1)
    redis.call('HSET', k, 'state', 'failed', 'completedAt', NOW_S,
      'error', cjson.encode({name = 'CorruptTaskError', message = message}))
    redis.call('HDEL', k, 'token', 'lease', 'worker')
    unrun(id, {group = v[2] or nil})
    redis.call('ZREM', K_EXPIRING, id)
    redis.call('ZADD', K_ENDED, NOW_S, id)
  end
  produce(id, nil, 'failed', 'CorruptTaskError', message)
  emit('failed', id, q, 0, {error = {name = 'CorruptTaskError', message = message}})
end

-- The running task this token holds, or nil: only the fields its holder's operations use
-- (the record was checked whole when it was claimed).
-- When an attempt ended, for its event: the time the worker gives (its handler returned
-- then, and its slot went to the next task), kept between the attempt's start and now on
-- this server's clock, so a worker's clock skew cannot date it out of order. Text.
local function ended(t, at)
  return int(math.min(NOW, math.max(tonumber(at) or NOW, t.startedAt or 0)))
end

local function held(id, token)
  local v = redis.pcall('HMGET', tkey(id), 'state', 'token', 'queue', 'attempts', 'key', 'exp',
    'pri', 'seq', 'startedAt', 'age', 'kuntil', 'group', 'rkey')
  if v.err or v[1] ~= 'running' or v[2] ~= token then return nil end
  local t = {state = v[1], token = v[2], queue = v[3], attempts = tonumber(v[4]),
    key = v[5] or nil, exp = tonumber(v[6]), pri = tonumber(v[7]), seq = tonumber(v[8]),
    startedAt = tonumber(v[9]), age = tonumber(v[10]), kuntil = tonumber(v[11]),
    group = v[12] or nil, rkey = v[13] or nil}
  if not (t.queue and t.attempts and t.pri and t.seq) then return nil end
  return t
end

-- Store one new task (validated by the caller) and put it where its state says; the record
-- is written in one HSET, its state included. A task with a key takes its \`P keys\` entry
-- (over a task that no longer holds it) unless another task holds it (\`keyOwner\`);
-- \`keyFree\` says the caller knows none does (enqueue asked already).
-- a: id, queue, pri, runAt, exp, max, rttl, key, odf, deps JSON, links JSON, task, d JSON,
-- dead-letter queue, ageAfter (ms or ''), keyUntil (ms or ''), debounce ('1' or ''), which
-- only the enqueue script reads, group (or ''), groupLimit (or ''), rate bucket, limit and
-- window (ms) (or '' each)
local function insert(a, keyFree)
  local id = a[1]
  local k = tkey(id)
  local seq = redis.call('INCR', P .. 'seq')
  local seqS = int(seq)
  local fields = {'v', '1', 'id', id, 'queue', a[2], 'pri', a[3], 'seq', seqS, 'attempts', '0',
    'runAt', a[4], 'max', a[6], 'odf', a[9], 'deps', a[10], 'task', a[12], 'd', a[13]}
  local function field(name, value)
    fields[#fields + 1] = name
    fields[#fields + 1] = value
  end
  local t = {queue = a[2], pri = tonumber(a[3]), seq = seq, attempts = 0, odf = a[9],
    depList = a[10] == '[]' and {} or cjson.decode(a[10])}
  -- An optional argument: in the hash as \`name\`, and on the record (a number, or text).
  local function opt(i, name, text)
    if a[i] == '' then return end
    t[name] = text and a[i] or tonumber(a[i])
    field(name, a[i])
  end
  opt(5, 'exp')
  opt(7, 'rttl')
  if a[8] ~= '' then
    t.key = a[8]
    field('key', a[8])
    if keyFree or not keyOwner(a[8]) then redis.call('HSET', K_KEYS, a[8], id) end
  end
  if a[11] ~= '' then field('links', a[11]) end
  if a[14] ~= '' then field('dlq', a[14]) end
  opt(15, 'age')
  opt(16, 'kuntil')
  if a[18] ~= '' then
    opt(18, 'group', true)
    opt(19, 'glim')
  end
  if a[20] ~= '' then
    t.rkey, t.rlim, t.rper = a[20], tonumber(a[21]), tonumber(a[22])
    field('rkey', a[20])
    field('rlim', a[21])
    field('rper', a[22])
    widen(t.rkey, t.rper)
  end
  redis.call('ZADD', K_TASKS, seqS, id)
  local failed
  for _, d in ipairs(t.depList) do
    local st = redis.call('HGET', tkey(d), 'state')
    if st and FINAL[st] and st ~= 'completed' then
      failed = {d, st}
      break
    end
  end
  if failed and t.odf == 'cancel' then
    redis.call('HSET', k, unpack(fields))
    local reason = 'dependency ' .. failed[1] .. ' ' .. failed[2]
    endTask(id, t, 'cancelled', 'TaskCancelledError', reason,
      {reason = reason, dependency = failed[1]})
    return
  end
  for _, d in ipairs(t.depList) do redis.call('ZADD', P .. 'deps:' .. d, seqS, id) end
  if not depsDone(t) then
    recount(t, 'waiting')
    field('state', 'waiting')
    redis.call('HSET', k, unpack(fields))
    if t.exp then redis.call('ZADD', K_EXPIRING, a[5], id) end
    emit('enqueued', id, t.queue, 0, {state = 'waiting'})
    return
  end
  local runAt = tonumber(a[4])
  local s = index(id, t, runAt)
  field('state', s)
  redis.call('HSET', k, unpack(fields))
  if s == 'scheduled' then
    emit('scheduled', id, t.queue, 0, {runAt = runAt})
  else
    emit('enqueued', id, t.queue, 0, {state = 'queued'})
  end
end

-- Write the events (when attached) and the counts, publish the wake-ups, and return the
-- outcome as an array: x as JSON, the results as JSON, then each event's JSON and its
-- stream id ('' when the events are not attached). An event is encoded once, for the
-- stream and the reply alike (its id is the entry's, not part of the text), and the array
-- spares building one more string of them all (Lua hashes and interns every string made).
local function finishJson(xJson)
  local out = {xJson, #RESULTS > 0 and cjson.encode(RESULTS) or '[]'}
  for i, e in ipairs(EVENTS) do
    local json = type(e) == 'string' and e or cjson.encode(e)
    out[2 * i + 1] = json
    out[2 * i + 2] = ATTACH_EVENTS and
      redis.call('XADD', K_EVENTS, 'MAXLEN', '~', MAXLEN, '*', 'e', json) or ''
  end
  for f, d in pairs(COUNTS) do
    if d ~= 0 then redis.call('HINCRBY', K_COUNTS, f, int(d)) end
  end
  for q in pairs(WAKE) do redis.call('PUBLISH', P .. 'wake', q) end
  return out
end

-- (\`finishJson\` takes x as JSON text already.)
local function finish(x)
  return finishJson(cjson.encode(x))
end
`;

/** The number of ARGV entries one task takes in `enqueue` and `fireTick`. */
export const TASK_ARGS = 22;
