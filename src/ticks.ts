/**
 * Firing due schedule ticks: each due tick becomes a task whose id is derived from the
 * schedule and the tick, claimed by a compare-and-set on the schedule's next run, so two
 * schedulers (threads, processes, machines) never fire one tick twice.
 *
 * @module
 */

import type { Effects, NewTask, StoredSchedule, TaskQueue, TickClaim } from "./backend.ts";
import { type Clock, systemClock } from "./kit/clock.ts";
import { nextTick, tickTaskId } from "./schedule.ts";

/**
 * Fire every tick due now, skipping (or, with `misfire: "once"`, firing once) those more
 * than their schedule's `misfireGrace` late.
 *
 * @param queue The queue holding the schedules.
 * @param apply Where the effects of each fired tick go.
 * @param clock The time ticks are judged due and late by.
 * @returns How many tasks were enqueued.
 */
export async function fireDueTicks(
  queue: TaskQueue,
  apply: (effects: Effects) => Promise<void>,
  clock: Clock = systemClock,
): Promise<number> {
  let fired = 0;
  // Each round advances every due schedule by at least one tick; ticks that fall within
  // the grace fire one by one, older ones are skipped in one step, so this ends.
  for (let round = 0; round < 10_000; round++) {
    const now = clock.now();
    const due = await queue.dueSchedules(now, 100);
    if (due.length === 0) break;
    for (const s of due) {
      const tick = s.nextRunAt!;
      const missed = now - tick > s.misfireGrace;
      // Missed ticks go in one step, up to the first tick still within the grace (which,
      // with those after it up to now, fires in the next rounds): a driver that runs a
      // moment early or skips a run loses only the ticks more than the grace late.
      const next = nextTick(s, missed ? now - s.misfireGrace - 1 : tick);
      const task = !missed || s.misfire === "once" ? tickTask(s, tick, now) : undefined;
      const claim: TickClaim = { scheduleId: s.id, tick, task };
      if (next !== undefined) claim.next = next;
      const effects = await queue.fireTick(claim);
      if (!effects) continue; // another scheduler fired it
      await apply(effects);
      if (task && effects.events.some((e) => e.type === "schedule_fired")) fired++;
    }
  }
  return fired;
}

/** The task a tick of a schedule enqueues. */
function tickTask(s: StoredSchedule, tick: number, now: number): NewTask {
  const task: NewTask = {
    id: tickTaskId(s.id, tick),
    task: s.task,
    queue: s.queue,
    priority: s.priority,
    payload: s.payload,
    createdAt: now,
    runAt: now,
    maxAttempts: s.maxAttempts,
    backoff: s.backoff,
    dependsOn: [],
    onDependencyFailure: "cancel",
    scheduleId: s.id,
  };
  if (s.timeout !== undefined) task.timeout = s.timeout;
  if (s.ttl !== undefined) task.expiresAt = now + s.ttl;
  if (s.resultTtl !== undefined) task.resultTtl = s.resultTtl;
  return task;
}
