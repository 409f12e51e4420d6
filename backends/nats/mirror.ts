// The local mirror of a `nats:` store: the connection, the buckets, and every task record
// and schedule of the bucket kept in memory by a watch, with the index entries the record
// queue asks for derived from the records (never stored). Reads outside a step catch up to
// the bucket first; a step (store.ts) starts once the mirror has seen the lock's revision.

import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV, KvEntry } from "@nats-io/kv";
import type { StoredSchedule } from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import { delay } from "../../src/kit/async.ts";
import { encName, parseJson } from "../../src/kit/encoding.ts";
import { closedError, keepsKey } from "../../src/kit/policy.ts";
import { indexKeys, type Row } from "../records/queue.ts";
import type { Seqs } from "../records/staging.ts";
import { decodeRow, decodeSchedule, errorText, untok } from "./codec.ts";
import { SortedNames } from "../records/sorted.ts";
import {
  CATCH_UP_MS,
  JOURNAL_KEY,
  JOURNAL_PARTS,
  LOCK_KEY,
  SEQ_KEY,
  WATCH_STALL_MS,
} from "./limits.ts";
import type { Resolved } from "./options.ts";
import type { NatsConnection } from "./transport.ts";

/** A value read from the bucket, with the revision it was read at. */
export interface Versioned<T> {
  value: T;
  rev: number;
}

/** The connection, the buckets and the mirror of one open `nats:` store. */
export class NatsMirror {
  readonly nc: NatsConnection;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly kv: KV;
  readonly rkv: KV;
  readonly names: Resolved;
  readonly where: string;
  readonly owner: string = crypto.randomUUID();
  closed: boolean = false;
  onCorrupt?: (path: string, reason: string) => void;
  /** Called when another process makes a task due (a wake-up hint). */
  onDue?: () => void;

  readonly rows: Map<string, Versioned<Row>> = new Map();
  readonly schedules: Map<string, Versioned<StoredSchedule>> = new Map();
  seq?: Versioned<Seqs>;
  lock?: Versioned<{ owner: string | null }>;
  /** The last journal written (its bytes; `undefined` once deleted). */
  journal?: Versioned<Uint8Array | undefined>;
  /** The revision of the last journal known to need no replay. */
  checkedJournal = 0;
  readonly index: Map<string, SortedNames> = new Map();
  readonly keyOwner: Map<string, string> = new Map();

  #seen = 0;
  #waiters: { rev: number; resolve: () => void }[] = [];
  /** Woken when the lock record changes (a waiting step tries again at once). */
  readonly lockWakers: Set<() => void> = new Set();
  /** While a step of this process runs, watched changes wait in `#buffer` (see `flush`). */
  holding = false;
  #buffer: KvEntry[] = [];
  #watch?: { stop(): void };
  #watching?: Promise<void>;
  #reported = new Set<string>();
  #kvStream: string;

  constructor(
    nc: NatsConnection,
    js: JetStreamClient,
    jsm: JetStreamManager,
    kv: KV,
    rkv: KV,
    names: Resolved,
  ) {
    this.nc = nc;
    this.js = js;
    this.jsm = jsm;
    this.kv = kv;
    this.rkv = rkv;
    this.names = names;
    this.where = names.servers.join(",");
    this.#kvStream = `KV_${names.bucket}`;
  }

  check(): void {
    if (this.closed) throw closedError("nats");
  }

  corrupt(path: string, why: unknown): void {
    if (this.#reported.has(path)) return;
    this.#reported.add(path);
    const reason = errorText(why);
    console.warn(`omniq nats: skipping unreadable record ${path}: ${reason}`);
    this.onCorrupt?.(path, reason);
  }

  // ---- the mirror ----

  /** Start watching the bucket (from a revision, after a restart of the watch). */
  async startWatch(from = 0): Promise<void> {
    const iter = await this.kv.watch(from > 0 ? { resumeFromRevision: from } : {});
    this.#watch = iter;
    this.#watching = (async () => {
      try {
        for await (const e of iter) this.#receive(e);
      } catch {
        // A broken watch is restarted below.
      }
      if (this.closed || this.#watch !== iter) return;
      await delay(100);
      await this.#restartWatch();
    })();
  }

  async #restartWatch(): Promise<void> {
    for (let pause = 100; !this.closed; pause = Math.min(pause * 2, 2_000)) {
      try {
        await this.startWatch(this.#seen + 1);
        return;
      } catch {
        await delay(pause);
      }
    }
  }

  #receive(e: KvEntry): void {
    if (e.revision <= this.#seen) return;
    this.#seen = e.revision;
    if (this.holding) this.#buffer.push(e);
    else this.apply(e, true);
    if (this.#waiters.length > 0) {
      const ready = this.#waiters.filter((w) => w.rev <= this.#seen);
      this.#waiters = this.#waiters.filter((w) => w.rev > this.#seen);
      for (const w of ready) w.resolve();
    }
  }

