/**
 * The `memory:` engine: queue, results and events in this process's memory. Nothing
 * survives the process; use it for tests and for work that may be lost. `memory:` alone
 * opens a fresh store; `memory:NAME` opens the store of that name, shared by every
 * `OmniQ` of the process that names it.
 *
 * @example A queue in memory
 * ```ts
 * import { OmniQ, defineTask } from "@omniq/omniq";
 * const double = defineTask("memory-doc-double", (n: number) => n * 2);
 * await using q = await OmniQ.open("memory:");
 * const id = await q.enqueue(double, [21]);
 * await q.run({ until: "idle" });
 * console.assert((await q.wait(id)) === 42);
 * ```
 *
 * @module
 */

import {
  type Attachment,
  type Backend,
  type ClaimedTask,
  type ClaimRequest,
  type Effects,
  endResult,
  type EnqueueOutcome,
  type EventQuery,
  type EventStore,
  type Failure,
  isFinal,
  matchesEvent,
  matchesList,
  type NewEvent,
  type NewTask,
  noEffects,
  type ResultStore,
  type StoredEvent,
  type StoredResult,
  type StoredSchedule,
  type StoredTask,
  type SweepOptions,
  taskEvent,
  type TaskQueue,
  type TickClaim,
  withStandIns,
} from "../../src/backend.ts";
import { DuplicateTaskError, OmniQError } from "../../src/errors.ts";
import type { FinalState, ListOptions, QueueStats, StateCounts } from "../../src/types.ts";
import { TASK_STATES } from "../../src/types.ts";

/** A task as the memory engine keeps it: the stored task and its claim. */
export interface Row extends StoredTask {
  /** Enqueue order. */
  seq: number;
  /** The running attempt's fencing token. */
  token?: string;
  /** When the running attempt's lease lapses (epoch ms). */
  leaseUntil?: number;
}

/** A binary min-heap of `[key, id]` (a due time, or a ready-order key). */
export class KeyHeap {
  #heap: [number, string][] = [];
  /** How many entries it holds. */
  get size(): number {
    return this.#heap.length;
  }
  /** Add an entry. */
  push(time: number, id: string): void {
    const h = this.#heap;
    h.push([time, id]);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (h[p][0] <= h[i][0]) break;
      [h[p], h[i]] = [h[i], h[p]];
      i = p;
    }
  }
  /** The entry with the smallest key, left in place. */
  peek(): [number, string] | undefined {
    return this.#heap[0];
  }
  /** Take the entry with the smallest key. */
  pop(): [number, string] | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    if (h.length > 0 && last) {
      h[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1, r = l + 1;
        let m = i;
        if (l < h.length && h[l][0] < h[m][0]) m = l;
        if (r < h.length && h[r][0] < h[m][0]) m = r;
        if (m === i) break;
        [h[m], h[i]] = [h[i], h[m]];
        i = m;
      }
    }
    return top;
  }
}

/** Ready order as one number: higher priority first, then enqueue order (as SQL engines). */
function readyKey(row: Row): number {
  return (9 - row.priority) * 2 ** 44 + row.seq;
}

const EXPIRED = { name: "TaskExpiredError", message: "expired before it started" };

function closedError(): OmniQError {
  return new OmniQError("the memory backend is closed");
}

/** The shared state of one memory store (opaque to users). */
export class MemoryState {
  /** Every task, by id. */
  tasks: Map<string, Row> = new Map();
  /** The last enqueue sequence number given. */
  seq: number = 0;
  /** Ready ids per queue, by {@linkcode readyKey}: priority, then enqueue order. */
  ready: Map<string, KeyHeap> = new Map();
  /** Scheduled ids by due time, per queue. */
  scheduled: Map<string, KeyHeap> = new Map();
  /** The ids of the running tasks. */
  running: Set<string> = new Set();
  /** The live task that holds each dedupe key. */
  liveKeys: Map<string, string> = new Map();
  /** The ids of the tasks that depend on each task. */
  dependents: Map<string, Set<string>> = new Map();
  /** Stored results, by task id. */
  results: Map<string, StoredResult> = new Map();
  /** Schedules, by id. */
  schedules: Map<string, StoredSchedule> = new Map();
  /** The event log, oldest first. */
  events: StoredEvent[] = [];
  /** The last event number given. */
  eventSeq: number = 0;
  /** How many open handles share this state (a named store lives while any is open). */
  users: number = 0;
}

