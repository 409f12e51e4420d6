// The result store (a KV bucket, with expiry index keys for TTLs) and the event store (a
// stream, subjects `<stream>.<task>.<type>`) of a `nats:` store.

import { AckPolicy, DeliverPolicy } from "@nats-io/jetstream";
import {
  type EventQuery,
  type EventStore,
  matchesEvent,
  type NewEvent,
  type ResultStore,
  type StoredEvent,
  type StoredResult,
} from "../../src/backend.ts";
import { isLiveResult } from "../../src/kit/policy.ts";
import { readable } from "../records/json.ts";
import { bounded, decodeResult, tok, untok } from "./codec.ts";
import type { NatsStore } from "./store.ts";

/** The result store of a `nats:` store: a KV bucket, with expiry index keys for TTLs. */
export class NatsResults implements ResultStore {
  #s: NatsStore;
  /** Open over a store; use {@linkcode openNats}. */
  constructor(store: NatsStore) {
    this.#s = store;
  }
  /** Store results. */
  async put(results: StoredResult[]): Promise<void> {
    this.#s.check();
    const ops = results.flatMap((r) => this.#s.resultOps(r));
    await bounded(ops.map((op) => () => this.#s.runOp(op, false)));
  }
  /** A live result, or `undefined`. */
  async get(taskId: string): Promise<StoredResult | undefined> {
    this.#s.check();
    const e = await this.#s.rkv.get(this.#s.resultKey(taskId));
    if (!e || e.operation !== "PUT") return undefined;
    const r = readable(
      () => decodeResult(e.value),
      (why) => this.#s.corrupt(`${this.#s.names.resultsBucket}/${e.key}`, why),
    );
    return r && isLiveResult(r, Date.now()) ? r : undefined;
  }
  /** Delete results. */
  async delete(taskIds: string[]): Promise<void> {
    this.#s.check();
    await bounded(taskIds.map((id) => () => this.#s.rkv.delete(this.#s.resultKey(id))));
  }
  /**
   * Call `onStored` when a result of `taskId` is stored, by any process: a KV watch of its
   * key (delivering the stored value first, if any, then each update), so `wait` does not
   * poll the bucket.
   */
  watch(taskId: string, onStored: () => void): () => void {
    this.#s.check();
    let stopped = false;
    let iter: { stop(): void } | undefined;
    this.#s.rkv.watch({ key: this.#s.resultKey(taskId) }).then(async (it) => {
      iter = it;
      if (stopped) return it.stop();
      for await (const e of it) if (e.operation === "PUT") onStored();
    }).catch(() => {
      // A watch that cannot start or breaks: the wait polls on.
    });
    return () => {
      stopped = true;
      iter?.stop();
    };
  }
  /** Delete expired results, found through their expiry keys. */
  async sweep(now: number): Promise<number> {
    this.#s.check();
    const due: string[] = [];
    for await (const key of await this.#s.rkv.keys("e.>")) due.push(key);
    let n = 0;
    const jobs: (() => Promise<unknown>)[] = [];
    for (const key of due) {
      const [, at, t] = key.split(".");
      if (Number(at) > now) continue;
      let id: string;
      try {
        id = untok(t);
      } catch {
        jobs.push(() => this.#s.rkv.delete(key));
        continue;
      }
      jobs.push(async () => {
        const e = await this.#s.rkv.get(this.#s.resultKey(id));
        if (e && e.operation === "PUT") {
          try {
            const r = decodeResult(e.value);
            if (r.expiresAt !== undefined && r.expiresAt <= now) {
              await this.#s.rkv.delete(this.#s.resultKey(id));
              n++;
            }
          } catch {
            // Unreadable: left for get() to report.
          }
        }
        await this.#s.rkv.delete(key);
      });
    }
    await bounded(jobs);
    return n;
  }
  /** Nothing to release (the backend closes the connection). */
  close(): Promise<void> {
    return Promise.resolve();
  }
}

/** The event store of a `nats:` store: a stream, subjects `<stream>.<task>.<type>`. */
export class NatsEvents implements EventStore {
  #s: NatsStore;
  #seqOf = new Map<string, number>();
  /** Open over a store; use {@linkcode openNats}. */
  constructor(store: NatsStore) {
    this.#s = store;
  }
  /** Append events (ids from the store's sequence, published in order under the lock). */
  append(events: NewEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return Promise.resolve([]);
    return this.#s.step((tx) => tx.appendEvents(events));
  }

  /** Read events of a subject from a stream sequence (or the start) until `take` says stop. */
  async #scan(
    subject: string,
    start: { seq?: number; time?: number },
    take: (e: StoredEvent, seq: number) => boolean,
  ): Promise<void> {
    const s = this.#s;
    const config: Record<string, unknown> = {
      filter_subject: subject,
      ack_policy: AckPolicy.None,
      deliver_policy: DeliverPolicy.All,
      inactive_threshold: 30_000_000_000,
      mem_storage: true,
    };
    if (start.seq !== undefined) {
      config.deliver_policy = DeliverPolicy.StartSequence;
      config.opt_start_seq = start.seq;
    } else if (start.time !== undefined) {
      config.deliver_policy = DeliverPolicy.StartTime;
      config.opt_start_time = new Date(start.time).toISOString();
    }
    const info = await s.jsm.consumers.add(s.names.stream, config);
    try {
      let pending = info.num_pending;
      if (pending === 0) return;
      const consumer = await s.js.consumers.get(s.names.stream, info.name);
      for (let more = true; more && pending > 0;) {
        const batch = await consumer.fetch({
          max_messages: Math.min(pending, 500),
          expires: 2_000,
        });
        let got = 0;
        for await (const m of batch) {
          got++;
          pending = m.info.pending;
          let e: StoredEvent;
          try {
            e = m.json<StoredEvent>();
            if (typeof e?.id !== "string" || typeof e.type !== "string") {
              throw new Error("not an event");
            }
          } catch (error) {
            s.corrupt(`${s.names.stream}#${m.seq}`, error);
            continue;
          }
          if (!take(e, m.seq)) {
            more = false;
            break;
          }
        }
        if (got === 0) break;
      }
    } finally {
      await s.jsm.consumers.delete(s.names.stream, info.name).catch(() => {});
    }
  }

  /** Events matching a query, in append order. */
  async query(query: EventQuery): Promise<StoredEvent[]> {
    const s = this.#s;
    s.check();
    const types = query.type === undefined
      ? undefined
      : Array.isArray(query.type)
      ? query.type
      : [query.type];
    const taskTok = query.taskId === undefined ? "*" : tok(query.taskId);
    const typeTok = types?.length === 1 ? types[0] : "*";
    const subject = taskTok === "*" && typeTok === "*"
      ? `${s.names.stream}.>`
      : `${s.names.stream}.${taskTok}.${typeTok}`;
    const limit = query.limit ?? Infinity;
    const after = query.after;
    const out: StoredEvent[] = [];
    const start: { seq?: number; time?: number } = {};
    const afterSeq = after === undefined ? undefined : this.#seqOf.get(after);
    if (afterSeq !== undefined) start.seq = afterSeq + 1;
    // Event times are the writers' clocks, the stream's are the server's: a wide margin.
    else if (after === undefined && query.since !== undefined) start.time = query.since - 60_000;
    await this.#scan(subject, start, (e, seq) => {
      this.#remember(e.id, seq);
      if (after !== undefined && e.id <= after) return true;
      if (matchesEvent(e, query)) out.push(e);
      return out.length < limit;
    });
    return out;
  }

  #remember(id: string, seq: number): void {
    this.#seqOf.set(id, seq);
    if (this.#seqOf.size > 10_000) {
      for (const k of [...this.#seqOf.keys()].slice(0, 5_000)) this.#seqOf.delete(k);
    }
  }

  /** Delete events older than `before`: the stream's oldest, up to the first newer one. */
  async sweep(before: number): Promise<number> {
    const s = this.#s;
    s.check();
    let cut: number | undefined;
    let n = 0;
    await this.#scan(`${s.names.stream}.>`, {}, (e, seq) => {
      if (e.at >= before) {
        cut = seq;
        return false;
      }
      n++;
      cut = seq + 1;
      return true;
    });
    if (n === 0 || cut === undefined) return 0;
    await s.jsm.streams.purge(s.names.stream, { seq: cut });
    return n;
  }
  /** Nothing to release (the backend closes the connection). */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
