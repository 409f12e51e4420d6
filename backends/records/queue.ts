/**
 * The queue logic of the record engines (`file:` and `kv:`): tasks as records with derived
 * index entries, changed in steps. An engine supplies a {@linkcode RecordSpace}: how a step
 * reads records and index entries and how it commits them (the `file:` engine under a
 * directory lock, the `kv:` engine as one atomic commit checked against the versionstamps of
 * every record it read). {@linkcode RecordQueue} does the rest, identically for both.
 *
 * Index entries are paths (`ready/<queue>/<9-priority><seq>-<id>`, `sched/<queue>/<runAt>-<id>`,
 * `running/<id>`, `expires/<time>-<id>`, `final/<time>-<id>`, `deps/<dep>/<id>`), with each
 * name segment made safe by `encName`. They are hints: a step re-reads the record an entry
 * names, and drops an entry that no longer matches it.
 *
 * @module
 */

import {
  type Attachment,
  type ClaimedTask,
  type ClaimRequest,
  type Effects,
  endResult,
  type EnqueueOutcome,
  type Failure,
  isFinal,
  matchesList,
  type NewEvent,
  type NewTask,
  noEffects,
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
import { decName, encName as encodeName, pad } from "../../src/kit/encoding.ts";

/** Characters `encName` keeps as they are: a name made only of them is its own safe form. */
const PLAIN_NAME = /^[A-Za-z0-9_~!'()-]*$/;

/**
 * `encName` with a fast path for the common plain ids and queue names (UUIDs, words): every
 * step builds index names, so the memory engine's claims would otherwise spend a tenth of
 * their time encoding names that need none.
 */
export function encName(s: string): string {
  return PLAIN_NAME.test(s) ? s : encodeName(s);
}

/** A task record: the stored task, its FIFO sequence and its claim. */
export interface Row extends StoredTask {
  /** Its place in FIFO order among tasks of equal priority. */
  seq: number;
  /** The fencing token of the current claim. */
  token?: string;
  /** When the current claim's lease ends. */
  leaseUntil?: number;
}

/** One step's view of the records: reads, then changes applied together on commit. */
export interface RecordTx {
  /** A task record (read once per step; later calls give the same object). */
  row(id: string): Promise<Row | undefined>;
  /** Add a new record (the caller has checked that the id is free). */
  add(row: Row): void;
  /** Delete a read record, its index entries and its dependents' entries. */
  remove(id: string): void;
  /** The next FIFO sequence number. */
  nextSeq(): Promise<number>;
  /** Append events (they are given ids now, stored on commit). */
  appendEvents(events: NewEvent[]): Promise<StoredEvent[]>;
  /** Store results on commit. */
  putResults(results: StoredResult[]): void;
  /** Delete a result on commit. */
  deleteResult(taskId: string): void;
  /** The names of the index entries under a directory (`ready/<queue>` …), sorted; the first `limit`. */
  entries(dir: string, limit?: number): Promise<string[]>;
  /** Delete a stale index entry (a path `dir/name`). */
  dropEntry(path: string): void;
  /** Record that `id` waits for `dep`. */
  addDependent(dep: string, id: string): void;
  /** The live task that holds a dedupe key, if any. */
  liveKeyOwner(key: string): Promise<string | undefined>;
  /** A schedule (read once per step). */
  schedule(id: string): Promise<StoredSchedule | undefined>;
  /** Store a schedule on commit. */
  putSchedule(schedule: StoredSchedule): void;
  /** Delete a schedule on commit; whether it existed. */
  deleteSchedule(id: string): Promise<boolean>;
  /** Whether the step may read more records (an engine may bound one step's size). */
  room(): boolean;
  /** Read these task records ahead, together, where the engine can (a hint). */
  prefetch?(ids: string[]): Promise<void>;
}

/** An engine's records: steps, plus reads outside a step for queries. */
export interface RecordSpace {
  /** Run `fn` as one step: its changes commit together, or not at all. */
  step<T>(fn: (tx: RecordTx) => Promise<T>): Promise<T>;
  /** Throw when the engine is closed. */
  check(): void;
  /** Report an unreadable record or entry (once per process). */
  corrupt(path: string, why: unknown): void;
  /** A task record, outside a step. */
  readRow(id: string): Promise<Row | undefined>;
  /** Every task record, in FIFO order. */
  allRows(): Promise<Row[]>;
  /** Every schedule, by id. */
  allSchedules(): Promise<StoredSchedule[]>;
  /** Index entry names under a directory, sorted, outside a step; the first `limit`. */
  entries(dir: string, limit?: number): Promise<string[]>;
}

/** The error of a task that expired before it started. */
export const EXPIRED = { name: "TaskExpiredError", message: "expired before it started" };
const LIVE_WAIT = new Set(["waiting", "scheduled", "queued"]);
/** Index entries read beyond what a step needs, in case some are stale. */
const SLACK = 16;
/** Entries of the expiry and purge indexes one sweep step reads. */
const SWEEP_BATCH = 200;

/** The index entries a task record implies. */
export function indexKeys(row: Row): string[] {
  const id = encName(row.id);
  const q = encName(row.queue);
  const out: string[] = [];
  switch (row.state) {
    case "queued":
      out.push(`ready/${q}/${9 - row.priority}${pad(row.seq)}-${id}`);
      break;
    case "scheduled":
      out.push(`sched/${q}/${pad(row.runAt)}-${id}`);
      break;
    case "running":
      out.push(`running/${id}`);
      break;
  }
  if (LIVE_WAIT.has(row.state) && row.expiresAt !== undefined) {
    out.push(`expires/${pad(row.expiresAt)}-${id}`);
  }
  if (isFinal(row.state)) out.push(`final/${pad(row.completedAt ?? 0)}-${id}`);
  return out;
}

/** The id at the end of an index entry name (`…-<id>`). */
export function entryId(name: string): string | undefined {
  const dash = name.indexOf("-");
  if (dash === -1) return undefined;
  try {
    return decName(name.slice(dash + 1));
  } catch {
    return undefined;
  }
}

function entryTime(name: string): number {
  const dash = name.indexOf("-");
  return dash === -1 ? NaN : Number(name.slice(0, dash));
}

/** A stored task as the public contract gives it (no sequence or claim). */
export function view(row: Row): StoredTask {
  const { seq: _seq, token: _token, leaseUntil: _lease, ...task } = row;
  return { ...task, dependsOn: [...task.dependsOn] };
}

function zeroCounts(): StateCounts {
  return Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as StateCounts;
}

/** The task queue of a record engine (see the module doc). */
export class RecordQueue implements TaskQueue {
  /** The largest encoded payload the engine accepts, if limited. */
  readonly maxPayloadBytes?: number;
  #s: RecordSpace;
  #attached: Attachment = { results: true, events: true };
  #reports: NewEvent[] = [];

  /**
   * Open over an engine's records.
   *
   * @param space The engine's records.
   * @param maxPayloadBytes Its payload limit, if any.
   */
  constructor(space: RecordSpace, maxPayloadBytes?: number) {
    this.#s = space;
    if (maxPayloadBytes !== undefined) this.maxPayloadBytes = maxPayloadBytes;
  }

  /** Say which companion stores live in this engine. */
  attach(attachment: Attachment): void {
    this.#attached = { ...attachment };
  }

  /** Queue an event reporting an unreadable record; it goes out with the next step's effects. */
  report(event: NewEvent): void {
    this.#reports.push(event);
  }

  async #effects(tx: RecordTx, events: NewEvent[], results: StoredResult[]): Promise<Effects> {
    const out = noEffects();
    if (this.#reports.length > 0) events.push(...this.#reports.splice(0));
    if (this.#attached.results) tx.putResults(results);
    else out.results = results;
    out.events = this.#attached.events ? await tx.appendEvents(events) : events;
    return out;
  }

  #schedule(row: Row, now: number): void {
    row.state = row.runAt > now ? "scheduled" : "queued";
  }

  #leave(row: Row): void {
    delete row.token;
    delete row.leaseUntil;
  }

  async #end(
    tx: RecordTx,
    row: Row,
    state: Exclude<FinalState, "completed">,
    now: number,
    error: { name: string; message: string },
    events: NewEvent[],
    results: StoredResult[],
    data?: Record<string, unknown>,
  ): Promise<void> {
    this.#leave(row);
    row.state = state;
    row.completedAt = now;
    row.error = error;
    results.push(endResult(row, state, error, now));
    events.push(taskEvent(state === "failed" ? "failed" : state, row, now, data));
    await this.#cascade(tx, row, now, events, results);
  }

  async #cascade(
    tx: RecordTx,
    row: Row,
    now: number,
    events: NewEvent[],
    results: StoredResult[],
  ): Promise<void> {
    for (const name of await tx.entries(`deps/${encName(row.id)}`)) {
      let depId: string;
      try {
        depId = decName(name);
      } catch {
        continue;
      }
      const dependent = await tx.row(depId);
      if (!dependent || dependent.state !== "waiting") continue;
      if (row.state !== "completed" && dependent.onDependencyFailure === "cancel") {
        const reason = `dependency ${row.id} ${row.state}`;
        await this.#end(
          tx,
          dependent,
          "cancelled",
          now,
          { name: "TaskCancelledError", message: reason },
          events,
          results,
          { reason, dependency: row.id },
        );
      } else if (await this.#depsDone(tx, dependent)) {
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

  async #depsDone(tx: RecordTx, row: Row): Promise<boolean> {
    for (const d of row.dependsOn) {
      const dep = await tx.row(d);
      if (!dep) continue;
      const ok = row.onDependencyFailure === "run" ? isFinal(dep.state) : dep.state === "completed";
      if (!ok) return false;
    }
    return true;
  }

  /** Store tasks, all or none. */
  enqueue(tasks: NewTask[]): Promise<EnqueueOutcome> {
    return this.#s.step(async (tx) => {
      const now = Date.now();
      const batchIds = new Set<string>();
      for (const t of tasks) {
        for (const d of t.dependsOn) {
          if (!batchIds.has(d) && !(await tx.row(d))) {
            throw new OmniQError(`dependsOn: no task with id "${d}"`);
          }
        }
        const keyed = t.key !== undefined && (await tx.liveKeyOwner(t.key)) !== undefined;
        if (!keyed && (batchIds.has(t.id) || (await tx.row(t.id)))) {
          throw new DuplicateTaskError(`id: a task with id "${t.id}" exists`);
        }
        batchIds.add(t.id);
      }
      const ids: string[] = [];
      const created: boolean[] = [];
      const events: NewEvent[] = [];
      const results: StoredResult[] = [];
      const standIn = new Map<string, string>();
      const batchKeys = new Map<string, string>();
      for (const t of tasks) {
        const live = t.key === undefined
          ? undefined
          : batchKeys.get(t.key) ?? await tx.liveKeyOwner(t.key);
        if (live !== undefined) {
          ids.push(live);
          created.push(false);
          standIn.set(t.id, live);
          continue;
        }
        const row = await this.#insert(
          tx,
          standIn.size === 0 ? t : withStandIns(t, standIn),
          now,
          events,
          results,
        );
        if (t.key !== undefined && !isFinal(row.state)) batchKeys.set(t.key, t.id);
        ids.push(t.id);
        created.push(true);
      }
      return { ids, created, effects: await this.#effects(tx, events, results) };
    });
  }

  async #insert(
    tx: RecordTx,
    t: NewTask,
    now: number,
    events: NewEvent[],
    results: StoredResult[],
  ): Promise<Row> {
    const row: Row = { ...t, state: "queued", attempts: 0, seq: await tx.nextSeq() };
    tx.add(row);
    let failedDep: Row | undefined;
    for (const d of row.dependsOn) {
      const dep = await tx.row(d);
      if (dep && isFinal(dep.state) && dep.state !== "completed") {
        failedDep = dep;
        break;
      }
    }
    if (failedDep && row.onDependencyFailure === "cancel") {
      const reason = `dependency ${failedDep.id} ${failedDep.state}`;
      await this.#end(
        tx,
        row,
        "cancelled",
        now,
        { name: "TaskCancelledError", message: reason },
        events,
        results,
        { reason, dependency: failedDep.id },
      );
      return row;
    }
    for (const d of row.dependsOn) tx.addDependent(d, row.id);
    if (!(await this.#depsDone(tx, row))) {
      row.state = "waiting";
      events.push(taskEvent("enqueued", row, now, { state: "waiting" }));
      return row;
    }
    this.#schedule(row, now);
    events.push(
      row.state === "scheduled"
        ? taskEvent("scheduled", row, now, { runAt: row.runAt })
        : taskEvent("enqueued", row, now, { state: "queued" }),
    );
    return row;
  }

  /** Store a schedule (an upsert). */
  putSchedule(schedule: StoredSchedule): Promise<void> {
    return this.#s.step((tx) => {
      tx.putSchedule(schedule);
      return Promise.resolve();
    });
  }

  /** One schedule. */
  getSchedule(id: string): Promise<StoredSchedule | undefined> {
    return this.#s.step((tx) => tx.schedule(id));
  }

  /** Every schedule, by id. */
  listSchedules(): Promise<StoredSchedule[]> {
    this.#s.check();
    return this.#s.allSchedules();
  }

  /** Pause or resume a schedule. */
  setSchedulePaused(id: string, paused: boolean, nextRunAt?: number): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const found = await tx.schedule(id);
      if (!found || found.paused === paused) return undefined;
      const s = { ...found, paused };
      if (!paused) {
        if (nextRunAt === undefined) delete s.nextRunAt;
        else s.nextRunAt = nextRunAt;
      }
      tx.putSchedule(s);
      const event: NewEvent = {
        type: paused ? "schedule_paused" : "schedule_resumed",
        at: Date.now(),
        data: { scheduleId: id },
      };
      return await this.#effects(tx, [event], []);
    });
  }

  /** Delete a schedule. */
  deleteSchedule(id: string): Promise<boolean> {
    return this.#s.step((tx) => tx.deleteSchedule(id));
  }

  /** Unpaused schedules due by `now`, earliest first. */
  async dueSchedules(now: number, limit: number): Promise<StoredSchedule[]> {
    this.#s.check();
    return (await this.#s.allSchedules())
      .filter((s) => !s.paused && s.nextRunAt !== undefined && s.nextRunAt <= now)
      .sort((a, b) => a.nextRunAt! - b.nextRunAt!)
      .slice(0, limit);
  }

  /** The earliest next tick of an unpaused schedule. */
  async nextScheduleAt(): Promise<number | undefined> {
    this.#s.check();
    let next: number | undefined;
    for (const s of await this.#s.allSchedules()) {
      if (s.paused || s.nextRunAt === undefined) continue;
      if (next === undefined || s.nextRunAt < next) next = s.nextRunAt;
    }
    return next;
  }

  /** Fire a tick: a compare-and-set of the schedule's next tick, and its task. */
  fireTick(claim: TickClaim): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const found = await tx.schedule(claim.scheduleId);
      if (!found || found.paused || found.nextRunAt !== claim.tick) return undefined;
      const s = { ...found, lastRunAt: claim.tick };
      if (claim.next === undefined) delete s.nextRunAt;
      else s.nextRunAt = claim.next;
      tx.putSchedule(s);
      const events: NewEvent[] = [];
      const results: StoredResult[] = [];
      const task = claim.task;
      if (task && !(await tx.row(task.id))) {
        const now = Date.now();
        await this.#insert(tx, task, now, events, results);
        events.push({
          type: "schedule_fired",
          taskId: task.id,
          queue: task.queue,
          at: now,
          data: { scheduleId: s.id, tick: claim.tick },
        });
      }
      return await this.#effects(tx, events, results);
    });
  }

  /** One task, or `undefined`. */
  async get(id: string): Promise<StoredTask | undefined> {
    this.#s.check();
    const row = await this.#s.readRow(id);
    return row ? view(row) : undefined;
  }

  /** Tasks matching a filter, oldest first. */
  async list(filter: ListOptions): Promise<StoredTask[]> {
    this.#s.check();
    const out: StoredTask[] = [];
    let skip = filter.offset ?? 0;
    const limit = filter.limit ?? 100;
    for (const row of await this.#s.allRows()) {
      if (out.length >= limit) break;
      if (!matchesList(row, filter)) continue;
      if (skip > 0) {
        skip--;
        continue;
      }
      out.push(view(row));
    }
    return out;
  }

  /** Counts per queue and state. */
  async stats(): Promise<QueueStats> {
    this.#s.check();
    const total = zeroCounts();
    const queues: Record<string, StateCounts> = {};
    for (const row of await this.#s.allRows()) {
      total[row.state]++;
      (queues[row.queue] ??= zeroCounts())[row.state]++;
    }
    return { total, queues };
  }

  async #promote(tx: RecordTx, queue: string, now: number, room: number): Promise<Row[]> {
    const promoted: Row[] = [];
    const dir = `sched/${encName(queue)}`;
    for (const name of await tx.entries(dir, room + SLACK)) {
      const at = entryTime(name);
      if (Number.isNaN(at)) continue;
      if (at > now || promoted.length >= room || !tx.room()) break;
      const id = entryId(name);
      if (id === undefined) {
        this.#s.corrupt(`${dir}/${name}`, "not an index entry");
        continue;
      }
      const row = await tx.row(id);
      if (row && row.state === "scheduled" && row.runAt <= now) {
        row.state = "queued";
        promoted.push(row);
      } else if (!row || row.state !== "scheduled") {
        tx.dropEntry(`${dir}/${name}`);
      }
    }
    return promoted;
  }

  /** Claim due tasks: queue order, then priority, then FIFO. */
  claim(request: ClaimRequest): Promise<{ tasks: ClaimedTask[]; effects: Effects }> {
    return this.#s.step(async (tx) => {
      const now = Date.now();
      const claimed: ClaimedTask[] = [];
      const events: NewEvent[] = [];
      const results: StoredResult[] = [];
      for (const queue of request.queues) {
        const promoted = await this.#promote(tx, queue, now, request.limit - claimed.length);
        const dir = `ready/${encName(queue)}`;
        // Promoted rows are not in the ready index yet: merge them in by their ready name.
        const names = new Set(await tx.entries(dir, request.limit - claimed.length + SLACK));
        for (const row of promoted) {
          names.add(`${9 - row.priority}${pad(row.seq)}-${encName(row.id)}`);
        }
        const sorted = [...names].sort();
        await tx.prefetch?.(
          sorted.slice(0, request.limit - claimed.length).map(entryId).filter((id) =>
            id !== undefined
          ),
        );
        for (const name of sorted) {
          if (claimed.length >= request.limit || !tx.room()) break;
          const id = entryId(name);
          if (id === undefined) {
            this.#s.corrupt(`${dir}/${name}`, "not an index entry");
            continue;
          }
          const row = await tx.row(id);
          if (!row || row.state !== "queued" || row.queue !== queue) {
            if (!row || row.state !== "queued") tx.dropEntry(`${dir}/${name}`);
            continue;
          }
          if (row.expiresAt !== undefined && row.expiresAt <= now) {
            await this.#end(tx, row, "expired", now, EXPIRED, events, results);
            continue;
          }
          row.state = "running";
          row.attempts++;
          row.token = crypto.randomUUID();
          row.leaseUntil = now + request.lease;
          row.startedAt = now;
          claimed.push({ ...view(row), token: row.token, leaseUntil: row.leaseUntil });
          events.push(taskEvent("started", row, now));
        }
        if (claimed.length >= request.limit || !tx.room()) break;
      }
      return { tasks: claimed, effects: await this.#effects(tx, events, results) };
    });
  }

  async #held(tx: RecordTx, id: string, token: string): Promise<Row | undefined> {
    const row = await tx.row(id);
    return row && row.state === "running" && row.token === token ? row : undefined;
  }

  /** Extend a lease. */
  renew(id: string, token: string, lease: number): Promise<boolean> {
    return this.#s.step(async (tx) => {
      const row = await this.#held(tx, id, token);
      if (row) row.leaseUntil = Date.now() + lease;
      return row !== undefined;
    });
  }

  /** Record progress. */
  progress(id: string, token: string, value: number): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const row = await this.#held(tx, id, token);
      if (!row) return undefined;
      row.progress = value;
      return await this.#effects(
        tx,
        [taskEvent("progress", row, Date.now(), { progress: value })],
        [],
      );
    });
  }

  /** Complete an attempt. */
  complete(id: string, token: string, result: StoredResult): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const row = await this.#held(tx, id, token);
      if (!row) return undefined;
      const now = Date.now();
      this.#leave(row);
      row.state = "completed";
      row.completedAt = result.completedAt;
      if (this.#attached.results) tx.putResults([result]);
      // When the handler finished, not when this write came: the worker frees the slot then.
      const events: NewEvent[] = [taskEvent("completed", row, result.completedAt)];
      const results: StoredResult[] = [];
      await this.#cascade(tx, row, now, events, results);
      return await this.#effects(tx, events, results);
    });
  }

  /** Fail an attempt: retry later or fail for good. */
  fail(id: string, token: string, failure: Failure): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const row = await this.#held(tx, id, token);
      if (!row) return undefined;
      const now = Date.now();
      const error = { name: failure.error.name, message: failure.error.message };
      this.#leave(row);
      row.error = failure.error;
      if (failure.retryAt !== undefined) {
        row.runAt = failure.retryAt;
        this.#schedule(row, now);
        return await this.#effects(tx, [
          taskEvent("retrying", row, now, { error, retryAt: failure.retryAt }),
        ], []);
      }
      row.state = "failed";
      row.completedAt = failure.result?.completedAt ?? now;
      if (this.#attached.results && failure.result) tx.putResults([failure.result]);
      const events: NewEvent[] = [taskEvent("failed", row, row.completedAt, { error })];
      const results: StoredResult[] = [];
      await this.#cascade(tx, row, now, events, results);
      return await this.#effects(tx, events, results);
    });
  }

  /** Cancel a task that is not final. */
  cancel(id: string, reason: string): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const row = await tx.row(id);
      if (!row || isFinal(row.state)) return undefined;
      const events: NewEvent[] = [];
      const results: StoredResult[] = [];
      await this.#end(
        tx,
        row,
        "cancelled",
        Date.now(),
        { name: "TaskCancelledError", message: reason },
        events,
        results,
        { reason },
      );
      return await this.#effects(tx, events, results);
    });
  }

  /** Queue a failed, cancelled or expired task again. */
  retry(id: string): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const row = await tx.row(id);
      if (!row || !isFinal(row.state) || row.state === "completed") return undefined;
      const now = Date.now();
      row.attempts = 0;
      delete row.error;
      delete row.completedAt;
      delete row.startedAt;
      delete row.progress;
      delete row.expiresAt;
      row.runAt = now;
      if (this.#attached.results) tx.deleteResult(id);
      this.#schedule(row, now);
      return await this.#effects(tx, [
        taskEvent("enqueued", row, now, { state: "queued", retry: true }),
      ], []);
    });
  }

  /**
   * Recover stalled tasks, expire old ones, purge final records. A step that runs out of
   * room (see {@linkcode RecordTx.room}) leaves the rest to the next steps of this call.
   */
  async sweep(options: SweepOptions): Promise<Effects> {
    const all = noEffects();
    for (let more = true; more;) {
      const step = await this.#s.step(async (tx) => {
        const effects = await this.#sweepStep(tx, options);
        return { effects, more: !tx.room() };
      });
      all.events.push(...step.effects.events);
      all.results.push(...step.effects.results);
      more = step.more;
    }
    return all;
  }

  async #sweepStep(tx: RecordTx, options: SweepOptions): Promise<Effects> {
    const { now } = options;
    const events: NewEvent[] = [];
    const results: StoredResult[] = [];
    for (const name of await tx.entries("running")) {
      if (!tx.room()) break;
      let id: string;
      try {
        id = decName(name);
      } catch {
        continue;
      }
      const row = await tx.row(id);
      if (!row || row.state !== "running") {
        tx.dropEntry(`running/${name}`);
        continue;
      }
      if (row.leaseUntil === undefined || row.leaseUntil >= now) continue;
      events.push(taskEvent("stalled", row, now, { attempt: row.attempts }));
      if (row.attempts < row.maxAttempts) {
        this.#leave(row);
        row.runAt = now;
        this.#schedule(row, now);
      } else {
        const message = `the worker's lease expired on attempt ${row.attempts}`;
        await this.#end(
          tx,
          row,
          "failed",
          now,
          { name: "StalledError", message },
          events,
          results,
          { error: { name: "StalledError", message } },
        );
      }
    }
    for (const name of await tx.entries("expires", SWEEP_BATCH)) {
      if (!tx.room()) break;
      if (Number.isNaN(entryTime(name))) continue;
      if (entryTime(name) > now) break;
      const id = entryId(name);
      const row = id === undefined ? undefined : await tx.row(id);
      if (!row || !LIVE_WAIT.has(row.state) || row.expiresAt === undefined) {
        tx.dropEntry(`expires/${name}`);
        continue;
      }
      if (row.expiresAt <= now) {
        await this.#end(tx, row, "expired", now, EXPIRED, events, results);
      }
    }
    if (options.purgeBefore !== undefined) {
      for (const name of await tx.entries("final", SWEEP_BATCH)) {
        if (!tx.room()) break;
        if (Number.isNaN(entryTime(name))) continue;
        if (entryTime(name) >= options.purgeBefore) break;
        const id = entryId(name);
        const row = id === undefined ? undefined : await tx.row(id);
        if (!row || !isFinal(row.state)) {
          tx.dropEntry(`final/${name}`);
          continue;
        }
        if (row.completedAt! < options.purgeBefore) tx.remove(id!);
      }
    }
    return await this.#effects(tx, events, results);
  }

  /** The earliest due time of a scheduled task in these queues. */
  async nextDue(queues: string[]): Promise<number | undefined> {
    this.#s.check();
    let next: number | undefined;
    for (const queue of queues) {
      for (const name of await this.#s.entries(`sched/${encName(queue)}`, SLACK)) {
        const id = entryId(name);
        const row = id === undefined ? undefined : await this.#s.readRow(id);
        if (
          row && row.state === "scheduled" && pad(row.runAt) === name.slice(0, name.indexOf("-"))
        ) {
          if (next === undefined || row.runAt < next) next = row.runAt;
          break;
        }
      }
    }
    return next;
  }

  /** Nothing to release here; the engine closes its records. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** A row's state, read afresh (TypeScript narrows `row.state` across calls that change it). */
function stateOf(row: Row): Row["state"] {
  return row.state;
}
