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
 * Created and migrated on open, in a transaction holding `pg_advisory_xact_lock`, so
 * several processes may open a new database at once. Times are epoch milliseconds
 * (`bigint`); JSON columns are `jsonb`.
 * - `migrations (version, applied_at)`: one row per migration applied.
 * - `tasks`: one row per task. `seq` gives FIFO order; `v` the record format; `state`,
 *   `attempts`, `token`, `lease_until` (server clock) and `worker` the claim; `payload` the
 *   codec's bytes (`bytea`); `error`, `backoff`, `depends_on` and `links` are `jsonb`;
 *   `has_dependents` is set once another task depends on it.
 * - `deps (task_id, depends_on)`: one row per dependency, to find a task's dependents.
 * - `schedules`: one row per schedule: its definition, its state (`paused`, `next_run_at`,
 *   `last_run_at`) and the template of its tasks.
 * - `results (task_id, v, state, value, error, completed_at, expires_at)`.
 * - `events (id, type, task_id, queue, at, attempt, data)`: `id` is an identity column,
 *   indexed by task, type, queue and time, so plain SQL such as
 *   `select * from omniq.events where task_id = $1 order by id` works too.
 *
 * ## Round trips
 * A claim from one queue and a completion each take one round trip, as single statements
 * (common table expressions); an enqueue of any number of tasks without keys or
 * dependencies takes two, in a transaction whose `BEGIN` and writes are pipelined, then
 * its `COMMIT`. Completions that arrive in the same turn of the event loop (the tasks of
 * one claim), or while two are on their way, share a statement; each is still fenced by
 * its own token.
 *
 * ## Durability
 * Every state change is one transaction, committed before the call returns. A worker that
 * loses its connection keeps running; postgres.js reconnects on the next query and the
 * worker backs off between failed claims. A task whose completion could not be written
 * keeps its lease until it lapses, then runs again (its outcome is recorded once).
 *
 * @example Open a queue (needs a server)
 * ```ts ignore
 * import { OmniQ } from "@omniq/omniq";
 * await using q = await OmniQ.open("postgres://app:secret@localhost:5432/app?schema=jobs");
 * ```
 *
 * @module
 */

import { Buffer } from "node:buffer";
import { setImmediate } from "node:timers";
import postgres from "postgres";
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

/** Where the PostgreSQL engine connects, and how. */
export interface PostgresOptions {
  /** A `postgres://` URL; the fields below override its parts. */
  url?: string;
  /**
   * The server's host name or address.
   * @default {"localhost"}
   */
  host?: string;
  /**
   * The server's port.
   * @default {5432}
   */
  port?: number;
  /** The database; defaults to the user's name. */
  database?: string;
  /** The user to log in as (required, here or in the URL). */
  user?: string;
  /** The password, if the server asks for one. */
  password?: string;
  /**
   * The schema that holds OmniQ's tables: letters, digits and `_`, not starting with a digit.
   * @default {"omniq"}
   */
  schema?: string;
  /**
   * The most connections this engine opens (plus one for `LISTEN`).
   * @default {10}
   */
  pool?: number;
  /**
   * How long a connection attempt may take, in seconds.
   * @default {10}
   */
  connectTimeout?: number;
  /**
   * TLS: `false` (off), `true` or `"require"` (on), `"prefer"`.
   * @default {false}
   */
  ssl?: boolean | "require" | "prefer";
}

/** The schema name rule: a plain identifier, quoted anyway when used. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]*$/i;
/** Rows handled per transaction by a sweep. */
const SWEEP_BATCH = 500;
/** How many times a transaction is retried after a deadlock or serialization failure. */
const CONFLICT_RETRIES = 8;
/** The server's clock in epoch ms: leases use it, so workers on skewed machines agree. */
const NOW_MS = "(extract(epoch from clock_timestamp()) * 1000)::int8";

const LIVE = "('waiting', 'scheduled', 'queued', 'running')";
const FINAL = "('completed', 'failed', 'cancelled', 'expired')";
const UNSTARTED = "('waiting', 'scheduled', 'queued')";

const EXPIRED_ERROR: SerializedError = {
  name: "TaskExpiredError",
  message: "expired before it started",
};

