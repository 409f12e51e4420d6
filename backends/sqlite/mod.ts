/**
 * The `sqlite:` engine: queue, results and events in one SQLite file through `node:sqlite`,
 * the embedded default. Several processes may share the file; each state change is one
 * `BEGIN IMMEDIATE … COMMIT` transaction.
 *
 * `node:sqlite` is synchronous, so a lock wait inside SQLite would freeze the event loop.
 * The busy timeout is therefore kept short (10 ms by default) and a locked database is
 * retried asynchronously, with a short random pause, for up to 30 s.
 *
 * ## Tables
 * - `meta (key, value)`: `schema_version`, the record version the file was created with.
 * - `tasks`: one row per task. `seq` gives FIFO order; `v` the record format; `state`,
 *   `attempts`, `token` and `lease_until` the claim; `payload` the codec's bytes; `error`,
 *   `backoff`, `depends_on` and `links` (workflow links, `NULL` when none) are JSON text.
 *   Times are epoch milliseconds.
 * - `deps (task_id, depends_on)`: one row per dependency, to find a task's dependents.
 * - `schedules`: one row per schedule: its definition (`cron` or `every`, `tz`, `start_at`,
 *   `end_at`, `misfire`, `misfire_grace`), its state (`paused`, `next_run_at`, the tick to
 *   fire next, and `last_run_at`) and the template of its tasks (`payload` the codec's
 *   bytes, `backoff` JSON text). Optional fields are `NULL` when absent.
 * - `results (task_id, v, state, value, error, completed_at, expires_at)`: `value` is the
 *   codec's bytes, `error` JSON text.
 * - `events (id, type, task_id, queue, at, attempt, data)`: `id` grows in append order and
 *   is never reused; `data` is JSON text.
 *
 * @example An engine in memory
 * ```ts
 * import { openSqlite } from "@omniq/omniq/sqlite";
 * const backend = await openSqlite(":memory:");
 * const stats = await backend.queue.stats();
 * console.assert(stats.total.queued === 0);
 * await backend.close();
 * ```
 *
 * @module
 */

import { DatabaseSync, type SQLOutputValue, type StatementSync } from "node:sqlite";
import {
  type Attachment,
  type Backend,
  type ClaimedTask,
  type ClaimRequest,
  type Effects,
  endResult,
  type EnqueueOutcome,
  type EventQuery,
  type EventStore,
  type Failure,
  isFinal,
  type NewEvent,
  type NewTask,
  RECORD_VERSION,
  type ResultStore,
  type StoredEvent,
  type StoredResult,
  type StoredSchedule,
  type StoredTask,
  type SweepOptions,
  taskEvent,
  type TaskLinks,
  type TaskQueue,
  type TickClaim,
} from "../../src/backend.ts";
import { ConfigError, DuplicateTaskError, OmniQError } from "../../src/errors.ts";
import {
  type EventType,
  type FinalState,
  type ListOptions,
  type QueueStats,
  type SerializedError,
  type StateCounts,
  TASK_STATES,
  type TaskState,
} from "../../src/types.ts";

/** Where the SQLite engine keeps its data. */
export interface SqliteOptions {
  /** The database file, or `":memory:"` for a private in-memory database. */
  path: string;
  /**
   * How long one SQLite call waits for a lock, in ms, before the engine retries it
   * asynchronously. Keep it short: the wait blocks the event loop.
   * @default {10}
   */
  busyTimeout?: number;
}

/** How long a locked database is retried before the call fails. */
const LOCKED_FOR_MS = 30_000;
/** Rows handled per transaction by a sweep, so a big sweep never holds the lock long. */
const SWEEP_BATCH = 500;

const LIVE = "('waiting', 'scheduled', 'queued', 'running')";
const FINAL = "('completed', 'failed', 'cancelled', 'expired')";
const UNSTARTED = "('waiting', 'scheduled', 'queued')";

// Partial indexes only serve queries that repeat their WHERE terms literally, so the claim,
// promotion, stall, expiry and purge queries below spell their states the same way.
const SCHEMA = `
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
  WHERE key IS NOT NULL AND state IN ${LIVE};
CREATE INDEX IF NOT EXISTS tasks_expiring ON tasks (expires_at)
  WHERE expires_at IS NOT NULL AND state IN ${UNSTARTED};
CREATE INDEX IF NOT EXISTS tasks_ended ON tasks (completed_at) WHERE state IN ${FINAL};

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
`;

type Row = Record<string, SQLOutputValue>;

const EXPIRED_ERROR: SerializedError = {
  name: "TaskExpiredError",
  message: "expired before it started",
};

/** Whether SQLite refused a call because another connection holds a lock. */
function isLocked(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { errcode?: unknown }).errcode;
  // Primary codes SQLITE_BUSY (5) and SQLITE_LOCKED (6); extended codes keep them in the
  // low byte. `exec` errors carry no code, only the message.
  if (typeof code === "number") return (code & 0xff) === 5 || (code & 0xff) === 6;
  return /database (?:table |schema )?is locked|database is busy/i.test(error.message);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function checkVersion(v: SQLOutputValue, what: string): void {
  if (typeof v === "number" && v > RECORD_VERSION) {
    throw new OmniQError(
      `${what} was written by a newer OmniQ (record version ${v}; this version reads up to ` +
        `${RECORD_VERSION}); upgrade OmniQ to read it`,
    );
  }
}

/** A JSON copy of an error without its stack, for event data. */
function brief(error: SerializedError): { name: string; message: string } {
  return { name: error.name, message: error.message };
}

/** One connection, its cached statements and the lock-retry loop, shared by the stores. */
class Connection {
  readonly db: DatabaseSync;
  readonly path: string;
  attached: Attachment = { results: true, events: true };
  #closed = false;
  #statements = new Map<string, StatementSync>();

  constructor(db: DatabaseSync, path: string) {
    this.db = db;
    this.path = path;
  }

