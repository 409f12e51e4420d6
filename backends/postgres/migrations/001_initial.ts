/**
 * PostgreSQL migration 1: tasks, dependencies, schedules, results and events, with their
 * indexes. Frozen: a change to the schema is a new migration (a database records the
 * versions it took in `migrations`).
 *
 * @module
 */

import type { Migration } from "./mod.ts";

/** The first schema. */
export const initial: Migration = {
  version: 1,
  name: "initial",
  // Partial indexes serve only queries that repeat their WHERE terms literally, so the
  // claim, promotion, stall, expiry and purge queries spell their states the same way.
  sql: (s) => `
CREATE TABLE ${s}.tasks (
  seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  id text NOT NULL UNIQUE,
  v integer NOT NULL,
  task text NOT NULL,
  queue text NOT NULL,
  priority integer NOT NULL,
  state text NOT NULL,
  payload bytea NOT NULL,
  created_at bigint NOT NULL,
  run_at bigint NOT NULL,
  expires_at bigint,
  attempts integer NOT NULL DEFAULT 0,
  max_attempts integer NOT NULL,
  backoff jsonb NOT NULL,
  timeout bigint,
  result_ttl bigint,
  key text,
  on_dep_failure text NOT NULL,
  schedule_id text,
  started_at bigint,
  completed_at bigint,
  progress double precision,
  error jsonb,
  token text,
  lease_until bigint,
  worker text,
  depends_on jsonb NOT NULL DEFAULT '[]',
  links jsonb
);
CREATE INDEX tasks_ready ON ${s}.tasks (queue, priority DESC, seq) WHERE state = 'queued';
CREATE INDEX tasks_due ON ${s}.tasks (queue, run_at) WHERE state = 'scheduled';
CREATE INDEX tasks_leased ON ${s}.tasks (lease_until) WHERE state = 'running';
CREATE INDEX tasks_live_key ON ${s}.tasks (key)
  WHERE key IS NOT NULL AND state IN ('waiting', 'scheduled', 'queued', 'running');
CREATE INDEX tasks_expiring ON ${s}.tasks (expires_at)
  WHERE expires_at IS NOT NULL AND state IN ('waiting', 'scheduled', 'queued');
CREATE INDEX tasks_ended ON ${s}.tasks (completed_at)
  WHERE state IN ('completed', 'failed', 'cancelled', 'expired');

CREATE TABLE ${s}.deps (
  task_id text NOT NULL,
  depends_on text NOT NULL,
  PRIMARY KEY (task_id, depends_on)
);
CREATE INDEX deps_by_dependency ON ${s}.deps (depends_on);

CREATE TABLE ${s}.schedules (
  id text PRIMARY KEY,
  v integer NOT NULL,
  task text NOT NULL,
  payload bytea NOT NULL,
  cron text,
  every bigint,
  tz text,
  start_at bigint,
  end_at bigint,
  misfire text NOT NULL,
  misfire_grace bigint NOT NULL,
  paused boolean NOT NULL,
  next_run_at bigint,
  last_run_at bigint,
  created_at bigint NOT NULL,
  queue text NOT NULL,
  priority integer NOT NULL,
  max_attempts integer NOT NULL,
  backoff jsonb NOT NULL,
  timeout bigint,
  ttl bigint,
  result_ttl bigint
);
CREATE INDEX schedules_due ON ${s}.schedules (next_run_at) WHERE NOT paused;

CREATE TABLE ${s}.results (
  task_id text PRIMARY KEY,
  v integer NOT NULL,
  state text NOT NULL,
  value bytea,
  error jsonb,
  completed_at bigint NOT NULL,
  expires_at bigint
);
CREATE INDEX results_expiring ON ${s}.results (expires_at) WHERE expires_at IS NOT NULL;

CREATE TABLE ${s}.events (
  id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  type text NOT NULL,
  task_id text,
  queue text,
  at bigint NOT NULL,
  attempt integer,
  data jsonb
);
CREATE INDEX events_by_task ON ${s}.events (task_id);
CREATE INDEX events_by_type ON ${s}.events (type);
CREATE INDEX events_by_queue ON ${s}.events (queue);
CREATE INDEX events_by_time ON ${s}.events (at);
`,
};
