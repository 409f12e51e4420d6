/**
 * The PostgreSQL engine's task queue: enqueue, claim, the fenced changes of a running
 * attempt, sweeps and schedules. The claim from one queue and the batched completion are
 * single statements (the hot path, in `queries.ts` and `completions.ts`); every other
 * change is the shared SQL step code of `backends/sql/steps.ts`, run by `runAsync` in one
 * transaction whose events, results and wake-ups travel with its `COMMIT`.
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
  NewEvent,
  NewTask,
  StoredEvent,
  StoredResult,
  StoredSchedule,
  StoredTask,
  Subscription,
  SweepOptions,
  TaskQueue,
  TickClaim,
} from "../../src/backend.ts";
import { RECORD_VERSION, taskEvent } from "../../src/kit/policy.ts";
import type { ListOptions, QueueStats } from "../../src/types.ts";
import { numbered, taskWhere } from "../sql/filters.ts";
import { toSchedule, toStats, toTask } from "../sql/rows.ts";
import { SWEEP_BATCH } from "../sql/states.ts";
import * as steps from "../sql/steps.ts";
import { inBatches, noClaim, runAsync } from "../sql/steps.ts";
import { scheduleValues } from "../sql/transitions.ts";
import { Completions } from "./completions.ts";
import { type Connection, type Param, type Row, run, type Tail, type Tx } from "./connection.ts";
import { storeTasks } from "./enqueue.ts";
import * as q from "./queries.ts";
import { codec, inStep, type PostgresTable, type Step } from "./table.ts";

/** A claimed task from a row that `RETURNING t.*` of a claim gave. */
function claimed(row: Row): ClaimedTask {
  return { ...toTask(row, codec), token: row.token, leaseUntil: row.lease_until };
}

/** By priority, then FIFO: the order the claim took them in. */
function byPriority(a: Row, b: Row): number {
  return b.priority - a.priority || a.seq - b.seq;
}

/** What a grouped claim of one queue works with (see `PostgresQueue.#claimGroups`). */
interface GroupClaim {
  tx: Tx;
  step: Step;
  queue: string;
  request: ClaimRequest;
  /** The claim's tasks so far; the grouped ones are added. */
  tasks: ClaimedTask[];
  /** The group cursors to store at the end, by queue. */
  cursors: Map<string, string>;
}

/** The task queue of a PostgreSQL engine. */
export class PostgresQueue implements TaskQueue {
  readonly #c: Connection;
  readonly #completions: Completions;

  constructor(c: Connection) {
    this.#c = c;
    this.#completions = new Completions(c);
  }

  attach(attachment: Attachment): void {
    this.#c.attached = { results: attachment.results, events: attachment.events };
  }

  subscribe(queues: string[], onWake: () => void): Subscription {
    return this.#c.subscribe(queues, onWake);
  }

