/**
 * SQLite migration 3: the queue controls. A task may name a dead-letter queue
 * (`tasks.dead_letter`, `NULL` when none), the queue it moves to once it has spent its
 * attempts; and the `queues` table holds what is set on a queue by name: for now whether
 * it is paused. A queue without a row is not paused. Frozen: a change to the schema is a
 * new migration.
 *
 * @module
 */

import type { Migration } from "./mod.ts";

/** The `dead_letter` column of tasks and the `queues` table. */
export const queueControls: Migration = {
  version: 3,
  name: "queue_controls",
  // ADD COLUMN of a nullable column without a default rewrites no row: a file of any size
  // migrates at once.
  sql: `
ALTER TABLE tasks ADD COLUMN dead_letter TEXT;
CREATE TABLE IF NOT EXISTS queues (
  name TEXT PRIMARY KEY,
  paused INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
`,
};