  check(): void {
    if (this.#closed) throw new OmniQError(`the sqlite backend at "${this.path}" is closed`);
  }

  /** A prepared statement, cached by its text for the connection's life. */
  sql(text: string): StatementSync {
    let statement = this.#statements.get(text);
    if (!statement) {
      statement = this.db.prepare(text);
      this.#statements.set(text, statement);
    }
    return statement;
  }

  /**
   * Run `fn` as one atomic write, retrying while the database is locked. Writes asked for
   * in the same turn of the event loop share one transaction (group commit: one WAL sync
   * for many completions), each inside its own savepoint, so one write's error rolls back
   * that write alone.
   */
  write<T>(fn: () => T): Promise<T> {
    this.check();
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ fn, resolve: resolve as (value: unknown) => void, reject });
      if (this.#pending.length === 1) queueMicrotask(() => this.#flush());
    });
  }

  #pending: {
    fn: () => unknown;
    resolve: (value: unknown) => void;
    reject: (e: unknown) => void;
  }[] = [];

  async #flush(): Promise<void> {
    const batch = this.#pending;
    this.#pending = [];
    let outcomes: { ok: boolean; value?: unknown; error?: unknown }[];
    try {
      outcomes = await this.retry(() => {
        this.sql("BEGIN IMMEDIATE").run();
        try {
          const out = batch.map(({ fn }) => {
            this.sql("SAVEPOINT omniq_write").run();
            try {
              const value = fn();
              this.sql("RELEASE omniq_write").run();
              return { ok: true, value };
            } catch (error) {
              this.sql("ROLLBACK TO omniq_write").run();
              this.sql("RELEASE omniq_write").run();
              if (isLocked(error)) throw error;
              return { ok: false, error };
            }
          });
          this.sql("COMMIT").run();
          return out;
        } catch (error) {
          if (this.db.isTransaction) {
            try {
              this.sql("ROLLBACK").run();
            } catch {
              // The original error says more than a failed rollback.
            }
          }
          throw error;
        }
      });
    } catch (error) {
      for (const item of batch) item.reject(error);
      return;
    }
    outcomes.forEach((o, i) => o.ok ? batch[i].resolve(o.value) : batch[i].reject(o.error));
  }

  /**
   * Run `attempt` until it does not fail with a lock error. The pause between tries is an
   * `await`, never a SQLite wait, so timers and I/O keep running; each try is synchronous,
   * so no transaction ever spans an `await`.
   */
  async retry<T>(attempt: () => T): Promise<T> {
    this.check();
    let since: number | undefined;
    let spread = 4;
    for (;;) {
      try {
        return attempt();
      } catch (error) {
        if (!isLocked(error)) throw error;
        since ??= Date.now();
        if (Date.now() - since >= LOCKED_FOR_MS) {
          throw new OmniQError(
            `sqlite "${this.path}": the database stayed locked for ${LOCKED_FOR_MS / 1000} s; ` +
              "another connection holds a long write transaction",
            { cause: error },
          );
        }
        await sleep(2 + Math.random() * (spread - 2));
        spread = Math.min(spread * 2, 20);
        this.check();
      }
    }
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#statements.clear();
    this.db.close();
  }
}

/**
 * The effects of one transaction. Events and results go into this engine's own tables when
 * they are attached, and into the returned effects otherwise.
 */
class Step {
  readonly now: number;
  readonly #c: Connection;
  readonly #events: (NewEvent | StoredEvent)[] = [];
  readonly #results: StoredResult[] = [];

  constructor(c: Connection, now: number) {
    this.#c = c;
    this.now = now;
  }

  emit(event: NewEvent): void {
    this.#events.push(this.#c.attached.events ? insertEvent(this.#c, event) : event);
  }

