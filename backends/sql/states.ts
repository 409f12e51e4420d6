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
