/**
 * The PostgreSQL side of the shared SQL step code: the row codec, the step sink (events,
 * results and wake-ups sent in the transaction's tail, with its `COMMIT`) and the
 * {@linkcode TaskTable} / {@linkcode ScheduleTable} / {@linkcode QueueTable} whose every
 * call is one awaited statement in one transaction. A step runs through `runAsync`.
 *
 * @module
 */

import type {
  Effects,
  NewEvent,
  NewTask,
  StoredEvent,
  StoredResult,
  StoredTask,
  TickClaim,
} from "../../src/backend.ts";
import { RECORD_VERSION } from "../../src/kit/policy.ts";
import type { FinalState, SerializedError } from "../../src/types.ts";
import { type RowCodec, type TaskRef, toRef, toTask } from "../sql/rows.ts";
import type { EndedRef, QueueTable, ScheduleTable, StepSink, TaskTable } from "../sql/steps.ts";
import {
  type Connection,
  type Db,
  hex,
  json,
  type Row,
  run,
  type Tail,
  type Tx,
} from "./connection.ts";
import { storeTasks } from "./enqueue.ts";
import * as q from "./queries.ts";

/** How postgres.js returns `jsonb` (parsed), `bytea` (a Buffer) and booleans. */
export const codec: RowCodec = {
  json: (value) => value,
  bytes: (value) => {
    const b = value as Uint8Array;
    return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
  },
  bool: (value) => value === true,
};

/** Wake the workers of these queues, in every process, when the transaction commits. */
function notify(c: Connection, db: Db, queues: string[]): Promise<Row[]> {
  return run(db, q.NOTIFY, [c.channel, queues]);
}

/** Append events in one statement; ids follow the given order. */
export function insertEvents(c: Connection, db: Db, events: NewEvent[]): Promise<StoredEvent[]> {
  // Sent now (not at the first await): the caller may send more statements behind it.
  const sent = run(db, q.insertEvents(c.s), [
    JSON.stringify(events.map((e) => ({
      type: e.type,
      task_id: e.taskId ?? null,
      queue: e.queue ?? null,
      at: e.at,
      attempt: e.attempt ?? null,
      data: e.data ?? null,
    }))),
  ]);
  return sent.then((rows) => {
    // Identity values are drawn in insertion order, which follows `n`.
    const ids = rows.map((r) => r.id as number).sort((a, b) => a - b);
    return events.map((e, i) => ({ ...e, id: String(ids[i]) }));
  });
}

/** Store results in one statement, replacing those of the same tasks. */
export function putResults(c: Connection, db: Db, results: StoredResult[]): Promise<Row[]> {
  // One row per task (the last given wins): an upsert may not touch a row twice.
  const last = [...new Map(results.map((r) => [r.taskId, r])).values()];
  return run(db, q.putResults(c.s), [
    RECORD_VERSION,
    last.map((r) => r.taskId),
    last.map((r) => r.state),
    last.map((r) => hex(r.value)),
    last.map((r) => json(r.error)),
    last.map((r) => r.completedAt),
    last.map((r) => r.expiresAt ?? null),
  ]);
}

/**
 * The effects of one transaction. Events go into this engine's table at the end of the
 * transaction (one insert), and results into its table (one upsert), when they are
 * attached; otherwise into the returned effects. Wake-ups are sent by `pg_notify`,
 * delivered on commit. All three travel with the `COMMIT`.
 */
export class Step implements StepSink {
  readonly now: number = Date.now();
  readonly #c: Connection;
  readonly #tx: Tx;
  readonly #events: (NewEvent | StoredEvent)[] = [];
  readonly #results: StoredResult[] = [];
  readonly #stored: StoredResult[] = [];
  readonly #wakes = new Set<string>();

  constructor(c: Connection, tx: Tx) {
    this.#c = c;
    this.#tx = tx;
  }

  emit(event: NewEvent): void {
    this.#events.push(event);
  }

  wake(queue: string): void {
    this.#wakes.add(queue);
  }

