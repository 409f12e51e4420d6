/**
 * The SQL of the PostgreSQL engine, one statement per export. Each takes `s`, the quoted
 * schema name, and returns the text; postgres.js prepares a text once per connection and
 * reuses it, so a statement's text never varies with its data (lists travel as one array
 * or JSON parameter). The parameters each expects are listed after its name.
 *
 * The claim from one queue and the completion of a batch are single statements with
 * common table expressions: they are the hot path, one round trip each. The transitions
 * SQLite writes alike are spelled once, in `backends/sql/transitions.ts`, and taken here in
 * this engine's dialect.
 *
 * @module
 */

import { AGED_PRIORITY } from "../../src/kit/policy.ts";
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
import * as t from "../sql/transitions.ts";
import { postgresDialect } from "../sql/transitions.ts";

/** The server's clock in epoch ms: leases use it, so workers on skewed machines agree. */
const NOW_MS = "(extract(epoch from clock_timestamp()) * 1000)::int8";

// ---- wake-ups, events and results

/** Wake the workers of queues when the transaction commits: `(channel, queues[])`. */
export const NOTIFY = "SELECT pg_notify($1, q) FROM unnest($2::text[]) AS q";

/**
 * Append events, ids in the given order: `(events)`, a JSON array of objects with the
 * columns as keys.
 */
export function insertEvents(s: string): string {
  return `INSERT INTO ${s}.events (type, task_id, queue, at, attempt, data)
     SELECT e->>'type', e->>'task_id', e->>'queue', (e->>'at')::bigint,
       (e->>'attempt')::integer, nullif(e->'data', 'null'::jsonb)
     FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS x(e, n)
     ORDER BY n
     RETURNING id`;
}

/**
 * Store results, replacing those of the same tasks: `(version, task_ids[], states[],
 * values[] (hex), errors[] (JSON), completed_ats[], expires_ats[])`, one row per task.
 */
export function putResults(s: string): string {
  return `INSERT INTO ${s}.results (task_id, v, state, value, error, completed_at, expires_at)
     SELECT task_id, $1, state, decode(value, 'hex'), error::jsonb, completed_at, expires_at
     FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[])
       AS x(task_id, state, value, error, completed_at, expires_at)
     ON CONFLICT (task_id) DO UPDATE SET v = excluded.v, state = excluded.state,
       value = excluded.value, error = excluded.error, completed_at = excluded.completed_at,
       expires_at = excluded.expires_at`;
}

/** A result not expired: `(task_id, now)`. */
export function getResult(s: string): string {
  return `SELECT * FROM ${s}.results WHERE task_id = $1
     AND (expires_at IS NULL OR expires_at > $2)`;
}

/** Delete one result: `(task_id)`. */
export function deleteResult(s: string): string {
  return `DELETE FROM ${s}.results WHERE task_id = $1`;
}

/** Delete results: `(task_ids)`, a JSON array. */
export function deleteResults(s: string): string {
  return `DELETE FROM ${s}.results
     WHERE task_id IN (SELECT jsonb_array_elements_text($1::text::jsonb))`;
}

/** Delete expired results: `(now)`. */
export function sweepResults(s: string): string {
  return `DELETE FROM ${s}.results WHERE expires_at IS NOT NULL AND expires_at <= $1
     RETURNING 1`;
}

/** Delete events older than a time: `(before)`. */
export function sweepEvents(s: string): string {
  return `DELETE FROM ${s}.events WHERE at < $1 RETURNING 1`;
}

// ---- enqueue

/**
 * Lock keys for the transaction, in one order so two batches sharing keys cannot
 * deadlock: `(lock_space, keys[])`.
 */
export const LOCK_KEYS = `SELECT pg_advisory_xact_lock($1, hashtext(k))
   FROM (SELECT DISTINCT k FROM unnest($2::text[]) AS k ORDER BY k) AS ks`;