  /** Take one watched (or read) entry into the mirror; `remote`: another process wrote it. */
  apply(e: KvEntry, remote: boolean): void {
    const key = e.key;
    const gone = e.operation !== "PUT";
    try {
      if (key.startsWith("t.")) {
        const id = untok(key.slice(2));
        // This process's own newer write is already in the mirror.
        if ((this.rows.get(id)?.rev ?? 0) > e.revision) return;
        const row = gone ? undefined : decodeRow(e.value);
        this.setRow(id, row, e.revision);
        if (remote && row && (row.state === "queued" || row.state === "scheduled")) {
          this.onDue?.();
        }
      } else if (key.startsWith("s.")) {
        const id = untok(key.slice(2));
        if ((this.schedules.get(id)?.rev ?? 0) > e.revision) return;
        if (gone) this.schedules.delete(id);
        else this.schedules.set(id, { value: decodeSchedule(e.value), rev: e.revision });
      } else if (key === SEQ_KEY) {
        if ((this.seq?.rev ?? 0) > e.revision) return;
        if (gone) this.seq = undefined;
        else {
          const raw = parseJson(e.value) as Seqs;
          if (typeof raw?.task !== "number" || typeof raw?.event !== "number") {
            throw new Error("bad sequence record");
          }
          this.seq = { value: raw, rev: e.revision };
        }
      } else if (key === JOURNAL_KEY) {
        if ((this.journal?.rev ?? 0) > e.revision) return;
        this.journal = { value: gone ? undefined : e.value, rev: e.revision };
      } else if (key.startsWith(JOURNAL_PARTS)) {
        // A part of a large journal: read when the journal is replayed.
      } else if (key === LOCK_KEY) {
        if ((this.lock?.rev ?? 0) > e.revision) return;
        const raw = gone ? { owner: null } : parseJson(e.value) as { owner: string | null };
        this.lock = { value: { owner: raw?.owner ?? null }, rev: e.revision };
        this.#wakeLock();
      } else {
        throw new Error("not a key of this engine");
      }
    } catch (error) {
      if (error instanceof OmniQError) throw error;
      if (key.startsWith("t.")) {
        try {
          this.setRow(untok(key.slice(2)), undefined, e.revision);
        } catch {
          // The key itself is foreign.
        }
      }
      this.corrupt(`${this.names.bucket}/${key}`, error);
    }
  }

  #dir(path: string): [string, string] {
    const slash = path.lastIndexOf("/");
    return [path.slice(0, slash), path.slice(slash + 1)];
  }

  #paths(row: Row): string[] {
    const out = indexKeys(row);
    for (const d of row.dependsOn) out.push(`deps/${encName(d)}/${encName(row.id)}`);
    return out;
  }

  /** Put a record into the mirror (or take it out), with its derived index entries. */
  setRow(id: string, row: Row | undefined, rev: number): void {
    const old = this.rows.get(id);
    if (old) {
      for (const p of this.#paths(old.value)) {
        const [dir, name] = this.#dir(p);
        this.index.get(dir)?.delete(name);
      }
      const k = old.value.key;
      if (k !== undefined && this.keyOwner.get(k) === id) this.keyOwner.delete(k);
    }
    if (!row) {
      this.rows.delete(id);
      return;
    }
    this.rows.set(id, { value: row, rev });
    for (const p of this.#paths(row)) {
      const [dir, name] = this.#dir(p);
      let set = this.index.get(dir);
      if (!set) this.index.set(dir, set = new SortedNames());
      set.add(name);
    }
    if (row.key !== undefined && keepsKey(row)) this.keyOwner.set(row.key, id);
  }

  /** Wait until the mirror has seen revision `rev` of the bucket. */
  async caughtUp(rev: number): Promise<void> {
    const started = Date.now();
    let lastSeen = this.#seen;
    let progressAt = started;
    while (this.#seen < rev) {
      this.check();
      // Woken when the watch reaches `rev` (see `#receive`), else after 250 ms to look
      // for a stalled watch.
      const wakers = new Set<() => void>();
      const w = { rev, resolve: () => [...wakers].forEach((wake) => wake()) };
      this.#waiters.push(w);
      await delay(250, { wakers });
      this.#waiters = this.#waiters.filter((x) => x !== w);
      const now = Date.now();
      if (this.#seen !== lastSeen) {
        lastSeen = this.#seen;
        progressAt = now;
      } else if (now - progressAt > WATCH_STALL_MS && this.#seen < rev) {
        // The watch went quiet (a lost connection it did not recover from): start it again.
        progressAt = now;
        const w = this.#watch;
        this.#watch = undefined;
        w?.stop();
        await this.#restartWatch();
      }
      if (now - started > CATCH_UP_MS) {
        throw new OmniQError(
          `nats: the task records of ${this.names.bucket} on ${this.where} did not catch up ` +
            `to revision ${rev} within ${CATCH_UP_MS / 1000} s (seen ${this.#seen})`,
        );
      }
    }
  }

  /** Bring the mirror up to the bucket's latest revision. */
  async sync(): Promise<void> {
    this.check();
    const info = await this.jsm.streams.info(this.#kvStream);
    await this.caughtUp(info.state.last_seq);
  }

  // ---- reads outside a step ----

  async readRow(id: string): Promise<Row | undefined> {
    await this.sync();
    const found = this.rows.get(id);
    return found ? { ...found.value } : undefined;
  }

  async allRows(): Promise<Row[]> {
    await this.sync();
    return [...this.rows.values()].map((r) => r.value).sort((a, b) => a.seq - b.seq);
  }

  async allSchedules(): Promise<StoredSchedule[]> {
    await this.sync();
    return [...this.schedules.values()].map((s) => s.value)
      .sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }

  async entries(dir: string, limit?: number): Promise<string[]> {
    await this.sync();
    return this.indexEntries(dir, limit);
  }

  indexEntries(dir: string, limit?: number, after?: string): string[] {
    return this.index.get(dir)?.first(limit, after) ?? [];
  }

  /** Apply the changes watched while this process's step ran (its own writes come first). */
  flush(): void {
    for (const e of this.#buffer.splice(0)) this.apply(e, false);
  }

  #wakeLock(): void {
    for (const w of [...this.lockWakers]) w();
  }

  /** Stop the watch and close the connection. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const w of this.#waiters.splice(0)) w.resolve();
    this.#wakeLock();
    const w = this.#watch;
    this.#watch = undefined;
    w?.stop();
    await this.#watching?.catch(() => {});
    await this.nc.close().catch(() => {});
  }
}
