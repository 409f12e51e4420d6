/**
 * The `memory:` engine: queue, results and events in this process's memory. Nothing
 * survives the process; use it for tests and for work that may be lost. `memory:` alone
 * opens a fresh store; `memory:NAME` opens the store of that name, shared by every
 * `OmniQ` of the process that names it.
 *
 * The queue is the record engines' shared one (`backends/records/`) over records kept in
 * maps (`space.ts`), so memory takes exactly the transitions `file:`, `kv:` and `nats:` take.
 *
 * @example A queue in memory
 * ```ts
 * import { OmniQ, defineTask } from "@omniq/omniq";
 * const double = defineTask("memory-doc-double", (n: number) => n * 2);
 * await using q = await OmniQ.open("memory:");
 * const id = await q.enqueue(double, [21]);
 * await q.run({ until: "idle" });
 * console.assert((await q.wait(id)) === 42);
 * ```
 *
 * @module
 */

import {
  type Backend,
  type EventQuery,
  type EventStore,
  matchesEvent,
  type NewEvent,
  type ResultStore,
  type StoredEvent,
  type StoredResult,
} from "../../src/backend.ts";
import { isLiveResult } from "../../src/kit/policy.ts";
import { RecordQueue } from "../records/queue.ts";
import { MemorySpace, MemoryState } from "./space.ts";

export { KeyHeap } from "./heap.ts";
export type { Row } from "../records/queue.ts";
export { MemoryState } from "./space.ts";

const named = new Map<string, MemoryState>();

/** The task queue of a memory store: the record engines' queue over the store's records. */
export class MemoryQueue extends RecordQueue {
  #space: MemorySpace;

  /** Open the queue over a store's state. */
  constructor(state: MemoryState) {
    const space = new MemorySpace(state);
    super(space);
    this.#space = space;
  }

  /** Close the queue: later calls throw. */
  override close(): Promise<void> {
    this.#space.closed = true;
    return Promise.resolve();
  }
}

/** The result store of a memory store. */
export class MemoryResults implements ResultStore {
  #s: MemoryState;
  /** Open the store over a store's state. */
  constructor(state: MemoryState) {
    this.#s = state;
  }
  /** Store results. */
  put(results: StoredResult[]): Promise<void> {
    for (const r of results) this.#s.results.set(r.taskId, r);
    return Promise.resolve();
  }
  /** A live result, or `undefined`. */
  get(taskId: string): Promise<StoredResult | undefined> {
    const r = this.#s.results.get(taskId);
    return Promise.resolve(
      r && isLiveResult(r, Date.now()) ? r : undefined,
    );
  }
  /** Delete results. */
  delete(taskIds: string[]): Promise<void> {
    for (const id of taskIds) this.#s.results.delete(id);
    return Promise.resolve();
  }
  /** Delete expired results. */
  sweep(now: number): Promise<number> {
    let n = 0;
    for (const [id, r] of this.#s.results) {
      if (r.expiresAt !== undefined && r.expiresAt <= now) {
        this.#s.results.delete(id);
        n++;
      }
    }
    return Promise.resolve(n);
  }
  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The event store of a memory store. */
export class MemoryEvents implements EventStore {
  #s: MemoryState;
  /** Open the store over a store's state. */
  constructor(state: MemoryState) {
    this.#s = state;
  }
  /** Append events. */
  append(events: NewEvent[]): Promise<StoredEvent[]> {
    // After any step in progress, whose events take the ids before these.
    return this.#s.exclusive(() => this.#s.appendEvents(events));
  }
  /** Events matching a query, in append order. */
  query(query: EventQuery): Promise<StoredEvent[]> {
    const after = query.after === undefined ? 0 : Number(query.after);
    const limit = query.limit ?? Infinity;
    const out: StoredEvent[] = [];
    // Ids are consecutive from the first stored event, so `after` is a direct offset.
    const first = this.#s.events.length ? Number(this.#s.events[0].id) : 0;
    for (let i = Math.max(0, after - first + 1); i < this.#s.events.length; i++) {
      if (out.length >= limit) break;
      const e = this.#s.events[i];
      if (matchesEvent(e, query)) out.push(e);
    }
    return Promise.resolve(out);
  }
  /** Delete events older than `before`. */
  sweep(before: number): Promise<number> {
    const events = this.#s.events;
    let n = 0;
    while (n < events.length && events[n].at < before) n++;
    events.splice(0, n);
    return Promise.resolve(n);
  }
  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The `memory:` engine. */
export class MemoryBackend implements Backend {
  /** The engine's name. */
  readonly name = "memory";
  /** The task queue. */
  readonly queue: MemoryQueue;
  /** The result store. */
  readonly results: MemoryResults;
  /** The event store. */
  readonly events: MemoryEvents;
  #name?: string;
  #state: MemoryState;
  #closed = false;

  /** Open over a state; use {@linkcode openMemory}. */
  constructor(state: MemoryState, name?: string) {
    this.#state = state;
    this.#name = name;
    state.users++;
    this.queue = new MemoryQueue(state);
    this.results = new MemoryResults(state);
    this.events = new MemoryEvents(state);
  }

  /** Close; a named store is dropped when its last user closes. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.queue.close();
    if (--this.#state.users === 0 && this.#name !== undefined) named.delete(this.#name);
  }
}

/**
 * Open a memory engine.
 *
 * @param name A store name to share within the process; omit it for a fresh store.
 * @returns The backend.
 *
 * @example Two handles on one named store
 * ```ts
 * import { openMemory } from "@omniq/omniq/memory";
 * const a = await openMemory("shared");
 * const b = await openMemory("shared");
 * console.assert((await a.queue.stats()).total.queued === (await b.queue.stats()).total.queued);
 * await a.close();
 * await b.close();
 * ```
 */
export function openMemory(name?: string): Promise<MemoryBackend> {
  if (name === undefined || name === "") {
    return Promise.resolve(new MemoryBackend(new MemoryState()));
  }
  let state = named.get(name);
  if (!state) named.set(name, state = new MemoryState());
  return Promise.resolve(new MemoryBackend(state, name));
}