/**
 * The task holding each key (`holdsKey`): `(keys[], now)`. The oldest live task (the
 * `tasks_live_key` index), else the oldest whose throttle window (`key_until`) has not
 * passed, ended or not (the `tasks_throttled_key` index): the union of a probe of each
 * index, so the partial indexes serve it.
 */
export function keyOwners(s: string): string {
  return `SELECT DISTINCT ON (key) key, id, state, queue, attempts FROM (
       SELECT key, id, seq, state, queue, attempts, 0 AS rank FROM ${s}.tasks
       WHERE key = ANY($1::text[]) AND key IS NOT NULL AND state IN ${LIVE}
       UNION ALL
       SELECT key, id, seq, state, queue, attempts, 1 AS rank FROM ${s}.tasks
       WHERE key = ANY($1::text[]) AND ${THROTTLED} AND key_until > $2
     ) AS owners
     ORDER BY key, rank, seq`;
}

/**
 * A debounced enqueue's payload (hex) and due time on the unstarted task holding its key:
 * `(payload, run_at, now, id)`. A waiting task stays waiting; a scheduled or queued one is
 * queued or scheduled by its new due time.
 */
export function debounce(s: string): string {
  return `UPDATE ${s}.tasks SET payload = decode($1, 'hex'), run_at = $2::int8,
       state = CASE WHEN state = 'waiting' THEN 'waiting' WHEN $2::int8 <= $3::int8
         THEN 'queued' ELSE 'scheduled' END
     WHERE id = $4 AND state IN ('waiting', 'scheduled', 'queued')`;
}

/** A running task gives its key up to a debounced enqueue: `(id)`. */
export function dropKey(s: string): string {
  return `UPDATE ${s}.tasks SET key = NULL WHERE id = $1 AND state = 'running'`;
}

/**
 * Lock dependencies in id order and mark the live ones as having dependents, returning
 * their states: `(ids[])`.
 */
export function lockDependencies(s: string): string {
  return `WITH locked AS (
       SELECT id, state, has_dependents FROM ${s}.tasks WHERE id = ANY($1::text[])
       ORDER BY id FOR UPDATE
     ), marked AS (
       UPDATE ${s}.tasks t SET has_dependents = true FROM locked l
       WHERE t.id = l.id AND l.state IN ${LIVE} AND NOT l.has_dependents
     )
     SELECT id, state FROM locked`;
}

/**
 * Store tasks, in order: `(version, ids[], tasks[], queues[], priorities[], states[],
 * payloads[] (hex), created_ats[], run_ats[], expires_ats[], max_attempts[], backoffs[],
 * timeouts[], result_ttls[], keys[], on_dep_failures[], schedule_ids[], completed_ats[],
 * errors[], depends_ons[], links[], dead_letters[], key_untils[], age_afters[], grps[],
 * group_limits[], lanes[], rate_keys[], rate_limits[], rate_pers[], has_dependents[]
 * ("t"/"f"))`: the columns of `TASK_COLUMNS` but `v`, in
 * order, then `has_dependents`. No `ON CONFLICT`: an existing id fails the insert, and with
 * it the transaction.
 */
