// The `enqueue` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

import { TASK_ARGS } from "./fragments.ts";

/** The Lua body of `enqueue`; it runs after `begin(ARGV)` (fragments.ts). */
export const ENQUEUE: string = `--[[
  Store a batch of new tasks, all or none.

  Validation comes first (a dependency must exist or come earlier in the batch; an id
  must be new unless its key is held), then the inserts (\`insert\`). A task whose dedupe
  key is held by another task is not stored: that one stands in for it, and later tasks
  of the batch that depend on it (or pipe or read its result) are pointed at it, as
  \`withStandIns\` does in src/kit/policy.ts. A key is held as \`holdsKey\` says
  (\`keyOwner\`): by a live task, or by an ended one until its throttle window
  (keyUntil) closes on the server's clock; a task that no longer holds it (or a missing
  one) leaves its entry to be taken over. Each key is looked up once a call (a task of
  the batch that takes it is looked up again). Each inserted task starts in the state
  \`dependencyVerdict\` would give it.

  A debounced task (\`NewTask.debounce\`) meets its key's holder by its state: an
  unstarted one (\`debounceReplaces\`) takes the new task's payload and runAt, is placed
  again by them (a waiting one only gets the fields), gets a \`debounced\` event
  (\`debouncedEvent\`) and stands in for it (\`debounce\` below); a running one gives up
  its key (its \`key\` field goes) and the new task is stored, taking the entry (its id
  must be new then); a final one (holding by its throttle window) stands in as for any
  key.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): task:<id>, tasks, seq, keys, deps:<id>, {<queue>}:ready,
      {<queue>}:due, {<queue>}:g:<lane>, {<queue>}:groups, rate:<bucket>, expiring, ended,
      counts, aging, result:<id>, results:ttl, events, wake
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] n: how many tasks
    ARGV[5..] n groups of TASK_ARGS (22) entries each: id, queue, priority, runAt, expiresAt
      or '', maxAttempts, resultTtl or '', key or '', onDependencyFailure, dependencies
      JSON, links JSON or '', task name, the rest as JSON, dead-letter queue or '',
      ageAfter (ms) or '', keyUntil (ms) or '', debounce ('1' or ''), group or '',
      groupLimit or '', rate bucket, limit and window (ms) or '' each (see \`insert\` in
      fragments.ts)

  Output:
    finish(x), x = { ids, created } (created[i] false where a holder stood in), or the
    refusal { x = { err = 'dependency' | 'duplicate', id } } as one JSON document, before
    any change
]]
local n = tonumber(ARGV[4])
local W = ${TASK_ARGS}
local batch = {}
-- Each key's holder (\`keyOwner\`), or false, and its state: read once, and again after an
-- insert took it.
local owners, ownerStates = {}, {}
local function owner(key)
  local o = owners[key]
  if o == nil then
    local id, st = keyOwner(key)
    o = id or false
    owners[key], ownerStates[key] = o, st
  end
  return o, ownerStates[key]
end

-- The task document \`d\` with the payload of \`from\` (another task's \`d\`). Both begin with
-- the payload (taskArgs in codec.ts), base64 text without quotes, so the text is swapped
-- as it is; a document that does not goes through cjson.
local PAYLOAD = '{"payload":"'
local function withPayload(d, from)
  local m = #PAYLOAD
  if d:sub(1, m) == PAYLOAD and from:sub(1, m) == PAYLOAD then
    local i, j = d:find('"', m + 1, true), from:find('"', m + 1, true)
    if i and j then return from:sub(1, j - 1) .. d:sub(i) end
  end
  local doc = cjson.decode(d)
  doc.payload = cjson.decode(from).payload
  return cjson.encode(doc)
end

-- A debounced task \`a\` meets the unstarted task \`id\` holding its key (\`debounceReplaces\`):
-- the holder takes its payload and runAt; a scheduled or queued holder is placed again by
-- them (between its queue's due and ready sets), a waiting one only gets the fields. The
-- event is \`debouncedEvent\`'s. The queue is woken when the holder is due now, or due
-- sooner than before (a worker's timer may be set for the later time). Returns the
-- holder's state, or nil (it stands in unchanged) when its record is damaged.
local function debounce(id, a)
  local t = load(id)
  if not t then return nil end
  local k = tkey(id)
  local d = withPayload(redis.call('HGET', k, 'd') or '{}', a[13])
  local runAt = tonumber(a[4])
  if t.state == 'waiting' then
    redis.call('HSET', k, 'd', d, 'runAt', a[4])
  else
    local before = tonumber(t.runAt)
    if t.state == 'queued' then
      unready(id, t)
      if t.age then redis.call('ZREM', K_AGING, id) end
    else
      redis.call('ZREM', dueKey(t.queue), id)
    end
    local woken = WAKE[t.queue]
    place(id, t, runAt, 'd', d)
    if t.state == 'scheduled' and not (before and runAt < before) then
      WAKE[t.queue] = woken
    end
  end
  emit('debounced', id, t.queue, t.attempts, {runAt = runAt})
  return t.state
end

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
  local keyed, st = false, nil
  if key ~= '' then keyed, st = owner(key) end
  -- A debounced task whose key's holder runs is stored.
  if keyed and st == 'running' and ARGV[o + 16] == '1' then keyed = false end
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
  local live, st = false, nil
  if a[8] ~= '' then live, st = owner(a[8]) end
  if live and a[17] == '1' then
    if st == 'running' then
      -- It gives up its key; the new task, stored below, takes the entry.
      redis.call('HDEL', tkey(live), 'key')
      live = false
    elseif UNSTARTED[st] then
      ownerStates[a[8]] = debounce(live, a) or st
    end
  end
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
    insert(a, true)
    -- It took the key (it may have ended at once, a dependency having failed).
    if a[8] ~= '' then owners[a[8]] = nil end
    ids[#ids + 1] = a[1]
    created[#created + 1] = true
  end
end
return finish({ids = ids, created = created})
`;
