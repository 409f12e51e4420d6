/**
 * The step code of the SQL engines: what a completion, failure, move to a dead-letter queue,
 * cancel, rerun, stall or expiry does to a task and to the tasks that depend on it, the
 * events of the aging sweep, and what a schedule's tick or pause and a queue's pause do,
 * written once for SQLite and PostgreSQL. The decisions come from the pure policy in
 * `src/kit/policy.ts`; the rows are read and written through a {@linkcode TaskTable} each
 * engine implements with its own SQL, inside its own transaction.
 *
 * SQLite must never await inside a transaction (`node:sqlite` is synchronous) while
 * PostgreSQL awaits every statement, so each step is a generator that yields the table's
 * answers: {@linkcode runSync} drives it for SQLite, {@linkcode runAsync} for PostgreSQL,
 * with the same statements, in the same order, as a hand-written step would send.
 *
 * @module
 */

import type {
  ClaimedTask,
  Effects,
  Failure,
  NewEvent,
  NewTask,
  StoredResult,
  StoredTask,
  TickClaim,
} from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import {
  agedEvent,
  cancelError,
  deadLetterEvent,
  dependencyCancel,
  dependencyVerdict,
  endResult,
  EXPIRED_ERROR,
  queuePauseEvent,
  readyState,
  stallVerdict,
  taskEvent,
} from "../../src/kit/policy.ts";
import type { FinalState, SerializedError, TaskState } from "../../src/types.ts";
import { type Row, type TaskRef, toRef } from "./rows.ts";

/** A value now (SQLite) or later (PostgreSQL). */
export type Io<T> = T | Promise<T>;

/** A step: a generator that yields the table's answers and returns the step's outcome. */
export type Plan<T> = Generator<unknown, T, unknown>;

/** Wait for one answer of the table inside a step (`yield* io(table.op(…))`). */
export function* io<T>(value: Io<T>): Generator<Io<T>, T, unknown> {
  return (yield value) as T;
}

/**
 * Run a step whose table answers at once (SQLite), inside the caller's transaction.
 *
 * @throws {Error} When the table answered with a promise: a transaction must not await.
 */
export function runSync<T>(plan: Plan<T>): T {
  let next = plan.next();
  while (!next.done) {
    if (next.value instanceof Promise) {
      throw new Error("a synchronous step was given a promise: its table must answer at once");
    }
    next = plan.next(next.value);
  }
  return next.value;
}

/** Run a step whose table answers with promises (PostgreSQL). */
export async function runAsync<T>(plan: Plan<T>): Promise<T> {
  let next = plan.next();
  while (!next.done) {
    let answer: unknown;
    try {
      answer = await next.value;
    } catch (error) {
      next = plan.throw(error);
      continue;
    }
    next = plan.next(answer);
  }
  return next.value;
}

/** Where a step puts what it caused: events, results and wake-ups. */
export interface StepSink {
  /** The step's time, for its events and results. */
  readonly now: number;
  /** Record an event. */
  emit(event: NewEvent): void;
  /** A result this step produced: stored by the engine when attached, else returned. */
  produce(result: StoredResult): void;
  /** Store a result the orchestrator gave; never returned, as it holds it already. */
  keep(result: StoredResult | undefined): void;
  /** Wake the workers of a queue once the step commits (a no-op where none listen). */
  wake(queue: string): void;
  /** What the step caused, for the orchestrator. */
  effects(): Effects;
}

/** A task's ref, and whether other tasks depend on it (`undefined`: maybe). */
export type EndedRef = TaskRef & { hasDependents?: boolean };

/**
 * The rows a step reads and writes, each call one statement in the caller's transaction.
 * The `mark…` and `set…` calls are fenced by the claim's token and return `undefined` when
 * it is stale; the others act on a task the step has already read.
 */
