/**
 * The task state machine's policy, as pure functions every engine shares: the state a new
 * or released task starts in, what a failed dependency does to its dependents, what a stall
 * does, the result and events a task ends with. An engine keeps the data (rows, records,
 * hashes, SQL rows) and the atomicity; these functions decide the transitions, so the
 * memory, record, SQL and Redis engines cannot drift apart. Redis applies the same rules in
 * Lua (it must decide inside the script); its scripts cite the function they mirror.
 *
 * @example The state of a task with dependencies
 * ```ts
 * import { dependencyVerdict } from "@omniq/omniq/engine";
 * const verdict = dependencyVerdict("cancel", [{ id: "a", state: "failed" }]);
 * console.assert(verdict.kind === "cancel");
 * ```
 *
 * @module
 */

import type {
  Failure,
  NewEvent,
  NewTask,
  StoredResult,
  StoredTask,
  TaskLinks,
} from "../backend.ts";
import { OmniQError } from "../errors.ts";
import {
  type EventType,
  type FinalState,
  type SerializedError,
  type StateCounts,
  TASK_STATES,
  type TaskState,
} from "../types.ts";

/** The version of stored task, result and event records this code writes and reads. */
export const RECORD_VERSION = 1;

/** The error of a task that expired before it started. */
export const EXPIRED_ERROR: Readonly<SerializedError> = Object.freeze({
  name: "TaskExpiredError",
  message: "expired before it started",
});

/** The states of a task that has not started yet (the ones a `ttl` can expire). */
export const UNSTARTED_STATES: readonly TaskState[] = ["waiting", "scheduled", "queued"];

/** The states of a task that is not final. */
export const LIVE_STATES: readonly TaskState[] = ["waiting", "scheduled", "queued", "running"];

/** The final states (the public list, one binding for every importer). */
export { FINAL_STATES } from "../types.ts";

/** Whether a state is final. */
export function isFinal(state: TaskState): state is FinalState {
  return state === "completed" || state === "failed" || state === "cancelled" ||
    state === "expired";
}

/** Counts of zero for every state. */
export function zeroCounts(): StateCounts {
  return Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as StateCounts;
}

/** The state a task enters once nothing holds it: `scheduled` until `runAt`, then `queued`. */
export function readyState(runAt: number, now: number): "scheduled" | "queued" {
  return runAt > now ? "scheduled" : "queued";
}

/** What a task's dependencies mean for it now. */
export type DependencyVerdict =
  /** A dependency ended without completing and the task cancels on that. */
  | { kind: "cancel"; dependency: string; error: SerializedError; data: Record<string, unknown> }
  /** Some dependency has not reached the end the task needs. */
  | { kind: "wait" }
  /** Every dependency is done: the task may be scheduled or queued. */
  | { kind: "ready" };

/**
 * Decide what a task's dependencies mean for it: the one rule behind enqueue (the initial
 * state) and release (the cascade after a dependency ends).
 *
 * A dependency that is not found (purged after it ended) counts as done. With
 * `onDependencyFailure: "cancel"` (the default) a dependency that failed, was cancelled or
 * expired cancels the task; with `"run"` any final state releases it.
 *
 * @param onDependencyFailure The task's choice.
 * @param dependencies The dependencies found, with their states.
 * @returns `cancel` (naming the dependency), `wait` or `ready`.
 */
export function dependencyVerdict(
  onDependencyFailure: NewTask["onDependencyFailure"],
  dependencies: Iterable<{ id: string; state: TaskState }>,
): DependencyVerdict {
  let waiting = false;
  for (const dep of dependencies) {
    if (dep.state === "completed") continue;
    if (!isFinal(dep.state)) {
      waiting = true;
      continue;
    }
    if (onDependencyFailure === "cancel") return dependencyCancel(dep.id, dep.state);
  }
  return waiting ? { kind: "wait" } : { kind: "ready" };
}

/**
 * The cancellation of a dependent whose dependency ended without completing.
 *
 * @param dependency The dependency's id.
 * @param state How it ended.
 * @returns The verdict, with the error and event data the dependent ends with.
 */
export function dependencyCancel(
  dependency: string,
  state: TaskState,
): Extract<DependencyVerdict, { kind: "cancel" }> {
  const reason = `dependency ${dependency} ${state}`;
  return {
    kind: "cancel",
    dependency,
    error: { name: "TaskCancelledError", message: reason },
    data: { reason, dependency },
  };
}

/** The error of a task cancelled by a caller. */
export function cancelError(reason: string): SerializedError {
  return { name: "TaskCancelledError", message: reason };
}

