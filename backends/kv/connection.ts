/**
 * The `kv:` engine's database: as much of the `Deno.Kv` API as the engine uses
 * ({@linkcode KvLike}, so importing OmniQ never needs the unstable types), and the opening
 * of a KV file, shared by every engine of a process that opens the same file.
 *
 * @module
 */

import { runtime } from "../../src/runtime/mod.ts";
import { ConfigError } from "../../src/errors.ts";

/** A part of a KV key. */
export type KvKeyPart = string | number | bigint | boolean | Uint8Array | symbol;
/** A KV key. */
export type KvKey = readonly KvKeyPart[];

/** An entry as KV returns it (`versionstamp` is `null` when the key is absent). */
export interface KvEntryMaybe {
  /** The key. */
  key: KvKey;
  /** The value, `null` when absent. */
  value: unknown;
  /** The version, `null` when absent. */
  versionstamp: string | null;
}

/** An atomic operation, as much of `Deno.AtomicOperation` as this engine uses. */
export interface KvAtomic {
  /** Fail the commit unless each key still has this version. */
  check(...checks: { key: KvKey; versionstamp: string | null }[]): KvAtomic;
  /** Set a value. */
  set(key: KvKey, value: unknown, options?: { expireIn?: number }): KvAtomic;
  /** Delete a key. */
  delete(key: KvKey): KvAtomic;
  /** Commit; `ok` is false when a check failed; `versionstamp` is what every key it set now has. */
  commit(): Promise<{ ok: boolean; versionstamp?: string }>;
}

/** As much of `Deno.Kv` as this engine uses: a `Deno.Kv` is one. */
export interface KvLike {
  /** Read one key. */
  get(key: KvKey): Promise<KvEntryMaybe>;
  /** Read keys (at most 10). */
  getMany(keys: KvKey[]): Promise<KvEntryMaybe[]>;
  /** Entries under a prefix, in key order. */
  list(
    selector: { prefix: KvKey; start?: KvKey },
    options?: { limit?: number; batchSize?: number },
  ): AsyncIterable<KvEntryMaybe>;
  /** Start an atomic operation. */
  atomic(): KvAtomic;
  /** A stream of the keys' entries, again each time one changes (used for wake-ups). */
  watch?(keys: KvKey[]): ReadableStream<KvEntryMaybe[]>;
  /** Close the database. */
  close(): void;
}

/** A key as text, for messages and maps. */
export function keyText(key: KvKey): string {
  return JSON.stringify(
    key,
    (_k, v) => typeof v === "bigint" || typeof v === "symbol" ? String(v) : v,
  );
}

/** Whether a commit failed because another connection to the file holds SQLite's write lock. */
export function isLocked(error: unknown): boolean {
  return /database is locked|busy/i.test(String((error as Error)?.message));
}

/**
 * Open the database a `kv:` path names (`undefined`: the default one), or share the handle
 * this process has on the same file: handles on one file would fight over SQLite's write
 * lock. Closing the handle returned closes the database once its last user closes it.
 *
 * @throws {ConfigError} When Deno KV is not enabled (`--unstable-kv`) or it cannot be opened.
 */
export async function openDatabase(path: string | undefined): Promise<KvLike> {
  const name = path === undefined || path === ":memory:" ? undefined : await absolute(path);
  let shared = name === undefined ? undefined : SHARED.get(name);
  if (!shared) {
    let kv: KvLike;
    try {
      kv = await runtime.openKv(path) as KvLike;
    } catch (error) {
      // Not available here (Deno without --unstable-kv, Node without @deno/kv): as it is.
      if (error instanceof ConfigError) throw error;
      throw new ConfigError(
        `kv: cannot open ${path ?? "the default database"}: ${(error as Error).message}`,
      );
    }
    shared = { kv, users: 0 };
    if (name !== undefined) SHARED.set(name, shared);
  }
  shared.users++;
  const handle = shared;
  return {
    get: (key) => handle.kv.get(key),
    getMany: (keys) => handle.kv.getMany(keys),
    list: (selector, options) => handle.kv.list(selector, options),
    atomic: () => handle.kv.atomic(),
    watch: handle.kv.watch && ((keys) => handle.kv.watch!(keys)),
    close: () => {
      if (--handle.users > 0) return;
      if (name !== undefined) SHARED.delete(name);
      handle.kv.close();
    },
  };
}

const SHARED = new Map<string, { kv: KvLike; users: number }>();

async function absolute(path: string): Promise<string> {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  const base = path.slice(path.lastIndexOf("/") + 1);
  try {
    return `${await runtime.fs.realPath(dir)}/${base}`;
  } catch {
    return path;
  }
}