export interface TaskTable {
  /** `running` with this token → `completed`. */
  markCompleted(id: string, token: string, at: number): Io<EndedRef | undefined>;
  /** `running` with this token → `state` at `runAt`, keeping the error. */
  markRetrying(
    id: string,
    token: string,
    state: "scheduled" | "queued",
    runAt: number,
    error: SerializedError,
  ): Io<TaskRef | undefined>;
  /** `running` with this token → `failed`. */
  markFailed(
    id: string,
    token: string,
    at: number,
    error: SerializedError,
  ): Io<TaskRef | undefined>;
  /** The progress of a running attempt. */
  setProgress(id: string, token: string, value: number): Io<TaskRef | undefined>;
  /** A running attempt with this token, locked for the transaction. */
  lockRunning(id: string, token: string): Io<StoredTask | undefined>;
  /** A live (not final) task, locked for the transaction. */
  lockLive(id: string): Io<StoredTask | undefined>;
  /** A final task (but `completed`) back to `queued` as new; `undefined` if not one. */
  reset(id: string, now: number): Io<TaskRef | undefined>;
  /** Drop the stored result of a task being rerun (a no-op when results are elsewhere). */
  dropResult(id: string): Io<unknown>;
  /** A task to a final state, its lease and token cleared. */
  end(id: string, state: FinalState, error: SerializedError, at: number): Io<unknown>;
  /** A stalled task back to `queued` for another attempt. */
  requeue(id: string, at: number): Io<unknown>;
  /**
   * A task to its dead-letter queue: `queued` there at `at`, its attempts reset, `error`
   * kept, its `deadLetter`, ttl, progress and lease cleared.
   */
  deadLetter(id: string, to: string, at: number, error: SerializedError): Io<unknown>;
  /** The ids of a task's `waiting` dependents, in enqueue order. */
  waitingDependents(id: string): Io<string[]>;
  /** A task still `waiting`, locked for the transaction. */
  lockWaiting(id: string): Io<StoredTask | undefined>;
  /**
   * Whether a dependency still holds a waiting task: one not `completed` (with
   * `onDependencyFailure: "cancel"`) or one not final (with `"run"`).
   */
  blocked(task: StoredTask): Io<boolean>;
  /** A waiting task released to `scheduled` or `queued`. */
  release(id: string, state: "scheduled" | "queued"): Io<unknown>;
}

/** A JSON copy of an error without its stack, for event data. */
export function brief(error: SerializedError): { name: string; message: string } {
  return { name: error.name, message: error.message };
}

/** The state a new task is stored in, and the error it ends with if cancelled at once. */
export interface Admission {
  /** The initial state. */
  state: TaskState;
  /** The error of a task cancelled by a broken dependency. */
  error?: SerializedError;
}

/**
 * Decide a new task's state from its dependencies' states, and record what that causes
 * (its result and event, a wake-up). Shared by enqueue and a fired schedule tick.
 *
 * @param step Where the events and results go.
 * @param t The task, its dependencies already pointing at stand-ins.
 * @param stateOf A dependency's state (`undefined`: no such task).
 * @throws {OmniQError} When a dependency does not exist.
 */
export function admit(
  step: StepSink,
  t: NewTask,
  stateOf: (id: string) => TaskState | undefined,
): Admission {
  const now = step.now;
  const deps = t.dependsOn.map((id) => {
    const state = stateOf(id);
    if (state === undefined) throw new OmniQError(`dependsOn: no task with id "${id}"`);
    return { id, state };
  });
  const verdict = dependencyVerdict(t.onDependencyFailure, deps);
  const ref = { id: t.id, queue: t.queue, attempts: 0 };
  if (verdict.kind === "cancel") {
    step.produce(endResult(t, "cancelled", verdict.error, now));
    step.emit(taskEvent("cancelled", ref, now, verdict.data));
    return { state: "cancelled", error: verdict.error };
  }
  if (verdict.kind === "wait") {
    step.emit(taskEvent("enqueued", ref, now, { state: "waiting" }));
    return { state: "waiting" };
  }
  const state = readyState(t.runAt, now);
  if (state === "scheduled") step.emit(taskEvent("scheduled", ref, now, { runAt: t.runAt }));
  else step.emit(taskEvent("enqueued", ref, now, { state }));
  step.wake(t.queue);
  return { state };
}

