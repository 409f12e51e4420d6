/**
 * The statements of the state transitions both SQL engines write alike, spelled once: what
 * a new task's row, what a completion, a retry, a failure, a move to a dead-letter queue, an
 * end, a requeue, a rerun and a release set on it, the reads of the cascade and of the expiry
 * sweep, a schedule's upsert, tick and pause, and a queue's pause and group cursor. Each
 * engine's `queries.ts` exports them in its own {@linkcode Dialect} (placeholders, the
 * schema, row locks).
 *
 * The statements that differ by more than spelling stay in each engine's `queries.ts`: the
 * claim (PostgreSQL skips locked rows, draws the token and reads its lease from the
 * server's clock; SQLite holds the whole file's write lock), the renewal (server clock),
 * the batched inserts and completions of PostgreSQL (array parameters), and the sweeps.
 *
 * @module
 */

import type { NewTask, StoredSchedule } from "../../src/backend.ts";
import { laneOf, RECORD_VERSION } from "../../src/kit/policy.ts";
import { LIVE, UNSTARTED } from "./states.ts";
import type { Admission } from "./steps.ts";

/** How an engine spells the parts of a statement that differ between the SQL engines. */
export interface Dialect {
  /** A table's name as a statement writes it (PostgreSQL: qualified by the schema). */
  table(name: "tasks" | "deps" | "schedules" | "queues"): string;
  /**
   * The placeholder of the `n`-th parameter, from 1. SQLite's `?` does not say `n`, so each
   * statement here names its parameters in their order.
   */
  param(n: number): string;
  /** The placeholder of the `n`-th parameter when it is JSON text for a JSON column. */
  json(n: number): string;
  /** What a read that locks its rows for the transaction ends with (`""` where none do). */
  readonly lock: string;
  /** The same for a sweep's read, which passes over rows another transaction holds. */
  readonly skipLocked: string;
  /** A boolean as a literal of the engine (SQLite stores 0 and 1). */
  bool(value: boolean): string;
  /** The condition of an unpaused schedule, spelled as the engine's partial index spells it. */
  readonly unpaused: string;
}

/** SQLite: `?` placeholders, JSON as text, no row locks (a write locks the whole file). */
export const SQLITE: Dialect = {
  table: (name) => name,
  param: () => "?",
  json: () => "?",
  lock: "",
  skipLocked: "",
  bool: (value) => value ? "1" : "0",
  unpaused: "paused = 0",
};

/**
 * PostgreSQL in the schema `s` (quoted): numbered placeholders, JSON cast to `jsonb`,
 * `FOR UPDATE` on the reads that a transition follows, real booleans.
 */
export function postgresDialect(s: string): Dialect {
  return {
    table: (name) => `${s}.${name}`,
    param: (n) => `$${n}`,
    json: (n) => `$${n}::text::jsonb`,
    lock: " FOR UPDATE",
    skipLocked: " FOR UPDATE SKIP LOCKED",
    bool: (value) => String(value),
    unpaused: "NOT paused",
  };
}

/** The columns a fenced change returns: what `taskEvent` needs, and the record version. */
const REF = "v, id, queue, attempts";

/** A claim's fence: the row is running and the token is still its own. */
function fenced(d: Dialect, id: number): string {
  return `id = ${d.param(id)} AND state = 'running' AND token = ${d.param(id + 1)}`;
}

/** The states a task can be rerun from. */
const RERUNNABLE = "('failed', 'cancelled', 'expired')";

/** A value of a column, as both drivers take it. */
export type Value = string | number | boolean | Uint8Array | null;

// ---- a new task

/** The columns of `tasks` a new task fills, in the order {@linkcode taskValues} gives them. */
export const TASK_COLUMNS: readonly string[] = [
  "id",
  "v",
  "task",
  "queue",
  "priority",
  "state",
  "payload",
  "created_at",
  "run_at",
  "expires_at",
  "max_attempts",
  "backoff",
  "timeout",
  "result_ttl",
  "key",
  "on_dep_failure",
  "schedule_id",
  "completed_at",
  "error",
  "depends_on",
  "links",
  "dead_letter",
  "key_until",
  "age_after",
  "grp",
  "group_limit",
  "lane",
  "rate_key",
  "rate_limit",
  "rate_per",
];