  produce(result: StoredResult): void {
    if (this.#c.attached.results) putResult(this.#c, result);
    else this.#results.push(result);
  }

  /** Store a result the orchestrator gave; never returned, as it holds it already. */
  keep(result: StoredResult | undefined): void {
    if (result && this.#c.attached.results) putResult(this.#c, result);
  }

  effects(): Effects {
    return { events: this.#events, results: this.#results };
  }
}

function insertEvent(c: Connection, event: NewEvent): StoredEvent {
  const { lastInsertRowid } = c.sql(
    "INSERT INTO events (type, task_id, queue, at, attempt, data) VALUES (?, ?, ?, ?, ?, ?)",
  ).run(
    event.type,
    event.taskId ?? null,
    event.queue ?? null,
    event.at,
    event.attempt ?? null,
    event.data === undefined ? null : JSON.stringify(event.data),
  );
  return { ...event, id: String(lastInsertRowid) };
}

function putResult(c: Connection, r: StoredResult): void {
  c.sql(
    `INSERT OR REPLACE INTO results (task_id, v, state, value, error, completed_at, expires_at)
     VALUES (?, ?, ?, ?, ?, ?, ?)`,
  ).run(
    r.taskId,
    RECORD_VERSION,
    r.state,
    r.value ?? null,
    r.error === undefined ? null : JSON.stringify(r.error),
    r.completedAt,
    r.expiresAt ?? null,
  );
}

function toTask(row: Row): StoredTask {
  checkVersion(row.v, `task "${row.id}"`);
  const task: StoredTask = {
    id: row.id as string,
    task: row.task as string,
    queue: row.queue as string,
    priority: row.priority as number,
    payload: row.payload as Uint8Array,
    createdAt: row.created_at as number,
    runAt: row.run_at as number,
    maxAttempts: row.max_attempts as number,
    backoff: JSON.parse(row.backoff as string),
    dependsOn: JSON.parse(row.depends_on as string),
    onDependencyFailure: row.on_dep_failure as "cancel" | "run",
    state: row.state as TaskState,
    attempts: row.attempts as number,
  };
  if (row.expires_at !== null) task.expiresAt = row.expires_at as number;
  if (row.timeout !== null) task.timeout = row.timeout as number;
  if (row.result_ttl !== null) task.resultTtl = row.result_ttl as number;
  if (row.key !== null) task.key = row.key as string;
  if (row.schedule_id !== null) task.scheduleId = row.schedule_id as string;
  if (row.started_at !== null) task.startedAt = row.started_at as number;
  if (row.completed_at !== null) task.completedAt = row.completed_at as number;
  if (row.progress !== null) task.progress = row.progress as number;
  if (row.error !== null) task.error = JSON.parse(row.error as string);
  if (row.links !== null) task.links = JSON.parse(row.links as string);
  return task;
}

/** Links with their dependency ids mapped (to the live task a deduplicated one stands for). */
function mapLinks(links: TaskLinks, to: (id: string) => string): TaskLinks {
  const out: TaskLinks = {};
  if (links.pipe !== undefined) out.pipe = to(links.pipe);
  if (links.names) {
    out.names = Object.fromEntries(Object.entries(links.names).map(([id, n]) => [to(id), n]));
  }
  return out;
}

function toSchedule(row: Row): StoredSchedule {
  checkVersion(row.v, `schedule "${row.id}"`);
  const s: StoredSchedule = {
    id: row.id as string,
    task: row.task as string,
    payload: row.payload as Uint8Array,
    misfire: row.misfire as "skip" | "once",
    misfireGrace: row.misfire_grace as number,
    paused: row.paused === 1,
    createdAt: row.created_at as number,
    queue: row.queue as string,
    priority: row.priority as number,
    maxAttempts: row.max_attempts as number,
    backoff: JSON.parse(row.backoff as string),
  };
  if (row.cron !== null) s.cron = row.cron as string;
  if (row.every !== null) s.every = row.every as number;
  if (row.tz !== null) s.tz = row.tz as string;
  if (row.start_at !== null) s.startAt = row.start_at as number;
  if (row.end_at !== null) s.endAt = row.end_at as number;
  if (row.next_run_at !== null) s.nextRunAt = row.next_run_at as number;
  if (row.last_run_at !== null) s.lastRunAt = row.last_run_at as number;
  if (row.timeout !== null) s.timeout = row.timeout as number;
  if (row.ttl !== null) s.ttl = row.ttl as number;
  if (row.result_ttl !== null) s.resultTtl = row.result_ttl as number;
  return s;
}

function toResult(row: Row): StoredResult {
  checkVersion(row.v, `the result of task "${row.task_id}"`);
  const result: StoredResult = {
    taskId: row.task_id as string,
    state: row.state as FinalState,
    completedAt: row.completed_at as number,
  };
  if (row.value !== null) result.value = row.value as Uint8Array;
  if (row.error !== null) result.error = JSON.parse(row.error as string);
  if (row.expires_at !== null) result.expiresAt = row.expires_at as number;
  return result;
}

function toEvent(row: Row): StoredEvent {
  const event: StoredEvent = {
    id: String(row.id),
    type: row.type as EventType,
    at: row.at as number,
  };
  if (row.task_id !== null) event.taskId = row.task_id as string;
  if (row.queue !== null) event.queue = row.queue as string;
  if (row.attempt !== null) event.attempt = row.attempt as number;
  if (row.data !== null) event.data = JSON.parse(row.data as string);
  return event;
}

function zeroCounts(): StateCounts {
  return Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as StateCounts;
}

function placeholders(n: number): string {
  return Array.from({ length: n }, () => "?").join(", ");
}

/** The task queue of a SQLite engine. */
class SqliteQueue implements TaskQueue {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  attach(attachment: Attachment): void {
    this.#c.attached = { results: attachment.results, events: attachment.events };
  }

  enqueue(tasks: NewTask[]): Promise<EnqueueOutcome> {
    const c = this.#c;
    return c.write(() => {
      const step = new Step(c, Date.now());
      const ids: string[] = [];
      const created: boolean[] = [];
      // A task deduplicated by key stands for the live task: later tasks of the batch that
      // depend on it depend on the live one.
      const standIn = new Map<string, string>();
      for (const t of tasks) {
        if (t.key !== undefined) {
          const live = c.sql(
            `SELECT id FROM tasks WHERE key = ? AND key IS NOT NULL AND state IN ${LIVE} LIMIT 1`,
          ).get(t.key);
          if (live) {
            ids.push(live.id as string);
            created.push(false);
            standIn.set(t.id, live.id as string);
            continue;
          }
        }
        const to = (id: string) => standIn.get(id) ?? id;
        // Links follow the stand-ins too: a piped result or a node name of the live task.
        const linked = t.links === undefined ? t : { ...t, links: mapLinks(t.links, to) };
        this.#insert(step, linked, [...new Set(t.dependsOn.map(to))]);
        ids.push(t.id);
        created.push(true);
      }
      return { ids, created, effects: step.effects() };
    });
  }

  /**
   * Store one task inside the caller's transaction: `waiting` behind live dependencies,
   * `cancelled` behind a broken one, else `scheduled` or `queued` by `runAt`, with its
   * event. Shared by `enqueue` (after its key check) and `fireTick`.
   */
  #insert(step: Step, t: NewTask, dependsOn: string[]): void {
    const c = this.#c;
    const now = step.now;
    let pending = false;
    let broken: { id: string; state: string } | undefined;
    for (const d of dependsOn) {
      const dep = c.sql("SELECT state FROM tasks WHERE id = ?").get(d);
      if (!dep) throw new OmniQError(`dependsOn: no task with id "${d}"`);
      const state = dep.state as TaskState;
      if (state === "completed") continue;
      // A dependency that ended otherwise cancels this task, or (with "run") is done with.
      if (isFinal(state)) broken ??= { id: d, state };
      else pending = true;
    }
    let state: TaskState;
    let error: SerializedError | undefined;
    if (broken && t.onDependencyFailure === "cancel") {
      state = "cancelled";
      error = { name: "TaskCancelledError", message: `dependency ${broken.id} ${broken.state}` };
    } else if (pending) state = "waiting";
    else if (t.runAt > now) state = "scheduled";
    else state = "queued";
    try {
      c.sql(
        `INSERT INTO tasks (id, v, task, queue, priority, state, payload, created_at, run_at,
           expires_at, max_attempts, backoff, timeout, result_ttl, key, on_dep_failure,
           schedule_id, completed_at, error, depends_on, links)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      ).run(
        t.id,
        RECORD_VERSION,
        t.task,
        t.queue,
        t.priority,
        state,
        t.payload,
        t.createdAt,
        t.runAt,
        t.expiresAt ?? null,
        t.maxAttempts,
        JSON.stringify(t.backoff),
        t.timeout ?? null,
        t.resultTtl ?? null,
        t.key ?? null,
        t.onDependencyFailure,
        t.scheduleId ?? null,
        error ? now : null,
        error ? JSON.stringify(error) : null,
        JSON.stringify(dependsOn),
        t.links === undefined ? null : JSON.stringify(t.links),
      );
    } catch (e) {
      if (e instanceof Error && /UNIQUE constraint failed: tasks\.id/.test(e.message)) {
        throw new DuplicateTaskError(`id: a task with id "${t.id}" exists`, { cause: e });
      }
      throw e;
    }
    for (const d of dependsOn) {
      c.sql("INSERT OR IGNORE INTO deps (task_id, depends_on) VALUES (?, ?)").run(t.id, d);
    }
    const ref = { id: t.id, queue: t.queue, attempts: 0 };
    if (error && broken) {
      step.produce(endResult(t, "cancelled", error, now));
      step.emit(
        taskEvent("cancelled", ref, now, { reason: error.message, dependency: broken.id }),
      );
    } else if (state === "scheduled") {
      step.emit(taskEvent("scheduled", ref, now, { runAt: t.runAt }));
    } else step.emit(taskEvent("enqueued", ref, now, { state }));
  }

  get(id: string): Promise<StoredTask | undefined> {
    const c = this.#c;
    return c.retry(() => {
      const row = c.sql("SELECT * FROM tasks WHERE id = ?").get(id);
      return row ? toTask(row) : undefined;
    });
  }

  list(filter: ListOptions): Promise<StoredTask[]> {
    const c = this.#c;
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (filter.state !== undefined) {
      const states = Array.isArray(filter.state) ? filter.state : [filter.state];
      if (states.length === 0) return c.retry(() => []);
      where.push(`state IN (${placeholders(states.length)})`);
      params.push(...states);
    }
    if (filter.queue !== undefined) {
      where.push("queue = ?");
      params.push(filter.queue);
    }
    if (filter.task !== undefined) {
      where.push("task = ?");
      params.push(filter.task);
    }
    params.push(filter.limit ?? 100, filter.offset ?? 0);
    const sql = `SELECT * FROM tasks ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
      ORDER BY seq LIMIT ? OFFSET ?`;
    return c.retry(() => c.sql(sql).all(...params).map(toTask));
  }

  stats(): Promise<QueueStats> {
    const c = this.#c;
    return c.retry(() => {
      const total = zeroCounts();
      const queues: Record<string, StateCounts> = {};
      const rows = c.sql("SELECT queue, state, COUNT(*) AS n FROM tasks GROUP BY queue, state")
        .all();
      for (const row of rows) {
        const state = row.state as TaskState;
        const n = row.n as number;
        total[state] += n;
        (queues[row.queue as string] ??= zeroCounts())[state] += n;
      }
      return { total, queues };
    });
  }

  async claim(request: ClaimRequest): Promise<{ tasks: ClaimedTask[]; effects: Effects }> {
    const c = this.#c;
    if (request.limit <= 0 || request.queues.length === 0) {
      return c.retry(() => ({ tasks: [], effects: { events: [], results: [] } }));
    }
    // An idle poll should not take the write lock that every other process competes for:
    // look first, outside a transaction.
    const idle = await c.retry(() => {
      const now = Date.now();
      return request.queues.every((queue) =>
        !c.sql(
          `SELECT 1 FROM tasks WHERE state = 'queued' AND queue = ?
           UNION ALL
           SELECT 1 FROM tasks WHERE state = 'scheduled' AND queue = ? AND run_at <= ?
           LIMIT 1`,
        ).get(queue, queue, now)
      );
    });
    if (idle) return { tasks: [], effects: { events: [], results: [] } };
    return c.write(() => {
      const step = new Step(c, Date.now());
      const now = step.now;
      for (const queue of request.queues) {
        c.sql(
          `UPDATE tasks SET state = 'queued'
           WHERE state = 'scheduled' AND queue = ? AND run_at <= ?`,
        ).run(queue, now);
      }
      const tasks: ClaimedTask[] = [];
      for (const queue of request.queues) {
        if (tasks.length >= request.limit) break;
        // Rows of a newer record version are left to the newer OmniQ that wrote them.
        const picked = c.sql(
          `SELECT seq FROM tasks
           WHERE state = 'queued' AND queue = ? AND (expires_at IS NULL OR expires_at > ?)
             AND v <= ?
           ORDER BY priority DESC, seq LIMIT ?`,
        ).all(queue, now, RECORD_VERSION, request.limit - tasks.length);
        for (const { seq } of picked) {
          const token = crypto.randomUUID();
          const leaseUntil = now + request.lease;
          const row = c.sql(
            `UPDATE tasks SET state = 'running', attempts = attempts + 1, token = ?,
               lease_until = ?, started_at = ?, worker = ?
             WHERE seq = ? RETURNING *`,
          ).get(token, leaseUntil, now, request.worker, seq)!;
          const task: ClaimedTask = { ...toTask(row), token, leaseUntil };
          tasks.push(task);
          step.emit(taskEvent("started", task, now));
        }
      }
      return { tasks, effects: step.effects() };
    });
  }

  renew(id: string, token: string, lease: number): Promise<boolean> {
    const c = this.#c;
    return c.write(() =>
      c.sql(
        `UPDATE tasks SET lease_until = ? WHERE id = ? AND state = 'running' AND token = ?`,
      ).run(Date.now() + lease, id, token).changes > 0
    );
  }

  progress(id: string, token: string, value: number): Promise<Effects | undefined> {
    const c = this.#c;
    return c.write(() => {
      const step = new Step(c, Date.now());
      const row = c.sql(
        `UPDATE tasks SET progress = ? WHERE id = ? AND state = 'running' AND token = ?
         RETURNING v, id, queue, attempts`,
      ).get(value, id, token);
      if (!row) return undefined;
      step.emit(taskEvent("progress", ref(row), step.now, { progress: value }));
      return step.effects();
    });
  }

  complete(id: string, token: string, result: StoredResult): Promise<Effects | undefined> {
    const c = this.#c;
    return c.write(() => {
      const step = new Step(c, Date.now());
      const row = c.sql(
        `UPDATE tasks SET state = 'completed', completed_at = ?, token = NULL, lease_until = NULL
         WHERE id = ? AND state = 'running' AND token = ?
         RETURNING v, id, queue, attempts`,
      ).get(result.completedAt, id, token);
      if (!row) return undefined;
      step.keep(result);
      // When the handler finished, not when this write came: the worker frees the slot then.
      step.emit(taskEvent("completed", ref(row), result.completedAt));
      this.#cascade(step, id, "completed");
      return step.effects();
    });
  }

  fail(id: string, token: string, failure: Failure): Promise<Effects | undefined> {
    const c = this.#c;
    return c.write(() => {
      const step = new Step(c, Date.now());
      const now = step.now;
      const error = JSON.stringify(failure.error);
      if (failure.retryAt !== undefined) {
        const row = c.sql(
          `UPDATE tasks SET state = ?, run_at = ?, error = ?, token = NULL, lease_until = NULL
           WHERE id = ? AND state = 'running' AND token = ?
           RETURNING v, id, queue, attempts`,
        ).get(failure.retryAt > now ? "scheduled" : "queued", failure.retryAt, error, id, token);
        if (!row) return undefined;
        step.emit(taskEvent("retrying", ref(row), now, {
          error: brief(failure.error),
          retryAt: failure.retryAt,
        }));
        return step.effects();
      }
      const row = c.sql(
        `UPDATE tasks SET state = 'failed', completed_at = ?, error = ?, token = NULL,
           lease_until = NULL
         WHERE id = ? AND state = 'running' AND token = ?
         RETURNING v, id, queue, attempts`,
      ).get(failure.result?.completedAt ?? now, error, id, token);
      if (!row) return undefined;
      step.keep(failure.result);
      step.emit(
        taskEvent("failed", ref(row), failure.result?.completedAt ?? now, {
          error: brief(failure.error),
        }),
      );
      this.#cascade(step, id, "failed");
      return step.effects();
    });
  }

  cancel(id: string, reason: string): Promise<Effects | undefined> {
    const c = this.#c;
    return c.write(() => {
      const step = new Step(c, Date.now());
      const row = c.sql(`SELECT * FROM tasks WHERE id = ? AND state IN ${LIVE}`).get(id);
      if (!row) return undefined;
      const error = { name: "TaskCancelledError", message: reason };
      this.#end(step, toTask(row), "cancelled", error, { reason });
      return step.effects();
    });
  }

  retry(id: string): Promise<Effects | undefined> {
    const c = this.#c;
    // An expired task's ttl has passed: a retry asked for is a run without one.
    return c.write(() => {
      const step = new Step(c, Date.now());
      const row = c.sql(
        `UPDATE tasks SET state = 'queued', attempts = 0, error = NULL, completed_at = NULL,
           started_at = NULL, progress = NULL, token = NULL, lease_until = NULL, run_at = ?,
           expires_at = NULL
         WHERE id = ? AND state IN ('failed', 'cancelled', 'expired')
         RETURNING v, id, queue, attempts`,
      ).get(step.now, id);
      if (!row) return undefined;
      if (c.attached.results) c.sql("DELETE FROM results WHERE task_id = ?").run(id);
      step.emit(taskEvent("enqueued", ref(row), step.now, { state: "queued", retry: true }));
      return step.effects();
    });
  }

  async sweep(options: SweepOptions): Promise<Effects> {
    const c = this.#c;
    const { now, purgeBefore } = options;
    const effects: Effects = { events: [], results: [] };
    const batch = async (part: (step: Step) => number): Promise<void> => {
      for (;;) {
        const [n, out] = await c.write(() => {
          const step = new Step(c, now);
          return [part(step), step.effects()] as const;
        });
        effects.events.push(...out.events);
        effects.results.push(...out.results);
        if (n < SWEEP_BATCH) return;
      }
    };
    await batch((step) => {
      const rows = c.sql(
        `SELECT * FROM tasks WHERE state = 'running' AND lease_until < ? AND v <= ?
         ORDER BY lease_until LIMIT ?`,
      ).all(now, RECORD_VERSION, SWEEP_BATCH);
      for (const row of rows) this.#stalled(step, toTask(row));
      return rows.length;
    });
    await batch((step) => {
      const rows = c.sql(
        `SELECT * FROM tasks
         WHERE expires_at IS NOT NULL AND state IN ${UNSTARTED} AND expires_at <= ? AND v <= ?
         ORDER BY expires_at LIMIT ?`,
      ).all(now, RECORD_VERSION, SWEEP_BATCH);
      for (const row of rows) {
        this.#end(step, toTask(row), "expired", EXPIRED_ERROR, undefined);
      }
      return rows.length;
    });
    if (purgeBefore !== undefined) {
      await batch(() => {
        const rows = c.sql(
          `SELECT id FROM tasks WHERE state IN ${FINAL} AND completed_at < ? LIMIT ?`,
        ).all(purgeBefore, SWEEP_BATCH);
        for (const { id } of rows) {
          c.sql("DELETE FROM tasks WHERE id = ?").run(id);
          c.sql("DELETE FROM deps WHERE task_id = ?").run(id);
        }
        return rows.length;
      });
    }
    return effects;
  }

  #stalled(step: Step, task: StoredTask): void {
    const now = step.now;
    step.emit(taskEvent("stalled", task, now, { attempt: task.attempts }));
    if (task.attempts < task.maxAttempts) {
      this.#c.sql(
        `UPDATE tasks SET state = 'queued', run_at = ?, token = NULL, lease_until = NULL
         WHERE id = ?`,
      ).run(now, task.id);
      return;
    }
    const error = {
      name: "StalledError",
      message: `the worker's lease expired on attempt ${task.attempts}`,
    };
    this.#end(step, task, "failed", error, { error });
  }

  /**
   * Move a task to a final state other than `completed`: store its error, produce its
   * result and event, and cascade to its dependents.
   */
  #end(
    step: Step,
    task: StoredTask,
    state: Exclude<FinalState, "completed">,
    error: SerializedError,
    data: Record<string, unknown> | undefined,
  ): void {
    this.#c.sql(
      `UPDATE tasks SET state = ?, completed_at = ?, error = ?, token = NULL, lease_until = NULL
       WHERE id = ?`,
    ).run(state, step.now, JSON.stringify(error), task.id);
    step.produce(endResult(task, state, error, step.now));
    step.emit(taskEvent(state, task, step.now, data));
    this.#cascade(step, task.id, state);
  }

  /**
   * Release or cancel the waiting dependents of a task that just became final, and theirs
   * in turn, within the caller's transaction: depth first, in enqueue order, the order a
   * recursion would take, but with an explicit stack so a long chain cannot overflow it.
   * Each dependent is read afresh, since an earlier branch may have ended it.
   */
  #cascade(step: Step, rootId: string, rootState: FinalState): void {
    const c = this.#c;
    const stack: { id: string; state: FinalState; dependents: string[]; next: number }[] = [];
    const visit = (id: string, state: FinalState): void => {
      const dependents = c.sql(
        `SELECT t.id FROM deps d JOIN tasks t ON t.id = d.task_id
         WHERE d.depends_on = ? AND t.state = 'waiting' ORDER BY t.seq`,
      ).all(id).map((row) => row.id as string);
      if (dependents.length) stack.push({ id, state, dependents, next: 0 });
    };
    visit(rootId, rootState);
    while (stack.length) {
      const frame = stack[stack.length - 1];
      if (frame.next >= frame.dependents.length) {
        stack.pop();
        continue;
      }
      const row = c.sql("SELECT * FROM tasks WHERE id = ? AND state = 'waiting'").get(
        frame.dependents[frame.next++],
      );
      if (!row) continue;
      const dependent = toTask(row);
      if (frame.state === "completed" || dependent.onDependencyFailure === "run") {
        this.#releaseIfReady(step, dependent);
        continue;
      }
      const reason = `dependency ${frame.id} ${frame.state}`;
      const error = { name: "TaskCancelledError", message: reason };
      c.sql(
        `UPDATE tasks SET state = 'cancelled', completed_at = ?, error = ? WHERE id = ?`,
      ).run(step.now, JSON.stringify(error), dependent.id);
      step.produce(endResult(dependent, "cancelled", error, step.now));
      step.emit(
        taskEvent("cancelled", dependent, step.now, { reason, dependency: frame.id }),
      );
      visit(dependent.id, "cancelled");
    }
  }

