// The `pauseQueue` operation of the Redis engine, run as one atomic Lua call (see mod.ts).

/** The Lua body of `pauseQueue`; it runs after `begin(ARGV)` (fragments.ts). */
export const PAUSE_QUEUE: string = `--[[
  Pause or resume a queue.

  A paused queue is a member of the set \`paused\`; the claim script takes nothing from it
  (claim.ts). Its tasks stay as they are. The event is the one \`queuePauseEvent\` in
  src/kit/policy.ts makes (no task, the queue set); a resume wakes the queue's workers.

  Input:
    KEYS: none; the keys are built from the prefix, ARGV[1].
    Keys touched (after the prefix): paused, events, wake
    ARGV[1..3] prefix, flags, maxLen: as in every script (mod.ts)
    ARGV[4] queue
    ARGV[5] paused: '1' to pause, '0' to resume

  Output:
    finish(x), x = true, or false when the queue is already in that state
]]
local q, paused = ARGV[4], ARGV[5] == '1'
local changed = redis.call(paused and 'SADD' or 'SREM', P .. 'paused', q)
if changed == 0 then return finish(false) end
if not paused then WAKE[q] = true end
emit(paused and 'queue_paused' or 'queue_resumed', nil, q, 0)
return finish(true)
`;