/** What a sweep does with a running task whose lease expired. */
export type StallVerdict =
  /** Back to its queue for another attempt. */
  | { kind: "retry" }
  /** Out of attempts: it fails with this error. */
  | { kind: "fail"; error: SerializedError }
  /** Out of attempts, with a dead-letter queue: it moves there, keeping this error. */
  | { kind: "deadLetter"; to: string; error: SerializedError };

/**
 * Decide what an expired lease does: another attempt while attempts remain (a stall counts
 * as an attempt), else the task fails with a `StalledError`, or moves to its dead-letter
 * queue with that error when it has one.
 *
 * @param attempts Attempts started so far.
 * @param maxAttempts The most attempts allowed.
 * @param deadLetter The task's dead-letter queue, if any.
 */
export function stallVerdict(
  attempts: number,
  maxAttempts: number,
  deadLetter?: string,
): StallVerdict {
  if (attempts < maxAttempts) return { kind: "retry" };
  const error = {
    name: "StalledError",
    message: `the worker's lease expired on attempt ${attempts}`,
  };
  return deadLetter === undefined
    ? { kind: "fail", error }
    : { kind: "deadLetter", to: deadLetter, error };
}

/**
 * The event of a task moved to its dead-letter queue: in the queue it leaves, at the attempt
 * that spent its last try, with data `{ to, error }` (the error's name and message, as a
 * `retrying` or `failed` event carries it).
 */
export function deadLetterEvent(
  task: Pick<StoredTask, "id" | "queue" | "attempts">,
  to: string,
  at: number,
  error: SerializedError,
): NewEvent {
  return taskEvent("dead_lettered", task, at, {
    to,
    error: { name: error.name, message: error.message },
  });
}

/**
 * Whether a task holds its dedupe key at `now`: while it is live, and with a throttle window
 * (`keyUntil`) until then, even once it has ended.
 */
export function holdsKey(task: Pick<StoredTask, "state" | "keyUntil">, now: number): boolean {
  return !isFinal(task.state) || (task.keyUntil !== undefined && task.keyUntil > now);
}

/**
 * Whether an engine keeps a task's key entry when the task changes: while it may hold the
 * key (live, or with a throttle window, which a later lookup checks with `holdsKey`).
 */
export function keepsKey(task: Pick<StoredTask, "state" | "keyUntil">): boolean {
  return !isFinal(task.state) || task.keyUntil !== undefined;
}

/** Whether a debounced enqueue replaces the task holding its key: it has not started. */
export function debounceReplaces(task: Pick<StoredTask, "state">): boolean {
  return UNSTARTED_STATES.includes(task.state);
}

/** The event of a task whose arguments and due time a debounced enqueue replaced. */
export function debouncedEvent(
  task: Pick<StoredTask, "id" | "queue" | "attempts">,
  runAt: number,
  at: number,
): NewEvent {
  return taskEvent("debounced", task, at, { runAt });
}

/**
 * The lane a task is claimed in, round-robin with its queue's other lanes: its group, or
 * without one its rate bucket (`NewTask.rate`) behind a control character, which no group
 * name has; `undefined`: the queue's plain priority-then-FIFO order.
 */
export function laneOf(task: Pick<NewTask, "group" | "rate">): string | undefined {
  return task.group ?? (task.rate === undefined ? undefined : `\u0001${task.rate.key}`);
}

/**
 * How many more tasks of a lane may start now: under the group's cap of running tasks and
 * under the rate limit's starts in the window (`Infinity` when neither applies).
 *
 * @param task The lane's head task.
 * @param running The group's tasks running now (ignored without a group).
 * @param started The rate bucket's tasks started in the window ending now (ignored without a
 *   rate limit).
 */
export function laneRoom(
  task: Pick<NewTask, "group" | "groupLimit" | "rate">,
  running: number,
  started: number,
): number {
  let room = Infinity;
  if (task.group !== undefined) room = Math.min(room, (task.groupLimit ?? 1) - running);
  if (task.rate !== undefined) room = Math.min(room, task.rate.limit - started);
  return room;
}

/** The priority an aged task is raised to (`NewTask.ageAfter`). */
export const AGED_PRIORITY = 9;

/** Whether a queued task has aged by `now`: it waits with a lower priority past its bound. */
export function hasAged(
  task: Pick<StoredTask, "state" | "priority" | "runAt" | "ageAfter">,
  now: number,
): boolean {
  return task.state === "queued" && task.ageAfter !== undefined &&
    task.priority < AGED_PRIORITY && task.runAt + task.ageAfter <= now;
}

/** The event of a task whose priority aged, from `from` to {@linkcode AGED_PRIORITY}. */
export function agedEvent(
  task: Pick<StoredTask, "id" | "queue" | "attempts">,
  from: number,
  at: number,
): NewEvent {
  return taskEvent("aged", task, at, { from });
}