export function insertTasks(s: string): string {
  return `INSERT INTO ${s}.tasks (id, v, task, queue, priority, state, payload, created_at,
       run_at, expires_at, max_attempts, backoff, timeout, result_ttl, key, on_dep_failure,
       schedule_id, completed_at, error, depends_on, links, dead_letter, key_until,
       age_after, grp, group_limit, lane, rate_key, rate_limit, rate_per, has_dependents)
     SELECT id, $1, task, queue, priority, state, decode(payload, 'hex'), created_at, run_at,
       expires_at,
       max_attempts, backoff::jsonb, timeout, result_ttl, key, on_dep_failure, schedule_id,
       completed_at, error::jsonb, depends_on::jsonb, links::jsonb, dead_letter, key_until,
       age_after, grp, group_limit, lane, rate_key, rate_limit, rate_per, has_dependents::bool
     FROM unnest($2::text[], $3::text[], $4::text[], $5::int4[], $6::text[], $7::text[],
       $8::int8[], $9::int8[], $10::int8[], $11::int4[], $12::text[], $13::int8[],
       $14::int8[], $15::text[], $16::text[], $17::text[], $18::int8[], $19::text[],
       $20::text[], $21::text[], $22::text[], $23::int8[], $24::int8[], $25::text[],
       $26::int4[], $27::text[], $28::text[], $29::int4[], $30::int8[], $31::text[])
       WITH ORDINALITY AS x(id, task, queue, priority, state, payload, created_at, run_at,
         expires_at, max_attempts, backoff, timeout, result_ttl, key, on_dep_failure,
         schedule_id, completed_at, error, depends_on, links, dead_letter, key_until,
         age_after, grp, group_limit, lane, rate_key, rate_limit, rate_per, has_dependents, n)
     ORDER BY n`;
}

/** Store dependency links: `(task_ids[], depends_ons[])`. */
export function insertDeps(s: string): string {
  return `INSERT INTO ${s}.deps (task_id, depends_on)
     SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`;
}

/** Whether a task exists: `(id)`. */
export function taskExists(s: string): string {
  return `SELECT 1 FROM ${s}.tasks WHERE id = $1`;
}

// ---- reads

/** A task: `(id)`. */
export function getTask(s: string): string {
  return `SELECT * FROM ${s}.tasks WHERE id = $1`;
}

/** Counts by queue and state. */
export function stats(s: string): string {
  return `SELECT queue, state, count(*)::int8 AS n FROM ${s}.tasks GROUP BY queue, state`;
}

/** The earliest scheduled task of some queues: `(queues)`, a JSON array. */
export function nextDue(s: string): string {
  return `SELECT min(run_at) AS due FROM ${s}.tasks WHERE state = 'scheduled'
     AND queue IN (SELECT jsonb_array_elements_text($1::text::jsonb))`;
}

// ---- planner statistics

/**
 * Whether the tasks table changed by more rows than it held at its last `ANALYZE` (and by
 * more than 1,000), taking the schema's statistics lock when it did, so one process of
 * several refreshes them: `(lockSpace)`. One row `{ stale: true }`, or none.
 */
export function tasksStale(s: string): string {
  return `SELECT pg_try_advisory_xact_lock($1, 1) AS stale
     FROM pg_stat_user_tables st JOIN pg_class c ON c.oid = st.relid
     WHERE st.relid = '${s}.tasks'::regclass AND st.n_mod_since_analyze > 1000
       AND st.n_mod_since_analyze > greatest(c.reltuples, 0)`;
}

// ---- claim

/**
 * The condition that a queue is not paused, for a claim's own statement: a pause committed
 * before the statement started holds it, whatever process made it. PostgreSQL tests it once
 * (a one-time filter), before it reads the queue's tasks.
 *
 * @param s The schema.
 * @param name The queue's name in the statement: a placeholder or a column.
 */
function queueOpen(s: string, name: string): string {
  return `NOT EXISTS (SELECT 1 FROM ${s}.queues WHERE name = ${name} AND paused = true)`;
}

/**
 * Whether some queues have a task to claim, or a scheduled task to queue, without a lock:
 * `(queues[], now)`. The queued tasks of a paused queue do not count (an idle poll opens
 * no transaction for them); its due scheduled tasks do, once: the claim queues them, so
 * `nextDue` stops naming them.
 */
