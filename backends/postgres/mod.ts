/**
 * The `postgres:` engine: queue, results and events in a PostgreSQL schema through
 * `npm:postgres` (postgres.js). Many worker processes on many machines may share one
 * database: claims take rows with `FOR UPDATE SKIP LOCKED`, leases run on the server's
 * clock, and an idle worker is woken by `LISTEN/NOTIFY` within milliseconds of an enqueue.
 *
 * Only this module imports the driver, so a program that never names a `postgres://` URL
 * needs no `--allow-net`. A program that does needs `--allow-net=HOST:PORT` and
 * `--allow-env=PGAPPNAME,PGTARGETSESSIONATTRS` (postgres.js reads those two whatever it is
 * given; every other setting is passed explicitly, so it reads no other `PG*`, `USER` or
 * `LOGNAME` variable).
 *
 * ## URL
 * `postgres://user:password@host:port/database?schema=omniq&pool=10&connect_timeout=10`
 * (`postgresql://` too). `schema` defaults to `omniq`, `pool` (connections) to 10,
 * `connect_timeout` (seconds) to 10; `sslmode=require` turns TLS on. Passwords are never
 * part of an error message.
 *
 * ## Tables (in the schema, `omniq` by default)
 * Created and migrated on open by numbered migrations (`migrations/`), in a transaction
 * holding `pg_advisory_xact_lock`, so several processes may open a new database at once;
 * a schema migrated by a newer OmniQ is refused. Times are epoch milliseconds (`bigint`);
 * JSON columns are `jsonb`. `migrations (version, applied_at)` holds one row per migration
 * applied; `tasks`, `deps`, `schedules`, `queues` (what is set on a queue: `paused`, and
 * `group_cursor`, the lane its lane claims served last), `results` and `events` the
 * data. Events are plain
 * rows, indexed by task and time, so plain SQL such as
 * `select * from omniq.events where task_id = $1 order by id` works too.
 *
 * The tables, the round trips of each operation and the durability of a state change are
 * described in `docs/engines/postgres.md`.
 *
 * @example Open a queue (needs a server)
 * ```ts ignore
 * import { OmniQ } from "@omniq/omniq";
 * await using q = await OmniQ.open("postgres://app:secret@localhost:5432/app?schema=jobs");
 * ```
 *
 * @module
 */

import type { Backend, EventStore, ResultStore, TaskQueue } from "../../src/backend.ts";
import { Connection, createPool, openError } from "./connection.ts";
import { migrate } from "./migrations/mod.ts";
import { type PostgresOptions, resolveOptions } from "./options.ts";
import { PostgresQueue } from "./queue.ts";
import { PostgresEvents, PostgresResults } from "./stores.ts";

export type { PostgresOptions } from "./options.ts";

/**
 * The PostgreSQL engine: the task queue, results and events in one schema. Open it with
 * {@linkcode openPostgres} or a `postgres://` URL in `OmniQ.open`.
 *
 * Closing any of its three stores closes the whole engine, since they share one pool.
 *
 * @example Open with options (needs a server)
 * ```ts ignore
 * import { PostgresBackend } from "@omniq/omniq/postgres";
 * await using backend = await PostgresBackend.open({
 *   host: "127.0.0.1", port: 5432, database: "app", user: "app", password: "secret",
 *   schema: "jobs", pool: 5,
 * });
 * console.assert((await backend.queue.stats()).total.queued >= 0);
 * ```
 */
export class PostgresBackend implements Backend, AsyncDisposable {
  /** The engine's name. */
  readonly name = "postgres";
  /** The task queue. */
  readonly queue: TaskQueue;
  /** The result store. */
  readonly results: ResultStore;
  /** The event store. */
  readonly events: EventStore;
  /** The schema that holds the tables. */
  readonly schema: string;
  readonly #c: Connection;

  private constructor(c: Connection) {
    this.#c = c;
    this.schema = c.options.schema;
    this.queue = new PostgresQueue(c);
    this.results = new PostgresResults(c);
    this.events = new PostgresEvents(c);
  }

  /**
   * Connect, then create or migrate the schema.
   *
   * @param options Where to connect (a URL and/or host, port, database, user, password),
   *   the schema and the pool size.
   * @returns The open engine.
   * @throws {ConfigError} When an option is not valid, or the server refuses the login,
   *   the database or the rights needed (the message names the host and what failed).
   * @throws {OmniQError} When the server cannot be reached within `connectTimeout`, or the
   *   schema was migrated by a newer OmniQ.
   *
   * @example Open (needs a server)
   * ```ts ignore
   * import { PostgresBackend } from "@omniq/omniq/postgres";
   * const backend = await PostgresBackend.open({ url: "postgres://app@localhost/app" });
   * await backend.close();
   * ```
   */
  static async open(options: PostgresOptions): Promise<PostgresBackend> {
    const o = resolveOptions(options);
    const sql = createPool(o);
    const c = new Connection(sql, o);
    try {
      await migrate(c);
    } catch (error) {
      await sql.end({ timeout: 0 }).catch(() => {});
      throw openError(error, o);
    }
    return new PostgresBackend(c);
  }

  /**
   * Close the pool and the listener. Closing twice is harmless.
   *
   * @returns When every connection is closed.
   */
  close(): Promise<void> {
    return this.#c.close();
  }

  /** Close at the end of an `await using` block. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Open a PostgreSQL engine.
 *
 * @param target A `postgres://` URL, or the options.
 * @returns The open engine.
 * @throws {ConfigError} For a bad option, a refused login, a missing database or rights.
 * @throws {OmniQError} When the server cannot be reached.
 *
 * @example Open by URL (needs a server)
 * ```ts ignore
 * import { openPostgres } from "@omniq/omniq/postgres";
 * const backend = await openPostgres("postgres://app:secret@localhost/app?schema=jobs");
 * await backend.close();
 * ```
 */
export function openPostgres(target: string | PostgresOptions): Promise<PostgresBackend> {
  return PostgresBackend.open(typeof target === "string" ? { url: target } : target);
}