/** Complete a running attempt, store its result and release its dependents. */
export function* complete(
  table: TaskTable,
  step: StepSink,
  id: string,
  token: string,
  result: StoredResult,
): Plan<Effects | undefined> {
  const ref = yield* io(table.markCompleted(id, token, result.completedAt));
  if (!ref) return undefined;
  step.keep(result);
  // When the handler finished, not when this write came: the worker frees the slot then.
  step.emit(taskEvent("completed", ref, result.completedAt));
  if (ref.hasDependents !== false) yield* cascade(table, step, id, "completed");
  return step.effects();
}

/**
 * Fail a running attempt: to its retry time, to its dead-letter queue, or to `failed` with
 * its dependents.
 */
export function* fail(
  table: TaskTable,
  step: StepSink,
  id: string,
  token: string,
  failure: Failure,
): Plan<Effects | undefined> {
  const now = step.now;
  if (failure.deadLetter !== undefined) {
    // Read first: the event names the queue it leaves and the attempt that failed, which
    // the move overwrites.
    const task = yield* io(table.lockRunning(id, token));
    if (!task) return undefined;
    yield* deadLetter(table, step, task, failure.deadLetter, failure.error);
    return step.effects();
  }
  if (failure.retryAt !== undefined) {
    const state = readyState(failure.retryAt, now);
    const ref = yield* io(table.markRetrying(id, token, state, failure.retryAt, failure.error));
    if (!ref) return undefined;
    step.emit(taskEvent("retrying", ref, now, {
      error: brief(failure.error),
      retryAt: failure.retryAt,
    }));
    step.wake(ref.queue);
    return step.effects();
  }
  const at = failure.result?.completedAt ?? now;
  const ref = yield* io(table.markFailed(id, token, at, failure.error));
  if (!ref) return undefined;
  step.keep(failure.result);
  step.emit(taskEvent("failed", ref, at, { error: brief(failure.error) }));
  yield* cascade(table, step, id, "failed");
  return step.effects();
}

/** Record the progress of a running attempt. */
export function* progress(
  table: TaskTable,
  step: StepSink,
  id: string,
  token: string,
  value: number,
): Plan<Effects | undefined> {
  const ref = yield* io(table.setProgress(id, token, value));
  if (!ref) return undefined;
  step.emit(taskEvent("progress", ref, step.now, { progress: value }));
  return step.effects();
}

/** Cancel a live task and cascade to its dependents. */
export function* cancel(
  table: TaskTable,
  step: StepSink,
  id: string,
  reason: string,
): Plan<Effects | undefined> {
  const task = yield* io(table.lockLive(id));
  if (!task) return undefined;
  yield* end(table, step, task, "cancelled", cancelError(reason), { reason });
  return step.effects();
}

/** Run a failed, cancelled or expired task again, as new. */
export function* rerun(table: TaskTable, step: StepSink, id: string): Plan<Effects | undefined> {
  // An expired task's ttl has passed: a retry asked for is a run without one.
  const ref = yield* io(table.reset(id, step.now));
  if (!ref) return undefined;
  yield* io(table.dropResult(id));
  step.emit(taskEvent("enqueued", ref, step.now, { state: "queued", retry: true }));
  step.wake(ref.queue);
  return step.effects();
}

/**
 * A running task whose lease expired: another attempt, or when out of them its dead-letter
 * queue, or `failed`.
 */
export function* stall(table: TaskTable, step: StepSink, task: StoredTask): Plan<void> {
  step.emit(taskEvent("stalled", task, step.now, { attempt: task.attempts }));
  const verdict = stallVerdict(task.attempts, task.maxAttempts, task.deadLetter);
  if (verdict.kind === "retry") {
    yield* io(table.requeue(task.id, step.now));
    step.wake(task.queue);
    return;
  }
  if (verdict.kind === "deadLetter") {
    yield* deadLetter(table, step, task, verdict.to, verdict.error);
    return;
  }
  yield* end(table, step, task, "failed", verdict.error, { error: verdict.error });
}

