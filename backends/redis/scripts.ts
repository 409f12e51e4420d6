// The Lua code of the Redis engine. Every multi-step change of the queue is one script,
// so it is atomic on the server: no client ever reads a task and then writes it back.
//
// The code is `LIB` (the shared helpers) and one body per operation. On Redis 7 and later
// it is loaded once as a function library (`FUNCTION LOAD`; each body a function, called
// with `FCALL`), so the helpers are built once, not on every call; older servers run each
// body as a script of its own (`EVALSHA` of `LIB` and the body). Either way a body starts
// with `begin(ARGV)`, which sets the per-call state (prefix, flags, clock, outputs).
//
// The arguments all come in ARGV (no KEYS): the scripts build their key names from the
// prefix, which is why the engine runs on one Redis node (or a cluster whose prefix holds
// a hash tag, putting every key in one slot). Common ARGV:
//   ARGV[1] the key prefix, e.g. "omniq:"
//   ARGV[2] two flags, "11": results attached, events attached (write them here)
//   ARGV[3] the events stream's MAXLEN (approximate trimming)
//   ARGV[4..] the script's own arguments, listed in its header.
// Every script that changes tasks returns an array from `finish`:
//   [ x JSON, results JSON, event JSON, event stream id, event JSON, … ]
// where x is the script's own output, the results are the result records produced that the
// engine did not store itself, and an event's id is '' when the events are not attached
// (a refusal before any change may return one JSON document { x } instead).
//
// Numbers: Lua formats numbers with 14 significant digits when concatenating, and
// redis.call turns a number argument into text with a slow "%.17g" printf on every call, so
// the scripts pass integers to redis.call as strings made by \`int\` ("%d", exact) or taken
// from ARGV, and never concatenate a ready-order score.

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
] as const;

