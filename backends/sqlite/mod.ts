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
 * Created on open, and migrated by numbered migrations (`migrations/`); a file of a newer
 * OmniQ's schema is refused.
 * - `meta (key, value)`: `schema_version`, the last migration applied.
 * - `tasks`: one row per task. `seq` gives FIFO order; `v` the record format; `state`,
 *   `attempts`, `token` and `lease_until` the claim; `payload` the codec's bytes; `error`,
 *   `backoff`, `depends_on` and `links` (workflow links, `NULL` when none) are JSON text;
 *   `dead_letter` is the queue the task moves to once out of attempts; `age_after` (ms)
 *   lets a sweep raise a task queued that long past `run_at` to priority 9 (partial index
 *   `tasks_aging` on `run_at + age_after`); `key_until` is a throttle window: the task holds
 *   its `key` until then, even once ended (partial index `tasks_throttled_key` on `(key,
 *   key_until)`, probed with the live keys' index at enqueue); `grp` is the task's group
 *   and `group_limit` the most of its tasks running at once (`NULL`: 1); `rate_key`,
 *   `rate_limit` and `rate_per` its rate limit (at most `rate_limit` starts of the bucket in
 *   `rate_per` ms); `lane` the lane it is claimed in (`laneOf`: its group, or without one
 *   `\u0001` and its rate bucket). These nine are `NULL` when not set. Times are epoch
 *   milliseconds. The ready index `tasks_ready` holds queued tasks without a lane only; those
 *   with one are in `tasks_group_ready` (by queue, lane, priority and `seq`), a grouped one
 *   while running in `tasks_group_running` (by group), and a rate-limited one once started
 *   in `tasks_rate_started` (by bucket and latest start: a window's starts are a range).
 * - `deps (task_id, depends_on)`: one row per dependency, to find a task's dependents.
 * - `schedules`: one row per schedule: its definition (`cron` or `every`, `tz`, `start_at`,
 *   `end_at`, `misfire`, `misfire_grace`), its state (`paused`, `next_run_at`, the tick to
 *   fire next, and `last_run_at`) and the template of its tasks (`payload` the codec's
 *   bytes, `backoff` JSON text). Optional fields are `NULL` when absent.
 * - `queues (name, paused, group_cursor)`: what is set on a queue (a queue without a row is
 *   not paused), and the group its grouped claims served last, where the next one starts.
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

import { runtime, type SqliteDatabase as DatabaseSync } from "../../src/runtime/mod.ts";
import type { Backend, EventStore, ResultStore, TaskQueue } from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import { Checkpointer } from "./checkpoint.ts";
import { Connection } from "./connection.ts";
import { migrate } from "./migrations/mod.ts";
import { resolveOptions, type SqliteOptions } from "./options.ts";
import { SqliteQueue } from "./queue.ts";
import { SqliteEvents, SqliteResults } from "./stores.ts";

export type { SqliteOptions } from "./options.ts";

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
    const { path, busyTimeout } = resolveOptions(options);
    let db: DatabaseSync;
    try {
      db = await runtime.openSqlite(path);
    } catch (error) {
      throw new OmniQError(`sqlite "${path}": cannot open: ${(error as Error).message}`, {
        cause: error,
      });
    }
    const c = new Connection(db, path);
    try {
      db.exec(`PRAGMA busy_timeout = ${busyTimeout}`);
      const mode = await c.retry(() => db.prepare("PRAGMA journal_mode = WAL").get());
      db.exec("PRAGMA synchronous = NORMAL");
      // A file in WAL mode checkpoints from a thread once busy (`checkpoint.ts`).
      if (mode?.journal_mode === "wal") c.checkpointer = new Checkpointer(db, path);
      // Several processes may open a new file at once: the schema is created inside a
      // write transaction, so exactly one of them creates it and the others see it.
      await c.write(() => migrate(db, path));
    } catch (error) {
      await c.close();
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
    return this.#c.close();
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