/**
 * Move a task that spent its attempts to its dead-letter queue, due at once. It has not
 * ended: no result, and its dependents keep waiting.
 */
function* deadLetter(
  table: TaskTable,
  step: StepSink,
  task: StoredTask,
  to: string,
  error: SerializedError,
): Plan<void> {
  yield* io(table.deadLetter(task.id, to, step.now, error));
  step.emit(deadLetterEvent(task, to, step.now, error));
  step.wake(to);
}

/**
 * Queued tasks a sweep raised to `AGED_PRIORITY` (`NewTask.ageAfter`), one row each with
 * the columns of a ref and `old_priority`, the priority it had: an `aged` event each.
 *
 * @returns How many rows there were, for {@linkcode inBatches}.
 */
export function aged(step: StepSink, rows: readonly Row[]): number {
  for (const row of rows) {
    step.emit(agedEvent(toRef(row), row.old_priority as number, step.now));
  }
  return rows.length;
}

/** An unstarted task whose ttl passed. */
export function* expire(table: TaskTable, step: StepSink, task: StoredTask): Plan<void> {
  yield* end(table, step, task, "expired", { ...EXPIRED_ERROR }, undefined);
}

/**
 * Move a task to a final state other than `completed`: store its error, produce its
 * result and event, and cascade to its dependents.
 */
function* end(
  table: TaskTable,
  step: StepSink,
  task: StoredTask,
  state: Exclude<FinalState, "completed">,
  error: SerializedError,
  data: Record<string, unknown> | undefined,
): Plan<void> {
  yield* io(table.end(task.id, state, error, step.now));
  step.produce(endResult(task, state, error, step.now));
  step.emit(taskEvent(state, task, step.now, data));
  yield* cascade(table, step, task.id, state);
}

/**
 * Release or cancel the waiting dependents of a task that just became final, and theirs
 * in turn: depth first, in enqueue order, the order a recursion would take, but with an
 * explicit stack so a long chain cannot overflow it. Each dependent is read (and locked,
 * where the engine locks rows) afresh before its other dependencies are read, since an
 * earlier branch, or another transaction, may have ended it.
 */
function* cascade(
  table: TaskTable,
  step: StepSink,
  rootId: string,
  rootState: FinalState,
): Plan<void> {
  const stack: { id: string; state: FinalState; dependents: string[]; next: number }[] = [];
  const visit = function* (id: string, state: FinalState): Plan<void> {
    const dependents = yield* io(table.waitingDependents(id));
    if (dependents.length) stack.push({ id, state, dependents, next: 0 });
  };
  yield* visit(rootId, rootState);
  while (stack.length) {
    const frame = stack[stack.length - 1];
    if (frame.next >= frame.dependents.length) {
      stack.pop();
      continue;
    }
    const dependent = yield* io(table.lockWaiting(frame.dependents[frame.next++]));
    if (!dependent) continue;
    if (frame.state === "completed" || dependent.onDependencyFailure === "run") {
      yield* release(table, step, dependent);
      continue;
    }
    const verdict = dependencyCancel(frame.id, frame.state);
    yield* io(table.end(dependent.id, "cancelled", verdict.error, step.now));
    step.produce(endResult(dependent, "cancelled", verdict.error, step.now));
    step.emit(taskEvent("cancelled", dependent, step.now, verdict.data));
    yield* visit(dependent.id, "cancelled");
  }
}

/** Release a waiting task once nothing holds it. */
function* release(table: TaskTable, step: StepSink, task: StoredTask): Plan<void> {
  // A dependency purged from the table was final long ago; the engine's join skips it.
  if (yield* io(table.blocked(task))) return;
  const state = readyState(task.runAt, step.now);
  yield* io(table.release(task.id, state));
  step.emit(
    taskEvent(state === "scheduled" ? "scheduled" : "enqueued", task, step.now, {
      state,
      released: true,
    }),
  );
  step.wake(task.queue);
}

