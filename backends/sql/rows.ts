/**
 * Row mapping shared by the SQL engines (SQLite and PostgreSQL): a row of `tasks`,
 * `schedules`, `results` or `events` becomes the record the core speaks. The two schemas
 * have the same columns; they differ only in how a driver hands back JSON, bytes and
 * booleans, which a {@linkcode RowCodec} says.
 *
 * @module
 */

import type { StoredEvent, StoredResult, StoredSchedule, StoredTask } from "../../src/backend.ts";
import { checkRecordVersion, zeroCounts } from "../../src/kit/policy.ts";
import type {
  EventType,
  FinalState,
  QueueStats,
  SerializedError,
  StateCounts,
  TaskState,
} from "../../src/types.ts";

/** A row as a driver returns it: column name to value. */
export type Row = Record<string, unknown>;

/** How one driver returns the columns whose type differs between the SQL engines. */
export interface RowCodec {
  /** A JSON column (SQLite: text to parse; PostgreSQL: `jsonb`, parsed already). */
  json(value: unknown): unknown;
  /** A bytes column (`BLOB` or `bytea`) as a plain `Uint8Array`. */
  bytes(value: unknown): Uint8Array;
  /** A boolean column (SQLite: 0 or 1). */
  bool(value: unknown): boolean;
}

/** The fields `taskEvent` needs about a task. */
export interface TaskRef {
  id: string;
  queue: string;
  attempts: number;
}

/**
 * A task from a `tasks` row.
 *
 * @throws {OmniQError} When the row was written by a newer OmniQ.
 */
export function toTask(row: Row, codec: RowCodec): StoredTask {
  checkRecordVersion(row.v, `task "${row.id}"`);
  const task: StoredTask = {
    id: row.id as string,
    task: row.task as string,
    queue: row.queue as string,
    priority: row.priority as number,
    payload: codec.bytes(row.payload),
    createdAt: row.created_at as number,
    runAt: row.run_at as number,
    maxAttempts: row.max_attempts as number,
    backoff: codec.json(row.backoff) as StoredTask["backoff"],
    dependsOn: codec.json(row.depends_on) as string[],
    onDependencyFailure: row.on_dep_failure as "cancel" | "run",
    state: row.state as TaskState,
    attempts: row.attempts as number,
  };
  if (row.expires_at !== null) task.expiresAt = row.expires_at as number;
  if (row.timeout !== null) task.timeout = row.timeout as number;
  if (row.result_ttl !== null) task.resultTtl = row.result_ttl as number;
  if (row.key !== null) task.key = row.key as string;
  if (row.schedule_id !== null) task.scheduleId = row.schedule_id as string;
  if (row.started_at !== null) task.startedAt = row.started_at as number;
  if (row.completed_at !== null) task.completedAt = row.completed_at as number;
  if (row.progress !== null) task.progress = row.progress as number;
  if (row.error !== null) task.error = codec.json(row.error) as SerializedError;
  if (row.links !== null) task.links = codec.json(row.links) as StoredTask["links"];
  if (row.dead_letter !== null) task.deadLetter = row.dead_letter as string;
  if (row.key_until !== null) task.keyUntil = row.key_until as number;
  if (row.age_after !== null) task.ageAfter = row.age_after as number;
  if (row.grp != null) task.group = row.grp as string;
  if (row.group_limit != null) task.groupLimit = row.group_limit as number;
  if (row.rate_key != null) {
    task.rate = {
      key: row.rate_key as string,
      limit: Number(row.rate_limit),
      per: Number(row.rate_per),
    };
  }
  // The column keeps the last claimer; it names the worker of a running task only.
  if (row.worker != null && task.state === "running") task.worker = row.worker as string;
  return task;
}

/**
 * A schedule from a `schedules` row.
 *
 * @throws {OmniQError} When the row was written by a newer OmniQ.
 */
export function toSchedule(row: Row, codec: RowCodec): StoredSchedule {
  checkRecordVersion(row.v, `schedule "${row.id}"`);
  const s: StoredSchedule = {
    id: row.id as string,
    task: row.task as string,
    payload: codec.bytes(row.payload),
    misfire: row.misfire as "skip" | "once",
    misfireGrace: row.misfire_grace as number,
    paused: codec.bool(row.paused),
    createdAt: row.created_at as number,
    queue: row.queue as string,
    priority: row.priority as number,
    maxAttempts: row.max_attempts as number,
    backoff: codec.json(row.backoff) as StoredSchedule["backoff"],
  };
  if (row.cron !== null) s.cron = row.cron as string;
  if (row.every !== null) s.every = row.every as number;
  if (row.tz !== null) s.tz = row.tz as string;
  if (row.start_at !== null) s.startAt = row.start_at as number;
  if (row.end_at !== null) s.endAt = row.end_at as number;
  if (row.next_run_at !== null) s.nextRunAt = row.next_run_at as number;
  if (row.last_run_at !== null) s.lastRunAt = row.last_run_at as number;
  if (row.timeout !== null) s.timeout = row.timeout as number;
  if (row.ttl !== null) s.ttl = row.ttl as number;
  if (row.result_ttl !== null) s.resultTtl = row.result_ttl as number;
  return s;
}

/**
 * A result from a `results` row.
 *
 * @throws {OmniQError} When the row was written by a newer OmniQ.
 */
export function toResult(row: Row, codec: RowCodec): StoredResult {
  checkRecordVersion(row.v, `the result of task "${row.task_id}"`);
  const result: StoredResult = {
    taskId: row.task_id as string,
    state: row.state as FinalState,
    completedAt: row.completed_at as number,
  };
  if (row.value !== null) result.value = codec.bytes(row.value);
  if (row.error !== null) result.error = codec.json(row.error) as SerializedError;
  if (row.expires_at !== null) result.expiresAt = row.expires_at as number;
  return result;
}

/** An event from an `events` row. */
export function toEvent(row: Row, codec: RowCodec): StoredEvent {
  const event: StoredEvent = {
    id: String(row.id),
    type: row.type as EventType,
    at: row.at as number,
  };
  if (row.task_id !== null) event.taskId = row.task_id as string;
  if (row.queue !== null) event.queue = row.queue as string;
  if (row.attempt !== null) event.attempt = row.attempt as number;
  if (row.data !== null) event.data = codec.json(row.data) as Record<string, unknown>;
  return event;
}

/**
 * The fields `taskEvent` needs, from a `RETURNING v, id, queue, attempts` row.
 *
 * @throws {OmniQError} When the row was written by a newer OmniQ.
 */
export function toRef(row: Row): TaskRef {
  checkRecordVersion(row.v, `task "${row.id}"`);
  return { id: row.id as string, queue: row.queue as string, attempts: row.attempts as number };
}

/** Queue statistics from `SELECT queue, state, count AS n … GROUP BY queue, state` rows. */
export function toStats(rows: Iterable<Row>): QueueStats {
  const total = zeroCounts();
  const queues: Record<string, StateCounts> = {};
  for (const row of rows) {
    const state = row.state as TaskState;
    const n = Number(row.n);
    total[state] += n;
    (queues[row.queue as string] ??= zeroCounts())[state] += n;
  }
  return { total, queues };
}
