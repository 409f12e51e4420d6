/**
 * The SQLite side of the shared SQL step code: the row codec, the step sink (events and
 * results written into this file's own tables as they happen, when attached) and the
 * {@linkcode TaskTable} / {@linkcode ScheduleTable} / {@linkcode QueueTable} whose every
 * call is one synchronous statement inside the caller's `BEGIN IMMEDIATE` transaction.
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
import { DuplicateTaskError } from "../../src/errors.ts";
import { RECORD_VERSION, withStandIns } from "../../src/kit/policy.ts";
import type { FinalState, SerializedError, TaskState } from "../../src/types.ts";
import { type RowCodec, type TaskRef, toRef, toTask } from "../sql/rows.ts";
import {
  admit,
  type EndedRef,
  type QueueTable,
  type ScheduleTable,
  type StepSink,
  type TaskTable,
} from "../sql/steps.ts";
import { taskValues } from "../sql/transitions.ts";
import type { Connection } from "./connection.ts";
import * as q from "./queries.ts";

/** How `node:sqlite` returns JSON (text), bytes and booleans (0 or 1). */
export const codec: RowCodec = {
  json: (value) => JSON.parse(value as string),
  bytes: (value) => value as Uint8Array,
  bool: (value) => value === 1,
};

/** Append an event; it gets the next id. */
export function insertEvent(c: Connection, event: NewEvent): StoredEvent {
  const { lastInsertRowid } = c.sql(q.INSERT_EVENT).run(
    event.type,
    event.taskId ?? null,
    event.queue ?? null,
    event.at,
    event.attempt ?? null,
    event.data === undefined ? null : JSON.stringify(event.data),
  );
  return { ...event, id: String(lastInsertRowid) };
}

/** Store a result, replacing one of the same task. */
export function putResult(c: Connection, r: StoredResult): void {
  c.sql(q.PUT_RESULT).run(
    r.taskId,
    RECORD_VERSION,
    r.state,
    r.value ?? null,
    r.error === undefined ? null : JSON.stringify(r.error),
    r.completedAt,
    r.expiresAt ?? null,
  );
}

/**
 * The effects of one transaction. Events and results go into this engine's own tables when
 * they are attached, and into the returned effects otherwise. No process listens for
 * wake-ups: workers of a file poll it.
 */
export class Step implements StepSink {
  readonly now: number;
  readonly #c: Connection;
  readonly #events: (NewEvent | StoredEvent)[] = [];
  readonly #results: StoredResult[] = [];

  constructor(c: Connection, now: number = Date.now()) {
    this.#c = c;
    this.now = now;
  }

  emit(event: NewEvent): void {
    this.#events.push(this.#c.attached.events ? insertEvent(this.#c, event) : event);
  }