/** The numbered migrations; each runs once, in order, in the open transaction. */
function migrations(s: string): string[] {
  return [
    `
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
  WHERE key IS NOT NULL AND state IN ${LIVE};
CREATE INDEX tasks_expiring ON ${s}.tasks (expires_at)
  WHERE expires_at IS NOT NULL AND state IN ${UNSTARTED};
CREATE INDEX tasks_ended ON ${s}.tasks (completed_at) WHERE state IN ${FINAL};

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
    // Whether a task has dependents, on its own row: an enqueue that adds one writes the
    // row, so a completion waiting on that row's lock sees the mark when it goes on (a
    // subquery on deps would read the snapshot taken before it waited).
    `
ALTER TABLE ${s}.tasks ADD COLUMN has_dependents boolean NOT NULL DEFAULT false;
UPDATE ${s}.tasks SET has_dependents = true
  WHERE id IN (SELECT depends_on FROM ${s}.deps);
-- A process still running the code of version 1 adds deps rows without the mark: set it.
CREATE FUNCTION ${s}.mark_dependency() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  UPDATE ${s}.tasks SET has_dependents = true
    WHERE id = NEW.depends_on AND NOT has_dependents;
  RETURN NULL;
END $$;
CREATE TRIGGER deps_mark_dependency AFTER INSERT ON ${s}.deps
  FOR EACH ROW EXECUTE FUNCTION ${s}.mark_dependency();
`,
  ];
}

type Sql = postgres.Sql;
/** A connection reserved for one transaction. */
type Tx = postgres.ReservedSql;
type Db = postgres.Sql | Tx;
type Row = postgres.Row;
type Param =
  | string
  | number
  | boolean
  | null
  | Uint8Array
  | (string | null)[]
  | (number | null)[]
  | (Uint8Array | null)[];

/**
 * Run `fn` in a transaction on a reserved connection. Not `sql.begin`: after a lost
 * connection it sends `ROLLBACK` on the dead connection, and postgres.js 3.4.9 then writes
 * to a closed socket from a `setImmediate` callback, an uncaught error that ends the
 * process (porsager/postgres#1208). Here a lost connection is released without another
 * statement; the server rolls the transaction back when the connection dies.
 */
async function transaction<T>(sql: Sql, fn: (tx: Tx, tail: Tail) => Promise<T>): Promise<T> {
  // A connection killed at the wrong moment can leave postgres.js waiting for an answer
  // that never comes (or for a pool slot that never frees): after TX_TIMEOUT the step fails
  // as a lost connection, its connection is abandoned, and the caller's retry (or the
  // task's lease) carries on.
  let timer: ReturnType<typeof setTimeout> | undefined;
  const guard = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      const error = new OmniQError(
        `postgres: no answer to a transaction for ${
          TX_TIMEOUT / 1000
        } s; its connection is abandoned`,
      );
      (error as { code?: string }).code = "CONNECTION_TIMEOUT";
      reject(error);
    }, TX_TIMEOUT);
  });
  const work = runTransaction(sql, fn);
  work.catch(() => {}); // settled late, after the guard, it is nobody's error
  try {
    return await Promise.race([work, guard]);
  } finally {
    clearTimeout(timer);
  }
}

/** How long one transaction may wait for the server before it counts as a lost connection. */
const TX_TIMEOUT = 20_000;

/**
 * The last statements of a transaction: sent, not awaited, by its body, they travel
 * together in one round trip before the `COMMIT`, and a failure among them fails it.
 */
type Tail = Promise<unknown>[];

async function runTransaction<T>(
  sql: Sql,
  fn: (tx: Tx, tail: Tail) => Promise<T>,
): Promise<T> {
  const tx = await sql.reserve();
  const tail: Tail = [];
  let out: T;
  try {
    // postgres.js pipelines the statements of a reserved connection: `BEGIN` goes out with
    // the body's first statement, and the tail's statements together. Statements run in
    // the order they were sent, so each still sees what the ones before it wrote.
    const begin = tx.unsafe("BEGIN").execute();
    begin.catch(() => {}); // its failure fails the body's statements too; awaited below
    out = await fn(tx, tail);
    // Every answer is awaited, and the first failure in the order sent is reported: it is
    // the cause; the statements behind it fail only because the transaction was aborted.
    // `COMMIT` waits for them all: it must never reach the server before one of them (a
    // statement postgres.js prepares again is sent again, after what was queued behind it).
    const answers = await Promise.allSettled([begin, ...tail]);
    const failed = answers.find((a) => a.status === "rejected");
    if (failed) throw failed.reason;
    await tx.unsafe("COMMIT");
  } catch (error) {
    // A dead connection is not released either: back in the pool's open list it would
    // take the next query with no socket (the same crash). The pool has already moved it
    // to its closed list, from which it reconnects when needed.
    for (const sent of tail) sent.catch(() => {}); // the first error is the one reported
    if (isConnectionError(error)) throw error;
    await tx.unsafe("ROLLBACK").catch(() => {});
    tx.release();
    throw error;
  }
  tx.release();
  return out;
}

/**
 * Run one statement with positional parameters (a prepared, cached statement). It is sent
 * at once, so statements reach the server in the order of the calls, awaited or not.
 */
function run(db: Db, text: string, params: Param[] = []): Promise<Row[]> {
  return db.unsafe(text, params as never[], { prepare: true }).execute() as unknown as Promise<
    Row[]
  >;
}

function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

/**
 * Bytes in hex, for a `text[]` parameter that SQL decodes. postgres.js types an array of
 * `Uint8Array` as a single `bytea`, so a `bytea[]` parameter cannot take them.
 */
function hex(value: Uint8Array | undefined): string | null {
  if (value === undefined) return null;
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex");
}

function bytes(value: unknown): Uint8Array {
  const b = value as Uint8Array;
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function checkVersion(v: unknown, what: string): void {
  if (typeof v === "number" && v > RECORD_VERSION) {
    throw new OmniQError(
      `${what} was written by a newer OmniQ (record version ${v}; this version reads up to ` +
        `${RECORD_VERSION}); upgrade OmniQ to read it`,
    );
  }
}

function brief(error: SerializedError): { name: string; message: string } {
  return { name: error.name, message: error.message };
}

function code(error: unknown): string | undefined {
  const c = (error as { code?: unknown })?.code;
  return typeof c === "string" ? c : undefined;
}

/** Whether an error is the connection's (lost, refused, timed out), not the statement's. */
function isConnectionError(error: unknown): boolean {
  const c = code(error);
  if (c === undefined) return false;
  return c.startsWith("CONNECT") || c.startsWith("CONNECTION_") || c.startsWith("08") ||
    c === "57P01" || c === "57P02" || c === "57P03" || c === "ECONNREFUSED" ||
    c === "ECONNRESET" || c === "EPIPE" || c === "ETIMEDOUT" || c === "EHOSTUNREACH" ||
    c === "ENOTFOUND";
}

/** Where the engine connects, for messages: never the password. */
function describeTarget(o: ResolvedOptions): string {
  return `postgres ${o.user}@${o.host}:${o.port}/${o.database} (schema ${o.schema})`;
}

interface ResolvedOptions {
  host: string;
  port: number;
  database: string;
  user: string;
  password?: string;
  schema: string;
  pool: number;
  connectTimeout: number;
  ssl: boolean | "require" | "prefer";
}

function positive(value: unknown, what: string): number {
  const n = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1) {
    throw new ConfigError(
      `postgres ${what}: expected a positive integer, got ${JSON.stringify(value)}`,
    );
  }
  return n;
}

/** Check and fill in the options; a URL's parts are overridden by the explicit fields. */
function resolveOptions(options: PostgresOptions): ResolvedOptions {
  const fromUrl: PostgresOptions = {};
  if (options.url !== undefined) {
    let url: URL;
    try {
      url = new URL(options.url);
    } catch {
      throw new ConfigError(`postgres url: expected postgres://user@host:port/database`);
    }
    if (url.protocol !== "postgres:" && url.protocol !== "postgresql:") {
      throw new ConfigError(`postgres url: expected a postgres:// URL, got "${url.protocol}"`);
    }
    if (url.hostname) fromUrl.host = decodeURIComponent(url.hostname).replace(/^\[|\]$/g, "");
    if (url.port) fromUrl.port = Number(url.port);
    if (url.username) fromUrl.user = decodeURIComponent(url.username);
    if (url.password) fromUrl.password = decodeURIComponent(url.password);
    const db = decodeURIComponent(url.pathname.replace(/^\//, ""));
    if (db) fromUrl.database = db;
    for (const [k, v] of url.searchParams) {
      switch (k) {
        case "schema":
          fromUrl.schema = v;
          break;
        case "pool":
        case "max":
          fromUrl.pool = positive(v, k);
          break;
        case "connect_timeout":
          fromUrl.connectTimeout = positive(v, k);
          break;
        case "sslmode":
          fromUrl.ssl = v === "disable" ? false : v === "prefer" ? "prefer" : "require";
          break;
        default:
          throw new ConfigError(
            `postgres url: unknown parameter "${k}"; expected schema, pool, connect_timeout ` +
              `or sslmode`,
          );
      }
    }
  }
  const o = { ...fromUrl, ...stripUndefined(options) };
  const schema = o.schema ?? "omniq";
  if (typeof schema !== "string" || !SCHEMA_NAME.test(schema) || schema.length > 50) {
    throw new ConfigError(
      `postgres schema: expected letters, digits and _ (not starting with a digit, at most ` +
        `50), got ${JSON.stringify(schema)}`,
    );
  }
  const user = o.user;
  if (typeof user !== "string" || user === "") {
    throw new ConfigError(
      "postgres user: expected a user name (in the URL, postgres://user@host/db, or as user)",
    );
  }
  const port = o.port ?? 5432;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new ConfigError(`postgres port: expected 1 to 65535, got ${JSON.stringify(port)}`);
  }
  const resolved: ResolvedOptions = {
    host: o.host ?? "localhost",
    port,
    database: o.database ?? user,
    user,
    schema: schema.toLowerCase(),
    pool: positive(o.pool ?? 10, "pool"),
    connectTimeout: positive(o.connectTimeout ?? 10, "connectTimeout"),
    ssl: o.ssl ?? false,
  };
  if (o.password !== undefined) resolved.password = o.password;
  return resolved;
}

function stripUndefined(o: PostgresOptions): PostgresOptions {
  return Object.fromEntries(
    Object.entries(o).filter(([k, v]) => v !== undefined && k !== "url"),
  ) as PostgresOptions;
}

/** A subscriber of wake-ups: the queues it takes from. */
interface Subscriber {
  queues: Set<string>;
  onWake: () => void;
}

/** The pool, the schema and the wake-up listener, shared by the three stores. */
class Connection {
  readonly sql: Sql;
  readonly options: ResolvedOptions;
  /** The quoted schema name, ready for SQL text. */
  readonly s: string;
  /** The `LISTEN/NOTIFY` channel of this schema. */
  readonly channel: string;
  /** The two-key advisory lock space of this schema. */
  readonly lockSpace: number;
  attached: Attachment = { results: true, events: true };
  #closed = false;
  #subscribers = new Set<Subscriber>();
  #listening: Promise<{ unlisten(): Promise<void> } | undefined> | undefined;

  constructor(sql: Sql, options: ResolvedOptions) {
    this.sql = sql;
    this.options = options;
    this.s = `"${options.schema}"`;
    this.channel = `${options.schema}_wake`;
    this.lockSpace = hash32(`omniq:${options.schema}`);
  }

  get closed(): boolean {
    return this.#closed;
  }

  check(): void {
    if (this.#closed) {
      throw new OmniQError(`the ${describeTarget(this.options)} backend is closed`);
    }
  }

  /** Wrap a driver error with where it happened (never the password). */
  wrap(error: unknown, what: string): Error {
    if (error instanceof OmniQError) return error;
    const message = (error as Error)?.message ?? String(error);
    const c = code(error);
    return new OmniQError(
      `${describeTarget(this.options)}: ${what} failed: ${message}${c ? ` (${c})` : ""}`,
      { cause: error },
    );
  }

  /** A read; retried a few times when the connection was lost (reads are idempotent). */
  async read<T>(what: string, fn: (db: Sql) => Promise<T>): Promise<T> {
    this.check();
    for (let attempt = 0;; attempt++) {
      try {
        return await fn(this.sql);
      } catch (error) {
        if (attempt < 3 && isConnectionError(error) && !this.#closed) {
          await sleep(50 * 2 ** attempt);
          continue;
        }
        throw this.wrap(error, what);
      }
    }
  }

  /**
   * One transaction. Retried after a deadlock or serialization failure (nothing was
   * committed); a lost connection is not retried, since a commit may have happened.
   */
  async tx<T>(what: string, fn: (tx: Tx, step: Step, tail: Tail) => Promise<T>): Promise<T> {
    this.check();
    for (let attempt = 0;; attempt++) {
      try {
        return await transaction(this.sql, async (tx, tail) => {
          const step = new Step(this, tx);
          const out = await fn(tx, step, tail);
          step.flush(tail);
          return out;
        });
      } catch (error) {
        const c = code(error);
        if ((c === "40P01" || c === "40001") && attempt < CONFLICT_RETRIES) {
          await sleep(Math.random() * 5 * (attempt + 1));
          continue;
        }
        throw this.wrap(error, what);
      }
    }
  }

  /**
   * One statement outside a transaction (atomic by itself). Retried after a deadlock or
   * serialization failure (nothing was written); a lost connection is not retried, since
   * the statement may have committed.
   */
  async write<T>(what: string, fn: (db: Sql) => Promise<T>): Promise<T> {
    this.check();
    for (let attempt = 0;; attempt++) {
      try {
        return await fn(this.sql);
      } catch (error) {
        const c = code(error);
        if ((c === "40P01" || c === "40001") && attempt < CONFLICT_RETRIES) {
          await sleep(Math.random() * 5 * (attempt + 1));
          continue;
        }
        throw this.wrap(error, what);
      }
    }
  }

  subscribe(queues: string[], onWake: () => void): () => void {
    const subscriber: Subscriber = { queues: new Set(queues), onWake };
    this.#subscribers.add(subscriber);
    this.#listening ??= this.#listen();
    return () => {
      this.#subscribers.delete(subscriber);
    };
  }

