/**
 * SQLite migration 3: the queue controls. A task may name a dead-letter queue
 * (`tasks.dead_letter`, `NULL` when none), the queue it moves to once it has spent its
 * attempts; it may age (`tasks.age_after`, ms: a sweep raises a task queued that long to
 * priority 9) and hold its key past its end (`tasks.key_until`, epoch ms: a throttle
 * window); it may belong to a group (`tasks.grp`, with `tasks.group_limit`, the most of the
 * group's tasks running at once) and have a rate limit (`tasks.rate_key`, `rate_limit`,
 * `rate_per`: at most `rate_limit` starts of the bucket in `rate_per` ms); `tasks.lane` is
 * the lane it is claimed in (`laneOf`: its group, or without one `\u0001` and its rate
 * bucket; `NULL` when it has neither). The `queues` table holds what is set on a queue by name:
 * whether it is paused, and the group its grouped claims served last (`group_cursor`). A
 * queue without a row is not paused. Frozen: a change to the schema is a new migration.
 *
 * @module
 */

import type { Migration } from "./mod.ts";

/**
 * The `dead_letter`, `age_after`, `key_until`, `grp`, `group_limit`, `lane`, `rate_key`,
 * `rate_limit` and `rate_per` columns of tasks, their indexes, the ready index without
 * tasks that have a lane, and the `queues` table.
 */
export const queueControls: Migration = {
  version: 3,
  name: "queue_controls",
  // ADD COLUMN of a nullable column without a default rewrites no row; the new partial
  // indexes read the table once and hold none of its rows (no old row has the columns).
  // The aging sweep, the throttled key lookup and the claims repeat these WHERE terms and
  // the index expression literally (`backends/sql/states.ts`), as a partial index asks.
  // `tasks_ready` is built again (one read of the table) without the tasks that have a lane
  // (a group or a rate limit), so an ungrouped pick never passes over them; those have their
  // own indexes: queued (by queue and lane: the seek to a queue's next lane, a lane's head),
  // running (by group: its count against the limit) and started (by rate bucket and start:
  // a bucket's starts in a window).
  sql: `
ALTER TABLE tasks ADD COLUMN dead_letter TEXT;
ALTER TABLE tasks ADD COLUMN age_after INTEGER;
ALTER TABLE tasks ADD COLUMN key_until INTEGER;
ALTER TABLE tasks ADD COLUMN grp TEXT;
ALTER TABLE tasks ADD COLUMN group_limit INTEGER;
ALTER TABLE tasks ADD COLUMN lane TEXT;
ALTER TABLE tasks ADD COLUMN rate_key TEXT;
ALTER TABLE tasks ADD COLUMN rate_limit INTEGER;
ALTER TABLE tasks ADD COLUMN rate_per INTEGER;
DROP INDEX IF EXISTS tasks_ready;
CREATE INDEX tasks_ready ON tasks (queue, priority DESC, seq)
  WHERE state = 'queued' AND lane IS NULL;
CREATE INDEX IF NOT EXISTS tasks_group_ready ON tasks (queue, lane, priority DESC, seq)
  WHERE state = 'queued' AND lane IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_group_running ON tasks (grp)
  WHERE state = 'running' AND grp IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_rate_started ON tasks (rate_key, started_at)
  WHERE rate_key IS NOT NULL;
CREATE INDEX IF NOT EXISTS tasks_aging ON tasks (run_at + age_after)
  WHERE state = 'queued' AND age_after IS NOT NULL AND priority < 9;
CREATE INDEX IF NOT EXISTS tasks_throttled_key ON tasks (key, key_until)
  WHERE key_until IS NOT NULL;
CREATE TABLE IF NOT EXISTS queues (
  name TEXT PRIMARY KEY,
  paused INTEGER NOT NULL DEFAULT 0,
  group_cursor TEXT
) WITHOUT ROWID;
`,
};