/**
 * A new task's values for {@linkcode TASK_COLUMNS}: the state `admit` decided, and for a
 * task cancelled at once its end time (`now`) and error. JSON columns are text.
 */
export function taskValues(t: NewTask, admission: Admission, now: number): Value[] {
  const { state, error } = admission;
  return [
    t.id,
    RECORD_VERSION,
    t.task,
    t.queue,
    t.priority,
    state,
    t.payload,
    t.createdAt,
    t.runAt,
    t.expiresAt ?? null,
    t.maxAttempts,
    JSON.stringify(t.backoff),
    t.timeout ?? null,
    t.resultTtl ?? null,
    t.key ?? null,
    t.onDependencyFailure,
    t.scheduleId ?? null,
    error ? now : null,
    error ? JSON.stringify(error) : null,
    JSON.stringify(t.dependsOn),
    t.links === undefined ? null : JSON.stringify(t.links),
    t.deadLetter ?? null,
    t.keyUntil ?? null,
    t.ageAfter ?? null,
    t.group ?? null,
    t.group === undefined ? null : t.groupLimit ?? null,
    laneOf(t) ?? null,
    t.rate?.key ?? null,
    t.rate?.limit ?? null,
    t.rate?.per ?? null,
  ];
}

/**
 * Store one task: {@linkcode TASK_COLUMNS}, in order. No `ON CONFLICT`: an existing id
 * fails the insert. (PostgreSQL stores a batch in one statement of array parameters, its
 * own; the values are these.)
 */
export function insertTask(d: Dialect): string {
  const values = TASK_COLUMNS.map((c, i) =>
    ["backoff", "error", "depends_on", "links"].includes(c) ? d.json(i + 1) : d.param(i + 1)
  );
  return `INSERT INTO ${d.table("tasks")} (${TASK_COLUMNS.join(", ")})
     VALUES (${values.join(", ")})`;
}

// ---- a running attempt (fenced by its token)

/** Record progress: `(progress, id, token)`. */
export function setProgress(d: Dialect): string {
  return `UPDATE ${d.table("tasks")} SET progress = ${d.param(1)} WHERE ${fenced(d, 2)}
     RETURNING ${REF}`;
}

/**
 * Complete one attempt: `(completed_at, id, token)`. `returning` adds columns to the ref
 * (PostgreSQL's `has_dependents`).
 */
export function markCompleted(d: Dialect, returning = ""): string {
  return `UPDATE ${d.table("tasks")} SET state = 'completed', completed_at = ${d.param(1)},
       token = NULL, lease_until = NULL
     WHERE ${fenced(d, 2)}
     RETURNING ${REF}${returning}`;
}

/** Back to wait for a retry: `(state, run_at, error (JSON), id, token)`. */
export function markRetrying(d: Dialect): string {
  return `UPDATE ${d.table("tasks")} SET state = ${d.param(1)}, run_at = ${d.param(2)},
       error = ${d.json(3)}, token = NULL, lease_until = NULL
     WHERE ${fenced(d, 4)}
     RETURNING ${REF}`;
}

/** Fail for good: `(completed_at, error (JSON), id, token)`. */
export function markFailed(d: Dialect): string {
  return `UPDATE ${d.table("tasks")} SET state = 'failed', completed_at = ${d.param(1)},
       error = ${d.json(2)}, token = NULL, lease_until = NULL
     WHERE ${fenced(d, 3)}
     RETURNING ${REF}`;
}

/** A running attempt, locked where the engine locks rows: `(id, token)`. */
export function lockRunning(d: Dialect): string {
  return `SELECT * FROM ${d.table("tasks")} WHERE ${fenced(d, 1)}${d.lock}`;
}

/**
 * A task to its dead-letter queue, queued there now as new but for its error: `(queue,
 * run_at, error (JSON), id)`. Its `dead_letter` is cleared, so it moves once, and its ttl:
 * the move is a new start, no longer counted from the first enqueue.
 */
export function deadLetter(d: Dialect): string {
  return `UPDATE ${d.table("tasks")} SET queue = ${d.param(1)}, state = 'queued',
       run_at = ${d.param(2)}, attempts = 0, dead_letter = NULL, expires_at = NULL,
       error = ${d.json(3)}, progress = NULL, token = NULL, lease_until = NULL, worker = NULL
     WHERE id = ${d.param(4)}`;
}

