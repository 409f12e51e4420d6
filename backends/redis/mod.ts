/**
 * The `redis:` engine: queue, results and events on a Redis server through `npm:redis`
 * (node-redis). Many worker processes on many machines may share one server: every change
 * of state is one Lua function call (atomic on the server), leases run on the server's clock
 * (`TIME`), and an idle worker is woken by pub/sub within milliseconds of an enqueue.
 *
 * Only this module imports the driver, so a program that never names a `redis://` URL
 * needs no `--allow-net`. A program that does needs `--allow-net=HOST:PORT`.
 *
 * ## URL
 * `redis://user:password@host:port/db?prefix=omniq:&events_max_len=100000&connect_timeout=5`
 * (`rediss://` for TLS). `db` defaults to 0, `prefix` (every key's start) to `omniq:`,
 * `events_max_len` (the events stream's approximate cap) to 100,000, `connect_timeout`
 * (seconds) to 5. The first connection must succeed within that time, or opening fails
 * with the host and the cause; later losses are retried with backoff. Passwords are never
 * part of an error message.
 *
 * ## Design
 * The keys under the prefix, the Lua code (one script per file in `lua/`, loaded once as a
 * function library on Redis 7+), the cluster caveat (give a prefix with its own hash tag,
 * `prefix={omniq}:`) and durability are described in
 * [docs/engines/redis.md](../../docs/engines/redis.md). In short: run the server with
 * `appendonly yes`, or a restart loses every queued task.
 *
 * @example Open a queue (needs a server)
 * ```ts ignore
 * import { OmniQ } from "@omniq/omniq";
 * await using q = await OmniQ.open("redis://127.0.0.1:6379/0?prefix=jobs:");
 * ```
 *
 * @module
 */

import type { Backend, EventStore, ResultStore, TaskQueue } from "../../src/backend.ts";
import { ConfigError, OmniQError } from "../../src/errors.ts";
import { Connection, message } from "./connection.ts";
import { describeTarget, isConfigFailure, type RedisOptions, resolveOptions } from "./options.ts";
import { RedisQueue } from "./queue.ts";
import { RedisEvents, RedisResults } from "./stores.ts";

export type { RedisOptions } from "./options.ts";

/**
 * The Redis engine: the task queue, results and events under one key prefix. Open it with
 * {@linkcode openRedis} or a `redis://` URL in `OmniQ.open`.
 *
 * Closing any of its three stores closes the whole engine, since they share one client.
 *
 * @example Open with options (needs a server)
 * ```ts ignore
 * import { RedisBackend } from "@omniq/omniq/redis";
 * await using backend = await RedisBackend.open({
 *   host: "127.0.0.1", port: 6379, db: 0, password: "secret", prefix: "jobs:",
 * });
 * console.assert((await backend.queue.stats()).total.queued >= 0);
 * ```
 */
export class RedisBackend implements Backend, AsyncDisposable {
  /** The engine's name. */
  readonly name = "redis";
  /** The task queue. */
  readonly queue: TaskQueue;
  /** The result store. */
  readonly results: ResultStore;
  /** The event store. */
  readonly events: EventStore;
  /** The start of every key this engine uses. */
  readonly prefix: string;
  readonly #c: Connection;

  private constructor(c: Connection) {
    this.#c = c;
    this.prefix = c.prefix;
    this.queue = new RedisQueue(c);
    this.results = new RedisResults(c);
    this.events = new RedisEvents(c);
  }

  /**
   * Connect and load the scripts.
   *
   * @param options Where to connect (a URL and/or host, port, db, username, password), the
   *   key prefix and the events stream's cap.
   * @returns The open engine.
   * @throws {ConfigError} When an option is not valid, or the server refuses the login or
   *   the database index (the message names the host and the cause).
   * @throws {OmniQError} When the server cannot be reached within `connectTimeout`.
   *
   * @example Open (needs a server)
   * ```ts ignore
   * import { RedisBackend } from "@omniq/omniq/redis";
   * const backend = await RedisBackend.open({ url: "redis://localhost:6379/0" });
   * await backend.close();
   * ```
   */
  static async open(options: RedisOptions): Promise<RedisBackend> {
    const o = resolveOptions(options);
    const c = new Connection(o);
    try {
      await c.open();
    } catch (error) {
      await c.close().catch(() => {});
      const text = message(error);
      const what = /ECONNREFUSED/.test(text)
        ? `connection refused: is the server running and listening there? (${text})`
        : text;
      const msg = `${describeTarget(o)}: cannot open: ${what}`;
      throw isConfigFailure(text)
        ? new ConfigError(msg, { cause: error })
        : new OmniQError(msg, { cause: error });
    }
    return new RedisBackend(c);
  }

  /**
   * Close the client and the wake-up subscriber. Closing twice is harmless.
   *
   * @returns When both connections are closed.
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
 * Open a Redis engine.
 *
 * @param target A `redis://` or `rediss://` URL, or the options.
 * @returns The open engine.
 * @throws {ConfigError} For a bad option, a refused login or a bad database index.
 * @throws {OmniQError} When the server cannot be reached.
 *
 * @example Open by URL (needs a server)
 * ```ts ignore
 * import { openRedis } from "@omniq/omniq/redis";
 * const backend = await openRedis("redis://:secret@localhost:6379/0?prefix=jobs:");
 * await backend.close();
 * ```
 */
export function openRedis(target: string | RedisOptions): Promise<RedisBackend> {
  return RedisBackend.open(typeof target === "string" ? { url: target } : target);
}
