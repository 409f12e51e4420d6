/**
 * The SQLite engine's task queue: enqueue, claim, the fenced changes of a running attempt,
 * sweeps and schedules. Each change is one synchronous step inside one write of the
 * connection (group-committed with the writes of the same turn); the transitions are the
 * shared SQL step code of `backends/sql/steps.ts`.
 *
 * @module
 */

import type {
  Attachment,
  ClaimedTask,
  ClaimRequest,
  Effects,
  EnqueueOutcome,
  Failure,
  NewTask,
  StoredResult,
  StoredSchedule,
  StoredTask,
  SweepOptions,
  TaskQueue,
  TickClaim,
} from "../../src/backend.ts";
import {
  debouncedEvent,
  debounceReplaces,
  laneRoom,
  RECORD_VERSION,
  taskEvent,
  withStandIns,
} from "../../src/kit/policy.ts";
import type { ListOptions, QueueStats, TaskState } from "../../src/types.ts";
import { questionMarks, taskWhere } from "../sql/filters.ts";
import { toSchedule, toStats, toTask } from "../sql/rows.ts";
import { SWEEP_BATCH } from "../sql/states.ts";
import * as steps from "../sql/steps.ts";
import { inBatches, noClaim, runSync } from "../sql/steps.ts";
import { scheduleValues } from "../sql/transitions.ts";
import type { Connection } from "./connection.ts";
import * as q from "./queries.ts";
import { codec, SqliteTable, Step } from "./table.ts";

/** A claim being made: what its started attempts share, and what it took so far. */
interface Claim {
  /** The claim's id: each attempt's token is it and the task's `seq`. */
  id: string;
  leaseUntil: number;
  worker: string;
  step: Step;
  tasks: ClaimedTask[];
}

/** The task queue of a SQLite engine. */
export class SqliteQueue implements TaskQueue {
  readonly #c: Connection;
  readonly #table: SqliteTable;

  constructor(c: Connection) {
    this.#c = c;
    this.#table = new SqliteTable(c);
  }

  attach(attachment: Attachment): void {
    this.#c.attached = { results: attachment.results, events: attachment.events };
  }

  enqueue(tasks: NewTask[]): Promise<EnqueueOutcome> {
    const c = this.#c;
    return c.write(() => {
      const step = new Step(c);
      const ids: string[] = [];
      const created: boolean[] = [];
      // A task deduplicated by key stands for the task holding the key (live, or ended
      // within its throttle window): later tasks of the batch that depend on it depend on
      // that one.
      const standIn = new Map<string, string>();
      for (const t of tasks) {
        if (t.key !== undefined) {
          const owner = c.sql(q.KEY_OWNER).get(t.key, t.key, step.now);
          // A debounced task replaces an unstarted holder, and takes a running one's key.
          let replaces = owner !== undefined;
          if (owner && t.debounce) {
            if (owner.state === "running") {
              c.sql(q.DROP_KEY).run(owner.id as string);
              replaces = false;
            } else if (debounceReplaces(owner as { state: TaskState })) {
              const ref = c.sql(q.DEBOUNCE).get(
                t.payload,
                t.runAt,
                t.runAt,
                step.now,
                owner.id as string,
              )!;
              const held = {
                id: ref.id as string,
                queue: ref.queue as string,
                attempts: ref.attempts as number,
              };
              step.emit(debouncedEvent(held, t.runAt, step.now));
              if (ref.state === "queued") step.wake(ref.queue as string);
            }
          }
          if (owner && replaces) {
            ids.push(owner.id as string);
            created.push(false);
            standIn.set(t.id, owner.id as string);
            continue;
          }
        }
        // Links follow the stand-ins too: a piped result or a node name of the live task.
        this.#table.insert(withStandIns(t, standIn), step);
        ids.push(t.id);
        created.push(true);
      }
      return { ids, created, effects: step.effects() };
    });
  }

  get(id: string): Promise<StoredTask | undefined> {
    const c = this.#c;
    return c.retry(() => {
      const row = c.sql(q.GET_TASK).get(id);
      return row ? toTask(row, codec) : undefined;
    });
  }

