/**
 * The records of a `memory:` store: the {@linkcode RecordSpace} the shared record queue
 * (`backends/records/`) runs on, so memory takes the same task transitions as `file:`, `kv:`
 * and `nats:` and writes none of its own.
 *
 * A step works on copies of the rows it reads and changes the store only when it returns,
 * all at once, so a step that throws leaves nothing behind. Steps of one store (every handle
 * of a named store shares it) run one at a time: a step awaits between its reads, and two
 * interleaved claims must not both take a task.
 *
 * The index entries the record queue reads (`ready/<queue>/…`, `sched/<queue>/…` …) are kept
 * per directory as sorted arrays of names: most entries join at the end (FIFO sequence, later
 * times) and leave at the front (claims, promotions), both cheap here.
 *
 * Its step is not `StagedTx` (`backends/records/staging.ts`), the staging the `file:`, `kv:`
 * and `nats:` steps share: that one allocates every collection up front and keeps marks to
 * roll back one step of a group, which a store that runs one step at a time in memory does
 * not need, and the memory engine's speed is mostly how little a step allocates. What a
 * commit decides (the index entries and dedupe keys a changed record moves) is the shared
 * `indexMoves` and `keyMoves`.
 *
 * @module
 */

import type { NewEvent, StoredEvent, StoredResult, StoredSchedule } from "../../src/backend.ts";
import { closedError, holdsKey, keepsKey } from "../../src/kit/policy.ts";
import { encName, indexKeys, type RecordSpace, type RecordTx, type Row } from "../records/queue.ts";
import { SortedNames } from "../records/sorted.ts";
import { indexMoves, keyMoves } from "../records/staging.ts";

/** The shared state of one memory store (opaque to users). */
export class MemoryState {
  /** Every task, by id, in FIFO order. */
  tasks: Map<string, Row> = new Map();
  /** The last enqueue sequence number given. */
  seq: number = 0;
  /** The live task that holds each dedupe key. */
  liveKeys: Map<string, string> = new Map();
  /** Stored results, by task id. */
  results: Map<string, StoredResult> = new Map();
  /** Schedules, by id. */
  schedules: Map<string, StoredSchedule> = new Map();
  /** The event log, oldest first; ids are consecutive numbers. */
  events: StoredEvent[] = [];
  /** The last event number given. */
  eventSeq: number = 0;
  /** The paused queues, sorted. */
  paused: readonly string[] = [];
  /** The group each queue's grouped claims served last. */
  cursors: Map<string, string> = new Map();
  /** How many open handles share this state (a named store lives while any is open). */
  users: number = 0;
  /** Index entry names by directory (`ready/<queue>`, `deps/<id>` …). */
  #dirs = new Map<string, SortedNames>();
  #busy = false;
  #waiting: (() => void)[] = [];

  /** Run `fn` when no other step of this store runs. */
  async exclusive<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.#busy) await new Promise<void>((r) => this.#waiting.push(r));
    this.#busy = true;
    try {
      return await fn();
    } finally {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#busy = false;
    }
  }

  /** The names under a directory, in order; the first `limit`. */
  entries(dir: string, limit?: number, after?: string): string[] {
    return this.#dirs.get(dir)?.first(limit, after) ?? [];
  }

  /** Add an index entry (a path `dir/name`). */
  addEntry(path: string): void {
    const slash = path.lastIndexOf("/");
    const dir = path.slice(0, slash);
    let names = this.#dirs.get(dir);
    if (!names) this.#dirs.set(dir, names = new SortedNames());
    names.add(path.slice(slash + 1));
  }

  /** Delete an index entry (a path `dir/name`). */
  deleteEntry(path: string): void {
    const slash = path.lastIndexOf("/");
    const dir = path.slice(0, slash);
    const names = this.#dirs.get(dir);
    if (names?.delete(path.slice(slash + 1)) && names.size === 0 && dir.startsWith("deps/")) {
      this.#dirs.delete(dir);
    }
  }

  /** Delete a directory's entries. */
  dropDir(dir: string): void {
    this.#dirs.delete(dir);
  }

  /** Give events their ids and log them. */
  appendEvents(events: NewEvent[]): StoredEvent[] {
    const out: StoredEvent[] = [];
    for (const e of events) {
      const stored = { ...e, id: String(++this.eventSeq) };
      this.events.push(stored);
      out.push(stored);
    }
    return out;
  }
}

