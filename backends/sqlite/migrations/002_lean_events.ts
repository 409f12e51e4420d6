/**
 * SQLite migration 2: the events table keeps its indexes by task and by time, and loses
 * those by type and by queue. Every task writes two events or more, and each index is a
 * write per event: on a no-op workload the two cost about a fifth of the processing rate
 * (`bench/throughput.ts`). Queries by type or queue still work: they read in id order
 * (or within a time window) and filter. Frozen: a change to the schema is a new migration.
 *
 * @module
 */

import type { Migration } from "./mod.ts";

/** Drop the events indexes by type and by queue. */
export const leanEvents: Migration = {
  version: 2,
  name: "lean_events",
  sql: `
DROP INDEX IF EXISTS events_by_type;
DROP INDEX IF EXISTS events_by_queue;
`,
};
