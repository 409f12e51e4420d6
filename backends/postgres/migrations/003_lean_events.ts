/**
 * PostgreSQL migration 3: the events table keeps its indexes by task and by time, and
 * loses those by type and by queue. Every task writes two events or more, and each index
 * is a write (and WAL) per event: the two were about a seventh of an event's WAL
 * (`bench/server_cost.ts`). Queries by type or queue still work: they read in id order (or
 * within a time window) and filter. Frozen: a change to the schema is a new migration.
 *
 * @module
 */

import type { Migration } from "./mod.ts";

/** Drop the events indexes by type and by queue. */
export const leanEvents: Migration = {
  version: 3,
  name: "lean_events",
  sql: (s) => `
DROP INDEX IF EXISTS ${s}.events_by_type;
DROP INDEX IF EXISTS ${s}.events_by_queue;
`,
};
