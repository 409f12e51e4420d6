/**
 * SQLite migration 1: the schema OmniQ created before migrations were numbered (a file
 * whose `meta.schema_version` is 1). Frozen: a change to the schema is a new migration.
 *
 * `IF NOT EXISTS` throughout, as the schema has always been written, so a file that holds
 * some of the tables already is completed, not refused.
 *
 * @module
 */

import type { Migration } from "./mod.ts";

/** Tasks, dependencies, schedules, results and events, with their indexes. */
export const initial: Migration = {
  version: 1,
  name: "initial",
  // Partial indexes serve only queries that repeat their WHERE terms literally, so the
  // claim, promotion, stall, expiry and purge queries spell their states the same way.
  sql: `
CREATE TABLE IF NOT EXISTS tasks (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  v INTEGER NOT NULL,
  task TEXT NOT NULL,
  queue TEXT NOT NULL,
  priority INTEGER NOT NULL,
  state TEXT NOT NULL,
  payload BLOB NOT NULL,
  created_at INTEGER NOT NULL,
  run_at INTEGER NOT NULL,
  expires_at INTEGER,
  attempts INTEGER NOT NULL DEFAULT 0,
  max_attempts INTEGER NOT NULL,
  backoff TEXT NOT NULL,
  timeout INTEGER,
  result_ttl INTEGER,
  key TEXT,
  on_dep_failure TEXT NOT NULL,
  schedule_id TEXT,
  started_at INTEGER,
  completed_at INTEGER,
  progress REAL,
  error TEXT,
  token TEXT,
  lease_until INTEGER,
  worker TEXT,
  depends_on TEXT NOT NULL DEFAULT '[]',
  links TEXT
);
CREATE INDEX IF NOT EXISTS tasks_ready ON tasks (queue, priority DESC, seq)
  WHERE state = 'queued';
CREATE INDEX IF NOT EXISTS tasks_due ON tasks (queue, run_at) WHERE state = 'scheduled';
CREATE INDEX IF NOT EXISTS tasks_leased ON tasks (lease_until) WHERE state = 'running';
CREATE INDEX IF NOT EXISTS tasks_live_key ON tasks (key)
  WHERE key IS NOT NULL AND state IN ('waiting', 'scheduled', 'queued', 'running');
CREATE INDEX IF NOT EXISTS tasks_expiring ON tasks (expires_at)
  WHERE expires_at IS NOT NULL AND state IN ('waiting', 'scheduled', 'queued');
CREATE INDEX IF NOT EXISTS tasks_ended ON tasks (completed_at) WHERE state IN ('completed', 'failed', 'cancelled', 'expired');

CREATE TABLE IF NOT EXISTS deps (
  task_id TEXT NOT NULL,
  depends_on TEXT NOT NULL,
  PRIMARY KEY (task_id, depends_on)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS deps_by_dependency ON deps (depends_on);

CREATE TABLE IF NOT EXISTS schedules (
  id TEXT PRIMARY KEY,
  v INTEGER NOT NULL,
  task TEXT NOT NULL,
  payload BLOB NOT NULL,
  cron TEXT,
  every INTEGER,
  tz TEXT,
  start_at INTEGER,
  end_at INTEGER,
  misfire TEXT NOT NULL,
  misfire_grace INTEGER NOT NULL,
  paused INTEGER NOT NULL,
  next_run_at INTEGER,
  last_run_at INTEGER,
  created_at INTEGER NOT NULL,
  queue TEXT NOT NULL,
  priority INTEGER NOT NULL,
  max_attempts INTEGER NOT NULL,
  backoff TEXT NOT NULL,
  timeout INTEGER,
  ttl INTEGER,
  result_ttl INTEGER
);
CREATE INDEX IF NOT EXISTS schedules_due ON schedules (next_run_at) WHERE paused = 0;

CREATE TABLE IF NOT EXISTS results (
  task_id TEXT PRIMARY KEY,
  v INTEGER NOT NULL,
  state TEXT NOT NULL,
  value BLOB,
  error TEXT,
  completed_at INTEGER NOT NULL,
  expires_at INTEGER
);
CREATE INDEX IF NOT EXISTS results_expiring ON results (expires_at)
  WHERE expires_at IS NOT NULL;

CREATE TABLE IF NOT EXISTS events (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  type TEXT NOT NULL,
  task_id TEXT,
  queue TEXT,
  at INTEGER NOT NULL,
  attempt INTEGER,
  data TEXT
);
CREATE INDEX IF NOT EXISTS events_by_task ON events (task_id);
CREATE INDEX IF NOT EXISTS events_by_type ON events (type);
CREATE INDEX IF NOT EXISTS events_by_queue ON events (queue);
CREATE INDEX IF NOT EXISTS events_by_time ON events (at);
`,
};
