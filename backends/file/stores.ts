/**
 * The stores of a `file:` directory: its task queue (the shared record queue, plus the sweep
 * of crashed writers' temporary files), its results (`results/<id>.json`) and its events
 * (JSON lines, one log per writing process).
 *
 * @module
 */

import {
  type Effects,
  type EventQuery,
  type EventStore,
  matchesEvent,
  type NewEvent,
  type ResultStore,
  type StoredEvent,
  type StoredResult,
  type SweepOptions,
} from "../../src/backend.ts";
import { encName } from "../../src/kit/encoding.ts";
import { isLiveResult } from "../../src/kit/policy.ts";
import { decodeResult, encodeResult, readable } from "../records/json.ts";
import { RecordQueue } from "../records/queue.ts";
import { TMP_STALE_MS } from "./options.ts";
import type { FileSpace } from "./space.ts";

/** The task queue of a `file:` store: the record engines' queue over the directory. */
export class FileQueue extends RecordQueue {
  #s: FileSpace;

  /** Open over a store; use {@linkcode openFile}. */
  constructor(store: FileSpace) {
    super(store);
    this.#s = store;
    store.onCorrupt = (path, reason) =>
      this.report({
        type: "corrupt",
        at: Date.now(),
        data: { file: `${store.storage.location}/${path}`, reason },
      });
  }

  /** Recover stalled tasks, expire old ones, purge final records, delete stale temporaries. */
  override async sweep(options: SweepOptions): Promise<Effects> {
    const effects = await super.sweep(options);
    // Temporary files of writers that crashed between write and rename.
    const st = this.#s.storage;
    for (const name of await st.list("tmp")) {
      const at = await st.modified(`tmp/${name}`);
      if (at !== undefined && options.now - at > TMP_STALE_MS) await st.delete(`tmp/${name}`);
    }
    return effects;
  }

  /** Close the queue: later calls throw. */
  override close(): Promise<void> {
    this.#s.closed = true;
    return Promise.resolve();
  }
}

/** The result store of a `file:` store: one `results/<id>.json` per task. */
export class FileResults implements ResultStore {
  #s: FileSpace;
  /** Open over a store; use {@linkcode openFile}. */
  constructor(store: FileSpace) {
    this.#s = store;
  }
  /** Store results (each written atomically). */
  async put(results: StoredResult[]): Promise<void> {
    this.#s.check();
    for (const r of results) {
      await this.#s.storage.writeAtomic(`results/${encName(r.taskId)}.json`, encodeResult(r));
    }
  }
  /** A live result, or `undefined`. */
  async get(taskId: string): Promise<StoredResult | undefined> {
    this.#s.check();
    const key = `results/${encName(taskId)}.json`;
    const r = await this.#read(key);
    return r && isLiveResult(r, Date.now()) ? r : undefined;
  }
  async #read(key: string): Promise<StoredResult | undefined> {
    const bytes = await this.#s.storage.read(key);
    if (!bytes) return undefined;
    return readable(() => decodeResult(bytes), (why) => this.#s.corrupt(key, why));
  }
  /** Delete results. */
  async delete(taskIds: string[]): Promise<void> {
    this.#s.check();
    for (const id of taskIds) await this.#s.storage.delete(`results/${encName(id)}.json`);
  }
  /** Delete expired results. */
  async sweep(now: number): Promise<number> {
    this.#s.check();
    let n = 0;
    for (const name of await this.#s.storage.list("results")) {
      if (!name.endsWith(".json")) continue;
      const r = await this.#read(`results/${name}`);
      if (r && r.expiresAt !== undefined && r.expiresAt <= now) {
        if (await this.#s.storage.delete(`results/${name}`)) n++;
      }
    }
    return n;
  }
  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The event store of a `file:` store: JSON lines, one log per writing process. */
export class FileEvents implements EventStore {
  #s: FileSpace;
  /** Open over a store; use {@linkcode openFile}. */
  constructor(store: FileSpace) {
    this.#s = store;
  }
  /** Append events (ids from the store's sequence, under the lock). */
  append(events: NewEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return Promise.resolve([]);
    return this.#s.locked((tx) => tx.appendEvents(events));
  }
  /** Events matching a query, in append order. */
  async query(query: EventQuery): Promise<StoredEvent[]> {
    this.#s.check();
    const after = query.after === undefined ? 0 : Number(query.after);
    const limit = query.limit ?? Infinity;
    const out: StoredEvent[] = [];
    for (const e of await this.#s.allEvents()) {
      if (out.length >= limit) break;
      if (Number(e.id) <= after) continue;
      if (matchesEvent(e, query)) out.push(e);
    }
    return out;
  }
  /** Delete events older than `before` (each log rewritten atomically, under the lock). */
  sweep(before: number): Promise<number> {
    return this.#s.locked(async () => {
      let n = 0;
      const st = this.#s.storage;
      for (const name of await st.list("events")) {
        if (!name.endsWith(".jsonl")) continue;
        const bytes = await st.read(`events/${name}`);
        if (!bytes) continue;
        const lines = new TextDecoder().decode(bytes).split("\n").filter((l) => l !== "");
        const keep = lines.filter((l) => {
          try {
            return (JSON.parse(l) as StoredEvent).at >= before;
          } catch {
            return true;
          }
        });
        if (keep.length === lines.length) continue;
        n += lines.length - keep.length;
        if (keep.length === 0) await st.delete(`events/${name}`);
        else {
          await st.writeAtomic(
            `events/${name}`,
            new TextEncoder().encode(keep.map((l) => l + "\n").join("")),
          );
        }
      }
      return n;
    });
  }
  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
