// The `nats:` engine's limits and timings: the sizes it stores, the lock's heartbeat and
// staleness, the keys of its control records, how far a step may batch and wait.

/** The largest encoded argument list a task may have on this engine (bytes). */
export const NATS_MAX_PAYLOAD = 512 * 1024;
/** The largest encoded result value this engine stores (bytes). */
export const NATS_MAX_RESULT = 700 * 1024;
/** A lock whose revision has not changed for this long (ms) is taken to be a dead holder's. */
export const LOCK_STALE_MS = 5_000;

/** How often (ms) a holder renews the lock. */
export const LOCK_HEARTBEAT_MS = 1_000;
/** The lock's key. */
export const LOCK_KEY = "m.lock";
/** The sequence record's key (task and event counters; a step's commit point). */
export const SEQ_KEY = "m.seq";
/** The journal of the last step that changed several keys (see `NatsTx.commit`). */
export const JOURNAL_KEY = "m.journal";
/** Parts of a journal too large for one message: `m.j.<journal id>.<n>`. */
export const JOURNAL_PARTS = "m.j.";
/** The largest journal kept in one message (NATS's default limit is 1 MiB). */
export const JOURNAL_PART = 800_000;
/** The most steps that share one turn of the lock (and one commit). */
export const GROUP_MAX = 64;
/** Writes one commit keeps in flight at once. */
export const IN_FLIGHT = 512;
/** How long (ms) the mirror may take to reach a revision before the watch is restarted. */
export const WATCH_STALL_MS = 3_000;
/** How long (ms) the mirror may take to reach a revision before a step gives up. */
export const CATCH_UP_MS = 30_000;
