/**
 * The state sets as SQL text, for `state IN …`. Partial indexes serve only queries that
 * repeat their `WHERE` terms literally, so the queries of both SQL engines spell these sets
 * exactly as their first migrations do.
 *
 * @module
 */

/** The states of a task that is not final. */
export const LIVE = "('waiting', 'scheduled', 'queued', 'running')";
/** The final states. */
export const FINAL = "('completed', 'failed', 'cancelled', 'expired')";
/** The states of a task that has not started (the ones a ttl expires). */
export const UNSTARTED = "('waiting', 'scheduled', 'queued')";
/** Rows handled per transaction by a sweep, so a big sweep never holds a lock long. */
export const SWEEP_BATCH = 500;

/**
 * The tasks a sweep may age (`NewTask.ageAfter`): queued below `AGED_PRIORITY` with an
 * `age_after`. The `WHERE` of the `tasks_aging` partial index, spelled as the migrations
 * spell it (with the 9 of `AGED_PRIORITY` as a literal: a frozen migration cannot follow
 * the constant).
 */
export const AGING = "state = 'queued' AND age_after IS NOT NULL AND priority < 9";
/** When a task of {@linkcode AGING} ages: the expression the `tasks_aging` index holds. */
export const AGES_AT = "run_at + age_after";
/**
 * The tasks that may hold their key past their end (a throttle window): the `WHERE` of the
 * `tasks_throttled_key` partial index.
 */
export const THROTTLED = "key_until IS NOT NULL";

/**
 * The tasks an ungrouped claim takes (priority, then FIFO): queued without a lane (no group
 * and no rate limit: `laneOf`). The `WHERE` of the `tasks_ready` partial index, so that pick
 * never passes over a row with a lane.
 */
export const READY = "state = 'queued' AND lane IS NULL";
/**
 * The queued tasks of lanes (`laneOf`: a group, or without one `\u0001` and the rate
 * bucket): the `WHERE` of the `tasks_group_ready` partial index on `(queue, lane, priority
 * DESC, seq)`, which gives a queue's next lane after another (a seek) and a lane's head.
 */
export const GROUP_READY = "state = 'queued' AND lane IS NOT NULL";
/**
 * The running tasks of groups: the `WHERE` of the `tasks_group_running` partial index on
 * `(grp)`, which counts a group's running tasks against its limit.
 */
export const GROUP_RUNNING = "state = 'running' AND grp IS NOT NULL";
/**
 * The tasks of rate buckets (`NewTask.rate`): the `WHERE` of the `tasks_rate_started`
 * partial index on `(rate_key, started_at)`, which counts a bucket's starts in a window (each
 * task once, at its latest start).
 */
export const RATED = "rate_key IS NOT NULL";