  #releaseIfReady(step: Step, task: StoredTask): void {
    const c = this.#c;
    // A dependency purged from the table was final long ago; the join skips it.
    const blocking = task.onDependencyFailure === "run"
      ? c.sql(
        `SELECT 1 FROM deps d JOIN tasks t ON t.id = d.depends_on
         WHERE d.task_id = ? AND t.state IN ${LIVE} LIMIT 1`,
      ).get(task.id)
      : c.sql(
        `SELECT 1 FROM deps d JOIN tasks t ON t.id = d.depends_on
         WHERE d.task_id = ? AND t.state <> 'completed' LIMIT 1`,
      ).get(task.id);
    if (blocking) return;
    const state = task.runAt > step.now ? "scheduled" : "queued";
    c.sql("UPDATE tasks SET state = ? WHERE id = ?").run(state, task.id);
    step.emit(
      taskEvent(state === "scheduled" ? "scheduled" : "enqueued", task, step.now, {
        state,
        released: true,
      }),
    );
  }

  putSchedule(s: StoredSchedule): Promise<void> {
    const c = this.#c;
    return c.write(() => {
      c.sql(
        `INSERT INTO schedules (id, v, task, payload, cron, every, tz, start_at, end_at,
           misfire, misfire_grace, paused, next_run_at, last_run_at, created_at, queue, priority,
           max_attempts, backoff, timeout, ttl, result_ttl)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET v = excluded.v, task = excluded.task,
           payload = excluded.payload, cron = excluded.cron, every = excluded.every,
           tz = excluded.tz, start_at = excluded.start_at, end_at = excluded.end_at,
           misfire = excluded.misfire, misfire_grace = excluded.misfire_grace,
           paused = excluded.paused, next_run_at = excluded.next_run_at,
           last_run_at = excluded.last_run_at, created_at = excluded.created_at,
           queue = excluded.queue, priority = excluded.priority,
           max_attempts = excluded.max_attempts, backoff = excluded.backoff,
           timeout = excluded.timeout, ttl = excluded.ttl, result_ttl = excluded.result_ttl`,
      ).run(
        s.id,
        RECORD_VERSION,
        s.task,
        s.payload,
        s.cron ?? null,
        s.every ?? null,
        s.tz ?? null,
        s.startAt ?? null,
        s.endAt ?? null,
        s.misfire,
        s.misfireGrace,
        s.paused ? 1 : 0,
        s.nextRunAt ?? null,
        s.lastRunAt ?? null,
        s.createdAt,
        s.queue,
        s.priority,
        s.maxAttempts,
        JSON.stringify(s.backoff),
        s.timeout ?? null,
        s.ttl ?? null,
        s.resultTtl ?? null,
      );
    });
  }

  getSchedule(id: string): Promise<StoredSchedule | undefined> {
    const c = this.#c;
    return c.retry(() => {
      const row = c.sql("SELECT * FROM schedules WHERE id = ?").get(id);
      return row ? toSchedule(row) : undefined;
    });
  }

  listSchedules(): Promise<StoredSchedule[]> {
    const c = this.#c;
    return c.retry(() => c.sql("SELECT * FROM schedules ORDER BY id").all().map(toSchedule));
  }

  setSchedulePaused(
    id: string,
    paused: boolean,
    nextRunAt?: number,
  ): Promise<Effects | undefined> {
    const c = this.#c;
    return c.write(() => {
      const row = c.sql("SELECT paused FROM schedules WHERE id = ?").get(id);
      if (!row || (row.paused === 1) === paused) return undefined;
      const step = new Step(c, Date.now());
      if (paused) c.sql("UPDATE schedules SET paused = 1 WHERE id = ?").run(id);
      else {
        c.sql("UPDATE schedules SET paused = 0, next_run_at = ? WHERE id = ?").run(
          nextRunAt ?? null,
          id,
        );
      }
      step.emit({
        type: paused ? "schedule_paused" : "schedule_resumed",
        at: step.now,
        data: { scheduleId: id },
      });
      return step.effects();
    });
  }

  deleteSchedule(id: string): Promise<boolean> {
    const c = this.#c;
    return c.write(() => c.sql("DELETE FROM schedules WHERE id = ?").run(id).changes > 0);
  }

  dueSchedules(now: number, limit: number): Promise<StoredSchedule[]> {
    const c = this.#c;
    return c.retry(() =>
      c.sql(
        `SELECT * FROM schedules WHERE paused = 0 AND next_run_at IS NOT NULL AND next_run_at <= ?
         ORDER BY next_run_at, id LIMIT ?`,
      ).all(now, limit).map(toSchedule)
    );
  }

  nextScheduleAt(): Promise<number | undefined> {
    const c = this.#c;
    return c.retry(() => {
      const row = c.sql(
        `SELECT MIN(next_run_at) AS next FROM schedules
         WHERE paused = 0 AND next_run_at IS NOT NULL`,
      ).get();
      return typeof row?.next === "number" ? row.next : undefined;
    });
  }

  fireTick(claim: TickClaim): Promise<Effects | undefined> {
    const c = this.#c;
    return c.write(() => {
      // The compare-and-set: only the scheduler that still sees `tick` as next advances it.
      const fired = c.sql(
        `UPDATE schedules SET next_run_at = ?, last_run_at = ?
         WHERE id = ? AND paused = 0 AND next_run_at = ?`,
      ).run(claim.next ?? null, claim.tick, claim.scheduleId, claim.tick).changes > 0;
      if (!fired) return undefined;
      const step = new Step(c, Date.now());
      const task = claim.task;
      // A tick's task id is `scheduleId:tick`: if it exists, this tick's task was stored
      // already (say, before the schedule was replaced), so only the schedule advances.
      if (task && !c.sql("SELECT 1 FROM tasks WHERE id = ?").get(task.id)) {
        this.#insert(step, task, [...new Set(task.dependsOn)]);
        step.emit({
          type: "schedule_fired",
          taskId: task.id,
          queue: task.queue,
          at: step.now,
          data: { scheduleId: claim.scheduleId, tick: claim.tick },
        });
      }
      return step.effects();
    });
  }

  nextDue(queues: string[]): Promise<number | undefined> {
    const c = this.#c;
    return c.retry(() => {
      let next: number | undefined;
      for (const queue of queues) {
        const row = c.sql(
          "SELECT MIN(run_at) AS due FROM tasks WHERE state = 'scheduled' AND queue = ?",
        ).get(queue);
        const due = row?.due;
        if (typeof due === "number" && (next === undefined || due < next)) next = due;
      }
      return next;
    });
  }

  close(): Promise<void> {
    this.#c.close();
    return Promise.resolve();
  }
}