const named = new Map<string, MemoryState>();

/** The task queue of a memory store. */
export class MemoryQueue implements TaskQueue {
  #s: MemoryState;
  #attached: Attachment = { results: true, events: true };
  #closed = false;

  /** Open the queue over a store's state. */
  constructor(state: MemoryState) {
    this.#s = state;
  }

  /** Say which companion stores live in this engine. */
  attach(attachment: Attachment): void {
    this.#attached = { ...attachment };
  }

  #check(): void {
    if (this.#closed) throw closedError();
  }

  #ready(row: Row): void {
    let heap = this.#s.ready.get(row.queue);
    if (!heap) this.#s.ready.set(row.queue, heap = new KeyHeap());
    heap.push(readyKey(row), row.id);
  }

  #schedule(row: Row, now: number): void {
    if (row.runAt > now) {
      row.state = "scheduled";
      let heap = this.#s.scheduled.get(row.queue);
      if (!heap) this.#s.scheduled.set(row.queue, heap = new KeyHeap());
      heap.push(row.runAt, row.id);
    } else {
      row.state = "queued";
      this.#ready(row);
    }
  }

  /** Turn a list of changes into effects, storing what this engine holds. */
  #effects(events: NewEvent[], results: StoredResult[]): Effects {
    const out = noEffects();
    if (this.#attached.results) {
      for (const r of results) this.#s.results.set(r.taskId, r);
    } else out.results = results;
    out.events = this.#attached.events ? appendEvents(this.#s, events) : events;
    return out;
  }

  #end(
    row: Row,
    state: Exclude<FinalState, "completed">,
    now: number,
    error: { name: string; message: string },
    events: NewEvent[],
    results: StoredResult[],
    data?: Record<string, unknown>,
  ): void {
    this.#leave(row);
    row.state = state;
    row.completedAt = now;
    row.error = error;
    results.push(endResult(row, state, error, now));
    events.push(taskEvent(state === "failed" ? "failed" : state, row, now, data));
    this.#cascade(row, now, events, results);
  }

  /** Remove a row from the live indexes when it leaves a live state. */
  #leave(row: Row): void {
    this.#s.running.delete(row.id);
    row.token = undefined;
    row.leaseUntil = undefined;
    if (row.key !== undefined && this.#s.liveKeys.get(row.key) === row.id) {
      this.#s.liveKeys.delete(row.key);
    }
  }

  /** Release or cancel the waiting dependents of a task that just became final. */
  #cascade(row: Row, now: number, events: NewEvent[], results: StoredResult[]): void {
    const waiting = this.#s.dependents.get(row.id);
    if (!waiting) return;
    for (const depId of waiting) {
      const dependent = this.#s.tasks.get(depId);
      if (!dependent || dependent.state !== "waiting") continue;
      if (row.state !== "completed" && dependent.onDependencyFailure === "cancel") {
        const reason = `dependency ${row.id} ${row.state}`;
        this.#end(
          dependent,
          "cancelled",
          now,
          {
            name: "TaskCancelledError",
            message: reason,
          },
          events,
          results,
          { reason, dependency: row.id },
        );
      } else if (this.#depsDone(dependent)) {
        this.#schedule(dependent, now);
        events.push(
          taskEvent(stateOf(dependent) === "scheduled" ? "scheduled" : "enqueued", dependent, now, {
            state: dependent.state,
            released: true,
          }),
        );
      }
    }
  }

  #depsDone(row: Row): boolean {
    return row.dependsOn.every((d) => {
      const dep = this.#s.tasks.get(d);
      if (!dep) return true; // purged: it was final long ago
      return row.onDependencyFailure === "run" ? isFinal(dep.state) : dep.state === "completed";
    });
  }

  /** Store tasks, all or none. */
  enqueue(tasks: NewTask[]): Promise<EnqueueOutcome> {
    this.#check();
    const now = Date.now();
    // Validate first: the batch is stored whole or not at all. A dependency must exist or
    // come earlier in the batch; a live key match wins over an id clash (same task again).
    const batchIds = new Set<string>();
    for (const t of tasks) {
      for (const d of t.dependsOn) {
        if (!this.#s.tasks.has(d) && !batchIds.has(d)) {
          return Promise.reject(new OmniQError(`dependsOn: no task with id "${d}"`));
        }
      }
      const keyed = t.key !== undefined && this.#s.liveKeys.has(t.key);
      if (!keyed && (this.#s.tasks.has(t.id) || batchIds.has(t.id))) {
        return Promise.reject(new DuplicateTaskError(`id: a task with id "${t.id}" exists`));
      }
      batchIds.add(t.id);
    }
    const ids: string[] = [];
    const created: boolean[] = [];
    const events: NewEvent[] = [];
    const results: StoredResult[] = [];
    // A task deduplicated by key stands for the live task: later tasks of the batch that
    // depend on it (and read or pipe its result) depend on the live one.
    const standIn = new Map<string, string>();
    for (const t of tasks) {
      const live = t.key === undefined ? undefined : this.#s.liveKeys.get(t.key);
      if (live !== undefined) {
        ids.push(live);
        created.push(false);
        standIn.set(t.id, live);
        continue;
      }
      this.#insert(standIn.size === 0 ? t : withStandIns(t, standIn), now, events, results);
      ids.push(t.id);
      created.push(true);
    }
    return Promise.resolve({ ids, created, effects: this.#effects(events, results) });
  }

  /** Store one validated task and put it where its state says (inside a batch). */
  #insert(t: NewTask, now: number, events: NewEvent[], results: StoredResult[]): void {
    const row: Row = { ...t, state: "queued", attempts: 0, seq: ++this.#s.seq };
    this.#s.tasks.set(row.id, row);
    if (row.key !== undefined) this.#s.liveKeys.set(row.key, row.id);
    const failedDep = row.dependsOn.map((d) => this.#s.tasks.get(d)).find((d) =>
      d && isFinal(d.state) && d.state !== "completed"
    );
    if (failedDep && row.onDependencyFailure === "cancel") {
      const reason = `dependency ${failedDep.id} ${failedDep.state}`;
      const error = { name: "TaskCancelledError", message: reason };
      this.#end(row, "cancelled", now, error, events, results, {
        reason,
        dependency: failedDep.id,
      });
      return;
    }
    for (const d of row.dependsOn) {
      let set = this.#s.dependents.get(d);
      if (!set) this.#s.dependents.set(d, set = new Set());
      set.add(row.id);
    }
    if (!this.#depsDone(row)) {
      row.state = "waiting";
      events.push(taskEvent("enqueued", row, now, { state: "waiting" }));
      return;
    }
    this.#schedule(row, now);
    events.push(
      stateOf(row) === "scheduled"
        ? taskEvent("scheduled", row, now, { runAt: row.runAt })
        : taskEvent("enqueued", row, now, { state: "queued" }),
    );
  }

  /** Store a schedule (an upsert). */
  putSchedule(schedule: StoredSchedule): Promise<void> {
    this.#check();
    this.#s.schedules.set(schedule.id, { ...schedule });
    return Promise.resolve();
  }

  /** One schedule. */
  getSchedule(id: string): Promise<StoredSchedule | undefined> {
    this.#check();
    const s = this.#s.schedules.get(id);
    return Promise.resolve(s && { ...s });
  }

  /** Every schedule, by id. */
  listSchedules(): Promise<StoredSchedule[]> {
    this.#check();
    return Promise.resolve(
      [...this.#s.schedules.values()].sort((a, b) => a.id < b.id ? -1 : 1).map((s) => ({ ...s })),
    );
  }

  /** Pause or resume a schedule. */
  setSchedulePaused(id: string, paused: boolean, nextRunAt?: number): Promise<Effects | undefined> {
    this.#check();
    const s = this.#s.schedules.get(id);
    if (!s || s.paused === paused) return Promise.resolve(undefined);
    s.paused = paused;
    if (!paused) {
      if (nextRunAt === undefined) delete s.nextRunAt;
      else s.nextRunAt = nextRunAt;
    }
    const event: NewEvent = {
      type: paused ? "schedule_paused" : "schedule_resumed",
      at: Date.now(),
      data: { scheduleId: id },
    };
    return Promise.resolve(this.#effects([event], []));
  }

  /** Delete a schedule. */
  deleteSchedule(id: string): Promise<boolean> {
    this.#check();
    return Promise.resolve(this.#s.schedules.delete(id));
  }

  /** Unpaused schedules due by `now`, earliest first. */
  dueSchedules(now: number, limit: number): Promise<StoredSchedule[]> {
    this.#check();
    const due = [...this.#s.schedules.values()]
      .filter((s) => !s.paused && s.nextRunAt !== undefined && s.nextRunAt <= now)
      .sort((a, b) => a.nextRunAt! - b.nextRunAt!)
      .slice(0, limit);
    return Promise.resolve(due.map((s) => ({ ...s })));
  }

  /** The earliest next tick of an unpaused schedule. */
  nextScheduleAt(): Promise<number | undefined> {
    this.#check();
    let next: number | undefined;
    for (const s of this.#s.schedules.values()) {
      if (s.paused || s.nextRunAt === undefined) continue;
      if (next === undefined || s.nextRunAt < next) next = s.nextRunAt;
    }
    return Promise.resolve(next);
  }

  /** Fire a tick: a compare-and-set of the schedule's next tick, and its task. */
  fireTick(claim: TickClaim): Promise<Effects | undefined> {
    this.#check();
    const s = this.#s.schedules.get(claim.scheduleId);
    if (!s || s.paused || s.nextRunAt !== claim.tick) return Promise.resolve(undefined);
    if (claim.next === undefined) delete s.nextRunAt;
    else s.nextRunAt = claim.next;
    s.lastRunAt = claim.tick;
    const events: NewEvent[] = [];
    const results: StoredResult[] = [];
    const task = claim.task;
    if (task && !this.#s.tasks.has(task.id)) {
      const now = Date.now();
      this.#insert(task, now, events, results);
      events.push({
        type: "schedule_fired",
        taskId: task.id,
        queue: task.queue,
        at: now,
        data: { scheduleId: s.id, tick: claim.tick },
      });
    }
    return Promise.resolve(this.#effects(events, results));
  }

  /** One task, or `undefined`. */
  get(id: string): Promise<StoredTask | undefined> {
    this.#check();
    const row = this.#s.tasks.get(id);
    return Promise.resolve(row ? view(row) : undefined);
  }

  /** Tasks matching a filter, oldest first. */
  list(filter: ListOptions): Promise<StoredTask[]> {
    this.#check();
    const out: StoredTask[] = [];
    let skip = filter.offset ?? 0;
    const limit = filter.limit ?? 100;
    for (const row of this.#s.tasks.values()) {
      if (out.length >= limit) break;
      if (!matchesList(row, filter)) continue;
      if (skip > 0) {
        skip--;
        continue;
      }
      out.push(view(row));
    }
    return Promise.resolve(out);
  }

  /** Counts per queue and state. */
  stats(): Promise<QueueStats> {
    this.#check();
    const total = zeroCounts();
    const queues: Record<string, StateCounts> = {};
    for (const row of this.#s.tasks.values()) {
      total[row.state]++;
      (queues[row.queue] ??= zeroCounts())[row.state]++;
    }
    return Promise.resolve({ total, queues });
  }

  #promote(queue: string, now: number): void {
    const heap = this.#s.scheduled.get(queue);
    if (!heap) return;
    for (let top = heap.peek(); top && top[0] <= now; top = heap.peek()) {
      heap.pop();
      const row = this.#s.tasks.get(top[1]);
      if (row && row.state === "scheduled" && row.runAt === top[0]) {
        row.state = "queued";
        this.#ready(row);
      }
    }
  }

  /** Claim due tasks: queue order, then priority, then FIFO. */
  claim(request: ClaimRequest): Promise<{ tasks: ClaimedTask[]; effects: Effects }> {
    this.#check();
    const now = Date.now();
    const claimed: ClaimedTask[] = [];
    const events: NewEvent[] = [];
    const results: StoredResult[] = [];
    for (const queue of request.queues) {
      this.#promote(queue, now);
      const heap = this.#s.ready.get(queue);
      if (!heap) continue;
      while (claimed.length < request.limit) {
        const top = heap.pop();
        if (top === undefined) break;
        const row = this.#s.tasks.get(top[1]);
        // Entries of tasks that left `queued` (cancelled, expired, claimed through a newer
        // entry) are dropped lazily here.
        if (!row || row.state !== "queued" || readyKey(row) !== top[0]) continue;
        if (row.expiresAt !== undefined && row.expiresAt <= now) {
          this.#end(row, "expired", now, EXPIRED, events, results);
          continue;
        }
        row.state = "running";
        row.attempts++;
        row.token = crypto.randomUUID();
        row.leaseUntil = now + request.lease;
        row.startedAt = now;
        this.#s.running.add(row.id);
        claimed.push({ ...view(row), token: row.token, leaseUntil: row.leaseUntil });
        events.push(taskEvent("started", row, now));
      }
      if (claimed.length >= request.limit) break;
    }
    return Promise.resolve({ tasks: claimed, effects: this.#effects(events, results) });
  }

  #held(id: string, token: string): Row | undefined {
    const row = this.#s.tasks.get(id);
    return row && row.state === "running" && row.token === token ? row : undefined;
  }

  /** Extend a lease. */
  renew(id: string, token: string, lease: number): Promise<boolean> {
    this.#check();
    const row = this.#held(id, token);
    if (row) row.leaseUntil = Date.now() + lease;
    return Promise.resolve(row !== undefined);
  }

  /** Record progress. */
  progress(id: string, token: string, value: number): Promise<Effects | undefined> {
    this.#check();
    const row = this.#held(id, token);
    if (!row) return Promise.resolve(undefined);
    row.progress = value;
    return Promise.resolve(
      this.#effects([taskEvent("progress", row, Date.now(), { progress: value })], []),
    );
  }

  /** Complete an attempt. */
  complete(id: string, token: string, result: StoredResult): Promise<Effects | undefined> {
    this.#check();
    const row = this.#held(id, token);
    if (!row) return Promise.resolve(undefined);
    const now = Date.now();
    this.#leave(row);
    row.state = "completed";
    row.completedAt = result.completedAt;
    if (this.#attached.results) this.#s.results.set(id, result);
    // When the handler finished, not when this write came: the worker frees the slot then.
    const events: NewEvent[] = [taskEvent("completed", row, result.completedAt)];
    const results: StoredResult[] = [];
    this.#cascade(row, now, events, results);
    return Promise.resolve(this.#effects(events, results));
  }

  /** Fail an attempt: retry later or fail for good. */
  fail(id: string, token: string, failure: Failure): Promise<Effects | undefined> {
    this.#check();
    const row = this.#held(id, token);
    if (!row) return Promise.resolve(undefined);
    const now = Date.now();
    const error = { name: failure.error.name, message: failure.error.message };
    if (failure.retryAt !== undefined) {
      this.#s.running.delete(id);
      row.token = undefined;
      row.leaseUntil = undefined;
      row.error = failure.error;
      row.runAt = failure.retryAt;
      this.#schedule(row, now);
      return Promise.resolve(this.#effects([
        taskEvent("retrying", row, now, { error, retryAt: failure.retryAt }),
      ], []));
    }
    this.#leave(row);
    row.state = "failed";
    row.completedAt = failure.result?.completedAt ?? now;
    row.error = failure.error;
    if (this.#attached.results && failure.result) this.#s.results.set(id, failure.result);
    const events: NewEvent[] = [taskEvent("failed", row, row.completedAt, { error })];
    const results: StoredResult[] = [];
    this.#cascade(row, now, events, results);
    return Promise.resolve(this.#effects(events, results));
  }

  /** Cancel a task that is not final. */
  cancel(id: string, reason: string): Promise<Effects | undefined> {
    this.#check();
    const row = this.#s.tasks.get(id);
    if (!row || isFinal(row.state)) return Promise.resolve(undefined);
    const events: NewEvent[] = [];
    const results: StoredResult[] = [];
    this.#end(
      row,
      "cancelled",
      Date.now(),
      { name: "TaskCancelledError", message: reason },
      events,
      results,
      {
        reason,
      },
    );
    return Promise.resolve(this.#effects(events, results));
  }

  /** Queue a failed, cancelled or expired task again. */
  retry(id: string): Promise<Effects | undefined> {
    this.#check();
    const row = this.#s.tasks.get(id);
    if (!row || !isFinal(row.state) || row.state === "completed") return Promise.resolve(undefined);
    const now = Date.now();
    row.attempts = 0;
    row.error = undefined;
    row.completedAt = undefined;
    row.startedAt = undefined;
    row.progress = undefined;
    // Its ttl has passed if it expired: a retry asked for is a run without one.
    row.expiresAt = undefined;
    row.runAt = now;
    if (row.key !== undefined && !this.#s.liveKeys.has(row.key)) {
      this.#s.liveKeys.set(row.key, row.id);
    }
    if (this.#attached.results) this.#s.results.delete(id);
    this.#schedule(row, now);
    return Promise.resolve(
      this.#effects([taskEvent("enqueued", row, now, { state: "queued", retry: true })], []),
    );
  }

  /** Recover stalled tasks, expire old ones, purge final records. */
  sweep(options: SweepOptions): Promise<Effects> {
    this.#check();
    const { now } = options;
    const events: NewEvent[] = [];
    const results: StoredResult[] = [];
    for (const id of [...this.#s.running]) {
      const row = this.#s.tasks.get(id)!;
      if (row.leaseUntil === undefined || row.leaseUntil >= now) continue;
      events.push(taskEvent("stalled", row, now, { attempt: row.attempts }));
      if (row.attempts < row.maxAttempts) {
        this.#s.running.delete(id);
        row.token = undefined;
        row.leaseUntil = undefined;
        row.runAt = now;
        this.#schedule(row, now);
      } else {
        const message = `the worker's lease expired on attempt ${row.attempts}`;
        this.#end(row, "failed", now, { name: "StalledError", message }, events, results, {
          error: { name: "StalledError", message },
        });
      }
    }
    for (const row of this.#s.tasks.values()) {
      if (
        row.expiresAt !== undefined && row.expiresAt <= now &&
        (row.state === "waiting" || row.state === "scheduled" || row.state === "queued")
      ) {
        this.#end(row, "expired", now, EXPIRED, events, results);
      }
    }
    if (options.purgeBefore !== undefined) {
      for (const [id, row] of this.#s.tasks) {
        if (isFinal(row.state) && row.completedAt! < options.purgeBefore) {
          this.#s.tasks.delete(id);
          this.#s.dependents.delete(id);
        }
      }
    }
    return Promise.resolve(this.#effects(events, results));
  }

  /** The earliest due time of a scheduled task in these queues. */
  nextDue(queues: string[]): Promise<number | undefined> {
    this.#check();
    let next: number | undefined;
    for (const queue of queues) {
      const heap = this.#s.scheduled.get(queue);
      if (!heap) continue;
      // Drop stale heap entries (cancelled, or re-scheduled at another time) on the way.
      for (let top = heap.peek(); top; top = heap.peek()) {
        const row = this.#s.tasks.get(top[1]);
        if (row && row.state === "scheduled" && row.runAt === top[0]) {
          if (next === undefined || top[0] < next) next = top[0];
          break;
        }
        heap.pop();
      }
    }
    return Promise.resolve(next);
  }

  /** Close the queue. */
  close(): Promise<void> {
    this.#closed = true;
    return Promise.resolve();
  }
}

function appendEvents(state: MemoryState, events: NewEvent[]): StoredEvent[] {
  const out: StoredEvent[] = [];
  for (const e of events) {
    const stored = { ...e, id: String(++state.eventSeq) };
    state.events.push(stored);
    out.push(stored);
  }
  return out;
}

function view(row: Row): StoredTask {
  const { seq: _seq, token: _token, leaseUntil: _lease, ...task } = row;
  return { ...task, dependsOn: [...task.dependsOn] };
}

function zeroCounts(): StateCounts {
  return Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as StateCounts;
}

/** The result store of a memory store. */
export class MemoryResults implements ResultStore {
  #s: MemoryState;
  /** Open the store over a store's state. */
  constructor(state: MemoryState) {
    this.#s = state;
  }
  /** Store results. */
  put(results: StoredResult[]): Promise<void> {
    for (const r of results) this.#s.results.set(r.taskId, r);
    return Promise.resolve();
  }
  /** A live result, or `undefined`. */
  get(taskId: string): Promise<StoredResult | undefined> {
    const r = this.#s.results.get(taskId);
    return Promise.resolve(
      r && (r.expiresAt === undefined || r.expiresAt > Date.now()) ? r : undefined,
    );
  }
  /** Delete results. */
  delete(taskIds: string[]): Promise<void> {
    for (const id of taskIds) this.#s.results.delete(id);
    return Promise.resolve();
  }
  /** Delete expired results. */
  sweep(now: number): Promise<number> {
    let n = 0;
    for (const [id, r] of this.#s.results) {
      if (r.expiresAt !== undefined && r.expiresAt <= now) {
        this.#s.results.delete(id);
        n++;
      }
    }
    return Promise.resolve(n);
  }
  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The event store of a memory store. */
export class MemoryEvents implements EventStore {
  #s: MemoryState;
  /** Open the store over a store's state. */
  constructor(state: MemoryState) {
    this.#s = state;
  }
  /** Append events. */
  append(events: NewEvent[]): Promise<StoredEvent[]> {
    return Promise.resolve(appendEvents(this.#s, events));
  }
  /** Events matching a query, in append order. */
  query(query: EventQuery): Promise<StoredEvent[]> {
    const after = query.after === undefined ? 0 : Number(query.after);
    const limit = query.limit ?? Infinity;
    const out: StoredEvent[] = [];
    // Ids are consecutive from the first stored event, so `after` is a direct offset.
    const first = this.#s.events.length ? Number(this.#s.events[0].id) : 0;
    for (let i = Math.max(0, after - first + 1); i < this.#s.events.length; i++) {
      if (out.length >= limit) break;
      const e = this.#s.events[i];
      if (matchesEvent(e, query)) out.push(e);
    }
    return Promise.resolve(out);
  }
  /** Delete events older than `before`. */
  sweep(before: number): Promise<number> {
    const events = this.#s.events;
    let n = 0;
    while (n < events.length && events[n].at < before) n++;
    events.splice(0, n);
    return Promise.resolve(n);
  }
  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The `memory:` engine. */
export class MemoryBackend implements Backend {
  /** The engine's name. */
  readonly name = "memory";
  /** The task queue. */
  readonly queue: MemoryQueue;
  /** The result store. */
  readonly results: MemoryResults;
  /** The event store. */
  readonly events: MemoryEvents;
  #name?: string;
  #state: MemoryState;
  #closed = false;

  /** Open over a state; use {@linkcode openMemory}. */
  constructor(state: MemoryState, name?: string) {
    this.#state = state;
    this.#name = name;
    state.users++;
    this.queue = new MemoryQueue(state);
    this.results = new MemoryResults(state);
    this.events = new MemoryEvents(state);
  }

  /** Close; a named store is dropped when its last user closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.queue.close();
    if (--this.#state.users === 0 && this.#name !== undefined) named.delete(this.#name);
  }
}

/**
 * Open a memory engine.
 *
 * @param name A store name to share within the process; omit it for a fresh store.
 * @returns The backend.
 *
 * @example Two handles on one named store
 * ```ts
 * import { openMemory } from "@omniq/omniq/memory";
 * const a = await openMemory("shared");
 * const b = await openMemory("shared");
 * console.assert((await a.queue.stats()).total.queued === (await b.queue.stats()).total.queued);
 * await a.close();
 * await b.close();
 * ```
 */
export function openMemory(name?: string): Promise<MemoryBackend> {
  if (name === undefined || name === "") {
    return Promise.resolve(new MemoryBackend(new MemoryState()));
  }
  let state = named.get(name);
  if (!state) named.set(name, state = new MemoryState());
  return Promise.resolve(new MemoryBackend(state, name));
}

/** A row's state, read afresh (TypeScript narrows `row.state` across calls that change it). */
function stateOf(row: Row): Row["state"] {
  return row.state;
}
