/**
 * The `kv:` engine's target, options and limits: the path a `kv:` target names, the key
 * prefix, and the sizes that keep a step within one Deno KV commit (100 checks, 1,000
 * mutations, 800 KiB; 64 KiB a value).
 *
 * @module
 */

import { ConfigError } from "../../src/errors.ts";
import type { KvKey } from "./connection.ts";

/** The largest encoded argument list a task may have on this engine (bytes). */
export const KV_MAX_PAYLOAD = 48 * 1024;
/** The largest encoded result value this engine stores (bytes), split over several values. */
export const KV_MAX_RESULT = 512 * 1024;

/** The most bytes of a result value one KV value holds (a larger value is split). */
export const PART = 60_000;
/** Deno KV's checks per commit. */
export const MAX_CHECKS = 100;
/** Deno KV's mutations per commit. */
export const MAX_MUTATIONS = 1_000;
/** Bytes one commit may write, below Deno KV's 800 KiB (leaves room for keys and events). */
export const MAX_BYTES = 700 * 1024;
/** Records a step may read before it stops taking more (leaves room for key checks). */
export const ROOM = 80;
/** Tasks an `enqueue` stores in one commit, at first (halved while a commit is too large). */
export const BATCH = 48;
/** Steps one group commit takes at most. */
export const GROUP_STEPS = 64;
/** Records a group may have read before it takes another step. */
export const GROUP_ROOM = 50;
/** Commits that lost to another writer before a step gives up. */
export const MAX_CONFLICTS = 2_000;

/** Options of {@linkcode openKv}. */
export interface KvOptions {
  /** The key prefix of every record (default `["omniq"]`), to share a database. */
  prefix?: KvKey;
}

/**
 * The path a `kv:` target names: `""` for the default database, `":memory:"`, or a path.
 *
 * @param target `kv:`, `kv::memory:`, `kv:./path.kv` or `kv:///abs/path.kv`.
 * @returns The argument for `Deno.openKv` (`undefined` for the default database).
 */
export function kvPath(target: string): string | undefined {
  let rest = target;
  if (/^kv:/i.test(rest)) rest = rest.slice(3);
  if (rest === "") return undefined;
  if (rest === ":memory:") return ":memory:";
  if (rest.startsWith("///")) return decodeURIComponent(rest.slice(2));
  if (rest.startsWith("//")) {
    throw new ConfigError(`kv: expected a path like ./omniq.kv or ///absolute/path, got "${rest}"`);
  }
  return decodeURIComponent(rest);
}