/** The fields `taskEvent` needs, from a `RETURNING v, id, queue, attempts` row. */
function ref(row: Row): { id: string; queue: string; attempts: number } {
  checkVersion(row.v, `task "${row.id}"`);
  return { id: row.id as string, queue: row.queue as string, attempts: row.attempts as number };
}

/** The result store of a SQLite engine. */
class SqliteResults implements ResultStore {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  put(results: StoredResult[]): Promise<void> {
    const c = this.#c;
    return c.write(() => {
      for (const r of results) putResult(c, r);
    });
  }

  get(taskId: string): Promise<StoredResult | undefined> {
    const c = this.#c;
    return c.retry(() => {
      const row = c.sql(
        "SELECT * FROM results WHERE task_id = ? AND (expires_at IS NULL OR expires_at > ?)",
      ).get(taskId, Date.now());
      return row ? toResult(row) : undefined;
    });
  }

  delete(taskIds: string[]): Promise<void> {
    const c = this.#c;
    return c.write(() => {
      for (const id of taskIds) c.sql("DELETE FROM results WHERE task_id = ?").run(id);
    });
  }

  sweep(now: number): Promise<number> {
    const c = this.#c;
    return c.write(() =>
      Number(
        c.sql("DELETE FROM results WHERE expires_at IS NOT NULL AND expires_at <= ?").run(now)
          .changes,
      )
    );
  }

