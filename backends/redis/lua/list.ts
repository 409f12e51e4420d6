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

  Output:
    the tasks, each as HGETALL output
]]
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
