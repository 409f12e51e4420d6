/**
 * The stores of a `kv:` database: its task queue (the shared record queue, with batches too
 * large for one commit split and wake-ups by a watch; a result over the space's limit fails
 * its task there), its results (a TTL by `expireIn`) and its events (by id, with an
 * index by task).
 *
 * @module
 */

import {
  type EnqueueOutcome,
  type EventQuery,
  type EventStore,
  matchesEvent,
  type NewEvent,
  type NewTask,
  noEffects,
  type ResultStore,
  type StoredEvent,
  type StoredResult,
  type Subscription,
} from "../../src/backend.ts";
import { DuplicateTaskError, OmniQError } from "../../src/errors.ts";
import { withResolvers } from "../../src/kit/async.ts";
import { isLiveResult } from "../../src/kit/policy.ts";
import { RecordQueue } from "../records/queue.ts";
import { type Obj, StepTooLarge } from "./codec.ts";
import type { KvKey } from "./connection.ts";
import { BATCH, KV_MAX_PAYLOAD } from "./options.ts";
import type { KvSpace } from "./space.ts";

/** The task queue of a `kv:` store. */
export class KvQueue extends RecordQueue {
  #s: KvSpace;

  /** Open over a store; use {@linkcode openKv}. */
  constructor(store: KvSpace) {
    super(store, KV_MAX_PAYLOAD);
    this.#s = store;
    store.onCorrupt = (path, reason) =>
      this.report({ type: "corrupt", at: Date.now(), data: { key: path, reason } });
  }

  /**
   * Store tasks. A batch too large for one Deno KV commit is stored in several, each all or
   * none; the whole batch's ids, keys and dependencies are checked before the first.
   */
  override async enqueue(tasks: NewTask[]): Promise<EnqueueOutcome> {
    if (tasks.length <= BATCH) {
      try {
        return await super.enqueue(tasks);
      } catch (error) {
        if (!(error instanceof StepTooLarge) || tasks.length === 1) throw error;
      }
    }
    await this.#precheck(tasks);
    const out: EnqueueOutcome = { ids: [], created: [], effects: noEffects() };
    let size = BATCH;
    for (let i = 0; i < tasks.length;) {
      const part = tasks.slice(i, i + size);
      let done: EnqueueOutcome;
      try {
        done = await super.enqueue(part);
      } catch (error) {
        if (error instanceof StepTooLarge && size > 1) {
          size = Math.max(1, size >> 1);
          continue;
        }
        throw error;
      }
      out.ids.push(...done.ids);
      out.created.push(...done.created);
      out.effects.events.push(...done.effects.events);
      out.effects.results.push(...done.effects.results);
      i += part.length;
    }
    return out;
  }