  async #listen(): Promise<{ unlisten(): Promise<void> } | undefined> {
    for (let pause = 100; !this.#closed; pause = Math.min(pause * 2, 5_000)) {
      try {
        return await this.sql.listen(
          this.channel,
          (queue) => {
            for (const s of this.#subscribers) if (s.queues.has(queue)) s.onWake();
          },
          // On every (re)connection of the listener: what was sent meanwhile is unseen.
          () => {
            for (const s of this.#subscribers) s.onWake();
          },
        );
      } catch {
        // The pool's queries report a lost server; the listener retries quietly, and
        // workers poll at their interval meanwhile.
        await sleep(pause);
      }
    }
    return undefined;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscribers.clear();
    await this.sql.end({ timeout: 2 });
  }
}

/** A 32-bit hash of a string (FNV-1a), for advisory lock keys. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

/**
 * The effects of one transaction. Events go into this engine's table at the end of the
 * transaction (one insert), and results into its table (one upsert), when they are
 * attached; otherwise into the returned effects. Wake-ups are sent by `pg_notify`,
 * delivered on commit. All three travel with the `COMMIT`.
 */
class Step {
  readonly now: number = Date.now();
  readonly #c: Connection;
  readonly #tx: Tx;
  readonly #events: (NewEvent | StoredEvent)[] = [];
  readonly #results: StoredResult[] = [];
  readonly #stored: StoredResult[] = [];
  readonly #wakes = new Set<string>();

  constructor(c: Connection, tx: Tx) {
    this.#c = c;
    this.#tx = tx;
  }

  emit(event: NewEvent): void {
    this.#events.push(event);
  }

  /** Wake the workers of a queue (after commit). */
  wake(queue: string): void {
    this.#wakes.add(queue);
  }

