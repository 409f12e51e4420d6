/**
 * The storage interface of the `file:` engine, and its local-directory implementation.
 *
 * Every file access of the engine goes through {@linkcode Storage}: a flat namespace of
 * slash-separated keys with list, read, write-atomically, create-if-absent,
 * rename-if-absent, append and delete. A second implementation (an object store such as
 * S3, Azure Blob or GCS: conditional puts give create-if-absent, a conditional copy plus
 * delete gives rename-if-absent) only has to implement this interface.
 *
 * @module
 */

import { runtime } from "../../src/runtime/mod.ts";

/** An entry of a {@linkcode Storage} listing. */
export interface StorageEntry {
  /** The key's last segment (its name under the listed prefix). */
  name: string;
}

/** The operations the `file:` engine needs of a store of named byte blobs. */
export interface Storage {
  /** A description for messages, e.g. the directory path. */
  readonly location: string;
  /** Names directly under `prefix` (a "directory" key); empty when there is none. */
  list(prefix: string): Promise<string[]>;
  /** The bytes at `key`, or `undefined` when absent. */
  read(key: string): Promise<Uint8Array | undefined>;
  /** When the blob at `key` was last written (ms), or `undefined` when absent. */
  modified(key: string): Promise<number | undefined>;
  /** Replace `key` with `data` so a reader sees the old or the new bytes, never a part. */
  writeAtomic(key: string, data: Uint8Array): Promise<void>;
  /** Create `key` with `data` only when absent; whether this call created it. */
  createIfAbsent(key: string, data: Uint8Array): Promise<boolean>;
  /** Move `from` to `to` only when `from` exists and `to` does not; whether it moved. */
  renameIfAbsent(from: string, to: string): Promise<boolean>;
  /** Append bytes to `key` (created when absent); one writer per key. */
  append(key: string, data: Uint8Array): Promise<void>;
  /** Mark `key` as written now (keeps its bytes); whether it exists. */
  touch(key: string): Promise<boolean>;
  /** Delete `key`; whether it existed. */
  delete(key: string): Promise<boolean>;
  /** Release what the storage holds. */
  close(): Promise<void>;
}

/** A blob's bytes with the store's version of them (an ETag or a generation). */
export interface Versioned {
  /** The bytes. */
  data: Uint8Array;
  /** The store's version of the blob: changes whenever the blob is written. */
  version: string;
}

/**
 * A {@linkcode Storage} with conditional writes (an object store's `If-Match` /
 * `If-None-Match: *` or generation preconditions). The `file:` engine uses them to fence its
 * lock and every record change: of two writers that read one version, exactly one writes
 * the next, so a writer whose lock was broken can never overwrite a newer attempt.
 */
export interface ConditionalStorage extends Storage {
  /** Marks a storage whose conditional operations are atomic at the store. */
  readonly conditional: true;
  /** The bytes at `key` and their version, or `undefined` when absent. */
  readVersioned(key: string): Promise<Versioned | undefined>;
  /** The version of `key` (without its bytes), or `undefined` when absent. */
  versionOf(key: string): Promise<string | undefined>;
  /**
   * Write `key` only when its version is `expected` (`null`: only when absent).
   *
   * @returns The new version, or `undefined` when the precondition failed (nothing written).
   */
  putIf(key: string, data: Uint8Array, expected: string | null): Promise<string | undefined>;
  /** Delete `key` only when its version is `expected`; whether this call deleted it. */
  deleteIf(key: string, expected: string): Promise<boolean>;
}

/** Whether a storage offers conditional writes ({@linkcode ConditionalStorage}). */
export function isConditional(storage: Storage): storage is ConditionalStorage {
  return (storage as Partial<ConditionalStorage>).conditional === true;
}

const fs = runtime.fs;

function isNotFound(error: unknown): boolean {
  return fs.isNotFound(error);
}