export function ready(s: string): string {
  // One probe of each ready index per queue (a LATERAL with a LIMIT is not flattened into
  // a join): a list built by a subquery would leave the planner no estimate, and it would
  // read the whole table. Each probe asks for its index's order, so the planner cannot bet
  // on reading the table from its start instead. A queued grouped task counts even when its
  // group is at its limit: which groups are is the claim's to find.
  return `SELECT EXISTS (SELECT 1 FROM unnest($1::text[]) AS q(name)
       CROSS JOIN LATERAL (SELECT 1 FROM ${s}.tasks
         WHERE ${READY} AND queue = q.name ORDER BY priority DESC, seq LIMIT 1) AS t
       WHERE ${queueOpen(s, "q.name")})
     OR EXISTS (SELECT 1 FROM unnest($1::text[]) AS q(name)
       CROSS JOIN LATERAL (SELECT 1 FROM ${s}.tasks
         WHERE ${GROUP_READY} AND queue = q.name ORDER BY lane LIMIT 1) AS t
       WHERE ${queueOpen(s, "q.name")})
     OR EXISTS (SELECT 1 FROM ${s}.tasks WHERE state = 'scheduled'
       AND queue = ANY($1::text[]) AND run_at <= $2)
     AS ready`;
}

/** Queue the due scheduled tasks of some queues, skipping locked rows: `(queues[], now)`. */
export function promoteDue(s: string): string {
  return `UPDATE ${s}.tasks SET state = 'queued' WHERE seq IN (
     SELECT seq FROM ${s}.tasks WHERE state = 'scheduled'
       AND queue = ANY($1::text[]) AND run_at <= $2
     FOR UPDATE SKIP LOCKED)`;
}

/**
 * Start the next ungrouped tasks of a queue, by priority then FIFO, skipping rows another
 * worker is claiming, none while the queue is paused: `(queue, now, version, limit, lease,
 * worker)`. Rows of a newer record version are left to the newer OmniQ that wrote them.
 */
export function claim(s: string): string {
  return `WITH picked AS (
       SELECT seq FROM ${s}.tasks
       WHERE ${READY} AND queue = $1 AND (expires_at IS NULL OR expires_at > $2)
         AND v <= $3 AND ${queueOpen(s, "$1")}
       ORDER BY priority DESC, seq LIMIT $4
       FOR UPDATE SKIP LOCKED)
     UPDATE ${s}.tasks t SET state = 'running', attempts = t.attempts + 1,
       token = gen_random_uuid()::text, lease_until = ${NOW_MS} + $5, started_at = $2,
       worker = $6
     FROM picked WHERE t.seq = picked.seq
     RETURNING t.*`;
}

/**
 * The claim from one queue's ungrouped tasks, outside a transaction, with its `started`
 * events when `logged`: `(queue, now, version, limit, lease, worker)`. It takes nothing
 * when a scheduled task of the queue is due (the first row's `due` is true then), paused or
 * not, nor while the queue is paused. Each row is a started task and its event's id; one
 * row of nulls but `due` and `grouped` when none was taken. `grouped` says whether the
 * queue, unpaused, has queued grouped tasks (a probe of `tasks_group_ready`), for the group
 * claim to follow when this one comes back short.
 */
export function claimOne(s: string, logged: boolean): string {
  return `WITH due AS (
       SELECT EXISTS (SELECT 1 FROM ${s}.tasks WHERE state = 'scheduled' AND queue = $1
         AND run_at <= $2) AS found, ${hasGroups(s)} AS grouped
     ), picked AS (
       SELECT seq FROM ${s}.tasks
       WHERE ${READY} AND queue = $1 AND (expires_at IS NULL OR expires_at > $2)
         AND v <= $3 AND NOT (SELECT found FROM due) AND ${queueOpen(s, "$1")}
       ORDER BY priority DESC, seq LIMIT $4
       FOR UPDATE SKIP LOCKED
     ), claimed AS (
       UPDATE ${s}.tasks t SET state = 'running', attempts = t.attempts + 1,
         token = gen_random_uuid()::text, lease_until = ${NOW_MS} + $5, started_at = $2,
         worker = $6
       FROM picked WHERE t.seq = picked.seq
       RETURNING t.*
     )${
    logged
      ? `, logged AS (
       INSERT INTO ${s}.events (type, task_id, queue, at, attempt)
       SELECT 'started', id, queue, $2, attempts FROM claimed ORDER BY priority DESC, seq
       RETURNING id AS event_id, task_id)`
      : ""
  }
     SELECT claimed.*, ${logged ? "logged.event_id" : "NULL::int8 AS event_id"},
       due.found AS due, due.grouped
     FROM due LEFT JOIN claimed ON true
     ${logged ? "LEFT JOIN logged ON logged.task_id = claimed.id" : ""}`;
}