  enqueue(tasks: NewTask[]): Promise<EnqueueOutcome> {
    return inStep(this.#c, "enqueue", async (_table, step, tx, tail) => {
      const { ids, created } = await storeTasks(this.#c, tx, {
        step,
        tail,
        tasks,
        dedupe: true,
      });
      return { ids, created, effects: step.effects() };
    });
  }

  get(id: string): Promise<StoredTask | undefined> {
    const c = this.#c;
    return c.read("get", async (db) => {
      const rows = await run(db, q.getTask(c.s), [id]);
      return rows.length ? toTask(rows[0], codec) : undefined;
    });
  }

  list(filter: ListOptions): Promise<StoredTask[]> {
    const c = this.#c;
    const p = numbered();
    const where = taskWhere(filter, p);
    if (where === undefined) return c.read("list", () => Promise.resolve([]));
    const text = `SELECT * FROM ${c.s}.tasks ${where}
      ORDER BY seq LIMIT ${p.one(filter.limit ?? 100)} OFFSET ${p.one(filter.offset ?? 0)}`;
    const params = p.values as Param[];
    return c.read("list", async (db) => (await run(db, text, params)).map((r) => toTask(r, codec)));
  }

  stats(): Promise<QueueStats> {
    const c = this.#c;
    return c.read("stats", async (db) => toStats(await run(db, q.stats(c.s))));
  }

  async claim(request: ClaimRequest): Promise<{ tasks: ClaimedTask[]; effects: Effects }> {
    const c = this.#c;
    c.check();
    if (request.limit <= 0 || request.queues.length === 0) return noClaim();
    if (request.queues.length === 1) {
      const taken = await this.#claimOne(request);
      if (taken) {
        const { grouped, ...claim } = taken;
        if (!grouped || claim.tasks.length >= request.limit) return claim;
        return await this.#claimGroupsAfter(request, claim);
      }
    } else {
      // An idle poll takes no lock and opens no transaction.
      const ready = await c.read(
        "claim",
        (db) => run(db, q.ready(c.s), [request.queues, Date.now()]),
      );
      if (!ready[0].ready) return noClaim();
    }
    return inStep(c, "claim", async (_table, step, tx, tail) => {
      const now = step.now;
      // Sent with BEGIN, not awaited: the claims below see what it queued.
      const promoted = run(tx, q.promoteDue(c.s), [request.queues, now]);
      promoted.catch(() => {}); // its failure fails the claims after it too
      const tasks: ClaimedTask[] = [];
      const cursors = new Map<string, string>();
      for (const queue of request.queues) {
        if (tasks.length >= request.limit) break;
        // Rows another worker is claiming right now are skipped, not waited for. Whether
        // the queue has grouped tasks is asked beside, for when the claim comes back short.
        const [rows, [probe]] = await Promise.all([
          run(tx, q.claim(c.s), [
            queue,
            now,
            RECORD_VERSION,
            request.limit - tasks.length,
            request.lease,
            request.worker,
          ]),
          run(tx, q.groupsQueued(c.s), [queue]),
        ]);
        for (const row of rows.sort(byPriority)) {
          const task = claimed(row);
          tasks.push(task);
          step.emit(taskEvent("started", task, now));
        }
        if (probe.grouped && tasks.length < request.limit) {
          await this.#claimGroups({ tx, step, queue, request, tasks, cursors });
        }
      }
      await promoted;
      this.#moveCursors(tx, tail, cursors);
      return { tasks, effects: step.effects() };
    });
  }

  /**
   * After a short claim of one queue's ungrouped tasks (committed), its groups'
   * round-robin for the room left, in a transaction of its own. Should that fail, the
   * tasks started already are handed out all the same (they would otherwise wait for
   * their leases to lapse); with none, the failure is the claim's.
   */
  async #claimGroupsAfter(
    request: ClaimRequest,
    taken: { tasks: ClaimedTask[]; effects: Effects },
  ): Promise<{ tasks: ClaimedTask[]; effects: Effects }> {
    const c = this.#c;
    let more: { tasks: ClaimedTask[]; effects: Effects };
    try {
      more = await inStep(c, "claim", async (_table, step, tx, tail) => {
        const tasks: ClaimedTask[] = [];
        const cursors = new Map<string, string>();
        const room = { ...request, limit: request.limit - taken.tasks.length };
        await this.#claimGroups({
          tx,
          step,
          queue: request.queues[0],
          request: room,
          tasks,
          cursors,
        });
        this.#moveCursors(tx, tail, cursors);
        return { tasks, effects: step.effects() };
      });
    } catch (error) {
      if (taken.tasks.length === 0) throw error;
      return taken;
    }
    // The events' ids were filled in at the commit (`Step.flush`).
    return {
      tasks: [...taken.tasks, ...more.tasks],
      effects: { events: [...taken.effects.events, ...more.effects.events], results: [] },
    };
  }

  /**
   * Take a queue's lanes (groups, and rate buckets of tasks without a group: `laneOf`)
   * round-robin, in the caller's transaction, until `tasks` holds `request.limit`: from the
   * lane after the one its lane claims served last (the queue's group cursor), the head of
   * each lane in turn (by priority, then FIFO) while it has room (`laneRoom`: its group's
   * running tasks, in every queue, under the head's `group_limit`; its rate bucket's starts
   * in the window under its `limit`), one a lane a round, until a round takes nothing; the
   * last lane served is noted in `cursors`.
   *
   * Several processes claim at once, so the caps hold by locks: `nextGroup` takes the lane's
   * transaction-scoped advisory lock and, when its head has a rate limit, the bucket's (or
   * skips the lane when another claim holds either: a try never waits, so two claims taking
   * lanes in different orders cannot deadlock), and `claimGroupHead`, a later statement,
   * counts the group's running tasks and the bucket's starts and starts the head in one
   * snapshot taken after the locks: a claim that held them before committed first, and its
   * starts are counted. Every read is a probe of a partial index. The seek to the next lane
   * goes out behind a start when the claim will still have room, so a claim of several
   * tasks with lanes takes one round trip for each.
   */
  async #claimGroups(at: GroupClaim): Promise<void> {
    const c = this.#c;
    const { tx, step, queue, request, tasks } = at;
    const limit = request.limit;
    const seek = (after: string | null) => {
      const sent = run(tx, q.nextGroup(c.s), [c.groupLockSpace, queue, after, c.rateLockSpace]);
      sent.catch(() => {}); // awaited below, or its failure fails what follows it
      return sent;
    };
    // The lanes that gave nothing (another claim holds them, or without room, or with
    // nothing to claim now): not asked again in this transaction.
    const spent = new Set<string>();
    let ahead: Promise<Row[]> | undefined = seek(null);
    let start: string | undefined;
    let last: string | undefined;
    for (let round = 0, took = true; took && tasks.length < limit; round++) {
      took = false;
      const seen = new Set<string>();
      // The first round starts after the stored cursor, each later one after the last
      // group served.
      let wrapped: boolean | undefined = round === 0 ? undefined : false;
      ahead ??= seek(last!);
      while (tasks.length < limit) {
        const [row] = await ahead!;
        ahead = undefined;
        if (wrapped === undefined) {
          start = row.cursor ?? undefined;
          wrapped = start === undefined;
        }
        const group = row.lane as string | null;
        if (group === null) {
          if (wrapped) break;
          wrapped = true;
          ahead = seek("");
          continue;
        }
        if (seen.has(group)) break;
        seen.add(group);
        if (!row.locked || spent.has(group)) {
          ahead = seek(group);
          continue;
        }
        const head = run(tx, q.claimGroupHead(c.s), [
          queue,
          group,
          step.now,
          RECORD_VERSION,
          request.lease,
          request.worker,
          row.rate_key ?? null,
        ]);
        if (tasks.length + 1 < limit) ahead = seek(group);
        const [started] = await head;
        if (!started) {
          spent.add(group);
          ahead ??= seek(group);
          continue;
        }
        const task = claimed(started);
        tasks.push(task);
        step.emit(taskEvent("started", task, Number(started.started_at)));
        took = true;
        last = group;
      }
    }
    if (ahead) await ahead;
    if (last !== undefined && last !== start) at.cursors.set(queue, last);
  }

  /**
   * Store the group cursors a claim moved, in the transaction's tail, in queue order: two
   * claims wait for each other's `queues` rows in one order, never in a cycle.
   */
  #moveCursors(tx: Tx, tail: Tail, cursors: Map<string, string>): void {
    const c = this.#c;
    for (const [queue, group] of [...cursors].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0)) {
      tail.push(run(tx, q.setGroupCursor(c.s), [queue, group]));
    }
  }

  /**
   * The claim from one queue in one statement, outside a transaction: the common case, in
   * one round trip, and an idle poll takes no lock. It takes nothing when a scheduled task
   * of the queue is due (`undefined`): the transaction above first queues those, so that
   * priority and FIFO order count them.
   */
  async #claimOne(
    request: ClaimRequest,
  ): Promise<{ tasks: ClaimedTask[]; effects: Effects; grouped: boolean } | undefined> {
    const c = this.#c;
    const now = Date.now();
    const logged = c.attached.events;
    const rows = await c.write("claim", (db) =>
      run(db, q.claimOne(c.s, logged), [
        request.queues[0],
        now,
        RECORD_VERSION,
        request.limit,
        request.lease,
        request.worker,
      ]));
    if (rows[0]?.due) return undefined;
    const tasks: ClaimedTask[] = [];
    const events: (NewEvent | StoredEvent)[] = [];
    for (const row of rows.filter((row) => row.id !== null).sort(byPriority)) {
      const task = claimed(row);
      tasks.push(task);
      const event = taskEvent("started", task, now);
      events.push(logged ? { ...event, id: String(row.event_id) } : event);
    }
    return { tasks, effects: { events, results: [] }, grouped: rows[0]?.grouped === true };
  }

  renew(id: string, token: string, lease: number): Promise<boolean> {
    const c = this.#c;
    return c.read(
      "renew",
      async (db) => (await run(db, q.renew(c.s), [lease, id, token])).length > 0,
    );
  }

  progress(id: string, token: string, value: number): Promise<Effects | undefined> {
    return this.#step("progress", (table, step) => steps.progress(table, step, id, token, value));
  }

  async complete(id: string, token: string, result: StoredResult): Promise<Effects | undefined> {
    this.#c.check();
    // Left out of the shared statement: dependents to release, or a stale token.
    return await this.#completions.add(id, token, result) ??
      await this.#step("complete", (table, step) => steps.complete(table, step, id, token, result));
  }

  fail(id: string, token: string, failure: Failure): Promise<Effects | undefined> {
    return this.#step("fail", (table, step) => steps.fail(table, step, id, token, failure));
  }

  cancel(id: string, reason: string): Promise<Effects | undefined> {
    return this.#step("cancel", (table, step) => steps.cancel(table, step, id, reason));
  }

  retry(id: string): Promise<Effects | undefined> {
    return this.#step("retry", (table, step) => steps.rerun(table, step, id));
  }

  /** One shared step in one transaction. */
  #step<T>(what: string, plan: (table: PostgresTable, step: Step) => steps.Plan<T>): Promise<T> {
    return inStep(this.#c, what, (table, step) => runAsync(plan(table, step)));
  }

  async sweep(options: SweepOptions): Promise<Effects> {
    const c = this.#c;
    await this.#refreshStatistics();
    const { now, purgeBefore } = options;
    const effects: Effects = { events: [], results: [] };
    const batch = (
      what: string,
      part: (table: PostgresTable, step: Step, tx: Tx) => Promise<number>,
    ) =>
      inBatches(effects, SWEEP_BATCH, () =>
        inStep(c, what, async (table, step, tx) => {
          const n = await part(table, step, tx);
          return [n, step.effects()] as const;
        }));
    await batch("sweep (stalled)", async (table, step, tx) => {
      const rows = await run(tx, q.stalled(c.s), [RECORD_VERSION, SWEEP_BATCH]);
      for (const row of rows) await runAsync(steps.stall(table, step, toTask(row, codec)));
      return rows.length;
    });
    await batch("sweep (expired)", async (table, step, tx) => {
      const rows = await run(tx, q.expired(c.s), [now, RECORD_VERSION, SWEEP_BATCH]);
      for (const row of rows) await runAsync(steps.expire(table, step, toTask(row, codec)));
      return rows.length;
    });
    await batch(
      "sweep (aged)",
      async (_table, step, tx) =>
        steps.aged(step, await run(tx, q.raiseAged(c.s), [now, RECORD_VERSION, SWEEP_BATCH])),
    );
    if (purgeBefore !== undefined) {
      await batch("sweep (purge)", async (_table, _step, tx) => {
        const rows = await run(tx, q.purge(c.s), [purgeBefore, SWEEP_BATCH]);
        if (rows.length) {
          await run(tx, q.deleteDeps(c.s), [JSON.stringify(rows.map((r) => r.id))]);
        }
        return rows.length;
      });
    }
    return effects;
  }

  /**
   * `ANALYZE` the tasks table when it grew past what the planner knows. A burst of a
   * million enqueues lands before autovacuum's next look (a minute by default), and with
   * statistics of an empty table the planner sorts every queued row on each claim instead
   * of reading the ready index in order: claims went from 6,700 to 257 tasks/s with 1M
   * queued (`deno task bench:scaling`), and back with fresh statistics. Workers sweep at
   * start and every `sweepInterval`, so this runs before their first claim.
   */
  async #refreshStatistics(): Promise<void> {
    const c = this.#c;
    try {
      await c.tx("sweep (statistics)", async (tx) => {
        const [row] = await run(tx, q.tasksStale(c.s), [c.lockSpace]);
        if (row?.stale) await tx.unsafe(`ANALYZE ${c.s}.tasks`);
      });
    } catch {
      // Only the planner's estimates are at stake (a role that may not read the statistics
      // views, say): the sweep itself goes on, and autovacuum analyzes in its own time.
    }
  }

  putSchedule(s: StoredSchedule): Promise<void> {
    const c = this.#c;
    return c.tx("putSchedule", async (tx) => {
      await run(tx, q.putSchedule(c.s), scheduleValues(s, (paused) => paused));
    });
  }

  getSchedule(id: string): Promise<StoredSchedule | undefined> {
    const c = this.#c;
    return c.read("getSchedule", async (db) => {
      const rows = await run(db, q.getSchedule(c.s), [id]);
      return rows.length ? toSchedule(rows[0], codec) : undefined;
    });
  }

  listSchedules(): Promise<StoredSchedule[]> {
    const c = this.#c;
    return c.read(
      "listSchedules",
      async (db) => (await run(db, q.listSchedules(c.s))).map((r) => toSchedule(r, codec)),
    );
  }

  setSchedulePaused(
    id: string,
    paused: boolean,
    nextRunAt?: number,
  ): Promise<Effects | undefined> {
    return this.#step(
      "setSchedulePaused",
      (table, step) => steps.pauseSchedule(table, step, id, paused, nextRunAt),
    );
  }

  setQueuePaused(queue: string, paused: boolean): Promise<Effects | undefined> {
    return this.#step(
      "setQueuePaused",
      (table, step) => steps.pauseQueue(table, step, queue, paused),
    );
  }

  pausedQueues(): Promise<string[]> {
    const c = this.#c;
    return c.read(
      "pausedQueues",
      async (db) => (await run(db, q.pausedQueues(c.s))).map((r) => r.name as string).sort(),
    );
  }

  deleteSchedule(id: string): Promise<boolean> {
    const c = this.#c;
    return c.tx(
      "deleteSchedule",
      async (tx) => (await run(tx, q.deleteSchedule(c.s), [id])).length > 0,
    );
  }

  dueSchedules(now: number, limit: number): Promise<StoredSchedule[]> {
    const c = this.#c;
    return c.read(
      "dueSchedules",
      async (db) =>
        (await run(db, q.dueSchedules(c.s), [now, limit])).map((r) => toSchedule(r, codec)),
    );
  }

  nextScheduleAt(): Promise<number | undefined> {
    const c = this.#c;
    return c.read("nextScheduleAt", async (db) => {
      const rows = await run(db, q.nextScheduleAt(c.s));
      return typeof rows[0]?.next === "number" ? rows[0].next : undefined;
    });
  }

  fireTick(claim: TickClaim): Promise<Effects | undefined> {
    return this.#step("fireTick", (table, step) => steps.fireTick(table, step, claim));
  }

  nextDue(queues: string[]): Promise<number | undefined> {
    const c = this.#c;
    return c.read("nextDue", async (db) => {
      const rows = await run(db, q.nextDue(c.s), [JSON.stringify(queues)]);
      return typeof rows[0]?.due === "number" ? rows[0].due : undefined;
    });
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}