  list(filter: ListOptions): Promise<StoredTask[]> {
    const c = this.#c;
    const p = questionMarks();
    const where = taskWhere(filter, p);
    if (where === undefined) return c.retry(() => []);
    const sql = `SELECT * FROM tasks ${where} ORDER BY seq LIMIT ${p.one(filter.limit ?? 100)}
      OFFSET ${p.one(filter.offset ?? 0)}`;
    const params = p.values as (string | number)[];
    return c.retry(() => c.sql(sql).all(...params).map((row) => toTask(row, codec)));
  }

  stats(): Promise<QueueStats> {
    const c = this.#c;
    return c.retry(() => toStats(c.sql(q.STATS).all()));
  }

  async claim(request: ClaimRequest): Promise<{ tasks: ClaimedTask[]; effects: Effects }> {
    const c = this.#c;
    if (request.limit <= 0 || request.queues.length === 0) return c.retry(noClaim);
    // An idle poll should not take the write lock that every other process competes for:
    // look first, outside a transaction.
    const idle = await c.retry(() => {
      const now = Date.now();
      const paused = this.#paused();
      return request.queues.every((queue) =>
        paused.has(queue)
          ? !c.sql(q.DUE_IN_QUEUE).get(queue, now)
          : !c.sql(q.READY_IN_QUEUE).get(queue, queue, queue, now)
      );
    });
    if (idle) return noClaim();
    return c.write(() => {
      const step = new Step(c);
      const now = step.now;
      // Read in the claim's transaction: a pause cannot come between this and the picks.
      const paused = this.#paused();
      // A paused queue's due tasks are queued too: `nextDue` then stops naming them.
      for (const queue of request.queues) c.sql(q.PROMOTE_DUE).run(queue, now);
      const tasks: ClaimedTask[] = [];
      const claim: Claim = {
        id: crypto.randomUUID(),
        leaseUntil: now + request.lease,
        worker: request.worker,
        step,
        tasks,
      };
      for (const queue of request.queues) {
        if (tasks.length >= request.limit) break;
        if (paused.has(queue)) continue;
        // Its ungrouped tasks first, then its groups' round-robin.
        const picked = c.sql(q.PICK).all(
          queue,
          now,
          RECORD_VERSION,
          request.limit - tasks.length,
        );
        this.#start(claim, picked.map((p) => p.seq as number));
        if (tasks.length < request.limit) this.#claimGroups(claim, queue, request.limit);
      }
      return { tasks, effects: step.effects() };
    });
  }