/**
 * Whether the queue `$1`, unpaused, has a queued task with a lane (a group or a rate
 * limit): a probe of `tasks_group_ready`. In the index's order, with a `LIMIT`: an `EXISTS` would let the
 * planner read the table from its start, betting on a match soon, which is no bet when the
 * grouped rows are few or all at its end.
 */
function hasGroups(s: string): string {
  return `((SELECT lane FROM ${s}.tasks WHERE ${GROUP_READY} AND queue = $1
         ORDER BY lane LIMIT 1) IS NOT NULL
       AND ${queueOpen(s, "$1")})`;
}

/**
 * Whether a queue, unpaused, has a queued task with a lane: `(queue)`. One row, `grouped`.
 */
export function groupsQueued(s: string): string {
  return `SELECT ${hasGroups(s)} AS grouped`;
}

/**
 * The first lane of a queue after a name, by name, with a queued task, and an attempt at
 * its advisory locks: `(group_lock_space, queue, after, rate_lock_space)`. A lane is a
 * group, or without one `\u0001` and a rate bucket (`laneOf`); `after` is `NULL` for the
 * queue's group cursor (the lane its lane claims served last; none: the first lane), `""`
 * for the first lane (no lane is named `""`). One row: `cursor` (the stored one), `lane`
 * (`NULL` when there is none after), `rate_key`, the rate bucket of the lane's head as this
 * statement sees it (`NULL`: none), and `locked`, whether this transaction holds the lane's
 * lock now and, when its head has a rate bucket, the bucket's too
 * (`pg_try_advisory_xact_lock`, the bucket's tried only once the lane's is held: never
 * waits, so two claims cannot deadlock; a lane or bucket another claim holds is skipped, as
 * `SKIP LOCKED` skips a row). A seek in `tasks_group_ready`: its first row after the name is
 * the next lane's head.
 */
export function nextGroup(s: string): string {
  return `SELECT c.cursor, g.lane, g.rate_key,
       CASE WHEN g.lane IS NULL THEN NULL
         WHEN NOT pg_try_advisory_xact_lock($1, hashtext(g.lane)) THEN false
         WHEN g.rate_key IS NULL THEN true
         ELSE pg_try_advisory_xact_lock($4, hashtext(g.rate_key)) END AS locked
     FROM (SELECT (SELECT group_cursor FROM ${s}.queues WHERE name = $2) AS cursor) AS c
     LEFT JOIN LATERAL (SELECT lane, rate_key FROM ${s}.tasks
       WHERE ${GROUP_READY} AND queue = $2 AND lane > coalesce($3::text, c.cursor, '')
       ORDER BY lane, priority DESC, seq LIMIT 1) AS g ON true`;
}

/**
 * Start a lane's next task in a queue (by priority, then FIFO) when it has room
 * (`laneRoom`), none while the queue is paused: `(queue, lane, now, version, lease, worker,
 * rate_key)`. With a group, the group's running tasks, in every queue, are fewer than its
 * `group_limit` (1 when none); with a rate limit, its bucket is the one locked (`rate_key`)
 * and fewer than its `rate_limit` of the bucket's tasks started in `(now - rate_per, now]`
 * (each once, at its latest start). The caller holds the lane's advisory lock and the
 * bucket's (`nextGroup`), taken in an earlier statement: this statement's snapshot, taken
 * after them, sees every start of the claims that held them before, so the counts and the
 * start are one step for the lane and the bucket. A row when it started one. The window
 * ends at the server's clock read once as the statement runs (an init plan, so the count is
 * a range of `tasks_rate_started`), and the start's `started_at` is the server's clock as
 * the start runs, after its snapshot and not before that end: later than the end of every
 * attempt it did not count as running, so the event log never shows more of the group at
 * once than ran (the client's clock, read before the lock, could be earlier), nor more of
 * a bucket's starts in a window than its limit.
 */
