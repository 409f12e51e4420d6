/**
 * The registry: the one place the core learns which engines and worker types exist. The
 * core names none of them; each engine registers its URL schemes, the schema of its
 * object form (`backend: { postgres: {…} }`) and a lazy way to open it, and each worker
 * type registers how to make its executor. `backends/builtin.ts` and `workers/builtin.ts`
 * register the ones OmniQ ships; an outside engine calls {@linkcode registerEngine}
 * itself (through `@omniq/omniq/engine`).
 *
 * An engine's code is imported only when a store of it is opened, so a program loads, and
 * needs permissions for, only the engines it names.
 *
 * @module
 */

import type { Backend } from "./backend.ts";
import { ConfigError } from "./errors.ts";
import type { Executor } from "../workers/executor.ts";

/**
 * What one key of an engine's object form takes: a string, a port (1–65535), a count
 * (integer ≥ 0), a positive integer, a boolean, one or more server addresses, or a TLS
 * setting (`true`, `false`, `"require"`, `"prefer"`).
 */
export type OptionKind = "string" | "port" | "count" | "positive" | "boolean" | "servers" | "ssl";

/** One engine as the core sees it. */
export interface EngineEntry {
  /** The engine's name, the key of its object form: `"postgres"`. */
  readonly name: string;
  /** The URL schemes it opens, lower case, without the colon: `["postgres", "postgresql"]`. */
  readonly schemes: readonly string[];
  /**
   * The keys of its object form and what each takes, checked by `validateConfig` before
   * the engine is loaded; absent when the engine is opened by URL only.
   */
  readonly options?: Readonly<Record<string, OptionKind>>;
  /**
   * Open a store from a URL of one of its schemes.
   *
   * @param url The whole URL, as given.
   * @param rest What follows `scheme:`.
   */
  openUrl(url: string, rest: string): Promise<Backend>;
  /** Open a store from its object form (already checked against {@linkcode options}). */
  openOptions?(options: Record<string, unknown>): Promise<Backend>;
  /**
   * The object form of a URL of this engine with what the environment adds (a cloud's
   * credentials from its usual variables), or `undefined` to keep the URL. Called only by
   * `configFromEnv` and `resolveConfig({ env: true })`, never by `OmniQ.open`: a program's
   * environment reaches a store only when it asks for it.
   *
   * @param url The store URL.
   * @param env The environment variables.
   */
  fromEnvironment?(
    url: string,
    env: Record<string, string | undefined>,
  ): Record<string, unknown> | undefined;
}

/** How a worker type's executor is made. */
export interface PoolSpec {
  /** How many handlers run at once. */
  readonly size: number;
  /** The task modules the pool's threads or processes import. */
  readonly modules: readonly string[];
  /** The worker's lease, the watchdog of a thread that stops answering. */
  readonly lease: number;
  /** The worker's child-process permissions, as configured. */
  readonly permissions?: Record<string, boolean | string[]>;
}

/** One worker type: where its handlers run. */
export interface WorkerTypeEntry {
  /** The `worker.type` that names it: `"thread"`. */
  readonly type: string;
  /** Whether its handlers are imported from task modules (not taken from this thread). */
  readonly needsModules: boolean;
  /** Make the executor a worker runs its handlers through. */
  create(spec: PoolSpec): Executor;
}

const engines = new Map<string, EngineEntry>();
const bySchemes = new Map<string, EngineEntry>();
const workerTypes = new Map<string, WorkerTypeEntry>();

/**
 * Make an engine known to the core: its schemes then open through `OmniQ.open`.
 *
 * @param entry The engine's name, schemes, option schema and opener.
 * @throws {ConfigError} When its name or one of its schemes is taken by another engine.
 */
export function registerEngine(entry: EngineEntry): void {
  const same = engines.get(entry.name);
  if (same === entry) return;
  if (same) throw new ConfigError(`an engine named "${entry.name}" is already registered`);
  for (const scheme of entry.schemes) {
    const other = bySchemes.get(scheme);
    if (other) {
      throw new ConfigError(
        `engine "${entry.name}": the scheme "${scheme}:" belongs to "${other.name}"`,
      );
    }
  }
  engines.set(entry.name, entry);
  for (const scheme of entry.schemes) bySchemes.set(scheme, entry);
}

/** The engine that opens a URL scheme (lower case, no colon), if one is registered. */
export function engineForScheme(scheme: string): EngineEntry | undefined {
  return bySchemes.get(scheme);
}

/** The engine of a name (the key of an object form), if one is registered. */
export function engineNamed(name: string): EngineEntry | undefined {
  return engines.get(name);
}

/** Every registered engine, in the order they were registered. */
export function registeredEngines(): EngineEntry[] {
  return [...engines.values()];
}

/**
 * Make a worker type known: `worker.type` may then name it.
 *
 * @param entry The type's name and how its executor is made.
 */
export function registerWorkerType(entry: WorkerTypeEntry): void {
  workerTypes.set(entry.type, entry);
}

/** The worker type of a name, if one is registered. */
export function workerType(type: string): WorkerTypeEntry | undefined {
  return workerTypes.get(type);
}

/** The names of the registered worker types, in the order they were registered. */
export function workerTypeNames(): string[] {
  return [...workerTypes.keys()];
}