  produce(result: StoredResult): void {
    if (this.#c.attached.results) putResult(this.#c, result);
    else this.#results.push(result);
  }

  keep(result: StoredResult | undefined): void {
    if (result && this.#c.attached.results) putResult(this.#c, result);
  }

  wake(_queue: string): void {}

  effects(): Effects {
    return { events: this.#events, results: this.#results };
  }
}

/** A `RETURNING v, id, queue, attempts` row as a ref, or `undefined`. */
function refOf(row: Record<string, unknown> | undefined): TaskRef | undefined {
  return row ? toRef(row) : undefined;
}

/** The tasks, schedules and queues tables, one synchronous statement a call. */
export class SqliteTable implements TaskTable, ScheduleTable, QueueTable {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  /**
   * Store one task: its state decided from its dependencies (`admit`), with its events.
   * Shared by `enqueue` (after its key check) and a fired tick.
   *
   * @throws {DuplicateTaskError} When a task with its id exists.
   */
  insert(t: NewTask, step: StepSink): void {
    const c = this.#c;
    const { state, error } = admit(
      step,
      t,
      (id) => c.sql(q.STATE_OF).get(id)?.state as TaskState | undefined,
    );
    try {
      c.sql(q.INSERT_TASK).run(...taskValues(t, { state, error }, step.now));
    } catch (e) {
      if (e instanceof Error && /UNIQUE constraint failed: tasks\.id/.test(e.message)) {
        throw new DuplicateTaskError(`id: a task with id "${t.id}" exists`, { cause: e });
      }
      throw e;
    }
    for (const d of t.dependsOn) c.sql(q.INSERT_DEP).run(t.id, d);
  }

  markCompleted(id: string, token: string, at: number): EndedRef | undefined {
    return refOf(this.#c.sql(q.MARK_COMPLETED).get(at, id, token));
  }

  markRetrying(
    id: string,
    token: string,
    state: "scheduled" | "queued",
    runAt: number,
    error: SerializedError,
  ): TaskRef | undefined {
    return refOf(
      this.#c.sql(q.MARK_RETRYING).get(state, runAt, JSON.stringify(error), id, token),
    );
  }

  markFailed(id: string, token: string, at: number, error: SerializedError): TaskRef | undefined {
    return refOf(this.#c.sql(q.MARK_FAILED).get(at, JSON.stringify(error), id, token));
  }

  setProgress(id: string, token: string, value: number): TaskRef | undefined {
    return refOf(this.#c.sql(q.SET_PROGRESS).get(value, id, token));
  }

  lockRunning(id: string, token: string): StoredTask | undefined {
    const row = this.#c.sql(q.RUNNING_TASK).get(id, token);
    return row ? toTask(row, codec) : undefined;
  }

  lockLive(id: string): StoredTask | undefined {
    const row = this.#c.sql(q.LIVE_TASK).get(id);
    return row ? toTask(row, codec) : undefined;
  }

  reset(id: string, now: number): TaskRef | undefined {
    return refOf(this.#c.sql(q.RESET).get(now, id));
  }

  dropResult(id: string): void {
    if (this.#c.attached.results) this.#c.sql(q.DELETE_RESULT).run(id);
  }

  end(id: string, state: FinalState, error: SerializedError, at: number): void {
    this.#c.sql(q.END).run(state, at, JSON.stringify(error), id);
  }

  requeue(id: string, at: number): void {
    this.#c.sql(q.REQUEUE).run(at, id);
  }

  deadLetter(id: string, to: string, at: number, error: SerializedError): void {
    this.#c.sql(q.DEAD_LETTER).run(to, at, JSON.stringify(error), id);
  }

  waitingDependents(id: string): string[] {
    return this.#c.sql(q.WAITING_DEPENDENTS).all(id).map((row) => row.id as string);
  }

  lockWaiting(id: string): StoredTask | undefined {
    const row = this.#c.sql(q.WAITING_TASK).get(id);
    return row ? toTask(row, codec) : undefined;
  }

  blocked(task: StoredTask): boolean {
    const held = task.onDependencyFailure === "run" ? q.HELD_BY_LIVE : q.HELD_BY_UNCOMPLETED;
    return Boolean(this.#c.sql(held).get(task.id));
  }

  release(id: string, state: "scheduled" | "queued"): void {
    this.#c.sql(q.SET_STATE).run(state, id);
  }

  advance(claim: TickClaim): boolean {
    return this.#c.sql(q.ADVANCE_SCHEDULE).run(
      claim.next ?? null,
      claim.tick,
      claim.scheduleId,
      claim.tick,
    ).changes > 0;
  }

  taskExists(id: string): boolean {
    return Boolean(this.#c.sql(q.TASK_EXISTS).get(id));
  }

  store(task: NewTask, step: StepSink): void {
    this.insert(withStandIns(task, new Map()), step); // its dependencies, each once
  }

  lockPaused(id: string): boolean | undefined {
    const row = this.#c.sql(q.SCHEDULE_PAUSED).get(id);
    return row ? codec.bool(row.paused) : undefined;
  }

  setPaused(id: string, paused: boolean, nextRunAt: number | undefined): void {
    if (paused) this.#c.sql(q.PAUSE_SCHEDULE).run(id);
    else this.#c.sql(q.RESUME_SCHEDULE).run(nextRunAt ?? null, id);
  }

  setQueuePaused(queue: string, paused: boolean): boolean {
    return Boolean(this.#c.sql(paused ? q.PAUSE_QUEUE : q.RESUME_QUEUE).get(queue));
  }
}