  /** A result this step produced: stored here when attached, else returned. */
  produce(result: StoredResult): void {
    if (this.#c.attached.results) this.#stored.push(result);
    else this.#results.push(result);
  }

  /** Store a result the orchestrator gave; never returned, as it holds it already. */
  keep(result: StoredResult | undefined): void {
    if (result && this.#c.attached.results) this.#stored.push(result);
  }

  /** Send the step's writes into the transaction's tail (nothing here reads them). */
  flush(tail: Tail): void {
    const c = this.#c;
    if (c.attached.events && this.#events.length) {
      tail.push(
        insertEvents(c, this.#tx, this.#events).then((stored) => {
          this.#events.splice(0, stored.length, ...stored);
        }),
      );
    }
    if (this.#stored.length) tail.push(putResults(c, this.#tx, this.#stored));
    if (this.#wakes.size) tail.push(notify(c, this.#tx, [...this.#wakes]));
  }

  effects(): Effects {
    // Called inside the transaction, before the events have ids: `flush` replaces them in
    // this same array with their stored versions.
    return { events: this.#events, results: this.#results };
  }
}

/** Wake the workers of these queues, in every process, when the transaction commits. */
function notify(c: Connection, db: Db, queues: string[]): Promise<Row[]> {
  return run(db, "SELECT pg_notify($1, q) FROM unnest($2::text[]) AS q", [c.channel, queues]);
}

/** Append events in one statement; ids follow the given order. */
function insertEvents(
  c: Connection,
  db: Db,
  events: NewEvent[],
): Promise<StoredEvent[]> {
  // Sent now (not at the first await): the caller may send more statements behind it.
  const sent = run(
    db,
    `INSERT INTO ${c.s}.events (type, task_id, queue, at, attempt, data)
     SELECT e->>'type', e->>'task_id', e->>'queue', (e->>'at')::bigint,
       (e->>'attempt')::integer, nullif(e->'data', 'null'::jsonb)
     FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS x(e, n)
     ORDER BY n
     RETURNING id`,
    [JSON.stringify(events.map((e) => ({
      type: e.type,
      task_id: e.taskId ?? null,
      queue: e.queue ?? null,
      at: e.at,
      attempt: e.attempt ?? null,
      data: e.data ?? null,
    })))],
  );
  return sent.then((rows) => {
    // Identity values are drawn in insertion order, which follows `n`.
    const ids = rows.map((r) => r.id as number).sort((a, b) => a - b);
    return events.map((e, i) => ({ ...e, id: String(ids[i]) }));
  });
}

/** Store results in one statement, replacing those of the same tasks. */
function putResults(c: Connection, db: Db, results: StoredResult[]): Promise<Row[]> {
  // One row per task (the last given wins): an upsert may not touch a row twice.
  const last = [...new Map(results.map((r) => [r.taskId, r])).values()];
  return run(
    db,
    `INSERT INTO ${c.s}.results (task_id, v, state, value, error, completed_at, expires_at)
     SELECT task_id, $1, state, decode(value, 'hex'), error::jsonb, completed_at, expires_at
     FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::int8[], $7::int8[])
       AS x(task_id, state, value, error, completed_at, expires_at)
     ON CONFLICT (task_id) DO UPDATE SET v = excluded.v, state = excluded.state,
       value = excluded.value, error = excluded.error, completed_at = excluded.completed_at,
       expires_at = excluded.expires_at`,
    [
      RECORD_VERSION,
      last.map((r) => r.taskId),
      last.map((r) => r.state),
      last.map((r) => hex(r.value)),
      last.map((r) => json(r.error)),
      last.map((r) => r.completedAt),
      last.map((r) => r.expiresAt ?? null),
    ],
  );
}

function toTask(row: Row): StoredTask {
  checkVersion(row.v, `task "${row.id}"`);
  const task: StoredTask = {
    id: row.id,
    task: row.task,
    queue: row.queue,
    priority: row.priority,
    payload: bytes(row.payload),
    createdAt: row.created_at,
    runAt: row.run_at,
    maxAttempts: row.max_attempts,
    backoff: row.backoff,
    dependsOn: row.depends_on,
    onDependencyFailure: row.on_dep_failure,
    state: row.state,
    attempts: row.attempts,
  };
  if (row.expires_at !== null) task.expiresAt = row.expires_at;
  if (row.timeout !== null) task.timeout = row.timeout;
  if (row.result_ttl !== null) task.resultTtl = row.result_ttl;
  if (row.key !== null) task.key = row.key;
  if (row.schedule_id !== null) task.scheduleId = row.schedule_id;
  if (row.started_at !== null) task.startedAt = row.started_at;
  if (row.completed_at !== null) task.completedAt = row.completed_at;
  if (row.progress !== null) task.progress = row.progress;
  if (row.error !== null) task.error = row.error;
  if (row.links !== null) task.links = row.links;
  return task;
}

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
    id: row.id,
    task: row.task,
    payload: bytes(row.payload),
    misfire: row.misfire,
    misfireGrace: row.misfire_grace,
    paused: row.paused,
    createdAt: row.created_at,
    queue: row.queue,
    priority: row.priority,
    maxAttempts: row.max_attempts,
    backoff: row.backoff,
  };
  if (row.cron !== null) s.cron = row.cron;
  if (row.every !== null) s.every = row.every;
  if (row.tz !== null) s.tz = row.tz;
  if (row.start_at !== null) s.startAt = row.start_at;
  if (row.end_at !== null) s.endAt = row.end_at;
  if (row.next_run_at !== null) s.nextRunAt = row.next_run_at;
  if (row.last_run_at !== null) s.lastRunAt = row.last_run_at;
  if (row.timeout !== null) s.timeout = row.timeout;
  if (row.ttl !== null) s.ttl = row.ttl;
  if (row.result_ttl !== null) s.resultTtl = row.result_ttl;
  return s;
}

function toResult(row: Row): StoredResult {
  checkVersion(row.v, `the result of task "${row.task_id}"`);
  const result: StoredResult = {
    taskId: row.task_id,
    state: row.state as FinalState,
    completedAt: row.completed_at,
  };
  if (row.value !== null) result.value = bytes(row.value);
  if (row.error !== null) result.error = row.error;
  if (row.expires_at !== null) result.expiresAt = row.expires_at;
  return result;
}

function toEvent(row: Row): StoredEvent {
  const event: StoredEvent = { id: String(row.id), type: row.type as EventType, at: row.at };
  if (row.task_id !== null) event.taskId = row.task_id;
  if (row.queue !== null) event.queue = row.queue;
  if (row.attempt !== null) event.attempt = row.attempt;
  if (row.data !== null) event.data = row.data;
  return event;
}

function ref(row: Row): { id: string; queue: string; attempts: number } {
  checkVersion(row.v, `task "${row.id}"`);
  return { id: row.id, queue: row.queue, attempts: row.attempts };
}

function zeroCounts(): StateCounts {
  return Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as StateCounts;
}

/** A completion waiting to be sent with others. */
interface Completion {
  id: string;
  token: string;
  result: StoredResult;
  resolve: (done: Effects | undefined) => void;
  reject: (error: unknown) => void;
}

/** How many completion statements one engine has on their way at once. */
const COMPLETIONS_IN_FLIGHT = 2;
/** The most completions one statement carries. */
const COMPLETION_BATCH = 500;

/** The task queue of a PostgreSQL engine. */
class PostgresQueue implements TaskQueue {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  attach(attachment: Attachment): void {
    this.#c.attached = { results: attachment.results, events: attachment.events };
  }

  subscribe(queues: string[], onWake: () => void): () => void {
    return this.#c.subscribe(queues, onWake);
  }

  enqueue(tasks: NewTask[]): Promise<EnqueueOutcome> {
    const c = this.#c;
    return c.tx("enqueue", async (tx, step, tail) => {
      const { ids, created } = await this.#store(tx, step, tail, tasks, true);
      return { ids, created, effects: step.effects() };
    });
  }

  /**
   * Store tasks, in order, in at most three round trips whatever their number: one to lock
   * their keys and find the live tasks holding them (with `dedupe`), one to lock the
   * dependencies outside the batch and read their states, and a multi-row insert of the
   * tasks and their dependency links, sent in the transaction's tail with its events.
   * A task may depend on one earlier in the batch; its state is known here.
   */
  async #store(
    tx: Tx,
    step: Step,
    tail: Tail,
    tasks: NewTask[],
    dedupe: boolean,
  ): Promise<{ ids: string[]; created: boolean[] }> {
    const c = this.#c;
    const now = step.now;
    const liveByKey = new Map<string, string>();
    const keys = dedupe
      ? [...new Set(tasks.flatMap((t) => t.key === undefined ? [] : [t.key]))]
      : [];
    if (keys.length) {
      // Two processes enqueueing one key at once: the lock makes the second see the first.
      // Keys are locked in one order, so two batches sharing keys cannot deadlock.
      const locked = run(
        tx,
        `SELECT pg_advisory_xact_lock($1, hashtext(k))
         FROM (SELECT DISTINCT k FROM unnest($2::text[]) AS k ORDER BY k) AS ks`,
        [c.lockSpace, keys],
      );
      const live = run(
        tx,
        `SELECT DISTINCT ON (key) key, id FROM ${c.s}.tasks
         WHERE key = ANY($1::text[]) AND key IS NOT NULL AND state IN ${LIVE}
         ORDER BY key, seq`,
        [keys],
      );
      const [, rows] = await Promise.all([locked, live]);
      for (const row of rows) liveByKey.set(row.key, row.id);
    }
    // The states of the dependencies outside the batch. A dependency on a batch task that
    // a live key replaces is one on the live task.
    const batch = new Set(tasks.map((t) => t.id));
    const replaced = (id: string): string => {
      const t = dedupe ? tasks.find((t) => t.id === id && t.key !== undefined) : undefined;
      return (t && liveByKey.get(t.key!)) ?? id;
    };
    const outside = new Set<string>();
    for (const t of tasks) {
      for (const d of t.dependsOn) {
        const to = batch.has(d) ? replaced(d) : d;
        if (!batch.has(to)) outside.add(to);
      }
    }
    const states = new Map<string, TaskState>();
    if (outside.size) {
      // Locked, and a live one marked as having dependents: a dependency ending at this
      // moment waits for this insert to commit, then sees the mark and releases the new
      // dependent (or this insert sees it ended). In id order, so two batches cannot
      // deadlock on each other.
      const rows = await run(
        tx,
        `WITH locked AS (
           SELECT id, state, has_dependents FROM ${c.s}.tasks WHERE id = ANY($1::text[])
           ORDER BY id FOR UPDATE
         ), marked AS (
           UPDATE ${c.s}.tasks t SET has_dependents = true FROM locked l
           WHERE t.id = l.id AND l.state IN ${LIVE} AND NOT l.has_dependents
         )
         SELECT id, state FROM locked`,
        [[...outside]],
      );
      for (const row of rows) states.set(row.id, row.state);
    }
    const ids: string[] = [];
    const created: boolean[] = [];
    const standIn = new Map<string, string>();
    const rows: { t: NewTask; state: TaskState; error?: SerializedError; deps: string[] }[] = [];
    for (const t of tasks) {
      if (dedupe && t.key !== undefined) {
        const live = liveByKey.get(t.key);
        if (live !== undefined) {
          ids.push(live);
          created.push(false);
          standIn.set(t.id, live);
          continue;
        }
      }
      const to = (id: string) => standIn.get(id) ?? id;
      const dependsOn = [...new Set(t.dependsOn.map(to))];
      let pending = false;
      let broken: { id: string; state: string } | undefined;
      for (const d of dependsOn) {
        const state = states.get(d);
        if (state === undefined) throw new OmniQError(`dependsOn: no task with id "${d}"`);
        if (state === "completed") continue;
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
      const linked = t.links === undefined ? t : { ...t, links: mapLinks(t.links, to) };
      rows.push({ t: linked, state, error, deps: dependsOn });
      // Later tasks of the batch see this one as the database would: by id, and by key
      // while it is live.
      if (!states.has(t.id)) states.set(t.id, state);
      if (dedupe && t.key !== undefined && !isFinal(state)) liveByKey.set(t.key, t.id);
      ids.push(t.id);
      created.push(true);
      const ref = { id: t.id, queue: t.queue, attempts: 0 };
      if (error && broken) {
        step.produce(endResult(t, "cancelled", error, now));
        step.emit(
          taskEvent("cancelled", ref, now, { reason: error.message, dependency: broken.id }),
        );
      } else if (state === "scheduled") {
        step.emit(taskEvent("scheduled", ref, now, { runAt: t.runAt }));
        step.wake(t.queue);
      } else {
        step.emit(taskEvent("enqueued", ref, now, { state }));
        if (state === "queued") step.wake(t.queue);
      }
    }
    if (!rows.length) return { ids, created };
    const dependedOn = new Set(rows.flatMap((r) => r.deps));
    // No ON CONFLICT: an existing id fails the insert, and with it the transaction.
    const inserted = run(
      tx,
      `INSERT INTO ${c.s}.tasks (id, v, task, queue, priority, state, payload, created_at,
         run_at, expires_at, max_attempts, backoff, timeout, result_ttl, key, on_dep_failure,
         schedule_id, completed_at, error, depends_on, links, has_dependents)
       SELECT id, $1, task, queue, priority, state, decode(payload, 'hex'), created_at, run_at,
         expires_at,
         max_attempts, backoff::jsonb, timeout, result_ttl, key, on_dep_failure, schedule_id,
         completed_at, error::jsonb, depends_on::jsonb, links::jsonb, has_dependents::bool
       FROM unnest($2::text[], $3::text[], $4::text[], $5::int4[], $6::text[], $7::text[],
         $8::int8[], $9::int8[], $10::int8[], $11::int4[], $12::text[], $13::int8[],
         $14::int8[], $15::text[], $16::text[], $17::text[], $18::int8[], $19::text[],
         $20::text[], $21::text[], $22::text[])
         WITH ORDINALITY AS x(id, task, queue, priority, state, payload, created_at, run_at,
           expires_at, max_attempts, backoff, timeout, result_ttl, key, on_dep_failure,
           schedule_id, completed_at, error, depends_on, links, has_dependents, n)
       ORDER BY n`,
      [
        RECORD_VERSION,
        rows.map((r) => r.t.id),
        rows.map((r) => r.t.task),
        rows.map((r) => r.t.queue),
        rows.map((r) => r.t.priority),
        rows.map((r) => r.state),
        rows.map((r) => hex(r.t.payload)),
        rows.map((r) => r.t.createdAt),
        rows.map((r) => r.t.runAt),
        rows.map((r) => r.t.expiresAt ?? null),
        rows.map((r) => r.t.maxAttempts),
        rows.map((r) => JSON.stringify(r.t.backoff)),
        rows.map((r) => r.t.timeout ?? null),
        rows.map((r) => r.t.resultTtl ?? null),
        rows.map((r) => r.t.key ?? null),
        rows.map((r) => r.t.onDependencyFailure),
        rows.map((r) => r.t.scheduleId ?? null),
        rows.map((r) => r.error ? now : null),
        rows.map((r) => json(r.error)),
        rows.map((r) => JSON.stringify(r.deps)),
        rows.map((r) => json(r.t.links)),
        // As text: postgres.js sends an array of booleans as one boolean.
        rows.map((r) => dependedOn.has(r.t.id) ? "t" : "f"),
      ],
    ).catch((e) => {
      if (code(e) !== "23505") throw e;
      const id = /\(id\)=\((.*)\) already exists/.exec(
        String((e as { detail?: unknown }).detail ?? ""),
      )?.[1];
      throw new DuplicateTaskError(
        `id: a task with id "${id ?? rows[0].t.id}" exists`,
        { cause: e },
      );
    });
    tail.push(inserted);
    const links = rows.flatMap((r) => r.deps.map((d) => [r.t.id, d]));
    if (links.length) {
      tail.push(run(
        tx,
        `INSERT INTO ${c.s}.deps (task_id, depends_on)
         SELECT * FROM unnest($1::text[], $2::text[]) ON CONFLICT DO NOTHING`,
        [links.map((l) => l[0]), links.map((l) => l[1])],
      ));
    }
    return { ids, created };
  }

  get(id: string): Promise<StoredTask | undefined> {
    const c = this.#c;
    return c.read("get", async (db) => {
      const rows = await run(db, `SELECT * FROM ${c.s}.tasks WHERE id = $1`, [id]);
      return rows.length ? toTask(rows[0]) : undefined;
    });
  }

  list(filter: ListOptions): Promise<StoredTask[]> {
    const c = this.#c;
    const where: string[] = [];
    const params: Param[] = [];
    if (filter.state !== undefined) {
      const states = Array.isArray(filter.state) ? filter.state : [filter.state];
      if (states.length === 0) return c.read("list", () => Promise.resolve([]));
      params.push(JSON.stringify(states));
      where.push(
        `state IN (SELECT jsonb_array_elements_text($${params.length}::text::jsonb))`,
      );
    }
    if (filter.queue !== undefined) {
      params.push(filter.queue);
      where.push(`queue = $${params.length}`);
    }
    if (filter.task !== undefined) {
      params.push(filter.task);
      where.push(`task = $${params.length}`);
    }
    params.push(filter.limit ?? 100, filter.offset ?? 0);
    const text = `SELECT * FROM ${c.s}.tasks ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
      ORDER BY seq LIMIT $${params.length - 1} OFFSET $${params.length}`;
    return c.read("list", async (db) => (await run(db, text, params)).map(toTask));
  }

  stats(): Promise<QueueStats> {
    const c = this.#c;
    return c.read("stats", async (db) => {
      const total = zeroCounts();
      const queues: Record<string, StateCounts> = {};
      const rows = await run(
        db,
        `SELECT queue, state, count(*)::int8 AS n FROM ${c.s}.tasks GROUP BY queue, state`,
      );
      for (const row of rows) {
        const state = row.state as TaskState;
        total[state] += row.n;
        (queues[row.queue] ??= zeroCounts())[state] += row.n;
      }
      return { total, queues };
    });
  }

  async claim(request: ClaimRequest): Promise<{ tasks: ClaimedTask[]; effects: Effects }> {
    const c = this.#c;
    c.check();
    if (request.limit <= 0 || request.queues.length === 0) {
      return { tasks: [], effects: { events: [], results: [] } };
    }
    if (request.queues.length === 1) {
      const claimed = await this.#claimOne(request);
      if (claimed) return claimed;
    } else {
      // An idle poll takes no lock and opens no transaction.
      const ready = await c.read("claim", (db) =>
        run(
          db,
          `SELECT EXISTS (SELECT 1 FROM ${c.s}.tasks WHERE state = 'queued'
               AND queue = ANY($1::text[]))
             OR EXISTS (SELECT 1 FROM ${c.s}.tasks WHERE state = 'scheduled'
               AND queue = ANY($1::text[]) AND run_at <= $2)
             AS ready`,
          [request.queues, Date.now()],
        ));
      if (!ready[0].ready) return { tasks: [], effects: { events: [], results: [] } };
    }
    return c.tx("claim", async (tx, step) => {
      const now = step.now;
      // Sent with BEGIN, not awaited: the claims below see what it queued.
      const promoted = run(
        tx,
        `UPDATE ${c.s}.tasks SET state = 'queued' WHERE seq IN (
           SELECT seq FROM ${c.s}.tasks WHERE state = 'scheduled'
             AND queue = ANY($1::text[]) AND run_at <= $2
           FOR UPDATE SKIP LOCKED)`,
        [request.queues, now],
      );
      promoted.catch(() => {}); // its failure fails the claims after it too
      const tasks: ClaimedTask[] = [];
      for (const queue of request.queues) {
        if (tasks.length >= request.limit) break;
        // Rows another worker is claiming right now are skipped, not waited for.
        const rows = await run(
          tx,
          `WITH picked AS (
             SELECT seq FROM ${c.s}.tasks
             WHERE state = 'queued' AND queue = $1 AND (expires_at IS NULL OR expires_at > $2)
               AND v <= $3
             ORDER BY priority DESC, seq LIMIT $4
             FOR UPDATE SKIP LOCKED)
           UPDATE ${c.s}.tasks t SET state = 'running', attempts = t.attempts + 1,
             token = gen_random_uuid()::text, lease_until = ${NOW_MS} + $5, started_at = $2,
             worker = $6
           FROM picked WHERE t.seq = picked.seq
           RETURNING t.*`,
          [queue, now, RECORD_VERSION, request.limit - tasks.length, request.lease, request.worker],
        );
        rows.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
        for (const row of rows) {
          const task: ClaimedTask = {
            ...toTask(row),
            token: row.token,
            leaseUntil: row.lease_until,
          };
          tasks.push(task);
          step.emit(taskEvent("started", task, now));
        }
      }
      await promoted;
      return { tasks, effects: step.effects() };
    });
  }

  /**
   * The claim from one queue in one statement, outside a transaction: the common case, in
   * one round trip, and an idle poll takes no lock. It takes nothing when a scheduled task
   * of the queue is due (`undefined`): the transaction above first queues those, so that
   * priority and FIFO order count them.
   */
  async #claimOne(
    request: ClaimRequest,
  ): Promise<{ tasks: ClaimedTask[]; effects: Effects } | undefined> {
    const c = this.#c;
    const now = Date.now();
    const logged = c.attached.events;
    const rows = await c.write("claim", (db) =>
      run(
        db,
        `WITH due AS (
           SELECT EXISTS (SELECT 1 FROM ${c.s}.tasks WHERE state = 'scheduled' AND queue = $1
             AND run_at <= $2) AS found
         ), picked AS (
           SELECT seq FROM ${c.s}.tasks
           WHERE state = 'queued' AND queue = $1 AND (expires_at IS NULL OR expires_at > $2)
             AND v <= $3 AND NOT (SELECT found FROM due)
           ORDER BY priority DESC, seq LIMIT $4
           FOR UPDATE SKIP LOCKED
         ), claimed AS (
           UPDATE ${c.s}.tasks t SET state = 'running', attempts = t.attempts + 1,
             token = gen_random_uuid()::text, lease_until = ${NOW_MS} + $5, started_at = $2,
             worker = $6
           FROM picked WHERE t.seq = picked.seq
           RETURNING t.*
         )${
          logged
            ? `, logged AS (
           INSERT INTO ${c.s}.events (type, task_id, queue, at, attempt)
           SELECT 'started', id, queue, $2, attempts FROM claimed ORDER BY priority DESC, seq
           RETURNING id AS event_id, task_id)`
            : ""
        }
         SELECT claimed.*, ${logged ? "logged.event_id" : "NULL::int8 AS event_id"},
           due.found AS due
         FROM due LEFT JOIN claimed ON true
         ${logged ? "LEFT JOIN logged ON logged.task_id = claimed.id" : ""}`,
        [
          request.queues[0],
          now,
          RECORD_VERSION,
          request.limit,
          request.lease,
          request.worker,
        ],
      ));
    if (rows[0]?.due) return undefined;
    const claimed = rows.filter((row) => row.id !== null);
    claimed.sort((a, b) => b.priority - a.priority || a.seq - b.seq);
    const tasks: ClaimedTask[] = [];
    const events: (NewEvent | StoredEvent)[] = [];
    for (const row of claimed) {
      const task: ClaimedTask = {
        ...toTask(row),
        token: row.token,
        leaseUntil: row.lease_until,
      };
      tasks.push(task);
      const event = taskEvent("started", task, now);
      events.push(logged ? { ...event, id: String(row.event_id) } : event);
    }
    return { tasks, effects: { events, results: [] } };
  }

  renew(id: string, token: string, lease: number): Promise<boolean> {
    const c = this.#c;
    return c.read("renew", async (db) =>
      (await run(
        db,
        `UPDATE ${c.s}.tasks SET lease_until = ${NOW_MS} + $1
         WHERE id = $2 AND state = 'running' AND token = $3 RETURNING 1`,
        [lease, id, token],
      )).length > 0);
  }

  progress(id: string, token: string, value: number): Promise<Effects | undefined> {
    const c = this.#c;
    return c.tx("progress", async (tx, step) => {
      const rows = await run(
        tx,
        `UPDATE ${c.s}.tasks SET progress = $1 WHERE id = $2 AND state = 'running' AND token = $3
         RETURNING v, id, queue, attempts`,
        [value, id, token],
      );
      if (!rows.length) return undefined;
      step.emit(taskEvent("progress", ref(rows[0]), step.now, { progress: value }));
      return step.effects();
    });
  }

  async complete(id: string, token: string, result: StoredResult): Promise<Effects | undefined> {
    this.#c.check();
    const done = await new Promise<Effects | undefined>((resolve, reject) => {
      this.#completions.push({ id, token, result, resolve, reject });
      if (this.#gathering) return;
      // Sent on the next turn of the event loop, not now: the tasks of one claim end in the
      // same turn, so their completions share a statement, and the worker's next claim
      // finds all their slots free (a completion sent alone would split every batch).
      this.#gathering = true;
      setImmediate(() => {
        this.#gathering = false;
        this.#sendCompletions();
      });
    });
    return done ?? await this.#completeInTransaction(id, token, result);
  }

  /** Completions waiting for a statement in flight to return; then sent together. */
  #completions: Completion[] = [];
  #completing = 0;
  /** Whether a send is due on the next turn of the event loop. */
  #gathering = false;

  /**
   * Send the waiting completions as one statement, unless COMPLETIONS_IN_FLIGHT are on
   * their way: then they wait and go with the next. Those that arrive in one turn of the
   * event loop, or during a round trip, share a statement.
   */
  #sendCompletions(): void {
    if (this.#completing >= COMPLETIONS_IN_FLIGHT || !this.#completions.length) return;
    // One statement updates each task once: a second completion of a task waits its turn.
    const batch: Completion[] = [];
    const rest: Completion[] = [];
    const ids = new Set<string>();
    for (const w of this.#completions) {
      if (ids.has(w.id) || batch.length >= COMPLETION_BATCH) rest.push(w);
      else {
        ids.add(w.id);
        batch.push(w);
      }
    }
    this.#completions = rest;
    this.#completing++;
    this.#completeAlone(batch).then(
      (done) => {
        for (const w of batch) w.resolve(done.get(w.id));
      },
      (error) => {
        for (const w of batch) w.reject(error);
      },
    ).finally(() => {
      this.#completing--;
      this.#sendCompletions();
    });
  }

  /**
   * The completions of tasks no other task depends on, in one statement outside a
   * transaction (atomic by itself): the fenced updates, their results and their events,
   * in one round trip. A completion it leaves out changed nothing: its token is stale, or
   * its task has dependents to release, which the transaction below does.
   */
  async #completeAlone(batch: Completion[]): Promise<Map<string, Effects>> {
    const c = this.#c;
    const { results: kept, events: logged } = c.attached;
    const rows = await c.write("complete", (db) =>
      run(
        db,
        `WITH input AS (
           SELECT * FROM unnest($1::text[], $2::text[], $3::int8[], $4::text[], $5::text[],
             $6::text[], $7::int8[])
             WITH ORDINALITY AS x(id, token, completed_at, state, value, error, expires_at, n)
         ), done AS (
           UPDATE ${c.s}.tasks t SET state = 'completed', completed_at = i.completed_at,
             token = NULL, lease_until = NULL
           FROM input i
           WHERE t.id = i.id AND t.state = 'running' AND t.token = i.token AND t.v <= $8
             AND NOT t.has_dependents
           RETURNING t.v, t.id, t.queue, t.attempts, i.n, i.completed_at, i.state, i.value,
             i.error, i.expires_at
         )${
          kept
            ? `, kept AS (
           INSERT INTO ${c.s}.results (task_id, v, state, value, error, completed_at,
             expires_at)
           SELECT id, $8, state, decode(value, 'hex'), error::jsonb, completed_at, expires_at
           FROM done
           ON CONFLICT (task_id) DO UPDATE SET v = excluded.v, state = excluded.state,
             value = excluded.value, error = excluded.error,
             completed_at = excluded.completed_at, expires_at = excluded.expires_at)`
            : ""
        }${
          logged
            ? `, logged AS (
           INSERT INTO ${c.s}.events (type, task_id, queue, at, attempt)
           SELECT 'completed', id, queue, completed_at, nullif(attempts, 0) FROM done ORDER BY n
           RETURNING id, task_id)`
            : ""
        }
         SELECT done.v, done.id, done.queue, done.attempts,
           ${logged ? "logged.id" : "NULL::int8"} AS event_id
         FROM done ${logged ? "LEFT JOIN logged ON logged.task_id = done.id" : ""}`,
        [
          batch.map((w) => w.id),
          batch.map((w) => w.token),
          batch.map((w) => w.result.completedAt),
          batch.map((w) => w.result.state),
          batch.map((w) => hex(w.result.value)),
          batch.map((w) => json(w.result.error)),
          batch.map((w) => w.result.expiresAt ?? null),
          RECORD_VERSION,
        ],
      ));
    // Each event is dated when its handler finished (the worker frees the slot then).
    const finished = new Map(batch.map((w) => [w.id, w.result.completedAt]));
    const done = new Map<string, Effects>();
    for (const row of rows) {
      const event = taskEvent("completed", ref(row), finished.get(row.id)!);
      done.set(row.id, {
        events: [logged ? { ...event, id: String(row.event_id) } : event],
        results: [],
      });
    }
    return done;
  }