/** The event of a queue paused or resumed (no task). */
export function queuePauseEvent(queue: string, paused: boolean, at: number): NewEvent {
  return { type: paused ? "queue_paused" : "queue_resumed", queue, at };
}

/** An event about a stored task, filled from the task. */
export function taskEvent(
  type: EventType,
  task: Pick<StoredTask, "id" | "queue" | "attempts">,
  at: number,
  data?: Record<string, unknown>,
): NewEvent {
  const event: NewEvent = { type, taskId: task.id, queue: task.queue, at };
  if (task.attempts > 0) event.attempt = task.attempts;
  if (data !== undefined) event.data = data;
  return event;
}

/** The event type a task's end is recorded with. */
export function endEventType(state: Exclude<FinalState, "completed">): EventType {
  return state;
}

/** The result of a task that ended without running to completion. */
export function endResult(
  task: Pick<StoredTask, "id" | "resultTtl">,
  state: Exclude<FinalState, "completed">,
  error: SerializedError,
  at: number,
): StoredResult {
  const result: StoredResult = { taskId: task.id, state, error, completedAt: at };
  if (task.resultTtl !== undefined) result.expiresAt = at + task.resultTtl;
  return result;
}

/** Workflow links with every task id passed through `to`. */
export function mapLinks(links: TaskLinks, to: (id: string) => string): TaskLinks {
  const out: TaskLinks = {};
  if (links.trace !== undefined) out.trace = links.trace;
  if (links.pipe !== undefined) out.pipe = to(links.pipe);
  if (links.names) {
    out.names = Object.fromEntries(Object.entries(links.names).map(([id, n]) => [to(id), n]));
  }
  return out;
}

/**
 * A task whose dependencies (and workflow links) on tasks of its batch that were
 * deduplicated by key point at the live tasks that stood in for them.
 *
 * @param t The task.
 * @param standIn Live task id by deduplicated task id.
 * @returns The task with its dependencies and links redirected.
 */
export function withStandIns(t: NewTask, standIn: Map<string, string>): NewTask {
  const to = (id: string) => standIn.get(id) ?? id;
  const out: NewTask = { ...t, dependsOn: [...new Set(t.dependsOn.map(to))] };
  if (t.links) out.links = mapLinks(t.links, to);
  return out;
}

/**
 * Refuse a record written by a newer OmniQ, so an upgrade never misreads queued tasks.
 *
 * @param version The record's format version (`undefined`: a record without one).
 * @param what What the record is, for the message (e.g. `task "a"`).
 * @param required Whether a record without a version is corrupt (record engines), rather
 *   than one from before versions were stored (SQL rows default it).
 * @throws {OmniQError} When the record is newer than this code.
 * @throws {Error} When `required` and the record has no version (the engine reports it as
 *   corrupt).
 */
export function checkRecordVersion(version: unknown, what: string, required = false): void {
  if (typeof version !== "number") {
    if (required) throw new Error(`${what} has no record version`);
    return;
  }
  if (version > RECORD_VERSION) {
    throw new OmniQError(
      `${what} was written by a newer OmniQ (record version ${version}; this version reads ` +
        `up to ${RECORD_VERSION}); upgrade OmniQ to read it`,
    );
  }
}

/** The error of a call on a closed engine. */
export function closedError(engine: string): OmniQError {
  return new OmniQError(`the ${engine} backend is closed`);
}

/**
 * Whether a stored result still counts: it has no expiry, or its expiry is still ahead.
 *
 * @param result The stored result.
 * @param now The time to judge by.
 * @returns Whether `get` should return it.
 */
export function isLiveResult(result: StoredResult, now: number): boolean {
  return result.expiresAt === undefined || result.expiresAt > now;
}

/**
 * The failure that replaces a completion whose result an engine cannot store: a task whose
 * value is over the engine's limit fails, with an error naming the limit, rather than
 * completing with a result nobody could read.
 *
 * @param id The task.
 * @param result The result the attempt produced.
 * @param limit The largest value the engine stores, in bytes, and its name for the message.
 * @returns The failure to record, or `undefined` when the result fits.
 */
export function oversizedResult(
  id: string,
  result: StoredResult,
  limit: { bytes: number; engine: string },
): Failure | undefined {
  if (result.value === undefined || result.value.length <= limit.bytes) return undefined;
  const error = {
    name: "ResultTooLargeError",
    message:
      `the result takes ${result.value.length} bytes; the ${limit.engine} engine stores at most ${limit.bytes}`,
  };
  return {
    error,
    result: { taskId: id, state: "failed", error, completedAt: result.completedAt },
  };
}
