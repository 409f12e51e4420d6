/**
 * PostgreSQL migration 4: the queue controls. A task may name a dead-letter queue
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
  version: 4,
  name: "queue_controls",
  // A nullable column without a default is a change of the catalog alone: no row is
  // rewritten. The new partial indexes read the table once (holding off writes meanwhile)
  // and hold none of its rows (no old row has the columns). The aging sweep, the throttled
  // key lookup and the claims repeat these WHERE terms and the index expression
  // (`backends/sql/states.ts`), as a partial index asks. `tasks_ready` is built again (one
  // read of the table) without the tasks that have a lane (a group or a rate limit), so an
  // ungrouped claim never passes over them; those have their own indexes: queued (by queue
  // and lane: the seek to a queue's next lane, a lane's head), running (by group: its count
  // against the limit) and started (by rate bucket and start: a bucket's starts in a
  // window). Lane and group names compare bytewise (`COLLATE "C"`), as the cursor's seek and
  // every engine order them.
  sql: (s) => `
ALTER TABLE ${s}.tasks ADD COLUMN dead_letter text;
ALTER TABLE ${s}.tasks ADD COLUMN age_after bigint;
ALTER TABLE ${s}.tasks ADD COLUMN key_until bigint;
ALTER TABLE ${s}.tasks ADD COLUMN grp text COLLATE "C";
ALTER TABLE ${s}.tasks ADD COLUMN group_limit integer;
ALTER TABLE ${s}.tasks ADD COLUMN lane text COLLATE "C";
ALTER TABLE ${s}.tasks ADD COLUMN rate_key text COLLATE "C";
ALTER TABLE ${s}.tasks ADD COLUMN rate_limit integer;
ALTER TABLE ${s}.tasks ADD COLUMN rate_per bigint;
DROP INDEX IF EXISTS ${s}.tasks_ready;
CREATE INDEX tasks_ready ON ${s}.tasks (queue, priority DESC, seq)
  WHERE state = 'queued' AND lane IS NULL;
CREATE INDEX tasks_group_ready ON ${s}.tasks (queue, lane, priority DESC, seq)
  WHERE state = 'queued' AND lane IS NOT NULL;
CREATE INDEX tasks_group_running ON ${s}.tasks (grp)
  WHERE state = 'running' AND grp IS NOT NULL;
CREATE INDEX tasks_rate_started ON ${s}.tasks (rate_key, started_at)
  WHERE rate_key IS NOT NULL;
CREATE INDEX tasks_aging ON ${s}.tasks ((run_at + age_after))
  WHERE state = 'queued' AND age_after IS NOT NULL AND priority < 9;
CREATE INDEX tasks_throttled_key ON ${s}.tasks (key, key_until)
  WHERE key_until IS NOT NULL;
CREATE TABLE ${s}.queues (
  name text PRIMARY KEY,
  paused boolean NOT NULL DEFAULT false,
  group_cursor text COLLATE "C"
);
`,
};
