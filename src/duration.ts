/**
 * Durations: a number of milliseconds or a string such as `"250ms"`, `"30s"`, `"5m"`,
 * `"1h"`, `"2d"`.
 *
 * @module
 */

import { ConfigError } from "./errors.ts";
import type { Duration } from "./types.ts";

const UNITS: Record<string, number> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

const PATTERN = /^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$/;

/**
 * Parse a duration into milliseconds.
 *
 * @param value A number of milliseconds, or a string like `"30s"`.
 * @param name The option's name, used in the error message.
 * @returns The duration in milliseconds (a non-negative finite number).
 * @throws {ConfigError} When the value is not a duration.
 *
 * @example Parsing durations
 * ```ts
 * import { parseDuration } from "@omniq/omniq";
 * console.assert(parseDuration("250ms") === 250);
 * console.assert(parseDuration("5m") === 300_000);
 * console.assert(parseDuration(1500) === 1500);
 * ```
 */
export function parseDuration(value: Duration, name = "duration"): number {
  if (typeof value === "number") {
    if (Number.isFinite(value) && value >= 0) return value;
    throw new ConfigError(`${name}: expected a non-negative number of milliseconds, got ${value}`);
  }
  if (typeof value === "string") {
    const match = PATTERN.exec(value);
    if (match) return Math.round(Number(match[1]) * UNITS[match[2]]);
  }
  throw new ConfigError(
    `${name}: expected a duration such as "250ms", "30s", "5m", "1h", "2d" or a number of ms, got ${
      JSON.stringify(value) ?? String(value)
    }`,
  );
}

/** Parse an optional duration: `undefined` stays `undefined`. */
export function optionalDuration(value: Duration | undefined, name: string): number | undefined {
  return value === undefined ? undefined : parseDuration(value, name);
}
