/**
 * PostgreSQL migration 4: the queue controls. A task may name a dead-letter queue
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
  version: 4,
  name: "queue_controls",
  // A nullable column without a default is a change of the catalog alone: no row is
  // rewritten. The new partial indexes read the table once (holding off writes meanwhile)
  // and hold none of its rows (no old row has the columns). The aging sweep and the
  // throttled key lookup repeat these WHERE terms and the index expression
  // (`backends/sql/states.ts`), as a partial index asks.
  sql: (s) => `
ALTER TABLE ${s}.tasks ADD COLUMN dead_letter text;
ALTER TABLE ${s}.tasks ADD COLUMN age_after bigint;
ALTER TABLE ${s}.tasks ADD COLUMN key_until bigint;
CREATE INDEX tasks_aging ON ${s}.tasks ((run_at + age_after))
  WHERE state = 'queued' AND age_after IS NOT NULL AND priority < 9;
CREATE INDEX tasks_throttled_key ON ${s}.tasks (key, key_until)
  WHERE key_until IS NOT NULL;
CREATE TABLE ${s}.queues (
  name text PRIMARY KEY,
  paused boolean NOT NULL DEFAULT false
);
`,
};