/** Whether a change of a row changes the index entries it implies (see `indexKeys`). */
function reindexed(a: Row, b: Row): boolean {
  return a.state !== b.state || a.seq !== b.seq || a.priority !== b.priority ||
    a.runAt !== b.runAt || a.expiresAt !== b.expiresAt || a.completedAt !== b.completedAt ||
    a.queue !== b.queue || a.startedAt !== b.startedAt;
}

/** Whether another task than `id` holds `key` now. */
function ownedElsewhere(s: MemoryState, key: string, id: string): boolean {
  const owner = s.liveKeys.get(key);
  if (owner === undefined || owner === id) return false;
  const row = s.tasks.get(owner);
  return row !== undefined && row.key === key && holdsKey(row, Date.now());
}

/** One step over a memory store: copies of the rows read, written back on commit. */
class MemoryTx implements RecordTx {
  #s: MemoryState;
  // The rarer changes are made on first use: a step is small, and the memory engine's speed
  // is mostly how little each step allocates.
  #rows = new Map<string, Row | undefined>();
  #removed?: Set<string>;
  #seq: number;
  #events?: StoredEvent[];
  #eventSeq: number;
  #results?: Map<string, StoredResult | undefined>;
  #dropped?: string[];
  #dependents?: string[];
  #schedules?: Map<string, StoredSchedule | undefined>;
  #paused?: readonly string[];
  #cursors?: Map<string, string>;

  constructor(state: MemoryState) {
    this.#s = state;
    this.#seq = state.seq;
    this.#eventSeq = state.eventSeq;
  }