  close(): Promise<void> {
    this.#c.close();
    return Promise.resolve();
  }
}

/** The event store of a SQLite engine. */
class SqliteEvents implements EventStore {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  append(events: NewEvent[]): Promise<StoredEvent[]> {
    const c = this.#c;
    return c.write(() => events.map((e) => insertEvent(c, e)));
  }

  query(query: EventQuery): Promise<StoredEvent[]> {
    const c = this.#c;
    const where: string[] = [];
    const params: (string | number)[] = [];
    if (query.taskId !== undefined) {
      where.push("task_id = ?");
      params.push(query.taskId);
    }
    if (query.queue !== undefined) {
      where.push("queue = ?");
      params.push(query.queue);
    }
    if (query.type !== undefined) {
      const types = Array.isArray(query.type) ? query.type : [query.type];
      if (types.length === 0) return c.retry(() => []);
      where.push(`type IN (${placeholders(types.length)})`);
      params.push(...types);
    }
    if (query.since !== undefined) {
      where.push("at >= ?");
      params.push(query.since);
    }
    if (query.until !== undefined) {
      where.push("at < ?");
      params.push(query.until);
    }
    if (query.after !== undefined) {
      const after = Number(query.after);
      if (!Number.isSafeInteger(after)) {
        return Promise.reject(
          new OmniQError(
            `after: expected an event id of this sqlite store (an integer), got "${query.after}"`,
          ),
        );
      }
      where.push("id > ?");
      params.push(after);
    }
    params.push(query.limit ?? -1);
    const sql = `SELECT * FROM events ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
      ORDER BY id LIMIT ?`;
    return c.retry(() => c.sql(sql).all(...params).map(toEvent));
  }