  #completeInTransaction(
    id: string,
    token: string,
    result: StoredResult,
  ): Promise<Effects | undefined> {
    const c = this.#c;
    return c.tx("complete", async (tx, step) => {
      const rows = await run(
        tx,
        `UPDATE ${c.s}.tasks SET state = 'completed', completed_at = $1, token = NULL,
           lease_until = NULL
         WHERE id = $2 AND state = 'running' AND token = $3
         RETURNING v, id, queue, attempts, has_dependents`,
        [result.completedAt, id, token],
      );
      if (!rows.length) return undefined;
      step.keep(result);
      step.emit(taskEvent("completed", ref(rows[0]), result.completedAt));
      if (rows[0].has_dependents) await this.#cascade(tx, step, id, "completed");
      return step.effects();
    });
  }

  fail(id: string, token: string, failure: Failure): Promise<Effects | undefined> {
    const c = this.#c;
    return c.tx("fail", async (tx, step) => {
      const now = step.now;
      const error = JSON.stringify(failure.error);
      if (failure.retryAt !== undefined) {
        const rows = await run(
          tx,
          `UPDATE ${c.s}.tasks SET state = $1, run_at = $2, error = $3::text::jsonb,
             token = NULL, lease_until = NULL
           WHERE id = $4 AND state = 'running' AND token = $5
           RETURNING v, id, queue, attempts`,
          [failure.retryAt > now ? "scheduled" : "queued", failure.retryAt, error, id, token],
        );
        if (!rows.length) return undefined;
        step.emit(taskEvent("retrying", ref(rows[0]), now, {
          error: brief(failure.error),
          retryAt: failure.retryAt,
        }));
        step.wake(rows[0].queue);
        return step.effects();
      }
      const rows = await run(
        tx,
        `UPDATE ${c.s}.tasks SET state = 'failed', completed_at = $1, error = $2::text::jsonb,
           token = NULL, lease_until = NULL
         WHERE id = $3 AND state = 'running' AND token = $4
         RETURNING v, id, queue, attempts`,
        [failure.result?.completedAt ?? now, error, id, token],
      );
      if (!rows.length) return undefined;
      step.keep(failure.result);
      step.emit(
        taskEvent("failed", ref(rows[0]), failure.result?.completedAt ?? now, {
          error: brief(failure.error),
        }),
      );
      await this.#cascade(tx, step, id, "failed");
      return step.effects();
    });
  }