export function claimGroupHead(s: string): string {
  return `WITH head AS (
       SELECT seq, grp, coalesce(group_limit, 1) AS cap, rate_key, rate_limit, rate_per
       FROM ${s}.tasks
       WHERE ${GROUP_READY} AND queue = $1 AND lane = $2
         AND (expires_at IS NULL OR expires_at > $3) AND v <= $4 AND ${queueOpen(s, "$1")}
       ORDER BY priority DESC, seq LIMIT 1
       FOR UPDATE SKIP LOCKED)
     UPDATE ${s}.tasks t SET state = 'running', attempts = t.attempts + 1,
       token = gen_random_uuid()::text, lease_until = ${NOW_MS} + $5, started_at = ${NOW_MS},
       worker = $6
     FROM head
     WHERE t.seq = head.seq
       AND (head.grp IS NULL
         OR (SELECT count(*) FROM ${s}.tasks WHERE ${GROUP_RUNNING} AND grp = head.grp)
           < head.cap)
       AND (head.rate_key IS NULL OR (head.rate_key = $7::text
         AND (SELECT count(*) FROM (SELECT 1 FROM ${s}.tasks
             WHERE ${RATED} AND rate_key = head.rate_key
               AND started_at > (SELECT ${NOW_MS}) - head.rate_per
             LIMIT head.rate_limit) AS r) < head.rate_limit))
     RETURNING t.*`;
}

/** Store a queue's group cursor: `(queue, group)`. */
export function setGroupCursor(s: string): string {
  return t.setGroupCursor(postgresDialect(s));
}

// ---- a running attempt (fenced by its token)

/** Extend a lease, on the server's clock: `(lease, id, token)`. */
export function renew(s: string): string {
  return `UPDATE ${s}.tasks SET lease_until = ${NOW_MS} + $1
     WHERE id = $2 AND state = 'running' AND token = $3 RETURNING 1`;
}

/** Record progress: `(progress, id, token)`. */
export function setProgress(s: string): string {
  return t.setProgress(postgresDialect(s));
}

/**
 * Complete a batch of attempts of tasks no other task depends on, storing their results
 * when `kept` and their events when `logged`: `(ids[], tokens[], completed_ats[],
 * states[], values[] (hex), errors[] (JSON), expires_ats[], version)`. Each row is a task
 * it completed, with its event's id; an attempt it leaves out changed nothing.
 */
export function completeAlone(s: string, kept: boolean, logged: boolean): string {
  return `WITH input AS (
       SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[],
         $6::text[], $7::int8[])
         WITH ORDINALITY AS x(id, token, completed_at, state, value, error, expires_at, n)
     ), done AS (
       UPDATE ${s}.tasks t SET state = 'completed', completed_at = i.completed_at,
         token = NULL, lease_until = NULL
       FROM input i
       WHERE t.id = i.id AND t.state = 'running' AND t.token = i.token AND t.v <= $8
         AND NOT t.has_dependents
       RETURNING t.v, t.id, t.queue, t.attempts, i.n, i.completed_at, i.state, i.value,
         i.error, i.expires_at
     )${
    kept
      ? `, kept AS (
       INSERT INTO ${s}.results (task_id, v, state, value, error, completed_at,
         expires_at)
       SELECT id, $8, state, decode(value, 'hex'), error::jsonb, completed_at, expires_at
       FROM done
       ON CONFLICT (task_id) DO UPDATE SET v = excluded.v, state = excluded.state,
         value = excluded.value, error = excluded.error,
         completed_at = excluded.completed_at, expires_at = excluded.expires_at)`
      : ""
  }${
    logged
      ? `, logged AS (
       INSERT INTO ${s}.events (type, task_id, queue, at, attempt)
       SELECT 'completed', id, queue, completed_at, nullif(attempts, 0) FROM done ORDER BY n
       RETURNING id, task_id)`
      : ""
  }
     SELECT done.v, done.id, done.queue, done.attempts,
       ${logged ? "logged.id" : "NULL::int8"} AS event_id
     FROM done ${logged ? "LEFT JOIN logged ON logged.task_id = done.id" : ""}`;
}

