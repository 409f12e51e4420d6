/**
 * PostgreSQL migration 4: the queue controls. A task may name a dead-letter queue
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
  version: 4,
  name: "queue_controls",
  // A nullable column without a default is a change of the catalog alone: no row is
  // rewritten, so a table of any size migrates at once.
  sql: (s) => `
ALTER TABLE ${s}.tasks ADD COLUMN dead_letter text;
CREATE TABLE ${s}.queues (
  name text PRIMARY KEY,
  paused boolean NOT NULL DEFAULT false
);
`,
};