  produce(result: StoredResult): void {
    if (this.#c.attached.results) this.#stored.push(result);
    else this.#results.push(result);
  }

  keep(result: StoredResult | undefined): void {
    if (result && this.#c.attached.results) this.#stored.push(result);
  }

  /** Send the step's writes into the transaction's tail (nothing here reads them). */
  flush(tail: Tail): void {
    const c = this.#c;
    if (c.attached.events && this.#events.length) {
      tail.push(
        insertEvents(c, this.#tx, this.#events).then((stored) => {
          this.#events.splice(0, stored.length, ...stored);
        }),
      );
    }
    if (this.#stored.length) tail.push(putResults(c, this.#tx, this.#stored));
    if (this.#wakes.size) tail.push(notify(c, this.#tx, [...this.#wakes]));
  }

  effects(): Effects {
    // Called inside the transaction, before the events have ids: `flush` replaces them in
    // this same array with their stored versions.
    return { events: this.#events, results: this.#results };
  }
}

/**
 * The tasks, schedules and queues tables inside one transaction, one awaited statement a
 * call.
 */
export class PostgresTable implements TaskTable, ScheduleTable, QueueTable {
  readonly #c: Connection;
  readonly #tx: Tx;
  readonly #tail: Tail;
  readonly #s: string;

  constructor(c: Connection, tx: Tx, tail: Tail) {
    this.#c = c;
    this.#tx = tx;
    this.#tail = tail;
    this.#s = c.s;
  }

  #run(text: string, params: Parameters<typeof run>[2] = []): Promise<Row[]> {
    return run(this.#tx, text, params);
  }

  async #ref(text: string, params: Parameters<typeof run>[2]): Promise<TaskRef | undefined> {
    const rows = await this.#run(text, params);
    return rows.length ? toRef(rows[0]) : undefined;
  }

  async #task(text: string, id: string): Promise<StoredTask | undefined> {
    const rows = await this.#run(text, [id]);
    return rows.length ? toTask(rows[0], codec) : undefined;
  }

  async markCompleted(id: string, token: string, at: number): Promise<EndedRef | undefined> {
    const rows = await this.#run(q.markCompleted(this.#s), [at, id, token]);
    if (!rows.length) return undefined;
    return { ...toRef(rows[0]), hasDependents: rows[0].has_dependents === true };
  }

  markRetrying(
    id: string,
    token: string,
    state: "scheduled" | "queued",
    runAt: number,
    error: SerializedError,
  ): Promise<TaskRef | undefined> {
    return this.#ref(q.markRetrying(this.#s), [state, runAt, JSON.stringify(error), id, token]);
  }

  markFailed(
    id: string,
    token: string,
    at: number,
    error: SerializedError,
  ): Promise<TaskRef | undefined> {
    return this.#ref(q.markFailed(this.#s), [at, JSON.stringify(error), id, token]);
  }

  setProgress(id: string, token: string, value: number): Promise<TaskRef | undefined> {
    return this.#ref(q.setProgress(this.#s), [value, id, token]);
  }

  async lockRunning(id: string, token: string): Promise<StoredTask | undefined> {
    const rows = await this.#run(q.lockRunning(this.#s), [id, token]);
    return rows.length ? toTask(rows[0], codec) : undefined;
  }

  lockLive(id: string): Promise<StoredTask | undefined> {
    return this.#task(q.lockLive(this.#s), id);
  }

  reset(id: string, now: number): Promise<TaskRef | undefined> {
    return this.#ref(q.reset(this.#s), [now, id]);
  }

  dropResult(id: string): Promise<unknown> | undefined {
    if (!this.#c.attached.results) return undefined;
    return this.#run(q.deleteResult(this.#s), [id]);
  }

  end(id: string, state: FinalState, error: SerializedError, at: number): Promise<unknown> {
    return this.#run(q.end(this.#s), [state, at, JSON.stringify(error), id]);
  }

  requeue(id: string, at: number): Promise<unknown> {
    return this.#run(q.requeue(this.#s), [at, id]);
  }

  deadLetter(id: string, to: string, at: number, error: SerializedError): Promise<unknown> {
    return this.#run(q.deadLetter(this.#s), [to, at, JSON.stringify(error), id]);
  }

  async waitingDependents(id: string): Promise<string[]> {
    return (await this.#run(q.waitingDependents(this.#s), [id])).map((row) => row.id as string);
  }

  lockWaiting(id: string): Promise<StoredTask | undefined> {
    return this.#task(q.lockWaiting(this.#s), id);
  }

  async blocked(task: StoredTask): Promise<boolean> {
    const held = task.onDependencyFailure === "run" ? q.heldByLive : q.heldByUncompleted;
    return (await this.#run(held(this.#s), [task.id])).length > 0;
  }

  release(id: string, state: "scheduled" | "queued"): Promise<unknown> {
    return this.#run(q.setState(this.#s), [state, id]);
  }

  async advance(claim: TickClaim): Promise<boolean> {
    const rows = await this.#run(q.advanceSchedule(this.#s), [
      claim.next ?? null,
      claim.tick,
      claim.scheduleId,
      claim.tick,
    ]);
    return rows.length > 0;
  }

  async taskExists(id: string): Promise<boolean> {
    return (await this.#run(q.taskExists(this.#s), [id])).length > 0;
  }

  store(task: NewTask, step: StepSink): Promise<unknown> {
    // A tick's task: no key to deduplicate (its id is the tick's).
    return storeTasks(this.#c, this.#tx, { step, tail: this.#tail, tasks: [task], dedupe: false });
  }

  async lockPaused(id: string): Promise<boolean | undefined> {
    const rows = await this.#run(q.lockPaused(this.#s), [id]);
    return rows.length ? codec.bool(rows[0].paused) : undefined;
  }

  setPaused(id: string, paused: boolean, nextRunAt: number | undefined): Promise<unknown> {
    return paused
      ? this.#run(q.pauseSchedule(this.#s), [id])
      : this.#run(q.resumeSchedule(this.#s), [nextRunAt ?? null, id]);
  }

  async setQueuePaused(queue: string, paused: boolean): Promise<boolean> {
    const text = paused ? q.pauseQueue(this.#s) : q.resumeQueue(this.#s);
    return (await this.#run(text, [queue])).length > 0;
  }
}

/**
 * Run `fn` as one transaction with its step sink and table; the step's events, results
 * and wake-ups are sent in the tail, with the `COMMIT`.
 */
export function inStep<T>(
  c: Connection,
  what: string,
  fn: (table: PostgresTable, step: Step, tx: Tx, tail: Tail) => Promise<T>,
): Promise<T> {
  return c.tx(what, async (tx, tail) => {
    const step = new Step(c, tx);
    const out = await fn(new PostgresTable(c, tx, tail), step, tx, tail);
    step.flush(tail);
    return out;
  });
}