// ---- ends, reruns and the cascade

/** A task to a final state: `(state, completed_at, error (JSON), id)`. */
export function end(d: Dialect): string {
  return `UPDATE ${d.table("tasks")} SET state = ${d.param(1)}, completed_at = ${d.param(2)},
       error = ${d.json(3)}, token = NULL, lease_until = NULL
     WHERE id = ${d.param(4)}`;
}

/** A stalled task back to its queue: `(run_at, id)`. */
export function requeue(d: Dialect): string {
  return `UPDATE ${d.table("tasks")} SET state = 'queued', run_at = ${d.param(1)}, token = NULL,
       lease_until = NULL
     WHERE id = ${d.param(2)}`;
}

/** A final task (but `completed`) run again as new: `(run_at, id)`. */
export function reset(d: Dialect): string {
  return `UPDATE ${d.table("tasks")} SET state = 'queued', attempts = 0, error = NULL,
       completed_at = NULL, started_at = NULL, progress = NULL, token = NULL,
       lease_until = NULL, run_at = ${d.param(1)}, expires_at = NULL
     WHERE id = ${d.param(2)} AND state IN ${RERUNNABLE}
     RETURNING ${REF}`;
}

/** A waiting task released (or any task's state set): `(state, id)`. */
export function setState(d: Dialect): string {
  return `UPDATE ${d.table("tasks")} SET state = ${d.param(1)} WHERE id = ${d.param(2)}`;
}

/** A live task, locked where the engine locks rows: `(id)`. */
export function lockLive(d: Dialect): string {
  return `SELECT * FROM ${d.table("tasks")} WHERE id = ${d.param(1)} AND state IN ${LIVE}${d.lock}`;
}

/** A task still waiting, locked where the engine locks rows: `(id)`. */
export function lockWaiting(d: Dialect): string {
  return `SELECT * FROM ${d.table("tasks")} WHERE id = ${
    d.param(1)
  } AND state = 'waiting'${d.lock}`;
}

/** The waiting dependents of a task, in enqueue order: `(id)`. */
export function waitingDependents(d: Dialect): string {
  return `SELECT t.id FROM ${d.table("deps")} d JOIN ${d.table("tasks")} t ON t.id = d.task_id
     WHERE d.depends_on = ${d.param(1)} AND t.state = 'waiting' ORDER BY t.seq`;
}

/**
 * Unstarted tasks whose ttl passed, for the sweep to expire, oldest deadline first:
 * `(now, version, limit)`. Rows of a newer record version are left to the OmniQ that
 * wrote them.
 */
export function expired(d: Dialect): string {
  return `SELECT * FROM ${d.table("tasks")}
     WHERE expires_at IS NOT NULL AND state IN ${UNSTARTED} AND expires_at <= ${d.param(1)}
       AND v <= ${d.param(2)}
     ORDER BY expires_at LIMIT ${d.param(3)}${d.skipLocked}`;
}

/** Whether a live dependency holds a task (`onDependencyFailure: "run"`): `(id)`. */
export function heldByLive(d: Dialect): string {
  return heldBy(d, `IN ${LIVE}`);
}

/** Whether an uncompleted dependency holds a task (`"cancel"`): `(id)`. */
export function heldByUncompleted(d: Dialect): string {
  return heldBy(d, "<> 'completed'");
}

/** Whether a dependency in a state matching `held` holds a task: `(id)`. */
function heldBy(d: Dialect, held: string): string {
  return `SELECT 1 FROM ${d.table("deps")} d JOIN ${d.table("tasks")} t ON t.id = d.depends_on
     WHERE d.task_id = ${d.param(1)} AND t.state ${held} LIMIT 1`;
}

// ---- schedules

/**
 * The compare-and-set of a tick: `(next_run_at, last_run_at, id, tick)`. Only the
 * scheduler that still sees `tick` as the next run of an unpaused schedule advances it.
 * `returning` is what the engine reads to know it did (PostgreSQL: a row).
 */
export function advanceSchedule(d: Dialect, returning = ""): string {
  return `UPDATE ${d.table("schedules")} SET next_run_at = ${d.param(1)},
       last_run_at = ${d.param(2)}
     WHERE id = ${d.param(3)} AND ${d.unpaused} AND next_run_at = ${d.param(4)}${returning}`;
}

