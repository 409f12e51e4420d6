// The `list` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `list`; it runs after `begin(ARGV)` (fragments.ts). */
export const LIST: string = `--[[
  List tasks oldest first, filtered by queue, name and state.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): tasks, task:<id>
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] queue or ''
    ARGV[5] task name or ''
    ARGV[6] states joined by ',' or ''
    ARGV[7] offset
    ARGV[8] limit
    ARGV[9] enqueued at or after (epoch ms) or ''
    ARGV[10] enqueued before (epoch ms) or ''

  Output:
    the tasks, each as HGETALL output
]]
local queue, name, offset, limit = ARGV[4], ARGV[5], tonumber(ARGV[7]), tonumber(ARGV[8])
local since, before = tonumber(ARGV[9]), tonumber(ARGV[10])
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
      local v = redis.call('HMGET', k, 'queue', 'task', 'state', 'd')
      local inTime = true
      if since or before then
        -- The enqueue time is in the record's JSON part: read only when asked for.
        local ok, d = pcall(cjson.decode, v[4] or '')
        local at = ok and type(d) == 'table' and tonumber(d.createdAt)
        inTime = at and (not since or at >= since) and (not before or at < before) or false
      end
      if inTime and (queue == '' or v[1] == queue) and (name == '' or v[2] == name) and
          (not states or states[v[3] or '']) then
        if offset > 0 then offset = offset - 1
        else out[#out + 1] = redis.call('HGETALL', k) end
      end
    end
  end
end
return out
`;