  cancel(id: string, reason: string): Promise<Effects | undefined> {
    const c = this.#c;
    return c.tx("cancel", async (tx, step) => {
      const rows = await run(
        tx,
        `SELECT * FROM ${c.s}.tasks WHERE id = $1 AND state IN ${LIVE} FOR UPDATE`,
        [id],
      );
      if (!rows.length) return undefined;
      const error = { name: "TaskCancelledError", message: reason };
      await this.#end(tx, step, toTask(rows[0]), "cancelled", error, { reason });
      return step.effects();
    });
  }

  retry(id: string): Promise<Effects | undefined> {
    const c = this.#c;
    return c.tx("retry", async (tx, step) => {
      const rows = await run(
        tx,
        `UPDATE ${c.s}.tasks SET state = 'queued', attempts = 0, error = NULL,
           completed_at = NULL, started_at = NULL, progress = NULL, token = NULL,
           lease_until = NULL, run_at = $1, expires_at = NULL
         WHERE id = $2 AND state IN ('failed', 'cancelled', 'expired')
         RETURNING v, id, queue, attempts`,
        [step.now, id],
      );
      if (!rows.length) return undefined;
      if (c.attached.results) {
        await run(tx, `DELETE FROM ${c.s}.results WHERE task_id = $1`, [id]);
      }
      step.emit(taskEvent("enqueued", ref(rows[0]), step.now, { state: "queued", retry: true }));
      step.wake(rows[0].queue);
      return step.effects();
    });
  }