  sweep(before: number): Promise<number> {
    const c = this.#c;
    return c.write(() => Number(c.sql("DELETE FROM events WHERE at < ?").run(before).changes));
  }

  close(): Promise<void> {
    this.#c.close();
    return Promise.resolve();
  }
}

/** Create the tables, or check that an existing file's schema is one this code reads. */
function prepareSchema(c: Connection): void {
  c.db.exec("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)");
  const row = c.sql("SELECT value FROM meta WHERE key = 'schema_version'").get();
  if (row) {
    const version = Number(row.value);
    if (version > RECORD_VERSION) {
      throw new OmniQError(
        `sqlite "${c.path}": the database was created by a newer OmniQ (schema version ` +
          `${version}; this version reads up to ${RECORD_VERSION}); upgrade OmniQ to open it`,
      );
    }
    return;
  }
  c.db.exec(SCHEMA);
  c.sql("INSERT INTO meta (key, value) VALUES ('schema_version', ?)").run(
    String(RECORD_VERSION),
  );
}

/**
 * The SQLite engine: the task queue, results and events in one database. Open it with
 * {@linkcode openSqlite}.
 *
 * Closing any of its three stores closes the whole engine, since they share one connection.
 *
 * @example Enqueue and claim a task
 * ```ts
 * import { SqliteBackend } from "@omniq/omniq/sqlite";
 * await using backend = await SqliteBackend.open({ path: ":memory:" });
 * const now = Date.now();
 * await backend.queue.enqueue([{
 *   id: "t1", task: "noop", queue: "default", priority: 0, payload: new Uint8Array([1]),
 *   createdAt: now, runAt: now, maxAttempts: 1, dependsOn: [], onDependencyFailure: "cancel",
 *   backoff: { type: "fixed", delay: 1000, max: 1000, jitter: 0 },
 * }]);
 * const { tasks } = await backend.queue.claim({
 *   queues: ["default"], limit: 10, lease: 30_000, worker: "doc",
 * });
 * console.assert(tasks.length === 1 && tasks[0].attempts === 1);
 * ```
 */
