/**
 * The shapes `OmniQ` takes and gives: its configuration, the store targets it opens, and
 * the options and reports of its methods. Kept apart from the class so the config loader
 * and the URL parser can name them without importing the orchestrator.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import type { CodecName } from "./codec.ts";
import type { Clock } from "./kit/clock.ts";
import type { TaskDefinition } from "./task.ts";
import type {
  Duration,
  EnqueueOptions,
  EventFilter,
  TaskDefaults,
  WorkerOptions,
} from "./types.ts";

/**
 * A server engine's store given by its options instead of a URL, as a YAML or JSON file
 * can: `{ postgres: { host, port, database, user, password, schema, pool } }` (the fields of
 * `PostgresOptions` in `@omniq/omniq/postgres`), `{ redis: { host, port, db, prefix … } }`
 * (`RedisOptions`) or `{ nats: { servers, token, stream, bucket … } }` (`NatsOptions`).
 * Checked key by key at open; in code, `openPostgres(options)` and its siblings are typed.
 */
export type EngineOptions =
  | { postgres: Record<string, unknown> }
  | { redis: Record<string, unknown> }
  | { nats: Record<string, unknown> }
  /** An engine registered from outside (`registerEngine` of `@omniq/omniq/engine`). */
  | { [engine: string]: Record<string, unknown> };

/**
 * Where a store lives: a URL such as `"sqlite:./omniq.db"`, an engine's options, or an
 * opened backend.
 */
export type StoreTarget = string | EngineOptions | Backend;

/** The configuration `OmniQ.open` takes. */
export interface OmniQConfig {
  /** One engine for queue, results and events (each may still be set apart). */
  backend?: StoreTarget;
  /** Where tasks are queued. */
  queue?: StoreTarget;
  /** Where results are stored. */
  results?: StoreTarget;
  /** Where events are stored. */
  events?: StoreTarget;
  /** Task modules (URLs or paths, imported at open) or task definitions. */
  tasks?: (TaskDefinition | URL | string)[];
  /** Defaults for workers made by this queue. */
  worker?: WorkerOptions;
  /** Defaults for tasks. */
  defaults?: TaskDefaults;
  /**
   * How arguments and results are written: `"msgpack"`, or `"json"` for stores people
   * read by hand. Every format stays readable whatever this says.
   * @default {"msgpack"}
   */
  codec?: CodecName;
  /**
   * The time tasks are stamped, judged due, expired and swept by: for tests, a
   * `ManualClock` (`@omniq/omniq/engine`) moves it without waiting. Give the engine the
   * same clock where it takes one (`openMemory(name, { clock })`); code only, not from a
   * file or the environment.
   * @default {systemClock}
   */
  clock?: Clock;
}

/** The default store: SQLite in `./omniq.db`. */
export const DEFAULT_URL = "sqlite:./omniq.db";

/** An item of {@linkcode OmniQ.enqueueMany}. */
// deno-lint-ignore no-explicit-any
export interface EnqueueItem<A extends any[] = any[]> extends EnqueueOptions {
  /** The task, by definition or name. */
  task: TaskDefinition<A> | string;
  /** Its arguments. */
  args: A;
}

/** Options of {@linkcode OmniQ.wait}. */
export interface WaitOptions {
  /** Give up after this long with a `TimeoutError`. */
  timeout?: Duration;
  /** Give up when this signal aborts. */
  signal?: AbortSignal;
}

/** Options of {@linkcode OmniQ.run}. */
export interface RunOptions extends WorkerOptions {
  /** `"idle"`: return when nothing is due or running. */
  until: "idle";
}

/** Options of {@linkcode OmniQ.events}. */
export interface EventsOptions extends EventFilter {
  /** Keep waiting for new events instead of ending after the last match. */
  follow?: boolean;
  /** Stop following when this signal aborts. */
  signal?: AbortSignal;
}

/** What {@linkcode OmniQ.cleanup} removed or changed. */
export interface CleanupReport {
  /** Tasks recovered from expired leases, expired, or purged, as events. */
  events: number;
  /** Results deleted for their `resultTtl`. */
  results: number;
  /** Events deleted for `eventTtl`. */
  eventsDeleted: number;
}