/** Helpers shared by every body; `begin` sets the state of one call. */
const LIB = `
local FIELDS = {'id', 'state', 'queue', 'pri', 'seq', 'attempts', 'runAt', 'exp', 'max',
  'rttl', 'key', 'odf', 'deps', 'token'}
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
  return t
end

-- A task's control fields, or nil (and why) when the key is not a well-formed task hash.
-- (A pcall'd read instead of TYPE first: one call on the common path.)
local function load(id)
  local k = tkey(id)
  local v = redis.pcall('HMGET', k, unpack(FIELDS))
  if v.err then return nil, notTask(k, v) end
  local t = {}
  for i, f in ipairs(FIELDS) do if v[i] then t[f] = v[i] end end
  if not t.state and redis.call('EXISTS', k) == 0 then return nil, 'missing' end
  return checked(t)
end

-- Like \`load\`, but reads the fields of RECORD, their values returned too (as HMGET gives
-- them: an absent one is false).
local function loadRecord(id)
  local k = tkey(id)
  local v = redis.pcall('HMGET', k, unpack(RECORD))
  if v.err then return nil, notTask(k, v) end
  local t = {}
  for i, f in ipairs(RECORD) do if v[i] then t[f] = v[i] end end
  if not t.state and redis.call('EXISTS', k) == 0 then return nil, 'missing' end
  local c, why = checked(t)
  return c, why, v
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

-- Index a task where its due time says: scheduled (by due time) or queued (by priority,
-- FIFO). Returns the new state, which the caller writes with \`runAt\`.
local function index(id, t, runAt)
  if runAt > NOW then
    recount(t, 'scheduled')
    redis.call('ZADD', dueKey(t.queue), int(runAt), id)
  else
    recount(t, 'queued')
    redis.call('ZADD', readyKey(t.queue), score(t), id)
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

-- Take a task out of every live index (it is about to become final). A running task is in
-- no ready or due set (claiming popped it, and every path back to them leaves \`running\`),
-- and only a task with a ttl is in \`expiring\`.
local function leave(id, t)
  if t.state ~= 'running' then
    redis.call('ZREM', readyKey(t.queue), id)
    redis.call('ZREM', dueKey(t.queue), id)
  end
  redis.call('ZREM', K_RUNNING, id)
  if t.exp then redis.call('ZREM', K_EXPIRING, id) end
  if t.token then redis.call('HDEL', tkey(id), 'token', 'lease', 'worker') end
  if t.key and redis.call('HGET', K_KEYS, t.key) == id then redis.call('HDEL', K_KEYS, t.key) end
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
local function earliestDue(argv, from)
  local best
  for i = from, #argv do
    local top = redis.call('ZRANGE', dueKey(argv[i]), '0', '0', 'WITHSCORES')
    if #top > 0 then
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
    local st = redis.call('HGET', k, 'state')
    if STATES[st or ''] then count(q, st, -1) end
    count(q, 'failed', 1)
    redis.call('HSET', k, 'state', 'failed', 'completedAt', NOW_S,
      'error', cjson.encode({name = 'CorruptTaskError', message = message}))
    redis.call('HDEL', k, 'token', 'lease', 'worker')
    redis.call('ZREM', K_RUNNING, id)
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
    'pri', 'seq', 'startedAt')
  if v.err or v[1] ~= 'running' or v[2] ~= token then return nil end
  local t = {state = v[1], token = v[2], queue = v[3], attempts = tonumber(v[4]),
    key = v[5] or nil, exp = tonumber(v[6]), pri = tonumber(v[7]), seq = tonumber(v[8]),
    startedAt = tonumber(v[9])}
  if not (t.queue and t.attempts and t.pri and t.seq) then return nil end
  return t
end

-- Store one new task (validated by the caller) and put it where its state says; the record
-- is written in one HSET, its state included.
-- a: id, queue, pri, runAt, exp, max, rttl, key, odf, deps JSON, links JSON, task, d JSON
local function insert(a)
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
  if a[5] ~= '' then
    t.exp = tonumber(a[5])
    field('exp', a[5])
  end
  if a[7] ~= '' then
    t.rttl = tonumber(a[7])
    field('rttl', a[7])
  end
  if a[8] ~= '' then
    t.key = a[8]
    field('key', a[8])
    redis.call('HSET', K_KEYS, a[8], id)
  end
  if a[11] ~= '' then field('links', a[11]) end
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
export const TASK_ARGS = 13;

// enqueue — ARGV[4] n, then n groups of TASK_ARGS (see `insert`). All or none: validation
// first (a dependency must exist or come earlier in the batch; an id must be new unless its
// key matches a live task), then the inserts. x = { ids, created } or { err, id }.
const ENQUEUE = `
local n = tonumber(ARGV[4])
local W = ${TASK_ARGS}
local batch = {}
for i = 0, n - 1 do
  local o = 5 + i * W
  local id, key = ARGV[o], ARGV[o + 7]
  if ARGV[o + 9] ~= '[]' then
    for _, d in ipairs(cjson.decode(ARGV[o + 9])) do
      if not batch[d] and redis.call('EXISTS', tkey(d)) == 0 then
        return cjson.encode({x = {err = 'dependency', id = d}})
      end
    end
  end
  local keyed = key ~= '' and redis.call('HEXISTS', K_KEYS, key) == 1
  if not keyed and (batch[id] or redis.call('EXISTS', tkey(id)) == 1) then
    return cjson.encode({x = {err = 'duplicate', id = id}})
  end
  batch[id] = true
