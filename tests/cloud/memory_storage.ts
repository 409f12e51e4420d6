/**
 * A {@linkcode ConditionalStorage} in this process's memory, for the tests of the fenced
 * lock's protocol (`backends/file/fence.ts`): it lets a test run the `file:` engine's
 * conformance suite on the fenced path without a server, and stop a writer between two
 * requests (`hold`) to play a process that paused past the stale time. The real object
 * stores are tested against their emulators (`tests/cloud/*_test.ts`); this checks the
 * engine's side of the protocol, and itself passes the storage contract.
 *
 * @module
 */

import type { ConditionalStorage, Versioned } from "../../backends/file/storage.ts";

interface Blob {
  data: Uint8Array;
  version: string;
  modified: number;
}

/** The blobs of one in-memory store, shared by the storages opened on it. */
export class MemoryBlobs {
  /** Blobs by key. */
  readonly blobs: Map<string, Blob> = new Map();
  #next = 0;
  /** Every request waits for this first (a test's pause of one process's storage). */
  gate: Promise<void> = Promise.resolve();

  /** A new version string. */
  version(): string {
    return `v${++this.#next}`;
  }
}

/** A storage over {@linkcode MemoryBlobs}, as one process would see it. */
export class MemoryConditionalStorage implements ConditionalStorage {
  /** Conditional writes are atomic here (one thread). */
  readonly conditional = true as const;
  /** The store's name in messages. */
  readonly location: string;
  #b: MemoryBlobs;
  #prefix: string;
  /** While set, this storage's requests wait for it (the process is "paused"). */
  paused?: Promise<void>;

  constructor(blobs: MemoryBlobs, prefix = "", location = "memory-blobs://test") {
    this.#b = blobs;
    this.#prefix = prefix ? `${prefix}/` : "";
    this.location = location;
  }

  async #turn(): Promise<void> {
    await this.#b.gate;
    if (this.paused) await this.paused;
    // Every request yields once, as a network round trip would.
    await new Promise((r) => setTimeout(r, 0));
  }

  #put(key: string, data: Uint8Array): string {
    const version = this.#b.version();
    this.#b.blobs.set(this.#prefix + key, { data: data.slice(), version, modified: Date.now() });
    return version;
  }

  async list(prefix: string): Promise<string[]> {
    await this.#turn();
    const at = `${this.#prefix}${prefix}/`;
    const names = new Set<string>();
    for (const k of this.#b.blobs.keys()) {
      if (k.startsWith(at)) names.add(k.slice(at.length).split("/")[0]);
    }
    return [...names];
  }

  async read(key: string): Promise<Uint8Array | undefined> {
    return (await this.readVersioned(key))?.data;
  }

  async readVersioned(key: string): Promise<Versioned | undefined> {
    await this.#turn();
    const b = this.#b.blobs.get(this.#prefix + key);
    return b && { data: b.data.slice(), version: b.version };
  }

  async versionOf(key: string): Promise<string | undefined> {
    await this.#turn();
    return this.#b.blobs.get(this.#prefix + key)?.version;
  }

  async modified(key: string): Promise<number | undefined> {
    await this.#turn();
    return this.#b.blobs.get(this.#prefix + key)?.modified;
  }

  async writeAtomic(key: string, data: Uint8Array): Promise<void> {
    await this.#turn();
    this.#put(key, data);
  }

  async createIfAbsent(key: string, data: Uint8Array): Promise<boolean> {
    return (await this.putIf(key, data, null)) !== undefined;
  }

  async putIf(key: string, data: Uint8Array, expected: string | null): Promise<string | undefined> {
    await this.#turn();
    const cur = this.#b.blobs.get(this.#prefix + key);
    if ((cur?.version ?? null) !== expected) return undefined;
    return this.#put(key, data);
  }

  async deleteIf(key: string, expected: string): Promise<boolean> {
    await this.#turn();
    const cur = this.#b.blobs.get(this.#prefix + key);
    if (cur?.version !== expected) return false;
    this.#b.blobs.delete(this.#prefix + key);
    return true;
  }

  async renameIfAbsent(from: string, to: string): Promise<boolean> {
    const got = await this.readVersioned(from);
    if (!got) return false;
    if (await this.putIf(to, got.data, null) === undefined) return false;
    if (await this.deleteIf(from, got.version)) return true;
    await this.delete(to);
    return false;
  }

  async append(key: string, data: Uint8Array): Promise<void> {
    for (;;) {
      const got = await this.readVersioned(key);
      const old = got?.data ?? new Uint8Array(0);
      const next = new Uint8Array(old.length + data.length);
      next.set(old);
      next.set(data, old.length);
      if (await this.putIf(key, next, got?.version ?? null) !== undefined) return;
    }
  }

  async touch(key: string): Promise<boolean> {
    const got = await this.readVersioned(key);
    if (!got) return false;
    return (await this.putIf(key, got.data, got.version)) !== undefined;
  }

  async delete(key: string): Promise<boolean> {
    await this.#turn();
    return this.#b.blobs.delete(this.#prefix + key);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
