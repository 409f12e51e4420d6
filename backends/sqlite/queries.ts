/**
 * The SQL of the SQLite engine, one statement per export. The connection prepares each
 * text once and caches it, so these are constants (the few built from a filter are
 * composed where they are used, from `backends/sql/filters.ts`). The transitions PostgreSQL
 * writes alike are spelled once, in `backends/sql/transitions.ts`, and taken here in the
 * SQLite dialect.
 *
 * @module
 */

import {
  AGES_AT,
  AGING,
  FINAL,
  GROUP_READY,
  GROUP_RUNNING,
  LIVE,
  RATED,
  READY,
  THROTTLED,
} from "../sql/states.ts";
import { AGED_PRIORITY } from "../../src/kit/policy.ts";
import * as t from "../sql/transitions.ts";
import { SQLITE } from "../sql/transitions.ts";

// ---- enqueue

/**
 * The task holding a key (`holdsKey`): `(key, key, now)`. A live task (the `tasks_live_key`
 * index), else one whose throttle window (`key_until`) has not passed, ended or not (the
 * `tasks_throttled_key` index): two probes of an index each, the live one first.
 */
export const KEY_OWNER =
  `SELECT id, state FROM tasks WHERE key = ? AND key IS NOT NULL AND state IN ${LIVE}
   UNION ALL
   SELECT id, state FROM tasks WHERE key = ? AND ${THROTTLED} AND key_until > ?
   LIMIT 1`;

/**
 * A debounced enqueue's payload and due time on the unstarted task holding its key:
 * `(payload, run_at, run_at, now, id)`. A waiting task stays waiting; a scheduled or queued
 * one is queued or scheduled by its new due time.
 */
export const DEBOUNCE = `UPDATE tasks SET payload = ?, run_at = ?,
     state = CASE WHEN state = 'waiting' THEN 'waiting' WHEN ? <= ? THEN 'queued'
       ELSE 'scheduled' END
   WHERE id = ? RETURNING id, queue, attempts, state`;

/** A running task gives its key up to a debounced enqueue: `(id)`. */
export const DROP_KEY = "UPDATE tasks SET key = NULL WHERE id = ?";

/** A task's state: `(id)`. */
export const STATE_OF = "SELECT state FROM tasks WHERE id = ?";

/** Whether a task exists: `(id)`. */
export const TASK_EXISTS = "SELECT 1 FROM tasks WHERE id = ?";

/** Store a task: the columns of `TASK_COLUMNS`, in order. */
export const INSERT_TASK: string = t.insertTask(SQLITE);

/** Store a dependency link: `(task_id, depends_on)`. */
export const INSERT_DEP = "INSERT OR IGNORE INTO deps (task_id, depends_on) VALUES (?, ?)";

// ---- reads

/** A task: `(id)`. */
export const GET_TASK = "SELECT * FROM tasks WHERE id = ?";

/** Counts by queue and state. */
export const STATS = "SELECT queue, state, COUNT(*) AS n FROM tasks GROUP BY queue, state";

/** The earliest scheduled task of a queue: `(queue)`. */
export const NEXT_DUE =
  "SELECT MIN(run_at) AS due FROM tasks WHERE state = 'scheduled' AND queue = ?";

// ---- claim

/**
 * Whether a queue has a task to claim, without a lock: `(queue, queue, queue, now)`. A
 * queued grouped task counts even when its group is at its limit: which groups are is the
 * claim's to find.
 */
export const READY_IN_QUEUE = `SELECT 1 FROM tasks WHERE ${READY} AND queue = ?
   UNION ALL
   SELECT 1 FROM tasks WHERE ${GROUP_READY} AND queue = ?
   UNION ALL
   SELECT 1 FROM tasks WHERE state = 'scheduled' AND queue = ? AND run_at <= ?
   LIMIT 1`;

/** Queue the due scheduled tasks of a queue: `(queue, now)`. */
export const PROMOTE_DUE = `UPDATE tasks SET state = 'queued'
   WHERE state = 'scheduled' AND queue = ? AND run_at <= ?`;

/**
 * Whether a paused queue has a scheduled task to queue, without a lock: `(queue, now)`.
 * Its queued tasks do not count, so an idle poll takes no write lock for them; its due
 * scheduled tasks do, once: the claim queues them, so `nextDue` stops naming them.
 */
export const DUE_IN_QUEUE = `SELECT 1 FROM tasks WHERE state = 'scheduled' AND queue = ?
   AND run_at <= ? LIMIT 1`;

/**
 * The next ungrouped tasks of a queue, by priority then FIFO: `(queue, now, version,
 * limit)`. Rows of a newer record version are left to the newer OmniQ that wrote them.
 */
export const PICK = `SELECT seq FROM tasks
   WHERE ${READY} AND queue = ? AND (expires_at IS NULL OR expires_at > ?)
     AND v <= ?
   ORDER BY priority DESC, seq LIMIT ?`;

