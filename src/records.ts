/**
 * Stored records as users see them: payloads and values decoded, epoch milliseconds as
 * `Date`s, a due `scheduled` task shown as `queued`, and a final result turned into the
 * value or the error a wait gives.
 *
 * @module
 */

import type { StoredEvent, StoredResult, StoredTask } from "./backend.ts";
import { decode } from "./codec.ts";
import { TaskCancelledError, TaskExpiredError, TaskFailedError } from "./errors.ts";
import type { EventRecord, ResultRecord, TaskRecord } from "./types.ts";

/**
 * What a wait on a task with this final result gives: its value, or its error thrown.
 *
 * @throws {TaskFailedError} For a failed task; {@linkcode TaskCancelledError} and
 *   {@linkcode TaskExpiredError} for those ends.
 */
export function resultValue<R>(result: StoredResult): R {
  switch (result.state) {
    case "completed":
      return (result.value === undefined ? undefined : decode(result.value)) as R;
    case "failed":
      throw new TaskFailedError(result.taskId, result.error ?? { name: "Error", message: "" });
    case "cancelled":
      throw new TaskCancelledError(result.taskId, result.error?.message);
    case "expired":
      throw new TaskExpiredError(result.taskId);
  }
}

function date(ms: number | undefined): Date | undefined {
  return ms === undefined ? undefined : new Date(ms);
}

/** A stored task as users see it. */
export function toTaskRecord(task: StoredTask, now: number = Date.now()): TaskRecord {
  const record: TaskRecord = {
    id: task.id,
    task: task.task,
    args: decode(task.payload) as unknown[],
    queue: task.queue,
    priority: task.priority,
    state: task.state === "scheduled" && task.runAt <= now ? "queued" : task.state,
    attempts: task.attempts,
    maxAttempts: task.maxAttempts,
    createdAt: new Date(task.createdAt),
    runAt: new Date(task.runAt),
    dependsOn: task.dependsOn,
  };
  if (task.startedAt !== undefined) record.startedAt = date(task.startedAt);
  if (task.completedAt !== undefined) record.completedAt = date(task.completedAt);
  if (task.expiresAt !== undefined) record.expiresAt = date(task.expiresAt);
  if (task.progress !== undefined) record.progress = task.progress;
  if (task.error !== undefined) record.error = task.error;
  if (task.key !== undefined) record.key = task.key;
  if (task.keyUntil !== undefined) record.keyUntil = new Date(task.keyUntil);
  if (task.scheduleId !== undefined) record.scheduleId = task.scheduleId;
  if (task.worker !== undefined && task.state === "running") record.worker = task.worker;
  if (task.deadLetter !== undefined) record.deadLetter = task.deadLetter;
  if (task.ageAfter !== undefined) record.ageAfter = task.ageAfter;
  if (task.group !== undefined) {
    record.group = task.group;
    record.groupConcurrency = task.groupLimit ?? 1;
  }
  if (task.rate !== undefined) record.rateLimit = { ...task.rate };
  return record;
}

/** A stored result as users see it. */
export function toResultRecord<R>(result: StoredResult): ResultRecord<R> {
  const record: ResultRecord<R> = {
    taskId: result.taskId,
    state: result.state,
    completedAt: new Date(result.completedAt),
  };
  if (result.value !== undefined) record.value = decode(result.value) as R;
  if (result.error !== undefined) record.error = result.error;
  if (result.expiresAt !== undefined) record.expiresAt = new Date(result.expiresAt);
  return record;
}

/** A stored event as users see it. */
export function toEventRecord(event: StoredEvent): EventRecord {
  const record: EventRecord = { id: event.id, type: event.type, at: new Date(event.at) };
  if (event.taskId !== undefined) record.taskId = event.taskId;
  if (event.queue !== undefined) record.queue = event.queue;
  if (event.attempt !== undefined) record.attempt = event.attempt;
  if (event.data !== undefined) record.data = event.data;
  return record;
}