/** Complete one attempt: `(completed_at, id, token)`. */
export function markCompleted(s: string): string {
  return t.markCompleted(postgresDialect(s), ", has_dependents");
}

/** Back to wait for a retry: `(state, run_at, error (JSON), id, token)`. */
export function markRetrying(s: string): string {
  return t.markRetrying(postgresDialect(s));
}

/** Fail for good: `(completed_at, error (JSON), id, token)`. */
export function markFailed(s: string): string {
  return t.markFailed(postgresDialect(s));
}

/** A running attempt, locked: `(id, token)`. */
export function lockRunning(s: string): string {
  return t.lockRunning(postgresDialect(s));
}

/** A task to its dead-letter queue: `(queue, run_at, error (JSON), id)`. */
export function deadLetter(s: string): string {
  return t.deadLetter(postgresDialect(s));
}

// ---- ends, reruns and the cascade

/** A live task, locked: `(id)`. */
export function lockLive(s: string): string {
  return t.lockLive(postgresDialect(s));
}

/** A task to a final state: `(state, completed_at, error (JSON), id)`. */
export function end(s: string): string {
  return t.end(postgresDialect(s));
}

/** A stalled task back to its queue: `(run_at, id)`. */
export function requeue(s: string): string {
  return t.requeue(postgresDialect(s));
}

/** A final task run again as new: `(run_at, id)`. */
export function reset(s: string): string {
  return t.reset(postgresDialect(s));
}

/** The waiting dependents of a task, in enqueue order: `(id)`. */
export function waitingDependents(s: string): string {
  return t.waitingDependents(postgresDialect(s));
}

/** A task still waiting, locked: `(id)`. */
export function lockWaiting(s: string): string {
  return t.lockWaiting(postgresDialect(s));
}

/** Whether a live dependency holds a task (`onDependencyFailure: "run"`): `(id)`. */
export function heldByLive(s: string): string {
  return t.heldByLive(postgresDialect(s));
}

/** Whether an uncompleted dependency holds a task (`"cancel"`): `(id)`. */
export function heldByUncompleted(s: string): string {
  return t.heldByUncompleted(postgresDialect(s));
}

/** A task's state set: `(state, id)`. */
export function setState(s: string): string {
  return t.setState(postgresDialect(s));
}

// ---- sweep

/**
 * Running tasks whose lease lapsed on the server's clock, the one that set it, locked:
 * `(version, limit)`.
 */
export function stalled(s: string): string {
  return `SELECT * FROM ${s}.tasks WHERE state = 'running' AND lease_until < ${NOW_MS}
       AND v <= $1
     ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED`;
}

/** Unstarted tasks whose ttl passed, locked: `(now, version, limit)`. */
export function expired(s: string): string {
  return t.expired(postgresDialect(s));
}

/**
 * Raise queued tasks past their `ageAfter` to `AGED_PRIORITY`, the longest overdue first,
 * in the order of the `tasks_aging` index, skipping rows another transaction holds: `(now,
 * version, limit)`. Each row is a raised task's ref and `old_priority`, the priority it had,
 * in that order. Rows of a newer record version are left to the OmniQ that wrote them.
 */
