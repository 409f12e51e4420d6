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

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): task:<id>, tasks, seq, keys, deps:<id>, {<queue>}:ready,
      {<queue>}:due, expiring, ended, counts, aging, result:<id>, results:ttl, events, wake
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] n: how many tasks
    ARGV[5..] n groups of TASK_ARGS (16) entries each: id, queue, priority, runAt, expiresAt
      or '', maxAttempts, resultTtl or '', key or '', onDependencyFailure, dependencies
      JSON, links JSON or '', task name, the rest as JSON, dead-letter queue or '',
      ageAfter (ms) or '', keyUntil (ms) or '' (see \`insert\` in fragments.ts)

  Output:
    finish(x), x = { ids, created } (created[i] false where a holder stood in), or the
    refusal { x = { err = 'dependency' | 'duplicate', id } } as one JSON document, before
    any change
]]
local n = tonumber(ARGV[4])
local W = ${TASK_ARGS}
local batch = {}
-- Each key's holder (\`keyOwner\`), or false: read once, and again after an insert took it.
local owners = {}
local function owner(key)
  local o = owners[key]
  if o == nil then
    o = keyOwner(key) or false
    owners[key] = o
  end
  return o
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
  local keyed = key ~= '' and owner(key)
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
  local live = a[8] ~= '' and owner(a[8])
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