  async sweep(options: SweepOptions): Promise<Effects> {
    const c = this.#c;
    const { now, purgeBefore } = options;
    const effects: Effects = { events: [], results: [] };
    const batch = async (
      what: string,
      part: (tx: Tx, step: Step) => Promise<number>,
    ): Promise<void> => {
      for (;;) {
        const [n, out] = await c.tx(what, async (tx, step) => {
          const n = await part(tx, step);
          return [n, step.effects()] as const;
        });
        effects.events.push(...out.events);
        effects.results.push(...out.results);
        if (n < SWEEP_BATCH) return;
      }
    };
    // Stalled: the lease is judged by the server's clock, the one that set it.
    await batch("sweep (stalled)", async (tx, step) => {
      const rows = await run(
        tx,
        `SELECT * FROM ${c.s}.tasks WHERE state = 'running' AND lease_until < ${NOW_MS}
           AND v <= $1
         ORDER BY lease_until LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [RECORD_VERSION, SWEEP_BATCH],
      );
      for (const row of rows) await this.#stalled(tx, step, toTask(row));
      return rows.length;
    });
    await batch("sweep (expired)", async (tx, step) => {
      const rows = await run(
        tx,
        `SELECT * FROM ${c.s}.tasks
         WHERE expires_at IS NOT NULL AND state IN ${UNSTARTED} AND expires_at <= $1 AND v <= $2
         ORDER BY expires_at LIMIT $3 FOR UPDATE SKIP LOCKED`,
        [now, RECORD_VERSION, SWEEP_BATCH],
      );
      for (const row of rows) {
        await this.#end(tx, step, toTask(row), "expired", EXPIRED_ERROR, undefined);
      }
      return rows.length;
    });
    if (purgeBefore !== undefined) {
      await batch("sweep (purge)", async (tx) => {
        const rows = await run(
          tx,
          `DELETE FROM ${c.s}.tasks WHERE seq IN (
             SELECT seq FROM ${c.s}.tasks WHERE state IN ${FINAL} AND completed_at < $1
             LIMIT $2 FOR UPDATE SKIP LOCKED)
           RETURNING id`,
          [purgeBefore, SWEEP_BATCH],
        );
        if (rows.length) {
          await run(
            tx,
            `DELETE FROM ${c.s}.deps
             WHERE task_id IN (SELECT jsonb_array_elements_text($1::text::jsonb))`,
            [JSON.stringify(rows.map((r) => r.id))],
          );
        }
        return rows.length;
      });
    }
    return effects;
  }

  async #stalled(tx: Tx, step: Step, task: StoredTask): Promise<void> {
    const now = step.now;
    step.emit(taskEvent("stalled", task, now, { attempt: task.attempts }));
    if (task.attempts < task.maxAttempts) {
      await run(
        tx,
        `UPDATE ${this.#c.s}.tasks SET state = 'queued', run_at = $1, token = NULL,
           lease_until = NULL
         WHERE id = $2`,
        [now, task.id],
      );
      step.wake(task.queue);
      return;
    }
    const error = {
      name: "StalledError",
      message: `the worker's lease expired on attempt ${task.attempts}`,
    };
    await this.#end(tx, step, task, "failed", error, { error });
  }

  async #end(
    tx: Tx,
    step: Step,
    task: StoredTask,
    state: Exclude<FinalState, "completed">,
    error: SerializedError,
    data: Record<string, unknown> | undefined,
  ): Promise<void> {
    await run(
      tx,
      `UPDATE ${this.#c.s}.tasks SET state = $1, completed_at = $2, error = $3::text::jsonb,
         token = NULL, lease_until = NULL
       WHERE id = $4`,
      [state, step.now, JSON.stringify(error), task.id],
    );
    step.produce(endResult(task, state, error, step.now));
    step.emit(taskEvent(state, task, step.now, data));
    await this.#cascade(tx, step, task.id, state);
  }

  /**
   * Release or cancel the waiting dependents of a task that just became final, and theirs
   * in turn: depth first, in enqueue order, with an explicit stack. Each dependent is
   * locked before its other dependencies are read, so two dependencies ending at once in
   * two transactions cannot both leave it waiting.
   */
  async #cascade(
    tx: Tx,
    step: Step,
    rootId: string,
    rootState: FinalState,
  ): Promise<void> {
    const c = this.#c;
    const stack: { id: string; state: FinalState; dependents: string[]; next: number }[] = [];
    const visit = async (id: string, state: FinalState): Promise<void> => {
      const dependents = (await run(
        tx,
        `SELECT t.id FROM ${c.s}.deps d JOIN ${c.s}.tasks t ON t.id = d.task_id
         WHERE d.depends_on = $1 AND t.state = 'waiting' ORDER BY t.seq`,
        [id],
      )).map((row) => row.id as string);
      if (dependents.length) stack.push({ id, state, dependents, next: 0 });
    };
    await visit(rootId, rootState);
    while (stack.length) {
      const frame = stack[stack.length - 1];
      if (frame.next >= frame.dependents.length) {
        stack.pop();
        continue;
      }
      const rows = await run(
        tx,
        `SELECT * FROM ${c.s}.tasks WHERE id = $1 AND state = 'waiting' FOR UPDATE`,
        [frame.dependents[frame.next++]],
      );
      if (!rows.length) continue;
      const dependent = toTask(rows[0]);
      if (frame.state === "completed" || dependent.onDependencyFailure === "run") {
        await this.#releaseIfReady(tx, step, dependent);
        continue;
      }
      const reason = `dependency ${frame.id} ${frame.state}`;
      const error = { name: "TaskCancelledError", message: reason };
      await run(
        tx,
        `UPDATE ${c.s}.tasks SET state = 'cancelled', completed_at = $1, error = $2::text::jsonb
         WHERE id = $3`,
        [step.now, JSON.stringify(error), dependent.id],
      );
      step.produce(endResult(dependent, "cancelled", error, step.now));
      step.emit(taskEvent("cancelled", dependent, step.now, { reason, dependency: frame.id }));
      await visit(dependent.id, "cancelled");
    }
  }

  async #releaseIfReady(
    tx: Tx,
    step: Step,
    task: StoredTask,
  ): Promise<void> {
    const c = this.#c;
    const blocking = await run(
      tx,
      task.onDependencyFailure === "run"
        ? `SELECT 1 FROM ${c.s}.deps d JOIN ${c.s}.tasks t ON t.id = d.depends_on
           WHERE d.task_id = $1 AND t.state IN ${LIVE} LIMIT 1`
        : `SELECT 1 FROM ${c.s}.deps d JOIN ${c.s}.tasks t ON t.id = d.depends_on
           WHERE d.task_id = $1 AND t.state <> 'completed' LIMIT 1`,
      [task.id],
    );
    if (blocking.length) return;
    const state = task.runAt > step.now ? "scheduled" : "queued";
    await run(tx, `UPDATE ${c.s}.tasks SET state = $1 WHERE id = $2`, [state, task.id]);
    step.emit(
      taskEvent(state === "scheduled" ? "scheduled" : "enqueued", task, step.now, {
        state,
        released: true,
      }),
    );
    step.wake(task.queue);
  }

  putSchedule(s: StoredSchedule): Promise<void> {
    const c = this.#c;
    return c.tx("putSchedule", async (tx) => {
      await run(
        tx,
        `INSERT INTO ${c.s}.schedules (id, v, task, payload, cron, every, tz, start_at, end_at,
           misfire, misfire_grace, paused, next_run_at, last_run_at, created_at, queue, priority,
           max_attempts, backoff, timeout, ttl, result_ttl)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
           $19::text::jsonb, $20, $21, $22)
         ON CONFLICT (id) DO UPDATE SET v = excluded.v, task = excluded.task,
           payload = excluded.payload, cron = excluded.cron, every = excluded.every,
           tz = excluded.tz, start_at = excluded.start_at, end_at = excluded.end_at,
           misfire = excluded.misfire, misfire_grace = excluded.misfire_grace,
           paused = excluded.paused, next_run_at = excluded.next_run_at,
           last_run_at = excluded.last_run_at, created_at = excluded.created_at,
           queue = excluded.queue, priority = excluded.priority,
           max_attempts = excluded.max_attempts, backoff = excluded.backoff,
           timeout = excluded.timeout, ttl = excluded.ttl, result_ttl = excluded.result_ttl`,
        [
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
          s.paused,
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
        ],
      );
    });
  }

  getSchedule(id: string): Promise<StoredSchedule | undefined> {
    const c = this.#c;
    return c.read("getSchedule", async (db) => {
      const rows = await run(db, `SELECT * FROM ${c.s}.schedules WHERE id = $1`, [id]);
      return rows.length ? toSchedule(rows[0]) : undefined;
    });
  }

  listSchedules(): Promise<StoredSchedule[]> {
    const c = this.#c;
    return c.read(
      "listSchedules",
      async (db) =>
        (await run(db, `SELECT * FROM ${c.s}.schedules ORDER BY id COLLATE "C"`)).map(
          toSchedule,
        ),
    );
  }

