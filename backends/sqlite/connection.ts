/**
 * The SQLite engine's connection: the database handle, its cached statements, the
 * group-commit write queue and the asynchronous retry of a locked database.
 *
 * @module
 */

import type {
  SqliteDatabase as DatabaseSync,
  SqliteStatement as StatementSync,
} from "../../src/runtime/types.ts";
import type { Attachment } from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import { delay } from "../../src/kit/async.ts";
import type { Checkpointer } from "./checkpoint.ts";

/** How long a locked database is retried before the call fails. */
const LOCKED_FOR_MS = 30_000;

/** Whether SQLite refused a call because another connection holds a lock. */
export function isLocked(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const code = (error as { errcode?: unknown }).errcode;
  // Primary codes SQLITE_BUSY (5) and SQLITE_LOCKED (6); extended codes keep them in the
  // low byte. `exec` errors carry no code, only the message.
  if (typeof code === "number") return (code & 0xff) === 5 || (code & 0xff) === 6;
  return /database (?:table |schema )?is locked|database is busy/i.test(error.message);
}

/** One connection, its cached statements and the lock-retry loop, shared by the stores. */
export class Connection {
  readonly db: DatabaseSync;
  readonly path: string;
  attached: Attachment = { results: true, events: true };
  /** The thread that checkpoints a WAL-mode file, told of each commit. */
  checkpointer: Checkpointer | undefined;
  #closed = false;
  #statements = new Map<string, StatementSync>();

  constructor(db: DatabaseSync, path: string) {
    this.db = db;
    this.path = path;
  }

  /** Fail when the engine is closed. */
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
          this.checkpointer?.committed();
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
        await delay(2 + Math.random() * (spread - 2));
        spread = Math.min(spread * 2, 20);
        this.check();
      }
    }
  }

  /**
   * Close the database (after its checkpoint thread); later calls fail at once. The three
   * stores share the connection: each close gets the same promise.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closed = true;
    return this.#closing = (async () => {
      await this.checkpointer?.close();
      this.#statements.clear();
      this.db.close();
    })();
  }

  #closing: Promise<void> | undefined;
}