end
local ids, created, standIn, anyStandIn = {}, {}, {}, false
local function to(id) return standIn[id] or id end
for i = 0, n - 1 do
  local o = 5 + i * W
  local a = {}
  for j = 0, W - 1 do a[j + 1] = ARGV[o + j] end
  local live = a[8] ~= '' and redis.call('HGET', K_KEYS, a[8])
  if live then
    ids[#ids + 1] = live
    created[#created + 1] = false
    standIn[a[1]] = live
    anyStandIn = true
  else
    if anyStandIn then
      -- A task deduplicated by key stands for the live task: later tasks of the batch that
      -- depend on it (or read or pipe its result) depend on the live one.
      local seen, deps = {}, {}
      for _, d in ipairs(cjson.decode(a[10])) do
        local m = to(d)
        if not seen[m] then
          seen[m] = true
          deps[#deps + 1] = m
        end
      end
      if #deps > 0 then a[10] = cjson.encode(deps) end
      if a[11] ~= '' then
        local links = cjson.decode(a[11])
        if links.pipe then links.pipe = to(links.pipe) end
        if links.names then
          local names = {}
          for d, name in pairs(links.names) do names[to(d)] = name end
          links.names = names
        end
        a[11] = cjson.encode(links)
      end
    end
    insert(a)
    ids[#ids + 1] = a[1]
    created[#created + 1] = true
  end
end
return finish({ids = ids, created = created})
`;

// claim — ARGV[4] limit, [5] lease ms, [6] worker, [7] token base, [8..] queues in order.
// Promotes due scheduled tasks of each queue, then pops ready ones (as many as still fit in
// one ZPOPMIN). x = { tasks: [[id, [values of CLAIM_FIELDS]]], drained, due }: with fewer
// tasks than the limit, drained is true and due the earliest due time of a scheduled task
// in the queues (absent when none is), as \`nextDue\` would answer.
const CLAIM = `
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
    end
  end
  while n < limit do
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

// renew — ARGV[4] id, [5] token, [6] lease ms. Returns 1 or 0 (not JSON).
const RENEW = `
local id, lease = ARGV[4], tonumber(ARGV[6])
if not held(id, ARGV[5]) then return 0 end
local untilMs = int(NOW + lease)
redis.call('HSET', tkey(id), 'lease', untilMs)
redis.call('ZADD', K_RUNNING, untilMs, id)
return 1
`;

// progress — ARGV[4] id, [5] token, [6] value. x = true, or false when the token is stale.
const PROGRESS = `
local id = ARGV[4]
local t = held(id, ARGV[5])
if not t then return finish(false) end
local value = tonumber(ARGV[6])
redis.call('HSET', tkey(id), 'progress', ARGV[6])
emit('progress', id, t.queue, t.attempts, {progress = value})
return finish(true)
`;

// complete — ARGV[4] n, then n groups of five: id, token, result JSON, result expiresAt or
// '', completedAt. The engine gathers the completions its workers send in one turn of the
// event loop into one call; each still completes alone, as its own call would (a stale
// token or an error leaves the others as they are). x = [[done, events, results] …], one
// per completion: done is true, false when the token is stale, or an error's message;
// events and results count the entries of \`events\` and \`results\` up to its own.
const COMPLETE = `
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

// fail — ARGV[4] id, [5] token, [6] error JSON, [7] retryAt or '', [8] result JSON or '',
// [9] result expiresAt or '', [10] the result's completedAt or ''. x = true, or false when
// the token is stale.
const FAIL = `
local id = ARGV[4]
local t = held(id, ARGV[5])
if not t then return finish(false) end
local err = cjson.decode(ARGV[6])
local brief = {name = err.name, message = err.message}
if ARGV[7] ~= '' then
  local retryAt = tonumber(ARGV[7])
  redis.call('ZREM', K_RUNNING, id)
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

// corrupt — ARGV[4] id, [5] token, [6] queue, [7] what is wrong. Fails a claimed task
// whose record the client could not read. x = true, or false when the token is stale.
const CORRUPT = `
local id = ARGV[4]
local token = redis.call('HGET', tkey(id), 'token')
if token ~= ARGV[5] then return finish(false) end
corrupt(id, ARGV[6], ARGV[7])
return finish(true)
`;

// cancel — ARGV[4] id, [5] reason. x = true, or false when final or unknown.
const CANCEL = `
local id, reason = ARGV[4], ARGV[5]
local t = load(id)
if not t or FINAL[t.state] then return finish(false) end
endTask(id, t, 'cancelled', 'TaskCancelledError', reason, {reason = reason})
return finish(true)
`;

// retry — ARGV[4] id. Queues a failed, cancelled or expired task again with its attempts
// reset and no ttl. x = true, or false when it is not such a task.
const RETRY = `
local id = ARGV[4]
local t = load(id)
if not t or not FINAL[t.state] or t.state == 'completed' then return finish(false) end
t.attempts = 0
t.exp = nil
redis.call('HDEL', tkey(id), 'error', 'completedAt', 'startedAt', 'progress', 'exp')
redis.call('ZREM', K_ENDED, id)
if t.key and redis.call('HEXISTS', K_KEYS, t.key) == 0 then
  redis.call('HSET', K_KEYS, t.key, id)
end
if ATTACH_RESULTS then deleteResult(id) end
place(id, t, NOW, 'attempts', 0)
emit('enqueued', id, t.queue, 0, {state = 'queued', retry = true})
return finish(true)
`;

// sweep — ARGV[4] purgeBefore or '', [5] batch size. Recovers expired leases, expires
// unstarted tasks past their ttl, purges final records. x = true when a batch was full
// (call again).
const SWEEP = `
local purgeBefore, batch = tonumber(ARGV[4]), tonumber(ARGV[5])
local more = false
local stalled = redis.call('ZRANGEBYSCORE', K_RUNNING, '-inf', '(' .. NOW, 'LIMIT', 0, batch)
if #stalled == batch then more = true end
for _, id in ipairs(stalled) do
  local t = load(id)
  redis.call('ZREM', K_RUNNING, id)
  if t and t.state == 'running' then
    emit('stalled', id, t.queue, t.attempts, {attempt = t.attempts})
    if t.attempts < t.max then
      redis.call('HDEL', tkey(id), 'token', 'lease', 'worker')
      place(id, t, NOW)
    else
      local message = "the worker's lease expired on attempt " .. t.attempts
      endTask(id, t, 'failed', 'StalledError', message,
        {error = {name = 'StalledError', message = message}})
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
if purgeBefore then
  local ended = redis.call('ZRANGEBYSCORE', K_ENDED, '-inf', '(' .. purgeBefore, 'LIMIT', 0, batch)
  if #ended == batch then more = true end
  for _, id in ipairs(ended) do
    redis.call('ZREM', K_ENDED, id)
    local v = redis.call('TYPE', tkey(id)).ok == 'hash' and
      redis.call('HMGET', tkey(id), 'state', 'queue') or {}
    if v[1] and FINAL[v[1]] then
      count(v[2], v[1], -1)
      redis.call('DEL', tkey(id), P .. 'deps:' .. id)
      redis.call('ZREM', K_TASKS, id)
    end
  end
end
return finish(more)
`;

// nextDue — ARGV[4..] queues. Returns the earliest due time as a string, or false.
const NEXT_DUE = `
local best = earliestDue(ARGV, 4)
if not best then return false end
return int(best)
`;

// list — ARGV[4] queue or '', [5] task name or '', [6] states joined by ',' or '',
// [7] offset, [8] limit. Tasks oldest first, each as HGETALL output.
const LIST = `
local queue, name, offset, limit = ARGV[4], ARGV[5], tonumber(ARGV[7]), tonumber(ARGV[8])
local states
if ARGV[6] ~= '' then
  states = {}
  for s in string.gmatch(ARGV[6], '[^,]+') do states[s] = true end
end
local out, pos = {}, 0
while #out < limit do
  local ids = redis.call('ZRANGE', K_TASKS, pos, pos + 499)
  if #ids == 0 then break end
  pos = pos + #ids
  for _, id in ipairs(ids) do
    if #out >= limit then break end
    local k = tkey(id)
    if redis.call('TYPE', k).ok == 'hash' then
      local v = redis.call('HMGET', k, 'queue', 'task', 'state')
      if (queue == '' or v[1] == queue) and (name == '' or v[2] == name) and
          (not states or states[v[3] or '']) then
        if offset > 0 then offset = offset - 1
        else out[#out + 1] = redis.call('HGETALL', k) end
      end
    end
  end
end
return out
`;

// putSchedule — ARGV[4] id, [5] definition JSON, [6] paused '1'/'0', [7] nextRunAt or '',
// [8] lastRunAt or ''.
const PUT_SCHEDULE = `
local id = ARGV[4]
local k = P .. 'schedule:' .. id
redis.call('DEL', k)
redis.call('HSET', k, 'd', ARGV[5], 'paused', ARGV[6])
if ARGV[7] ~= '' then redis.call('HSET', k, 'next', ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HSET', k, 'last', ARGV[8]) end
redis.call('SADD', P .. 'schedules', id)
if ARGV[6] == '0' and ARGV[7] ~= '' then
  redis.call('ZADD', P .. 'schedules:next', tonumber(ARGV[7]), id)
else
  redis.call('ZREM', P .. 'schedules:next', id)
end
return 1
`;

// deleteSchedule — ARGV[4] id. Returns 1 when it existed.
const DELETE_SCHEDULE = `
local id = ARGV[4]
redis.call('ZREM', P .. 'schedules:next', id)
redis.call('SREM', P .. 'schedules', id)
return redis.call('DEL', P .. 'schedule:' .. id)
`;

// pauseSchedule — ARGV[4] id, [5] '1' to pause / '0' to resume, [6] nextRunAt or ''.
// x = true, or false when unknown or already in that state.
const PAUSE_SCHEDULE = `
local id, paused = ARGV[4], ARGV[5]
local k = P .. 'schedule:' .. id
local cur = redis.call('HGET', k, 'paused')
if not cur or cur == paused then return finish(false) end
redis.call('HSET', k, 'paused', paused)
if paused == '1' then
  redis.call('ZREM', P .. 'schedules:next', id)
else
  if ARGV[6] == '' then
    redis.call('HDEL', k, 'next')
    redis.call('ZREM', P .. 'schedules:next', id)
  else
    redis.call('HSET', k, 'next', ARGV[6])
    redis.call('ZADD', P .. 'schedules:next', tonumber(ARGV[6]), id)
  end
end
emit(paused == '1' and 'schedule_paused' or 'schedule_resumed', nil, nil, 0,
  {scheduleId = id})
return finish(true)
`;

// fireTick — ARGV[4] schedule id, [5] tick, [6] next tick or '', [7] '1' when a task
// follows in ARGV[8..] (TASK_ARGS entries, as in enqueue). The compare-and-set of the
// schedule's next tick and the enqueue of its task are one step. x = true, or false when
// the compare-and-set failed.
const FIRE_TICK = `
local id, tick = ARGV[4], tonumber(ARGV[5])
local k = P .. 'schedule:' .. id
local v = redis.call('HMGET', k, 'paused', 'next')
if not v[1] or v[1] == '1' or not v[2] or tonumber(v[2]) ~= tick then return finish(false) end
if ARGV[6] == '' then
  redis.call('HDEL', k, 'next')
  redis.call('ZREM', P .. 'schedules:next', id)
else
  redis.call('HSET', k, 'next', ARGV[6])
  redis.call('ZADD', P .. 'schedules:next', tonumber(ARGV[6]), id)
end
redis.call('HSET', k, 'last', ARGV[5])
if ARGV[7] == '1' and redis.call('EXISTS', tkey(ARGV[8])) == 0 then
  local a = {}
  for j = 0, ${TASK_ARGS} - 1 do a[j + 1] = ARGV[8 + j] end
  insert(a)
  emit('schedule_fired', a[1], a[2], 0, {scheduleId = id, tick = tick})
end
return finish(true)
`;

// putResults — ARGV[4..] groups of three: task id, result JSON, expiresAt or ''.
const PUT_RESULTS = `
for i = 4, #ARGV, 3 do storeResult(ARGV[i], ARGV[i + 1], ARGV[i + 2]) end
return 1
`;

// deleteResults — ARGV[4..] task ids.
const DELETE_RESULTS = `
for i = 4, #ARGV do deleteResult(ARGV[i]) end
return 1
`;

// sweepResults — ARGV[4] now, [5] batch size. Deletes results whose ttl passed (Redis may
// have expired their keys already) and returns how many.
const SWEEP_RESULTS = `
local ids = redis.call('ZRANGEBYSCORE', K_RESULT_TTL, '-inf', tonumber(ARGV[4]), 'LIMIT', 0,
  tonumber(ARGV[5]))
for _, id in ipairs(ids) do deleteResult(id) end
return #ids
`;

// appendEvents — ARGV[4..] event JSON documents. Returns their stream ids.
const APPEND_EVENTS = `
local ids = {}
for i = 4, #ARGV do
  ids[#ids + 1] = redis.call('XADD', P .. 'events', 'MAXLEN', '~', MAXLEN, '*', 'e', ARGV[i])
end
return ids
`;

// trimEvents — ARGV[4] before (ms). Deletes the events older than that (they come in time
// order), up to the first that is not. Returns how many.
const TRIM_EVENTS = `
local before = tonumber(ARGV[4])
local key = P .. 'events'
local start = '-'
while true do
  local page = redis.call('XRANGE', key, start, '+', 'COUNT', 500)
  if #page == 0 then return redis.call('XTRIM', key, 'MAXLEN', 0) end
  for _, entry in ipairs(page) do
    local ok, e = pcall(cjson.decode, entry[2][2] or 'null')
    local at = ok and type(e) == 'table' and tonumber(e.at)
    if at and at >= before then return redis.call('XTRIM', key, 'MINID', entry[1]) end
  end
  start = '(' .. page[#page][1]
end
`;

/** The body of each operation, by name. */
const BODIES = {
  enqueue: ENQUEUE,
  claim: CLAIM,
  renew: RENEW,
  progress: PROGRESS,
  complete: COMPLETE,
  fail: FAIL,
  corrupt: CORRUPT,
  cancel: CANCEL,
  retry: RETRY,
  sweep: SWEEP,
  nextDue: NEXT_DUE,
  list: LIST,
  putSchedule: PUT_SCHEDULE,
  deleteSchedule: DELETE_SCHEDULE,
  pauseSchedule: PAUSE_SCHEDULE,
  fireTick: FIRE_TICK,
  putResults: PUT_RESULTS,
  deleteResults: DELETE_RESULTS,
  sweepResults: SWEEP_RESULTS,
  appendEvents: APPEND_EVENTS,
  trimEvents: TRIM_EVENTS,
} as const;

/** An operation's name. */
export type ScriptName = keyof typeof BODIES;

/** The operations' names. */
export const SCRIPT_NAMES = Object.keys(BODIES) as ScriptName[];

/**
 * The script of each operation, for servers without functions (`EVALSHA`): `LIB` and the
 * body, run as one chunk on every call.
 */
export const SCRIPTS = Object.fromEntries(
  SCRIPT_NAMES.map((name) => [name, `${LIB}begin(ARGV)\n${BODIES[name]}`]),
) as Record<ScriptName, string>;

/**
 * The whole engine as one function library (Redis 7 and later): `LIB` runs once when the
 * library loads, and each body is the function `<library>_<operation>`.
 *
 * @param library The library's name; it should change whenever the code does (the engine
 *   names it after a hash of {@linkcode SCRIPTS}), so versions never replace each other.
 * @returns The code for `FUNCTION LOAD`.
 */
export function functionLibrary(library: string): string {
  const bodies = SCRIPT_NAMES.map((name) =>
    `redis.register_function('${library}_${name}', function(_, ARGV)\nbegin(ARGV)\n${
      BODIES[name]
    }\nend)\n`
  );
  return `#!lua name=${library}\n${LIB}\n${bodies.join("")}`;
}