  /** Start the attempts of picked tasks, adding them to the claim in the order given. */
  #start(claim: Claim, seqs: number[]): void {
    if (seqs.length === 0) return;
    const { step, leaseUntil } = claim;
    const started = this.#c.sql(q.START).all(
      claim.id,
      leaseUntil,
      step.now,
      claim.worker,
      JSON.stringify(seqs),
    );
    const bySeq = new Map(started.map((row) => [row.seq as number, row]));
    for (const seq of seqs) {
      const row = bySeq.get(seq)!;
      const task: ClaimedTask = { ...toTask(row, codec), token: row.token as string, leaseUntil };
      claim.tasks.push(task);
      step.emit(taskEvent("started", task, step.now));
    }
  }

  /**
   * Take a queue's lanes (groups, and rate buckets of tasks without a group: `laneOf`)
   * round-robin, inside the claim's write: from the lane after the one its lane claims served
   * last (the queue's group cursor), the head of each lane in turn (by priority, then FIFO)
   * while it has room (`laneRoom`): with a group, the group's running tasks, in every queue,
   * are under the head's `group_limit` (1 when none); with a rate limit, its bucket's tasks
   * started in `(now - per, now]` are under its `limit`. One a lane a round, until the claim
   * holds `limit` tasks or a round takes nothing; a lane without room is skipped for the rest
   * of the claim; then the cursor moves to the last lane served. Every read is a probe of a
   * partial index (`tasks_group_ready`, `tasks_group_running`, `tasks_rate_started`), and the
   * file's write lock makes counting and starting one step for every process.
   */
  #claimGroups(claim: Claim, queue: string, limit: number): void {
    const c = this.#c;
    const { tasks, step } = claim;
    const start = (c.sql(q.GROUP_CURSOR).get(queue)?.group_cursor ?? undefined) as
      | string
      | undefined;
    // The running tasks of each group looked at, with this claim's starts. A count stops at
    // the head's limit: past it, the group is skipped and its head (and limit) stays.
    const running = new Map<string, number>();
    // The lanes whose head had no room: skipped for the rest of the claim.
    const full = new Set<string>();
    let last: string | undefined;
    for (let from = start, took = true; took && tasks.length < limit; from = last) {
      took = false;
      const seen = new Set<string>();
      // No lane is named "": the first lane is the first after it.
      let after = from ?? "";
      let wrapped = from === undefined;
      while (tasks.length < limit) {
        const lane = c.sql(q.NEXT_GROUP).get(queue, after)?.lane as string | undefined;
        if (lane === undefined) {
          if (wrapped) break;
          wrapped = true;
          after = "";
          continue;
        }
        if (seen.has(lane)) break;
        seen.add(lane);
        after = lane;
        if (full.has(lane)) continue;
        const head = c.sql(q.GROUP_HEAD).get(queue, lane, step.now, RECORD_VERSION);
        if (!head) continue;
        const group = head.grp as string | null;
        let busy = 0;
        if (group !== null) {
          const cap = (head.group_limit ?? 1) as number;
          busy = running.get(group) ?? Number(c.sql(q.GROUP_RUNNING_COUNT).get(group, cap)!.n);
          running.set(group, busy);
        }
        // The bucket's starts in the window, counted again at each visit: a start of this
        // claim is in the table already.
        const rate = head.rate_key === null ? undefined : {
          key: head.rate_key as string,
          limit: head.rate_limit as number,
          per: head.rate_per as number,
        };
        const started = rate === undefined ? 0 : Number(
          c.sql(q.RATE_STARTED_COUNT).get(rate.key, step.now - rate.per, rate.limit)!.n,
        );
        const room = laneRoom(
          {
            group: group ?? undefined,
            groupLimit: (head.group_limit ?? undefined) as number | undefined,
            rate,
          },
          busy,
          started,
        );
        if (room <= 0) {
          full.add(lane);
          continue;
        }
        this.#start(claim, [head.seq as number]);
        if (group !== null) running.set(group, busy + 1);
        took = true;
        last = lane;
      }
    }
    if (last !== undefined && last !== start) c.sql(q.SET_GROUP_CURSOR).run(queue, last);
  }

  /** The paused queues, read in the caller's transaction (or read). */
  #paused(): Set<string> {
    return new Set(this.#c.sql(q.PAUSED_QUEUES).all().map((row) => row.name as string));
  }

  renew(id: string, token: string, lease: number): Promise<boolean> {
    const c = this.#c;
    return c.write(() => c.sql(q.RENEW).run(Date.now() + lease, id, token).changes > 0);
  }

  progress(id: string, token: string, value: number): Promise<Effects | undefined> {
    return this.#step((table, step) => steps.progress(table, step, id, token, value));
  }

  complete(id: string, token: string, result: StoredResult): Promise<Effects | undefined> {
    return this.#step((table, step) => steps.complete(table, step, id, token, result));
  }

  fail(id: string, token: string, failure: Failure): Promise<Effects | undefined> {
    return this.#step((table, step) => steps.fail(table, step, id, token, failure));
  }

  cancel(id: string, reason: string): Promise<Effects | undefined> {
    return this.#step((table, step) => steps.cancel(table, step, id, reason));
  }

  retry(id: string): Promise<Effects | undefined> {
    return this.#step((table, step) => steps.rerun(table, step, id));
  }

  /** One shared step, run synchronously in one write. */
  #step<T>(plan: (table: SqliteTable, step: Step) => steps.Plan<T>): Promise<T> {
    const c = this.#c;
    return c.write(() => runSync(plan(this.#table, new Step(c))));
  }

  async sweep(options: SweepOptions): Promise<Effects> {
    const c = this.#c;
    const table = this.#table;
    const { now, purgeBefore } = options;
    const effects: Effects = { events: [], results: [] };
    const batch = (part: (step: Step) => number) =>
      inBatches(effects, SWEEP_BATCH, () =>
        c.write(() => {
          const step = new Step(c, now);
          return [part(step), step.effects()] as const;
        }));
    await batch((step) => {
      const rows = c.sql(q.STALLED).all(now, RECORD_VERSION, SWEEP_BATCH);
      for (const row of rows) runSync(steps.stall(table, step, toTask(row, codec)));
      return rows.length;
    });
    await batch((step) => {
      const rows = c.sql(q.EXPIRED).all(now, RECORD_VERSION, SWEEP_BATCH);
      for (const row of rows) runSync(steps.expire(table, step, toTask(row, codec)));
      return rows.length;
    });
    await batch((step) => {
      const rows = c.sql(q.AGED).all(now, RECORD_VERSION, SWEEP_BATCH);
      if (rows.length) c.sql(q.RAISE).run(JSON.stringify(rows.map((row) => row.seq)));
      return steps.aged(step, rows);
    });
    if (purgeBefore !== undefined) {
      await batch(() => {
        const rows = c.sql(q.PURGEABLE).all(purgeBefore, SWEEP_BATCH);
        for (const { id } of rows) {
          c.sql(q.DELETE_TASK).run(id);
          c.sql(q.DELETE_DEPS).run(id);
        }
        return rows.length;
      });
    }
    return effects;
  }

  putSchedule(s: StoredSchedule): Promise<void> {
    const c = this.#c;
    return c.write(() => {
      c.sql(q.PUT_SCHEDULE).run(...scheduleValues(s, (paused) => paused ? 1 : 0));
    });
  }

  getSchedule(id: string): Promise<StoredSchedule | undefined> {
    const c = this.#c;
    return c.retry(() => {
      const row = c.sql(q.GET_SCHEDULE).get(id);
      return row ? toSchedule(row, codec) : undefined;
    });
  }

  listSchedules(): Promise<StoredSchedule[]> {
    const c = this.#c;
    return c.retry(() => c.sql(q.LIST_SCHEDULES).all().map((row) => toSchedule(row, codec)));
  }

  setSchedulePaused(
    id: string,
    paused: boolean,
    nextRunAt?: number,
  ): Promise<Effects | undefined> {
    return this.#step((table, step) => steps.pauseSchedule(table, step, id, paused, nextRunAt));
  }

  setQueuePaused(queue: string, paused: boolean): Promise<Effects | undefined> {
    return this.#step((table, step) => steps.pauseQueue(table, step, queue, paused));
  }

  pausedQueues(): Promise<string[]> {
    const c = this.#c;
    return c.retry(() => [...this.#paused()].sort());
  }

  deleteSchedule(id: string): Promise<boolean> {
    const c = this.#c;
    return c.write(() => c.sql(q.DELETE_SCHEDULE).run(id).changes > 0);
  }

  dueSchedules(now: number, limit: number): Promise<StoredSchedule[]> {
    const c = this.#c;
    return c.retry(() =>
      c.sql(q.DUE_SCHEDULES).all(now, limit).map((row) => toSchedule(row, codec))
    );
  }

  nextScheduleAt(): Promise<number | undefined> {
    const c = this.#c;
    return c.retry(() => {
      const row = c.sql(q.NEXT_SCHEDULE_AT).get();
      return typeof row?.next === "number" ? row.next : undefined;
    });
  }

  fireTick(claim: TickClaim): Promise<Effects | undefined> {
    return this.#step((table, step) => steps.fireTick(table, step, claim));
  }

  nextDue(queues: string[]): Promise<number | undefined> {
    const c = this.#c;
    return c.retry(() => {
      let next: number | undefined;
      for (const queue of queues) {
        const due = c.sql(q.NEXT_DUE).get(queue)?.due;
        if (typeof due === "number" && (next === undefined || due < next)) next = due;
      }
      return next;
    });
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}