/** Pause a schedule: `(id)`. */
export function pauseSchedule(d: Dialect): string {
  return `UPDATE ${d.table("schedules")} SET paused = ${d.bool(true)} WHERE id = ${d.param(1)}`;
}

/** Resume a schedule at its next run: `(next_run_at, id)`. */
export function resumeSchedule(d: Dialect): string {
  return `UPDATE ${d.table("schedules")} SET paused = ${d.bool(false)}, next_run_at = ${
    d.param(1)
  } WHERE id = ${d.param(2)}`;
}

// ---- queues

/**
 * Pause a queue: `(name)`. A row comes back only when it was not paused (a queue without a
 * row is not), so of two pauses at once one sees the change.
 */
export function pauseQueue(d: Dialect): string {
  return `INSERT INTO ${d.table("queues")} AS q (name, paused) VALUES (${d.param(1)}, ${
    d.bool(true)
  })
     ON CONFLICT (name) DO UPDATE SET paused = ${d.bool(true)} WHERE q.paused = ${d.bool(false)}
     RETURNING name`;
}

/** Resume a paused queue: `(name)`. A row comes back only when it was paused. */
export function resumeQueue(d: Dialect): string {
  return `UPDATE ${d.table("queues")} SET paused = ${d.bool(false)}
     WHERE name = ${d.param(1)} AND paused = ${d.bool(true)}
     RETURNING name`;
}

/** The paused queues, in no order. */
export function pausedQueues(d: Dialect): string {
  return `SELECT name FROM ${d.table("queues")} WHERE paused = ${d.bool(true)}`;
}

/**
 * Store the group a queue's grouped claim served last (its round-robin cursor): `(name,
 * group)`. A queue without a row gets one, not paused.
 */
export function setGroupCursor(d: Dialect): string {
  return `INSERT INTO ${d.table("queues")} (name, group_cursor)
     VALUES (${d.param(1)}, ${d.param(2)})
     ON CONFLICT (name) DO UPDATE SET group_cursor = excluded.group_cursor`;
}

/** The columns of `schedules`, in the order {@linkcode scheduleValues} gives them. */
export const SCHEDULE_COLUMNS: readonly string[] = [
  "id",
  "v",
  "task",
  "payload",
  "cron",
  "every",
  "tz",
  "start_at",
  "end_at",
  "misfire",
  "misfire_grace",
  "paused",
  "next_run_at",
  "last_run_at",
  "created_at",
  "queue",
  "priority",
  "max_attempts",
  "backoff",
  "timeout",
  "ttl",
  "result_ttl",
];

/** Store or replace a schedule: the columns of {@linkcode SCHEDULE_COLUMNS}, in order. */
export function putSchedule(d: Dialect): string {
  const values = SCHEDULE_COLUMNS.map((c, i) => c === "backoff" ? d.json(i + 1) : d.param(i + 1));
  const updates = SCHEDULE_COLUMNS.filter((c) => c !== "id").map((c) => `${c} = excluded.${c}`);
  return `INSERT INTO ${d.table("schedules")} (${SCHEDULE_COLUMNS.join(", ")})
     VALUES (${values.join(", ")})
     ON CONFLICT (id) DO UPDATE SET ${updates.join(", ")}`;
}

/**
 * A schedule's values for {@linkcode putSchedule}, in the order of
 * {@linkcode SCHEDULE_COLUMNS}; `bool` writes `paused` as the engine stores a boolean.
 */
export function scheduleValues(
  s: StoredSchedule,
  bool: (value: boolean) => number | boolean,
): Value[] {
  return [
    s.id,
    RECORD_VERSION,
    s.task,
    s.payload,
    s.cron ?? null,
    s.every ?? null,
    s.tz ?? null,
    s.startAt ?? null,
    s.endAt ?? null,
    s.misfire,
    s.misfireGrace,
    bool(s.paused),
    s.nextRunAt ?? null,
    s.lastRunAt ?? null,
    s.createdAt,
    s.queue,
    s.priority,
    s.maxAttempts,
    JSON.stringify(s.backoff),
    s.timeout ?? null,
    s.ttl ?? null,
    s.resultTtl ?? null,
  ];
}
