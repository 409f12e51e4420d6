/**
 * The SQLite engine's options and their checks.
 *
 * @module
 */

import { ConfigError } from "../../src/errors.ts";

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

/** The options with their defaults filled in. */
export type ResolvedSqliteOptions = Required<SqliteOptions>;

/**
 * Check the options and fill in the defaults.
 *
 * @throws {ConfigError} When an option is not valid.
 */
export function resolveOptions(options: SqliteOptions): ResolvedSqliteOptions {
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
  return { path, busyTimeout };
}