/** The schedule rows a step reads and writes, in the caller's transaction. */
export interface ScheduleTable {
  /**
   * The compare-and-set of a tick: advance the schedule only if `tick` is still its next
   * run and it is not paused. Whether it advanced.
   */
  advance(claim: TickClaim): Io<boolean>;
  /** Whether a task with this id exists. */
  taskExists(id: string): Io<boolean>;
  /** Store a tick's task (its state decided by {@linkcode admit}, its events in `step`). */
  store(task: NewTask, step: StepSink): Io<unknown>;
  /** Whether a schedule is paused, locked; `undefined` when there is none. */
  lockPaused(id: string): Io<boolean | undefined>;
  /** Pause a schedule, or resume it at `nextRunAt`. */
  setPaused(id: string, paused: boolean, nextRunAt: number | undefined): Io<unknown>;
}

/** Fire a schedule's tick: advance it once and store the tick's task. */
export function* fireTick(
  table: ScheduleTable,
  step: StepSink,
  claim: TickClaim,
): Plan<Effects | undefined> {
  if (!(yield* io(table.advance(claim)))) return undefined;
  const task = claim.task;
  // A tick's task id is `scheduleId:tick`: if it exists, this tick's task was stored
  // already (say, before the schedule was replaced), so only the schedule advances.
  if (task && !(yield* io(table.taskExists(task.id)))) {
    yield* io(table.store(task, step));
    step.emit({
      type: "schedule_fired",
      taskId: task.id,
      queue: task.queue,
      at: step.now,
      data: { scheduleId: claim.scheduleId, tick: claim.tick },
    });
  }
  return step.effects();
}

/** Pause or resume a schedule; `undefined` when it is missing or already so. */
export function* pauseSchedule(
  table: ScheduleTable,
  step: StepSink,
  id: string,
  paused: boolean,
  nextRunAt: number | undefined,
): Plan<Effects | undefined> {
  const was = yield* io(table.lockPaused(id));
  if (was === undefined || was === paused) return undefined;
  yield* io(table.setPaused(id, paused, nextRunAt));
  step.emit({
    type: paused ? "schedule_paused" : "schedule_resumed",
    at: step.now,
    data: { scheduleId: id },
  });
  return step.effects();
}

/** The queue rows a step writes, in the caller's transaction. */
export interface QueueTable {
  /** Pause or resume a queue; whether it changed (`false`: it was so already). */
  setQueuePaused(queue: string, paused: boolean): Io<boolean>;
}

/**
 * Pause or resume a queue; `undefined` when it is so already. A resume wakes the queue's
 * workers, as an enqueue does.
 */
export function* pauseQueue(
  table: QueueTable,
  step: StepSink,
  queue: string,
  paused: boolean,
): Plan<Effects | undefined> {
  if (!(yield* io(table.setQueuePaused(queue, paused)))) return undefined;
  step.emit(queuePauseEvent(queue, paused, step.now));
  if (!paused) step.wake(queue);
  return step.effects();
}

/**
 * Run a sweep part in batches until one handles fewer rows than a batch, gathering the
 * effects, so a big sweep never holds a lock long.
 *
 * @param effects Where the effects of every batch go.
 * @param size The batch size the part uses.
 * @param part One batch, in its own transaction: how many rows it handled, and its effects.
 */
export async function inBatches(
  effects: Effects,
  size: number,
  part: () => Promise<readonly [number, Effects]>,
): Promise<void> {
  for (;;) {
    const [n, out] = await part();
    effects.events.push(...out.events);
    effects.results.push(...out.results);
    if (n < size) return;
  }
}

/** The answer of a claim that took nothing: no tasks, no effects. */
export function noClaim(): { tasks: ClaimedTask[]; effects: Effects } {
  return { tasks: [], effects: { events: [], results: [] } };
}