  setSchedulePaused(
    id: string,
    paused: boolean,
    nextRunAt?: number,
  ): Promise<Effects | undefined> {
    const c = this.#c;
    return c.tx("setSchedulePaused", async (tx, step) => {
      const rows = await run(
        tx,
        `SELECT paused FROM ${c.s}.schedules WHERE id = $1 FOR UPDATE`,
        [id],
      );
      if (!rows.length || rows[0].paused === paused) return undefined;
      if (paused) await run(tx, `UPDATE ${c.s}.schedules SET paused = true WHERE id = $1`, [id]);
      else {
        await run(
          tx,
          `UPDATE ${c.s}.schedules SET paused = false, next_run_at = $1 WHERE id = $2`,
          [nextRunAt ?? null, id],
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
    return c.tx(
      "deleteSchedule",
      async (tx) =>
        (await run(tx, `DELETE FROM ${c.s}.schedules WHERE id = $1 RETURNING 1`, [id])).length >
          0,
    );
  }

  dueSchedules(now: number, limit: number): Promise<StoredSchedule[]> {
    const c = this.#c;
    return c.read("dueSchedules", async (db) =>
      (await run(
        db,
        `SELECT * FROM ${c.s}.schedules
         WHERE NOT paused AND next_run_at IS NOT NULL AND next_run_at <= $1
         ORDER BY next_run_at, id COLLATE "C" LIMIT $2`,
        [now, limit],
      )).map(toSchedule));
  }

  nextScheduleAt(): Promise<number | undefined> {
    const c = this.#c;
    return c.read("nextScheduleAt", async (db) => {
      const rows = await run(
        db,
        `SELECT min(next_run_at) AS next FROM ${c.s}.schedules
         WHERE NOT paused AND next_run_at IS NOT NULL`,
      );
      return typeof rows[0]?.next === "number" ? rows[0].next : undefined;
    });
  }

  fireTick(claim: TickClaim): Promise<Effects | undefined> {
    const c = this.#c;
    return c.tx("fireTick", async (tx, step, tail) => {
      // The compare-and-set: a second scheduler waits on the row lock, then finds
      // `next_run_at` moved on and updates nothing.
      const fired = await run(
        tx,
        `UPDATE ${c.s}.schedules SET next_run_at = $1, last_run_at = $2
         WHERE id = $3 AND NOT paused AND next_run_at = $4 RETURNING 1`,
        [claim.next ?? null, claim.tick, claim.scheduleId, claim.tick],
      );
      if (!fired.length) return undefined;
      const task = claim.task;
      if (
        task &&
        !(await run(tx, `SELECT 1 FROM ${c.s}.tasks WHERE id = $1`, [task.id])).length
      ) {
        await this.#store(tx, step, tail, [task], false);
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
    return c.read("nextDue", async (db) => {
      const rows = await run(
        db,
        `SELECT min(run_at) AS due FROM ${c.s}.tasks WHERE state = 'scheduled'
           AND queue IN (SELECT jsonb_array_elements_text($1::text::jsonb))`,
        [JSON.stringify(queues)],
      );
      return typeof rows[0]?.due === "number" ? rows[0].due : undefined;
    });
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}

/** The result store of a PostgreSQL engine. */
class PostgresResults implements ResultStore {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  put(results: StoredResult[]): Promise<void> {
    const c = this.#c;
    return c.tx("put results", async (tx) => {
      if (results.length) await putResults(c, tx, results);
    });
  }

  get(taskId: string): Promise<StoredResult | undefined> {
    const c = this.#c;
    return c.read("get result", async (db) => {
      const rows = await run(
        db,
        `SELECT * FROM ${c.s}.results WHERE task_id = $1
           AND (expires_at IS NULL OR expires_at > $2)`,
        [taskId, Date.now()],
      );
      return rows.length ? toResult(rows[0]) : undefined;
    });
  }

  delete(taskIds: string[]): Promise<void> {
    const c = this.#c;
    return c.tx("delete results", async (tx) => {
      await run(
        tx,
        `DELETE FROM ${c.s}.results
         WHERE task_id IN (SELECT jsonb_array_elements_text($1::text::jsonb))`,
        [JSON.stringify(taskIds)],
      );
    });
  }

  sweep(now: number): Promise<number> {
    const c = this.#c;
    return c.read("sweep results", async (db) =>
      (await run(
        db,
        `DELETE FROM ${c.s}.results WHERE expires_at IS NOT NULL AND expires_at <= $1
         RETURNING 1`,
        [now],
      )).length);
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}

/** The event store of a PostgreSQL engine. */
class PostgresEvents implements EventStore {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  append(events: NewEvent[]): Promise<StoredEvent[]> {
    const c = this.#c;
    if (events.length === 0) return Promise.resolve([]);
    return c.tx("append events", (tx) => insertEvents(c, tx, events));
  }

  query(query: EventQuery): Promise<StoredEvent[]> {
    const c = this.#c;
    const where: string[] = [];
    const params: Param[] = [];
    if (query.taskId !== undefined) {
      params.push(query.taskId);
      where.push(`task_id = $${params.length}`);
    }
    if (query.queue !== undefined) {
      params.push(query.queue);
      where.push(`queue = $${params.length}`);
    }
    if (query.type !== undefined) {
      const types = Array.isArray(query.type) ? query.type : [query.type];
      if (types.length === 0) return c.read("query events", () => Promise.resolve([]));
      params.push(JSON.stringify(types));
      where.push(`type IN (SELECT jsonb_array_elements_text($${params.length}::text::jsonb))`);
    }
    if (query.since !== undefined) {
      params.push(query.since);
      where.push(`at >= $${params.length}`);
    }
    if (query.until !== undefined) {
      params.push(query.until);
      where.push(`at < $${params.length}`);
    }
    if (query.after !== undefined) {
      const after = Number(query.after);
      if (!Number.isSafeInteger(after)) {
        return Promise.reject(
          new OmniQError(
            `after: expected an event id of this postgres store (an integer), got ` +
              `"${query.after}"`,
          ),
        );
      }
      params.push(after);
      where.push(`id > $${params.length}`);
    }
    let limit = "";
    if (query.limit !== undefined) {
      params.push(query.limit);
      limit = `LIMIT $${params.length}`;
    }
    const text = `SELECT * FROM ${c.s}.events ${where.length ? `WHERE ${where.join(" AND ")}` : ""}
      ORDER BY id ${limit}`;
    return c.read("query events", async (db) => (await run(db, text, params)).map(toEvent));
  }

  sweep(before: number): Promise<number> {
    const c = this.#c;
    return c.read(
      "sweep events",
      async (db) =>
        (await run(db, `DELETE FROM ${c.s}.events WHERE at < $1 RETURNING 1`, [before])).length,
    );
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}

/** Create the schema and apply the migrations it lacks, one process at a time. */
async function migrate(c: Connection): Promise<void> {
  const steps = migrations(c.s);
  await transaction(c.sql, async (tx) => {
    // Serializes every process opening this schema: the first creates, the rest find it.
    await run(tx, "SELECT pg_advisory_xact_lock($1, 0)", [c.lockSpace]);
    // Looked up first: CREATE … IF NOT EXISTS still needs the CREATE right, and a user
    // with rights on the tables of a migrated schema alone may open it.
    const [found] = await run(
      tx,
      `SELECT to_regnamespace($1) IS NOT NULL AS schema,
         to_regclass($2) IS NOT NULL AS migrations`,
      [c.s, `${c.s}.migrations`],
    );
    if (!found.schema) await tx.unsafe(`CREATE SCHEMA ${c.s}`);
    if (!found.migrations) {
      await tx.unsafe(
        `CREATE TABLE ${c.s}.migrations (
           version integer PRIMARY KEY,
           applied_at timestamptz NOT NULL DEFAULT now()
         )`,
      );
    }
    const rows = await run(tx, `SELECT coalesce(max(version), 0) AS v FROM ${c.s}.migrations`);
    const current = Number(rows[0].v);
    if (current > steps.length) {
      throw new OmniQError(
        `${describeTarget(c.options)}: the schema was migrated by a newer OmniQ (version ` +
          `${current}; this version knows up to ${steps.length}); upgrade OmniQ to open it`,
      );
    }
    for (let v = current + 1; v <= steps.length; v++) {
      await tx.unsafe(steps[v - 1]);
      await run(tx, `INSERT INTO ${c.s}.migrations (version) VALUES ($1)`, [v]);
    }
  });
}

/** What failed at open, in words, from a driver or server error. */
function openFailure(error: unknown): string {
  const c = code(error);
  const message = (error as Error)?.message ?? String(error);
  switch (c) {
    case "28P01":
    case "28000":
      return `authentication failed (${message})`;
    case "3D000":
      return `the database does not exist (${message})`;
    case "42501":
      return `permission denied (${message}); the user needs CREATE on the database, or ` +
        `an existing schema it may use`;
    case "CONNECT_TIMEOUT":
      return `connection timed out (${message})`;
    case "ECONNREFUSED":
      return `connection refused: is the server running and listening there? (${message})`;
  }
  return c ? `${message} (${c})` : message;
}

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
    // Every setting is given, so postgres.js falls back on no PG* environment variable.
    const sql = postgres({
      host: o.host,
      port: o.port,
      database: o.database,
      username: o.user,
      password: o.password ?? "",
      max: o.pool,
      ssl: o.ssl,
      sslnegotiation: null,
      max_pipeline: 100,
      backoff: (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 20),
      idle_timeout: 60,
      connect_timeout: o.connectTimeout,
      max_lifetime: 60 * 30,
      keep_alive: 60,
      prepare: true,
      fetch_types: true,
      publications: "alltables",
      target_session_attrs: undefined,
      debug: false,
      onnotice: () => {},
      connection: { application_name: "omniq" },
      types: {
        // Times are epoch ms in bigint columns: read them as numbers.
        int8: {
          to: 20,
          from: [20],
          serialize: (x: number) => String(x),
          parse: (x: string) => Number(x),
        },
      },
    } as postgres.Options<Record<string, postgres.PostgresType>>);
    const c = new Connection(sql, o);
    try {
      await migrate(c);
    } catch (error) {
      await sql.end({ timeout: 0 }).catch(() => {});
      if (error instanceof OmniQError) throw error;
      const what = openFailure(error);
      const message = `${describeTarget(o)}: cannot open: ${what}`;
      throw isConnectionError(error) || code(error) === "CONNECT_TIMEOUT"
        ? new OmniQError(message, { cause: error })
        : new ConfigError(message, { cause: error });
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
