/**
 * SQLite migration 3: the queue controls. A task may name a dead-letter queue
 * (`tasks.dead_letter`, `NULL` when none), the queue it moves to once it has spent its
 * attempts; it may age (`tasks.age_after`, ms: a sweep raises a task queued that long to
 * priority 9) and hold its key past its end (`tasks.key_until`, epoch ms: a throttle
 * window). The `queues` table holds what is set on a queue by name: for now whether it is
 * paused. A queue without a row is not paused. Frozen: a change to the schema is a new
 * migration.
 *
 * @module
 */

import type { Migration } from "./mod.ts";

/**
 * The `dead_letter`, `age_after` and `key_until` columns of tasks, their indexes, and the
 * `queues` table.
 */
export const queueControls: Migration = {
  version: 3,
  name: "queue_controls",
  // ADD COLUMN of a nullable column without a default rewrites no row; the new partial
  // indexes read the table once and hold none of its rows (no old row has the columns).
  // The aging sweep and the throttled key lookup repeat these WHERE terms and the index
  // expression literally (`backends/sql/states.ts`), as a partial index asks.
  sql: `
ALTER TABLE tasks ADD COLUMN dead_letter TEXT;
ALTER TABLE tasks ADD COLUMN age_after INTEGER;
ALTER TABLE tasks ADD COLUMN key_until INTEGER;
CREATE INDEX IF NOT EXISTS tasks_aging ON tasks (run_at + age_after)
  WHERE state = 'queued' AND age_after IS NOT NULL AND priority < 9;
CREATE INDEX IF NOT EXISTS tasks_throttled_key ON tasks (key, key_until)
  WHERE key_until IS NOT NULL;
CREATE TABLE IF NOT EXISTS queues (
  name TEXT PRIMARY KEY,
  paused INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
`,
};