function parentOf(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

/** {@linkcode Storage} over a local directory: keys are relative paths inside it. */
export class LocalStorage implements Storage {
  /** The directory. */
  readonly location: string;
  #made = new Set<string>();

  /**
   * Use a directory (created on first write).
   *
   * @param dir The directory path.
   */
  constructor(dir: string) {
    this.location = dir.replace(/\/+$/, "") || "/";
  }

  #path(key: string): string {
    return `${this.location}/${key}`;
  }

  async #ensureDir(path: string): Promise<void> {
    const dir = parentOf(path);
    if (this.#made.has(dir)) return;
    await fs.mkdir(dir);
    this.#made.add(dir);
  }

  /** Names directly under a prefix. */
  async list(prefix: string): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const e of fs.readDir(this.#path(prefix))) out.push(e.name);
    } catch (error) {
      if (isNotFound(error)) return [];
      throw error;
    }
    return out;
  }

  /** The bytes at a key. */
  async read(key: string): Promise<Uint8Array | undefined> {
    try {
      return await fs.readFile(this.#path(key));
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /** When a key was last written. */
  async modified(key: string): Promise<number | undefined> {
    try {
      return (await fs.stat(this.#path(key))).mtime?.getTime();
    } catch (error) {
      if (isNotFound(error)) return undefined;
      throw error;
    }
  }

  /**
   * Write `data` under a fresh name in `tmp/`, whole, for a rename or link into place (a
   * crashed writer's leftovers there are swept by the queue).
   */
  async #temporary(data: Uint8Array): Promise<string> {
    const tmp = `${this.location}/tmp/${crypto.randomUUID()}.tmp`;
    await this.#ensureDir(tmp);
    await fs.writeFile(tmp, data);
    return tmp;
  }

  /**
   * Write to a temporary name, then rename into place. An empty file (an index entry) is
   * created where it goes: it has no content to be seen half written.
   */
  async writeAtomic(key: string, data: Uint8Array): Promise<void> {
    const path = this.#path(key);
    await this.#ensureDir(path);
    if (data.length === 0) return await this.#inDir(path, () => fs.writeFile(path, data));
    const tmp = await this.#temporary(data);
    await this.#inDir(path, () => fs.rename(tmp, path));
  }

  /** Make a file at `path`; when its directory was removed meanwhile, make that again first. */
  async #inDir(path: string, make: () => Promise<void>): Promise<void> {
    try {
      await make();
    } catch (error) {
      if (!isNotFound(error)) throw error;
      this.#made.delete(parentOf(path));
      await this.#ensureDir(path);
      await make();
    }
  }

  /** Create a key only when absent (`createNew`, atomic on local file systems). */
  async createIfAbsent(key: string, data: Uint8Array): Promise<boolean> {
    const path = this.#path(key);
    await this.#ensureDir(path);
    // Write the content under a temporary name, then link it: the key appears whole.
    const tmp = await this.#temporary(data);
    try {
      await fs.link(tmp, path);
      return true;
    } catch (error) {
      if (fs.isAlreadyExists(error)) return false;
      throw error;
    } finally {
      await fs.remove(tmp).catch(() => {});
    }
  }

  /** Move a key only when the target is absent (link, then unlink the source). */
  async renameIfAbsent(from: string, to: string): Promise<boolean> {
    const target = this.#path(to);
    await this.#ensureDir(target);
    try {
      await fs.link(this.#path(from), target);
    } catch (error) {
      if (isNotFound(error) || fs.isAlreadyExists(error)) return false;
      throw error;
    }
    try {
      await fs.remove(this.#path(from));
    } catch (error) {
      // Another caller linked and removed it first: it won, undo ours.
      if (isNotFound(error)) {
        await fs.remove(target).catch(() => {});
        return false;
      }
      throw error;
    }
    return true;
  }

  /** Append bytes to a key. */
  async append(key: string, data: Uint8Array): Promise<void> {
    const path = this.#path(key);
    await this.#ensureDir(path);
    await fs.writeFile(path, data, { append: true });
  }

  /** Set a key's modification time to now. */
  async touch(key: string): Promise<boolean> {
    try {
      const now = new Date();
      await fs.utime(this.#path(key), now, now);
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /** Delete a key. */
  async delete(key: string): Promise<boolean> {
    try {
      await fs.remove(this.#path(key));
      return true;
    } catch (error) {
      if (isNotFound(error)) return false;
      throw error;
    }
  }

  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