export class SqliteBackend implements Backend, AsyncDisposable {
  /** The engine's name. */
  readonly name = "sqlite";
  /** The task queue. */
  readonly queue: TaskQueue;
  /** The result store. */
  readonly results: ResultStore;
  /** The event store. */
  readonly events: EventStore;
  /** The database file, or `":memory:"`. */
  readonly path: string;
  readonly #c: Connection;

  private constructor(c: Connection) {
    this.#c = c;
    this.path = c.path;
    this.queue = new SqliteQueue(c);
    this.results = new SqliteResults(c);
    this.events = new SqliteEvents(c);
  }

  /**
   * Open (and create if needed) a SQLite engine.
   *
   * @param options The database path and lock timeout.
   * @returns The open engine.
   * @throws {ConfigError} When an option is not valid.
   * @throws {OmniQError} When the file cannot be opened, stays locked, or was created by a
   *   newer OmniQ.
   *
   * @example Open a private in-memory database
   * ```ts
   * import { SqliteBackend } from "./mod.ts";
   * const backend = await SqliteBackend.open({ path: ":memory:", busyTimeout: 5 });
   * console.assert(backend.name === "sqlite");
   * await backend.close();
   * ```
   */
  static async open(options: SqliteOptions): Promise<SqliteBackend> {
    const { path, busyTimeout = 10 } = options;
    if (typeof path !== "string" || path === "") {
      throw new ConfigError(
        `sqlite path: expected a file path or ":memory:", got ${JSON.stringify(path)}`,
      );
    }
    if (!Number.isInteger(busyTimeout) || busyTimeout < 0) {
      throw new ConfigError(
        `sqlite busyTimeout: expected a non-negative integer of ms, got ${busyTimeout}`,
      );
    }
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(path);
    } catch (error) {
      throw new OmniQError(`sqlite "${path}": cannot open: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const c = new Connection(db, path);
    try {
      db.exec(`PRAGMA busy_timeout = ${busyTimeout}`);
      await c.retry(() => db.exec("PRAGMA journal_mode = WAL"));
      db.exec("PRAGMA synchronous = NORMAL");
      // Several processes may open a new file at once: the schema is created inside a
      // write transaction, so exactly one of them creates it and the others see it.
      await c.write(() => prepareSchema(c));
    } catch (error) {
      c.close();
      throw error;
    }
    return new SqliteBackend(c);
  }

  /**
   * Close the connection. Closing twice is harmless; any later call fails with an
   * `OmniQError`.
   *
   * @returns When the connection is closed.
   *
   * @example Close twice
   * ```ts
   * import { openSqlite } from "./mod.ts";
   * const backend = await openSqlite(":memory:");
   * await backend.close();
   * await backend.close();
   * ```
   */
  close(): Promise<void> {
    this.#c.close();
    return Promise.resolve();
  }

  /** Close the connection at the end of an `await using` block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Open a SQLite engine.
 *
 * @param target A database path (such as `./omniq.db`, the part after `sqlite:` in a URL),
 *   `":memory:"`, or the full options.
 * @returns The open engine.
 * @throws {ConfigError} When an option is not valid.
 * @throws {OmniQError} When the file cannot be opened, stays locked, or was created by a
 *   newer OmniQ.
 *
 * @example Open a file
 * ```ts
 * import { openSqlite } from "@omniq/omniq/sqlite";
 * const dir = await Deno.makeTempDir();
 * const backend = await openSqlite(`${dir}/omniq.db`);
 * console.assert((await backend.queue.list({})).length === 0);
 * await backend.close();
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export function openSqlite(target: string | SqliteOptions): Promise<SqliteBackend> {
  return SqliteBackend.open(typeof target === "string" ? { path: target } : target);
}
