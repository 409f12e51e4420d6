/**
 * PostgreSQL migration 3: the events table keeps its indexes by task and by time, and
 * loses those by type and by queue. Every task writes two events or more, and each index
 * is a write (and WAL) per event: the two were about a seventh of an event's WAL
 * (`deno task bench:server`). Queries by type or queue still work: they read in id order
 * (or within a time window) and filter. The index by time becomes a BRIN index: events are
 * appended about in time order, only ranges of time are asked for (`since`/`until`, the
 * sweep), and a BRIN index is written once per block range, not once per row (another 6 %
 * less WAL per task). Frozen: a change to the schema is a new migration.
 *
 * @module
 */

import type { Migration } from "./mod.ts";

/** Drop the events indexes by type and by queue; the one by time becomes BRIN. */
export const leanEvents: Migration = {
  version: 3,
  name: "lean_events",
  sql: (s) => `
DROP INDEX IF EXISTS ${s}.events_by_type;
DROP INDEX IF EXISTS ${s}.events_by_queue;
DROP INDEX IF EXISTS ${s}.events_by_time;
CREATE INDEX events_by_time ON ${s}.events USING brin (at);
`,
};