/**
 * Start the attempts of picked tasks, in one statement: `(claim, lease_until, started_at,
 * worker, seqs as a JSON array)`. Each attempt's token is the claim's (a fresh UUID) and
 * its task's sequence number, so no two attempts share one. Rows come back in no order.
 */
export const START = `UPDATE tasks SET state = 'running', attempts = attempts + 1,
     token = ? || '.' || seq, lease_until = ?, started_at = ?, worker = ?
   WHERE seq IN (SELECT value FROM json_each(?)) RETURNING *`;

/**
 * The first lane of a queue after a name, by name, with a queued task: `(queue, after)`
 * (`""` for the first lane: no lane is named `""`). A lane is a group, or without one
 * `\u0001` and a rate bucket (`laneOf`). A seek in `tasks_group_ready`.
 */
export const NEXT_GROUP = `SELECT lane FROM tasks
   WHERE ${GROUP_READY} AND queue = ? AND lane > ?
   ORDER BY lane LIMIT 1`;

/**
 * A lane's next task in a queue, by priority then FIFO, with what limits it: its group and
 * the group's limit as it names it, its rate limit: `(queue, lane, now, version)`.
 */
export const GROUP_HEAD = `SELECT seq, grp, group_limit, rate_key, rate_limit, rate_per FROM tasks
   WHERE ${GROUP_READY} AND queue = ? AND lane = ? AND (expires_at IS NULL OR expires_at > ?)
     AND v <= ?
   ORDER BY priority DESC, seq LIMIT 1`;

/**
 * How many tasks of a group are running, counted up to a bound (the limit at hand):
 * `(group, bound)`, in every queue.
 */
export const GROUP_RUNNING_COUNT = `SELECT COUNT(*) AS n FROM (
     SELECT 1 FROM tasks WHERE ${GROUP_RUNNING} AND grp = ? LIMIT ?)`;

/**
 * How many tasks of a rate bucket started after a time (each once, at its latest start, in
 * any state until purged), counted up to a bound (the limit at hand): `(key, after, bound)`.
 * A range of `tasks_rate_started`.
 */
export const RATE_STARTED_COUNT = `SELECT COUNT(*) AS n FROM (
     SELECT 1 FROM tasks WHERE ${RATED} AND rate_key = ? AND started_at > ? LIMIT ?)`;

/** The group a queue's grouped claims served last: `(queue)`. */
export const GROUP_CURSOR = "SELECT group_cursor FROM queues WHERE name = ?";

/** Store a queue's group cursor: `(queue, group)`. */
export const SET_GROUP_CURSOR: string = t.setGroupCursor(SQLITE);

// ---- a running attempt (fenced by its token)

/** Extend a lease: `(lease_until, id, token)`. */
export const RENEW =
  "UPDATE tasks SET lease_until = ? WHERE id = ? AND state = 'running' AND token = ?";

/** Record progress: `(progress, id, token)`. */
export const SET_PROGRESS: string = t.setProgress(SQLITE);

/** Complete: `(completed_at, id, token)`. */
export const MARK_COMPLETED: string = t.markCompleted(SQLITE);

/** Back to wait for a retry: `(state, run_at, error, id, token)`. */
export const MARK_RETRYING: string = t.markRetrying(SQLITE);

/** Fail for good: `(completed_at, error, id, token)`. */
export const MARK_FAILED: string = t.markFailed(SQLITE);

/** A running attempt: `(id, token)`. */
export const RUNNING_TASK: string = t.lockRunning(SQLITE);

/** A task to its dead-letter queue: `(queue, run_at, error, id)`. */
export const DEAD_LETTER: string = t.deadLetter(SQLITE);

// ---- ends, reruns and the cascade

/** A live task: `(id)`. */
export const LIVE_TASK: string = t.lockLive(SQLITE);

/** A task to a final state: `(state, completed_at, error, id)`. */
export const END: string = t.end(SQLITE);

/** A stalled task back to its queue: `(run_at, id)`. */
export const REQUEUE: string = t.requeue(SQLITE);

/** A final task run again as new: `(run_at, id)`. */
export const RESET: string = t.reset(SQLITE);

/** The waiting dependents of a task, in enqueue order: `(id)`. */
export const WAITING_DEPENDENTS: string = t.waitingDependents(SQLITE);

/** A task still waiting: `(id)`. */
export const WAITING_TASK: string = t.lockWaiting(SQLITE);

/** Whether a live dependency holds a task (`onDependencyFailure: "run"`): `(id)`. */
export const HELD_BY_LIVE: string = t.heldByLive(SQLITE);

/** Whether an uncompleted dependency holds a task (`"cancel"`): `(id)`. */
export const HELD_BY_UNCOMPLETED: string = t.heldByUncompleted(SQLITE);

/** A task's state set: `(state, id)`. */
export const SET_STATE: string = t.setState(SQLITE);

// ---- sweep

/** Running tasks whose lease lapsed: `(now, version, limit)`. */
export const STALLED = `SELECT * FROM tasks WHERE state = 'running' AND lease_until < ? AND v <= ?
   ORDER BY lease_until LIMIT ?`;

