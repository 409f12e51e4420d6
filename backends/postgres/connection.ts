/**
 * The PostgreSQL engine's connection: the postgres.js pool (every setting given, so it
 * reads no `PG*` variable), transactions on reserved connections, the retries of reads and
 * conflicting writes, and the `LISTEN/NOTIFY` wake-ups of this schema's subscribers.
 *
 * @module
 */

import { Buffer } from "node:buffer";
import postgres from "postgres";
import type { Attachment, Subscription } from "../../src/backend.ts";
import { ConfigError, OmniQError } from "../../src/errors.ts";
import { deadline, delay } from "../../src/kit/async.ts";
import { describeTarget, type ResolvedPostgresOptions } from "./options.ts";

/** The pool. */
export type Sql = postgres.Sql;
/** A connection reserved for one transaction. */
export type Tx = postgres.ReservedSql;
/** Where a statement runs: the pool, or a transaction's connection. */
export type Db = postgres.Sql | Tx;
/** A row as postgres.js returns it. */
export type Row = postgres.Row;
/** A positional parameter. */
export type Param =
  | string
  | number
  | boolean
  | null
  | Uint8Array
  | (string | null)[]
  | (number | null)[]
  | (Uint8Array | null)[];

/**
 * The last statements of a transaction: sent, not awaited, by its body, they travel
 * together in one round trip before the `COMMIT`, and a failure among them fails it.
 */
export type Tail = Promise<unknown>[];

/** How many times a transaction is retried after a deadlock or serialization failure. */
const CONFLICT_RETRIES = 8;
/** How long one transaction may wait for the server before it counts as a lost connection. */
const TX_TIMEOUT = 20_000;

/** The error code of a driver or server error, if it has one. */
export function errorCode(error: unknown): string | undefined {
  const c = (error as { code?: unknown })?.code;
  return typeof c === "string" ? c : undefined;
}

/** Whether an error is the connection's (lost, refused, timed out), not the statement's. */
export function isConnectionError(error: unknown): boolean {
  const c = errorCode(error);
  if (c === undefined) return false;
  return c.startsWith("CONNECT") || c.startsWith("CONNECTION_") || c.startsWith("08") ||
    c === "57P01" || c === "57P02" || c === "57P03" || c === "ECONNREFUSED" ||
    c === "ECONNRESET" || c === "EPIPE" || c === "ETIMEDOUT" || c === "EHOSTUNREACH" ||
    c === "ENOTFOUND";
}

/** A deadlock or a serialization failure: nothing was committed, so it may run again. */
function isConflict(error: unknown): boolean {
  const c = errorCode(error);
  return c === "40P01" || c === "40001";
}

/** A short random pause before a conflicting statement runs again. */
function conflictPause(attempt: number): Promise<void> {
  return delay(Math.random() * 5 * (attempt + 1));
}