export function raiseAged(s: string): string {
  return `WITH picked AS (
       SELECT seq, priority, ${AGES_AT} AS ages_at FROM ${s}.tasks
       WHERE ${AGING} AND ${AGES_AT} <= $1 AND v <= $2
       ORDER BY ${AGES_AT} LIMIT $3
       FOR UPDATE SKIP LOCKED
     ), raised AS (
       UPDATE ${s}.tasks t SET priority = ${AGED_PRIORITY} FROM picked
       WHERE t.seq = picked.seq
       RETURNING t.v, t.id, t.queue, t.attempts, picked.priority AS old_priority,
         picked.ages_at, t.seq
     )
     SELECT v, id, queue, attempts, old_priority FROM raised ORDER BY ages_at, seq`;
}

/** Delete final tasks ended before a time, returning their ids: `(before, limit)`. */
export function purge(s: string): string {
  return `DELETE FROM ${s}.tasks WHERE seq IN (
       SELECT seq FROM ${s}.tasks WHERE state IN ${FINAL} AND completed_at < $1
       LIMIT $2 FOR UPDATE SKIP LOCKED)
     RETURNING id`;
}

/** Delete the dependency links of tasks: `(ids)`, a JSON array. */
export function deleteDeps(s: string): string {
  return `DELETE FROM ${s}.deps
     WHERE task_id IN (SELECT jsonb_array_elements_text($1::text::jsonb))`;
}

// ---- queues

/** Pause a queue, returning a row if it was not paused: `(name)`. */
export function pauseQueue(s: string): string {
  return t.pauseQueue(postgresDialect(s));
}

/** Resume a queue, returning a row if it was paused: `(name)`. */
export function resumeQueue(s: string): string {
  return t.resumeQueue(postgresDialect(s));
}

/** The paused queues, in no order. */
export function pausedQueues(s: string): string {
  return t.pausedQueues(postgresDialect(s));
}

// ---- schedules

/** Store or replace a schedule: the 22 columns in order (`backoff` as JSON text). */
export function putSchedule(s: string): string {
  return t.putSchedule(postgresDialect(s));
}

/** A schedule: `(id)`. */
export function getSchedule(s: string): string {
  return `SELECT * FROM ${s}.schedules WHERE id = $1`;
}

/** Every schedule, by id (bytewise, as every engine orders them). */
export function listSchedules(s: string): string {
  return `SELECT * FROM ${s}.schedules ORDER BY id COLLATE "C"`;
}

/** Whether a schedule is paused, locked: `(id)`. */
export function lockPaused(s: string): string {
  return `SELECT paused FROM ${s}.schedules WHERE id = $1 FOR UPDATE`;
}

/** Pause a schedule: `(id)`. */
export function pauseSchedule(s: string): string {
  return t.pauseSchedule(postgresDialect(s));
}

/** Resume a schedule: `(next_run_at, id)`. */
export function resumeSchedule(s: string): string {
  return t.resumeSchedule(postgresDialect(s));
}

/** Delete a schedule: `(id)`. */
export function deleteSchedule(s: string): string {
  return `DELETE FROM ${s}.schedules WHERE id = $1 RETURNING 1`;
}

/** Schedules due by a time: `(now, limit)`. */
export function dueSchedules(s: string): string {
  return `SELECT * FROM ${s}.schedules
     WHERE NOT paused AND next_run_at IS NOT NULL AND next_run_at <= $1
     ORDER BY next_run_at, id COLLATE "C" LIMIT $2`;
}

/** The next run of any unpaused schedule. */
export function nextScheduleAt(s: string): string {
  return `SELECT min(next_run_at) AS next FROM ${s}.schedules
     WHERE NOT paused AND next_run_at IS NOT NULL`;
}

/**
 * The compare-and-set of a tick: `(next_run_at, last_run_at, id, tick)`. A second
 * scheduler waits on the row lock, then finds `next_run_at` moved on and updates nothing.
 */
export function advanceSchedule(s: string): string {
  return t.advanceSchedule(postgresDialect(s), " RETURNING 1");
}