/** Unstarted tasks whose ttl passed: `(now, version, limit)`. */
export const EXPIRED: string = t.expired(SQLITE);

/** Final tasks ended before a time: `(before, limit)`. */
export const PURGEABLE = `SELECT id FROM tasks WHERE state IN ${FINAL} AND completed_at < ?
   LIMIT ?`;

/**
 * Queued tasks past their `ageAfter`, to raise, the longest overdue first: `(now, version,
 * limit)`, read in the order of the `tasks_aging` index. Rows of a newer record version are
 * left to the OmniQ that wrote them.
 */
export const AGED = `SELECT seq, v, id, queue, attempts, priority AS old_priority FROM tasks
   WHERE ${AGING} AND ${AGES_AT} <= ? AND v <= ?
   ORDER BY ${AGES_AT} LIMIT ?`;

/** Raise picked tasks to `AGED_PRIORITY`: `(seqs as a JSON array)`. */
export const RAISE = `UPDATE tasks SET priority = ${AGED_PRIORITY}
   WHERE seq IN (SELECT value FROM json_each(?))`;

/** Delete a task: `(id)`. */
export const DELETE_TASK = "DELETE FROM tasks WHERE id = ?";

/** Delete a task's dependency links: `(id)`. */
export const DELETE_DEPS = "DELETE FROM deps WHERE task_id = ?";

// ---- schedules

/** Store or replace a schedule: the 22 columns in order. */
export const PUT_SCHEDULE: string = t.putSchedule(SQLITE);

/** A schedule: `(id)`. */
export const GET_SCHEDULE = "SELECT * FROM schedules WHERE id = ?";

/** Every schedule, by id. */
export const LIST_SCHEDULES = "SELECT * FROM schedules ORDER BY id";

/** Whether a schedule is paused: `(id)`. */
export const SCHEDULE_PAUSED = "SELECT paused FROM schedules WHERE id = ?";

/** Pause a schedule: `(id)`. */
export const PAUSE_SCHEDULE: string = t.pauseSchedule(SQLITE);

/** Resume a schedule: `(next_run_at, id)`. */
export const RESUME_SCHEDULE: string = t.resumeSchedule(SQLITE);

/** Delete a schedule: `(id)`. */
export const DELETE_SCHEDULE = "DELETE FROM schedules WHERE id = ?";

/** Schedules due by a time: `(now, limit)`. */
export const DUE_SCHEDULES = `SELECT * FROM schedules
   WHERE paused = 0 AND next_run_at IS NOT NULL AND next_run_at <= ?
   ORDER BY next_run_at, id LIMIT ?`;

/** The next run of any unpaused schedule. */
export const NEXT_SCHEDULE_AT = `SELECT MIN(next_run_at) AS next FROM schedules
   WHERE paused = 0 AND next_run_at IS NOT NULL`;

/**
 * The compare-and-set of a tick: `(next_run_at, last_run_at, id, tick)`. Only the
 * scheduler that still sees `tick` as next advances it.
 */
export const ADVANCE_SCHEDULE: string = t.advanceSchedule(SQLITE);

// ---- queues

/** Pause a queue, returning a row if it was not paused: `(name)`. */
export const PAUSE_QUEUE: string = t.pauseQueue(SQLITE);

/** Resume a queue, returning a row if it was paused: `(name)`. */
export const RESUME_QUEUE: string = t.resumeQueue(SQLITE);

/**
 * The paused queues, in no order. A claim reads them in its own transaction, then leaves
 * the paused ones out: a condition on the queues table inside the claim's statement would
 * be tested on every row of a paused queue's index range (SQLite does not hoist it).
 */
export const PAUSED_QUEUES: string = t.pausedQueues(SQLITE);

// ---- results and events

/** Store or replace a result: `(task_id, v, state, value, error, completed_at, expires_at)`. */
export const PUT_RESULT =
  `INSERT OR REPLACE INTO results (task_id, v, state, value, error, completed_at, expires_at)
   VALUES (?, ?, ?, ?, ?, ?, ?)`;

/** A result not expired: `(task_id, now)`. */
export const GET_RESULT =
  "SELECT * FROM results WHERE task_id = ? AND (expires_at IS NULL OR expires_at > ?)";

/** Delete a result: `(task_id)`. */
export const DELETE_RESULT = "DELETE FROM results WHERE task_id = ?";

/** Delete expired results: `(now)`. */
export const SWEEP_RESULTS = "DELETE FROM results WHERE expires_at IS NOT NULL AND expires_at <= ?";

/** Append an event: `(type, task_id, queue, at, attempt, data)`. */
export const INSERT_EVENT =
  "INSERT INTO events (type, task_id, queue, at, attempt, data) VALUES (?, ?, ?, ?, ?, ?)";

/** Delete events older than a time: `(before)`. */
export const SWEEP_EVENTS = "DELETE FROM events WHERE at < ?";