  #peek(id: string): Row | undefined {
    return this.#rows.has(id) ? this.#rows.get(id) : this.#s.tasks.get(id);
  }

  row(id: string): Promise<Row | undefined> {
    let row = this.#rows.get(id);
    if (row === undefined && !this.#rows.has(id)) {
      const stored = this.#s.tasks.get(id);
      row = stored && { ...stored };
      this.#rows.set(id, row);
    }
    return Promise.resolve(row);
  }

  add(row: Row): void {
    this.#rows.set(row.id, row);
  }

  remove(id: string): void {
    (this.#removed ??= new Set()).add(id);
  }

  nextSeq(): Promise<number> {
    return Promise.resolve(++this.#seq);
  }

  appendEvents(events: NewEvent[]): Promise<StoredEvent[]> {
    // The step made these events and hands them over: they become the stored ones.
    const out = events as StoredEvent[];
    for (const e of out) e.id = String(++this.#eventSeq);
    if (this.#events) this.#events.push(...out);
    else this.#events = out.slice();
    return Promise.resolve(out);
  }

  putResults(results: StoredResult[]): void {
    if (results.length === 0) return;
    const map = this.#results ??= new Map();
    for (const r of results) map.set(r.taskId, r);
  }

  deleteResult(taskId: string): void {
    (this.#results ??= new Map()).set(taskId, undefined);
  }

  entries(dir: string, limit?: number, after?: string): Promise<string[]> {
    return Promise.resolve(this.#s.entries(dir, limit, after));
  }

  dropEntry(path: string): void {
    (this.#dropped ??= []).push(path);
  }

  addDependent(dep: string, id: string): void {
    (this.#dependents ??= []).push(`deps/${encName(dep)}/${encName(id)}`);
  }

  liveKeyOwner(key: string): Promise<string | undefined> {
    const id = this.#s.liveKeys.get(key);
    const row = id === undefined ? undefined : this.#peek(id);
    return Promise.resolve(row && holdsKey(row, Date.now()) && row.key === key ? id : undefined);
  }

  schedule(id: string): Promise<StoredSchedule | undefined> {
    const s = this.#schedules?.has(id) ? this.#schedules.get(id) : this.#s.schedules.get(id);
    return Promise.resolve(s && { ...s });
  }

  putSchedule(schedule: StoredSchedule): void {
    (this.#schedules ??= new Map()).set(schedule.id, { ...schedule });
  }

  async deleteSchedule(id: string): Promise<boolean> {
    const existed = (await this.schedule(id)) !== undefined;
    (this.#schedules ??= new Map()).set(id, undefined);
    return existed;
  }

  pausedQueues(): Promise<readonly string[]> {
    return Promise.resolve(this.#paused ?? this.#s.paused);
  }

  setPausedQueues(queues: readonly string[]): Promise<void> {
    this.#paused = [...queues];
    return Promise.resolve();
  }

  groupCursor(queue: string): Promise<string | undefined> {
    return Promise.resolve(this.#cursors?.get(queue) ?? this.#s.cursors.get(queue));
  }

  setGroupCursor(queue: string, group: string): Promise<void> {
    (this.#cursors ??= new Map()).set(queue, group);
    return Promise.resolve();
  }

  room(): boolean {
    return true;
  }

  /** Make the step's changes (synchronously: nothing else sees a part of them). */
  commit(): void {
    // Written for the common steps (a claim, a completion, an enqueue of one task): most of
    // the step's collections were never made, and nothing is allocated for them here.
    const s = this.#s;
    if (this.#dropped) { for (const path of this.#dropped) s.deleteEntry(path); }
    if (this.#dependents) { for (const path of this.#dependents) s.addEntry(path); }
    let added: Row[] | undefined;
    for (const [id, row] of this.#rows) {
      const old = s.tasks.get(id);
      if (this.#removed?.has(id)) {
        if (!old) continue;
        for (const k of indexKeys(old)) s.deleteEntry(k);
        s.dropDir(`deps/${encName(id)}`);
        s.tasks.delete(id);
        continue;
      }
      if (!row) continue;
      if (!old) {
        for (const k of indexKeys(row)) s.addEntry(k);
      } else if (reindexed(old, row)) {
        const moves = indexMoves(indexKeys(old), row);
        for (const k of moves.del) s.deleteEntry(k);
        for (const k of moves.add) s.addEntry(k);
      }
      // Only a record with a key can move one: most have none, and skip the allocations.
      if (row.key !== undefined || old?.key !== undefined) {
        const keys = keyMoves(old && { key: old.key, live: keepsKey(old) }, row);
        if (keys.release !== undefined && s.liveKeys.get(keys.release) === id) {
          s.liveKeys.delete(keys.release);
        }
        // A key entry left by a throttled task whose window has passed is taken over.
        if (keys.take !== undefined && !ownedElsewhere(s, keys.take, id)) {
          s.liveKeys.set(keys.take, id);
        }
      }
      if (old) s.tasks.set(id, row);
      else (added ??= []).push(row);
    }
    if (added) {
      // New rows join the FIFO order by their sequence, whatever order the step read them in.
      if (added.length > 1) added.sort((a, b) => a.seq - b.seq);
      for (const row of added) s.tasks.set(row.id, row);
    }
    s.seq = this.#seq;
    if (this.#results) {
      for (const [id, r] of this.#results) {
        if (r) s.results.set(id, r);
        else s.results.delete(id);
      }
    }
    if (this.#schedules) {
      for (const [id, sc] of this.#schedules) {
        if (sc) s.schedules.set(id, sc);
        else s.schedules.delete(id);
      }
    }
    if (this.#paused) s.paused = this.#paused;
    if (this.#cursors) { for (const [q, g] of this.#cursors) s.cursors.set(q, g); }
    if (this.#events) { for (const e of this.#events) s.events.push(e); }
    s.eventSeq = this.#eventSeq;
  }
}

/** One handle's view of a memory store: steps, reads, and whether the handle is closed. */
export class MemorySpace implements RecordSpace {
  /** The store. */
  readonly state: MemoryState;
  /** Whether this handle is closed (later calls throw). */
  closed = false;

  /** Open over a store. */
  constructor(state: MemoryState) {
    this.state = state;
  }

  /** Run `fn` as one step. */
  step<T>(fn: (tx: RecordTx) => Promise<T>): Promise<T> {
    this.check();
    return this.state.exclusive(async () => {
      this.check();
      const tx = new MemoryTx(this.state);
      const out = await fn(tx);
      tx.commit();
      return out;
    });
  }

  /** Throw when the handle is closed. */
  check(): void {
    if (this.closed) throw closedError("memory");
  }

  /** Nothing in memory is unreadable. */
  corrupt(_path: string, _why: unknown): void {}

  /** A task record. */
  readRow(id: string): Promise<Row | undefined> {
    return Promise.resolve(this.state.tasks.get(id));
  }

  /** Every task record, in FIFO order. */
  allRows(): Promise<Row[]> {
    return Promise.resolve([...this.state.tasks.values()]);
  }

  /** Every schedule, by id. */
  allSchedules(): Promise<StoredSchedule[]> {
    return Promise.resolve(
      [...this.state.schedules.values()].sort((a, b) => a.id < b.id ? -1 : 1).map((s) => ({
        ...s,
      })),
    );
  }

  /** Index entry names under a directory. */
  entries(dir: string, limit?: number): Promise<string[]> {
    return Promise.resolve(this.state.entries(dir, limit));
  }
}
