/**
 * The `file:` engine's target and options: the directory a `file:` target names, another
 * {@linkcode Storage} to use instead, and the lock's timings.
 *
 * @module
 */

import { OmniQError } from "../../src/errors.ts";
import type { Storage } from "./storage.ts";

/** A lock older than this (ms) is taken to be a crashed holder's and broken. */
export const LOCK_STALE_MS = 10_000;

/** How often (ms) the lock's holder marks it as alive during a long step. */
export const LOCK_HEARTBEAT_MS = 2_000;

/** The most steps that share one turn of the lock (and one commit). */
export const GROUP_MAX = 64;

/** A temporary file older than this (ms) is a crashed writer's, deleted by the sweep. */
export const TMP_STALE_MS = 3_600_000;

/** Options of {@linkcode openFile}. */
export interface FileOptions {
  /** Use this storage instead of the local directory (e.g. an object store). */
  storage?: Storage;
}

/**
 * The directory a `file:` target names: `file:./dir`, `file:dir`, `file:///abs/dir`, a
 * `file:` URL object, or a plain path.
 *
 * @param target The target.
 * @returns The directory path.
 */
export function filePath(target: string | URL): string {
  if (target instanceof URL) {
    if (target.protocol !== "file:") {
      throw new OmniQError(`expected a file: URL, got ${target.protocol}`);
    }
    return decodeURIComponent(target.pathname);
  }
  let rest = target;
  if (/^file:/i.test(rest)) rest = rest.slice(5);
  if (rest.startsWith("///")) return decodeURIComponent(rest.slice(2));
  if (rest.startsWith("//localhost/")) return decodeURIComponent(rest.slice(11));
  if (rest.startsWith("//")) {
    throw new OmniQError(`expected a path like ./dir or ///absolute/dir, got "//${rest.slice(2)}"`);
  }
  if (rest === "") throw new OmniQError("file: needs a directory, e.g. file:./omniq-data");
  return decodeURIComponent(rest);
}