/** The pool for these options. Nothing connects until the first statement. */
export function createPool(o: ResolvedPostgresOptions): Sql {
  // Every setting is given, so postgres.js falls back on no PG* environment variable.
  return postgres({
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
}

/**
 * The error an open that failed reports: a `ConfigError` for what the user must fix (a
 * login, a database, rights), an `OmniQError` for a server out of reach. Never the password.
 */
export function openError(error: unknown, o: ResolvedPostgresOptions): Error {
  if (error instanceof OmniQError) return error;
  const message = `${describeTarget(o)}: cannot open: ${openFailure(error)}`;
  return isConnectionError(error) || errorCode(error) === "CONNECT_TIMEOUT"
    ? new OmniQError(message, { cause: error })
    : new ConfigError(message, { cause: error });
}

/** What failed at open, in words, from a driver or server error. */
function openFailure(error: unknown): string {
  const c = errorCode(error);
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
 * Run one statement with positional parameters (a prepared, cached statement). It is sent
 * at once, so statements reach the server in the order of the calls, awaited or not.
 */
export function run(db: Db, text: string, params: Param[] = []): Promise<Row[]> {
  return db.unsafe(text, params as never[], { prepare: true }).execute() as unknown as Promise<
    Row[]
  >;
}

/** A value as JSON text, `null` for none. */
export function json(value: unknown): string | null {
  return value === undefined ? null : JSON.stringify(value);
}

/**
 * Bytes in hex, for a `text[]` parameter that SQL decodes. postgres.js types an array of
 * `Uint8Array` as a single `bytea`, so a `bytea[]` parameter cannot take them.
 */
export function hex(value: Uint8Array | undefined): string | null {
  if (value === undefined) return null;
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex");
}

/**
 * Run `fn` in a transaction on a reserved connection. Not `sql.begin`: after a lost
 * connection it sends `ROLLBACK` on the dead connection, and postgres.js 3.4.9 then writes
 * to a closed socket from a `setImmediate` callback, an uncaught error that ends the
 * process (porsager/postgres#1208). Here a lost connection is released without another
 * statement; the server rolls the transaction back when the connection dies.
 */
export async function transaction<T>(
  sql: Sql,
  fn: (tx: Tx, tail: Tail) => Promise<T>,
): Promise<T> {
  // A connection killed at the wrong moment can leave postgres.js waiting for an answer
  // that never comes (or for a pool slot that never frees): after TX_TIMEOUT the step fails
  // as a lost connection, its connection is abandoned, and the caller's retry (or the
  // task's lease) carries on.
  return await deadline(runTransaction(sql, fn), TX_TIMEOUT, () => {
    const error = new OmniQError(
      `postgres: no answer to a transaction for ${
        TX_TIMEOUT / 1000
      } s; its connection is abandoned`,
    );
    (error as { code?: string }).code = "CONNECTION_TIMEOUT";
    return error;
  });
}

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

/** A 32-bit hash of a string (FNV-1a), for advisory lock keys. */
function hash32(text: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h | 0;
}

/** A subscriber of wake-ups: the queues it takes from. */
interface Subscriber {
  queues: Set<string>;
  onWake: () => void;
}

/** The pool, the schema and the wake-up listener, shared by the three stores. */
export class Connection {
  readonly sql: Sql;
  readonly options: ResolvedPostgresOptions;
  /** The quoted schema name, ready for SQL text. */
  readonly s: string;
  /** The `LISTEN/NOTIFY` channel of this schema. */
  readonly channel: string;
  /** The two-key advisory lock space of this schema. */
  readonly lockSpace: number;
  /**
   * The two-key advisory lock space of this schema's groups (a claim holds a group's lock
   * while it counts the group's running tasks and starts one): apart from `lockSpace`, so a
   * group never shares a lock with an enqueue's key of the same name.
   */
  readonly groupLockSpace: number;
  /**
   * The two-key advisory lock space of this schema's rate buckets (a claim holds a bucket's
   * lock while it counts the bucket's starts in the window and starts a task of it).
   */
  readonly rateLockSpace: number;
  attached: Attachment = { results: true, events: true };
  #closed = false;
  #subscribers = new Set<Subscriber>();
  /** Settled once the first `LISTEN` attempt has ended, in place or failed. */
  #listening: Promise<void> | undefined;

  constructor(sql: Sql, options: ResolvedPostgresOptions) {
    this.sql = sql;
    this.options = options;
    this.s = `"${options.schema}"`;
    this.channel = `${options.schema}_wake`;
    this.lockSpace = hash32(`omniq:${options.schema}`);
    this.groupLockSpace = hash32(`omniq:${options.schema}:groups`);
    this.rateLockSpace = hash32(`omniq:${options.schema}:rates`);
  }

  /** Whether the engine is closed. */
  get closed(): boolean {
    return this.#closed;
  }

  /** Fail when the engine is closed. */
  check(): void {
    if (this.#closed) {
      throw new OmniQError(`the ${describeTarget(this.options)} backend is closed`);
    }
  }

  /** Wrap a driver error with where it happened (never the password). */
  wrap(error: unknown, what: string): Error {
    if (error instanceof OmniQError) return error;
    const message = (error as Error)?.message ?? String(error);
    const c = errorCode(error);
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
          await delay(50 * 2 ** attempt);
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
  async tx<T>(what: string, fn: (tx: Tx, tail: Tail) => Promise<T>): Promise<T> {
    this.check();
    for (let attempt = 0;; attempt++) {
      try {
        return await transaction(this.sql, fn);
      } catch (error) {
        if (isConflict(error) && attempt < CONFLICT_RETRIES) {
          await conflictPause(attempt);
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
        if (isConflict(error) && attempt < CONFLICT_RETRIES) {
          await conflictPause(attempt);
          continue;
        }
        throw this.wrap(error, what);
      }
    }
  }

  /**
   * Call `onWake` when a task of `queues` may be ready in any process. `ready` settles
   * once the `LISTEN` is in place on the server (or its first attempt failed: workers then
   * poll until a retry succeeds).
   */
  subscribe(queues: string[], onWake: () => void): Subscription {
    const subscriber: Subscriber = { queues: new Set(queues), onWake };
    this.#subscribers.add(subscriber);
    this.#listening ??= new Promise<void>((settled) => {
      this.#listen(settled).finally(settled);
    });
    const stop = () => {
      this.#subscribers.delete(subscriber);
    };
    return Object.assign(stop, { ready: this.#listening });
  }

  /**
   * Listen on this schema's channel, retrying until it is in place or the engine closes;
   * `settled` is called after the first attempt, whatever its end.
   */
  async #listen(settled: () => void): Promise<void> {
    for (let pause = 100; !this.#closed; pause = Math.min(pause * 2, 5_000)) {
      try {
        // postgres.js resolves this once the server has run the `LISTEN`: from then on
        // every `pg_notify` on the channel reaches the callback. It listens again by
        // itself after a lost connection.
        await this.sql.listen(
          this.channel,
          (queue) => {
            for (const s of this.#subscribers) if (s.queues.has(queue)) s.onWake();
          },
          // On every (re)connection of the listener: what was sent meanwhile is unseen.
          () => {
            for (const s of this.#subscribers) s.onWake();
          },
        );
        return;
      } catch {
        // The pool's queries report a lost server; the listener retries quietly, and
        // workers poll at their interval meanwhile.
        settled();
        await delay(pause);
      }
    }
  }

  /** Close the pool and the listener; closing twice is harmless. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#subscribers.clear();
    await this.sql.end({ timeout: 2 });
  }
}