  /** The checks `enqueue` makes, over the whole batch, before a batch is split. */
  async #precheck(tasks: NewTask[]): Promise<void> {
    const ids = new Set<string>();
    for (const t of tasks) {
      for (const d of t.dependsOn) {
        if (!ids.has(d) && !(await this.#s.readRow(d))) {
          throw new OmniQError(`dependsOn: no task with id "${d}"`);
        }
      }
      if (ids.has(t.id) || (await this.#s.readRow(t.id))) {
        if (t.key === undefined) {
          throw new DuplicateTaskError(`id: a task with id "${t.id}" exists`);
        }
      }
      ids.add(t.id);
    }
  }

  /**
   * Wake an idle worker when another handle in this process changes the store: a watch on
   * the sequence record, which every enqueue and every event changes. (Another process's
   * writes to a local KV file are not seen by a watch: those are found by polling.) It is
   * ready once the watch gave its first reading: every change after that is a new one.
   */
  subscribe(_queues: string[], onWake: () => void): Subscription {
    const kv = this.#s.kv;
    if (!kv.watch) return () => {};
    const reader = kv.watch([this.#s.key("meta", "seq")]).getReader();
    const { promise: ready, resolve: live } = withResolvers<void>();
    (async () => {
      // The first reading is the current value, not a change.
      for (let first = true;; first = false) {
        const { done } = await reader.read();
        live();
        if (done) return;
        if (!first) onWake();
      }
    })().catch(() => {}).finally(live);
    return Object.assign(() => void reader.cancel().catch(() => {}), { ready });
  }

  /** Close the queue: later calls throw. */
  override close(): Promise<void> {
    this.#s.closed = true;
    return Promise.resolve();
  }
}

/** The result store of a `kv:` store. */
export class KvResults implements ResultStore {
  #s: KvSpace;
  /** Open over a store; use {@linkcode openKv}. */
  constructor(store: KvSpace) {
    this.#s = store;
  }
  /** Store results, each in one atomic commit. */
  async put(results: StoredResult[]): Promise<void> {
    this.#s.check();
    for (const r of results) {
      const op = this.#s.kv.atomic();
      this.#s.putResult(op, r);
      await op.commit();
    }
  }
  /** A live result, or `undefined`. */
  async get(taskId: string): Promise<StoredResult | undefined> {
    this.#s.check();
    const r = await this.#s.readResult(taskId);
    return r && isLiveResult(r, Date.now()) ? r : undefined;
  }
  /** Delete results. */
  async delete(taskIds: string[]): Promise<void> {
    this.#s.check();
    for (const id of taskIds) {
      const op = this.#s.kv.atomic().delete(this.#s.key("r", id));
      for (const key of await this.#s.resultParts(id)) op.delete(key);
      await op.commit();
    }
  }
  /** Delete expired results (Deno KV also drops them after their `expireIn`). */
  async sweep(now: number): Promise<number> {
    this.#s.check();
    const expired: string[] = [];
    for await (const e of this.#s.kv.list({ prefix: this.#s.key("r") }, { batchSize: 500 })) {
      const at = (e.value as Obj | null)?.expiresAt;
      if (typeof at === "number" && at <= now) expired.push(e.key[e.key.length - 1] as string);
    }
    await this.delete(expired);
    return expired.length;
  }
  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The event store of a `kv:` store: events by id, with an index by task. */
export class KvEvents implements EventStore {
  #s: KvSpace;
  /** Open over a store; use {@linkcode openKv}. */
  constructor(store: KvSpace) {
    this.#s = store;
  }
  /** Append events (ids from the store's sequence). */
  append(events: NewEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return Promise.resolve([]);
    return this.#s.step((tx) => tx.appendEvents(events));
  }
  /** Events matching a query, in append order (by task through the task index). */
  async query(query: EventQuery): Promise<StoredEvent[]> {
    this.#s.check();
    const limit = query.limit ?? Infinity;
    const out: StoredEvent[] = [];
    const after = query.after;
    const take = (e: StoredEvent): boolean => {
      if (after !== undefined && e.id <= after) return true;
      if (matchesEvent(e, query)) out.push(e);
      return out.length < limit;
    };
    if (query.taskId !== undefined) {
      const keys: KvKey[] = [];
      for await (const e of this.#s.kv.list({ prefix: this.#s.key("et", query.taskId) })) {
        keys.push(this.#s.key("e", e.key[e.key.length - 1]));
      }
      for (let i = 0; i < keys.length; i += 10) {
        for (const e of await this.#s.kv.getMany(keys.slice(i, i + 10))) {
          if (e.versionstamp !== null && !take(e.value as StoredEvent)) return out;
        }
      }
      return out;
    }
    const prefix = this.#s.key("e");
    const selector = after === undefined ? { prefix } : { prefix, start: [...prefix, after] };
    for await (const e of this.#s.kv.list(selector, { batchSize: 500 })) {
      if (!take(e.value as StoredEvent)) break;
    }
    return out;
  }
  /** Delete events older than `before`. */
  async sweep(before: number): Promise<number> {
    this.#s.check();
    let n = 0;
    let op = this.#s.kv.atomic();
    let pending = 0;
    for await (const e of this.#s.kv.list({ prefix: this.#s.key("e") }, { batchSize: 500 })) {
      const event = e.value as StoredEvent;
      // Ids follow append order and times nearly so: stop well past the cut-off.
      if (event.at >= before + 60_000) break;
      if (event.at >= before) continue;
      op.delete(e.key);
      if (event.taskId !== undefined) op.delete(this.#s.key("et", event.taskId, event.id));
      n++;
      if (++pending >= 400) {
        await op.commit();
        op = this.#s.kv.atomic();
        pending = 0;
      }
    }
    if (pending > 0) await op.commit();
    return n;
  }
  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
