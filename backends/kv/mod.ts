/**
 * The `kv:` engine: queue, results and events in Deno KV. `kv:./path.kv` opens a local KV
 * file, `kv:` alone the default KV (the project's database on Deno Deploy), `kv::memory:` a
 * private in-memory one, and {@linkcode openKv} takes a `Deno.Kv` you opened yourself.
 *
 * Deno KV is still an unstable API: run with `--unstable-kv` (or `"unstable": ["kv"]` in
 * `deno.json`). This module uses only the part of the API it names in {@linkcode KvLike}, so
 * importing OmniQ never needs the unstable types.
 *
 * ## How a step commits
 * Every state change (enqueue, claim, complete, a schedule's tick …) is one step of the
 * record engines' shared queue (`backends/records/queue.ts`): it reads the task records it needs,
 * then commits all its changes in one `kv.atomic()` that checks the versionstamp of every
 * record it read. When another process changed one of them first the commit fails and the
 * step runs again on fresh reads, so exactly one worker wins a claim and a tick fires once.
 * Steps in one process run one after another. A shared sequence record gives FIFO order and
 * event ids, so every step that adds tasks or events also checks it.
 *
 * ## Limits (Deno KV's, per atomic commit: 100 checks, 1,000 mutations, 800 KiB; 64 KiB a value)
 * - A task's encoded arguments may take {@linkcode KV_MAX_PAYLOAD} bytes; larger ones are
 *   refused at enqueue, naming the limit.
 * - A result value over 60,000 bytes is split over several values, up to
 *   {@linkcode KV_MAX_RESULT} bytes; a larger result fails the task, naming the limit.
 * - A step reads at most about 80 records: a claim takes fewer tasks than asked when it
 *   would read more, a sweep continues in further steps, and a large `enqueueMany` is
 *   stored in several commits (each all or none; the ids, keys and dependencies of the whole
 *   batch are checked before the first). A task may depend on at most about 60 others.
 *
 * ## Wake-ups
 * On a local KV file another process's writes are not seen by `watch` or `listenQueue`, so
 * idle workers poll on their `pollInterval`; work enqueued through the same `OmniQ` wakes
 * its workers at once.
 *
 * ## Keys (under the prefix, `["omniq"]` by default)
 * `["t", id]` task records; `["i", …path]` index entries (see `backends/records/queue.ts`);
 * `["k", key]` the live task of a dedupe key; `["s", id]` schedules; `["r", id]` results
 * (with `expireIn` for a result TTL) and `["rv", id, n]` their parts; `["e", id]` events and
 * `["et", taskId, id]` an index of them by task; `["meta", "seq"]` the sequences.
 *
 * @example A queue in a KV file
 * ```ts ignore
 * import { OmniQ, defineTask } from "@omniq/omniq";
 * const double = defineTask("kv-doc-double", (n: number) => n * 2);
 * await using q = await OmniQ.open("kv:./omniq.kv");
 * const id = await q.enqueue(double, [21]);
 * await q.run({ until: "idle" });
 * console.assert((await q.wait(id)) === 42);
 * ```
 *
 * @module
 */

import {
  type Backend,
  type Effects,
  type EnqueueOutcome,
  type EventQuery,
  type EventStore,
  isFinal,
  matchesEvent,
  type NewEvent,
  type NewTask,
  noEffects,
  RECORD_VERSION,
  type ResultStore,
  type StoredEvent,
  type StoredResult,
  type StoredSchedule,
} from "../../src/backend.ts";
import { ConfigError, DuplicateTaskError, OmniQError } from "../../src/errors.ts";
import { encName, pad } from "../../src/kit/encoding.ts";
import {
  indexKeys,
  RecordQueue,
  type RecordSpace,
  type RecordTx,
  type Row,
} from "../records/queue.ts";

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
  /** Commit; `ok` is false when a check failed. */
  commit(): Promise<{ ok: boolean }>;
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

/** The largest encoded argument list a task may have on this engine (bytes). */
export const KV_MAX_PAYLOAD = 48 * 1024;
/** The largest encoded result value this engine stores (bytes), split over several values. */
export const KV_MAX_RESULT = 512 * 1024;

const PART = 60_000;
const MAX_CHECKS = 100;
const MAX_MUTATIONS = 1_000;
/** Bytes one commit may write, below Deno KV's 800 KiB (leaves room for keys and events). */
const MAX_BYTES = 700 * 1024;
/** Records a step may read before it stops taking more (leaves room for key checks). */
const ROOM = 80;
/** Tasks an `enqueue` stores in one commit, at first (halved while a commit is too large). */
const BATCH = 48;
/** Steps one group commit takes at most. */
const GROUP_STEPS = 64;
/** Records a group may have read before it takes another step. */
const GROUP_ROOM = 50;
/** Commits that lost to another writer before a step gives up. */
const MAX_CONFLICTS = 2_000;

type Obj = Record<string, unknown>;

function keyText(key: KvKey): string {
  return JSON.stringify(
    key,
    (_k, v) => typeof v === "bigint" || typeof v === "symbol" ? String(v) : v,
  );
}

function checkVersion(v: unknown): void {
  if (typeof v !== "number") throw new Error("no record version");
  if (v > RECORD_VERSION) {
    throw new OmniQError(
      `a record has version ${v}, newer than this OmniQ reads (${RECORD_VERSION}); upgrade OmniQ to read it`,
    );
  }
}

function decodeRow(raw: unknown): Row {
  const r = raw as Obj;
  if (!r || typeof r !== "object") throw new Error("not a record");
  checkVersion(r.v);
  if (
    typeof r.id !== "string" || typeof r.state !== "string" || typeof r.seq !== "number" ||
    !(r.payload instanceof Uint8Array)
  ) {
    throw new Error("not a task record");
  }
  const { v: _v, ...row } = r;
  return row as unknown as Row;
}

function encodeRow(row: Row): Obj {
  return { v: RECORD_VERSION, ...row };
}

function decodeSchedule(raw: unknown): StoredSchedule {
  const r = raw as Obj;
  if (!r || typeof r !== "object") throw new Error("not a record");
  checkVersion(r.v);
  if (typeof r.id !== "string" || !(r.payload instanceof Uint8Array)) {
    throw new Error("not a schedule record");
  }
  const { v: _v, ...s } = r;
  return s as unknown as StoredSchedule;
}

/** Whether a step left a row as it read it (the logic only assigns top-level fields). */
function sameRow(a: Row, b: Row): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if ((a as unknown as Obj)[k] !== (b as unknown as Obj)[k]) return false;
  }
  return true;
}

function isLocked(error: unknown): boolean {
  return /database is locked|busy/i.test(String((error as Error)?.message));
}

class StepTooLarge extends OmniQError {
  override name = "StepTooLarge";
}

/** A step waiting for its turn. */
interface Pending {
  fn: (tx: RecordTx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** The shared machinery of one open KV: prefix, group commits, corrupt reports. */
class KvStore implements RecordSpace {
  readonly kv: KvLike;
  readonly prefix: KvKey;
  readonly owned: boolean;
  closed = false;
  onCorrupt?: (path: string, reason: string) => void;
  #pending: Pending[] = [];
  #draining = false;
  #reported = new Set<string>();

  constructor(kv: KvLike, prefix: KvKey, owned: boolean) {
    this.kv = kv;
    this.prefix = prefix;
    this.owned = owned;
  }

  key(...parts: KvKeyPart[]): KvKey {
    return [...this.prefix, ...parts];
  }

  check(): void {
    if (this.closed) throw new OmniQError("the kv backend is closed");
  }

  corrupt(path: string, why: unknown): void {
    if (this.#reported.has(path)) return;
    this.#reported.add(path);
    const reason = String((why as Error)?.message ?? why);
    console.warn(`omniq kv: skipping unreadable record ${path}: ${reason}`);
    this.onCorrupt?.(path, reason);
  }

  /**
   * Run a step. Steps asked for while a commit is in flight wait and then share the next
   * commit (group commit): each runs on the reads and changes of those before it, a step
   * that throws is rolled back alone, and when another writer wins the commit every step of
   * the group runs again on fresh reads.
   */
  step<T>(fn: (tx: RecordTx) => Promise<T>): Promise<T> {
    this.check();
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({
        fn: fn as (tx: RecordTx) => Promise<unknown>,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      if (!this.#draining) this.#drain();
    });
  }

  async #drain(): Promise<void> {
    this.#draining = true;
    try {
      while (this.#pending.length > 0) {
        const group = this.#pending.splice(0, GROUP_STEPS);
        try {
          await this.#run(group);
        } catch (error) {
          for (const step of group) step.reject(error);
        }
      }
    } finally {
      this.#draining = false;
    }
  }

  async #run(group: Pending[]): Promise<void> {
    for (let conflicts = 0;; conflicts++) {
      this.check();
      const tx = new KvTx(this);
      const done: [Pending, unknown][] = [];
      const failed: [Pending, unknown][] = [];
      const later: Pending[] = [];
      for (const step of group) {
        if (done.length + failed.length > 0 && !tx.roomForStep()) {
          later.push(step);
          continue;
        }
        const mark = tx.mark();
        try {
          done.push([step, await step.fn(tx)]);
        } catch (error) {
          tx.restore(mark);
          failed.push([step, error]);
        }
      }
      let ok: boolean;
      try {
        ok = await tx.commit();
      } catch (error) {
        if (error instanceof StepTooLarge && done.length > 1) {
          // Too much for one commit together: each on its own.
          for (const step of group) {
            await this.#run([step]).catch((e) => step.reject(e));
          }
          return;
        }
        for (const [step] of done) step.reject(error);
        for (const [step, e] of failed) step.reject(e);
        this.#pending.unshift(...later);
        return;
      }
      if (ok) {
        for (const [step, out] of done) step.resolve(out);
        for (const [step, e] of failed) step.reject(e);
        this.#pending.unshift(...later);
        return;
      }
      if (conflicts >= MAX_CONFLICTS) {
        throw new OmniQError(`kv: a step lost to other writers ${conflicts} times; gave up`);
      }
      const pause = Math.min(1 + conflicts, 20) * Math.random();
      await new Promise((r) => setTimeout(r, pause));
    }
  }

  decodeRow(entry: KvEntryMaybe): Row | undefined {
    if (entry.versionstamp === null) return undefined;
    try {
      return decodeRow(entry.value);
    } catch (error) {
      if (error instanceof OmniQError) throw error;
      this.corrupt(keyText(entry.key), error);
      return undefined;
    }
  }

  decodeSchedule(entry: KvEntryMaybe): StoredSchedule | undefined {
    if (entry.versionstamp === null) return undefined;
    try {
      return decodeSchedule(entry.value);
    } catch (error) {
      if (error instanceof OmniQError) throw error;
      this.corrupt(keyText(entry.key), error);
      return undefined;
    }
  }

  async readRow(id: string): Promise<Row | undefined> {
    return this.decodeRow(await this.kv.get(this.key("t", id)));
  }

  async allRows(): Promise<Row[]> {
    const rows: Row[] = [];
    for await (const entry of this.kv.list({ prefix: this.key("t") }, { batchSize: 500 })) {
      const row = this.decodeRow(entry);
      if (row) rows.push(row);
    }
    return rows.sort((a, b) => a.seq - b.seq);
  }

  async allSchedules(): Promise<StoredSchedule[]> {
    const out: StoredSchedule[] = [];
    for await (const entry of this.kv.list({ prefix: this.key("s") })) {
      const s = this.decodeSchedule(entry);
      if (s) out.push(s);
    }
    return out;
  }

  async entries(dir: string, limit?: number): Promise<string[]> {
    const names: string[] = [];
    const prefix = this.key("i", ...dir.split("/"));
    const options = limit === undefined
      ? { batchSize: 500 }
      : { limit, batchSize: Math.min(500, limit) };
    for await (const entry of this.kv.list({ prefix }, options)) {
      const name = entry.key[entry.key.length - 1];
      if (typeof name === "string") names.push(name);
    }
    return names;
  }

  /** The keys of a result's parts. */
  async resultParts(taskId: string): Promise<KvKey[]> {
    const keys: KvKey[] = [];
    for await (const e of this.kv.list({ prefix: this.key("rv", taskId) })) keys.push(e.key);
    return keys;
  }

  /** Add the writes of a result to an atomic operation; how many mutations. */
  putResult(op: KvAtomic, r: StoredResult): number {
    const { value, ...rest } = r;
    const record: Obj = { v: RECORD_VERSION, ...rest };
    const options = r.expiresAt === undefined
      ? undefined
      : { expireIn: Math.max(1, r.expiresAt - Date.now()) };
    let n = 1;
    if (value !== undefined && value.length > PART) {
      if (value.length > KV_MAX_RESULT) {
        throw new OmniQError(
          `kv: a result of ${value.length} bytes is over this engine's limit of ${KV_MAX_RESULT}`,
        );
      }
      record.parts = Math.ceil(value.length / PART);
      for (let i = 0; i * PART < value.length; i++) {
        op.set(this.key("rv", r.taskId, i), value.subarray(i * PART, (i + 1) * PART), options);
        n++;
      }
    } else if (value !== undefined) record.value = value;
    op.set(this.key("r", r.taskId), record, options);
    return n;
  }

  async readResult(taskId: string): Promise<StoredResult | undefined> {
    const entry = await this.kv.get(this.key("r", taskId));
    if (entry.versionstamp === null) return undefined;
    try {
      const r = entry.value as Obj;
      if (!r || typeof r !== "object") throw new Error("not a record");
      checkVersion(r.v);
      if (typeof r.taskId !== "string" || typeof r.state !== "string") {
        throw new Error("not a result record");
      }
      const { v: _v, parts, ...rest } = r;
      const out = rest as unknown as StoredResult;
      if (typeof parts === "number") {
        const chunks: Uint8Array[] = [];
        for (let i = 0; i < parts; i += 10) {
          const keys = Array.from(
            { length: Math.min(10, parts - i) },
            (_, j) => this.key("rv", taskId, i + j),
          );
          for (const e of await this.kv.getMany(keys)) {
            if (!(e.value instanceof Uint8Array)) throw new Error("a part of the value is missing");
            chunks.push(e.value);
          }
        }
        const value = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let at = 0;
        for (const c of chunks) {
          value.set(c, at);
          at += c.length;
        }
        out.value = value;
      }
      return out;
    } catch (error) {
      if (error instanceof OmniQError) throw error;
      this.corrupt(keyText(entry.key), error);
      return undefined;
    }
  }
}

/** One step: reads with their versionstamps, changes committed in one checked atomic. */
class KvTx implements RecordTx {
  #s: KvStore;
  #checks = new Map<string, { key: KvKey; versionstamp: string | null }>();
  #rows = new Map<string, Row | undefined>();
  #before = new Map<string, { index: string[]; key?: string; live: boolean; snap: Row }>();
  #seq?: { task: number; event: number };
  #seqDirty = false;
  #events: StoredEvent[] = [];
  #results: StoredResult[] = [];
  #unresults = new Set<string>();
  #removed = new Set<string>();
  #dropped = new Set<string>();
  #dependents = new Set<string>();
  #schedules = new Map<string, StoredSchedule | undefined>();
  #putSchedules = new Map<string, StoredSchedule>();
  #unschedules = new Set<string>();
  #owners = new Map<string, string | undefined>();
  /** Records read ahead (not yet checked: a record counts as read when the step uses it). */
  #ahead = new Map<string, KvEntryMaybe>();

  constructor(store: KvStore) {
    this.#s = store;
  }

  /** Whether a group commit may take another step. */
  roomForStep(): boolean {
    return this.#checks.size < GROUP_ROOM;
  }

  /** The step's changes so far, to roll a failed step back to. */
  mark(): () => void {
    const rows = new Map([...this.#rows].map(([id, r]) => [id, r && { ...r }]));
    const seq = this.#seq && { ...this.#seq };
    const seqDirty = this.#seqDirty;
    const events = this.#events.length;
    const results = [...this.#results];
    const sets = [
      this.#unresults,
      this.#removed,
      this.#dropped,
      this.#dependents,
      this.#unschedules,
    ]
      .map((set) => [set, new Set(set)] as const);
    const schedules = new Map(this.#schedules);
    const putSchedules = new Map(this.#putSchedules);
    return () => {
      this.#rows = rows;
      this.#seq = seq;
      this.#seqDirty = seqDirty;
      this.#events.length = events;
      this.#results = results;
      for (const [set, copy] of sets) {
        set.clear();
        for (const v of copy) set.add(v);
      }
      this.#schedules = schedules;
      this.#putSchedules = putSchedules;
    };
  }

  /** Roll back to a mark. */
  restore(mark: () => void): void {
    mark();
  }

  /** Index entries this transaction adds and deletes (by comparing rows with their reads). */
  #pendingIndex(): { add: Set<string>; del: Set<string> } {
    const add = new Set<string>(this.#dependents);
    const del = new Set<string>();
    for (const [id, row] of this.#rows) {
      const before = this.#before.get(id)?.index ?? [];
      if (this.#removed.has(id) || !row) {
        for (const k of before) del.add(k);
        continue;
      }
      const after = indexKeys(row);
      for (const k of after) if (!before.includes(k)) add.add(k);
      for (const k of before) if (!after.includes(k)) del.add(k);
    }
    for (const k of this.#dropped) if (!add.has(k)) del.add(k);
    for (const k of add) del.delete(k);
    return { add, del };
  }

  async #get(key: KvKey): Promise<KvEntryMaybe> {
    const entry = await this.#s.kv.get(key);
    this.#checks.set(keyText(key), { key, versionstamp: entry.versionstamp });
    return entry;
  }

  async prefetch(ids: string[]): Promise<void> {
    const want = [...new Set(ids)].filter((id) => !this.#rows.has(id) && !this.#ahead.has(id));
    const reads: Promise<void>[] = [];
    for (let i = 0; i < want.length; i += 10) {
      const part = want.slice(i, i + 10);
      reads.push(
        this.#s.kv.getMany(part.map((id) => this.#s.key("t", id))).then((entries) => {
          entries.forEach((e, j) => this.#ahead.set(part[j], e));
        }),
      );
    }
    await Promise.all(reads);
  }

  async row(id: string): Promise<Row | undefined> {
    if (this.#rows.has(id)) return this.#rows.get(id);
    const key = this.#s.key("t", id);
    let entry = this.#ahead.get(id);
    if (entry) {
      this.#ahead.delete(id);
      this.#checks.set(keyText(key), { key, versionstamp: entry.versionstamp });
    } else entry = await this.#get(key);
    const row = this.#s.decodeRow(entry);
    this.#rows.set(id, row);
    if (row) {
      this.#before.set(id, {
        index: indexKeys(row),
        key: row.key,
        live: !isFinal(row.state),
        snap: { ...row },
      });
    }
    return row;
  }

  add(row: Row): void {
    this.#rows.set(row.id, row);
  }

  remove(id: string): void {
    this.#removed.add(id);
  }

  async #seqs(): Promise<{ task: number; event: number }> {
    if (!this.#seq) {
      const entry = await this.#get(this.#s.key("meta", "seq"));
      const raw = entry.value as { task?: unknown; event?: unknown } | null;
      this.#seq = raw && typeof raw.task === "number" && typeof raw.event === "number"
        ? { task: raw.task, event: raw.event }
        : { task: 0, event: 0 };
    }
    return this.#seq;
  }

  async nextSeq(): Promise<number> {
    const seq = await this.#seqs();
    this.#seqDirty = true;
    return ++seq.task;
  }

  async appendEvents(events: NewEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const seq = await this.#seqs();
    this.#seqDirty = true;
    const out = events.map((e) => ({ ...e, id: pad(++seq.event, 12) }));
    this.#events.push(...out);
    return out;
  }

  putResults(results: StoredResult[]): void {
    for (const r of results) this.#unresults.delete(r.taskId);
    this.#results.push(...results);
  }

  deleteResult(taskId: string): void {
    this.#results = this.#results.filter((r) => r.taskId !== taskId);
    this.#unresults.add(taskId);
  }

  async entries(dir: string, limit?: number): Promise<string[]> {
    // Stored entries, with this transaction's own changes (of earlier steps in the group).
    const { add, del } = this.#pendingIndex();
    const prefix = `${dir}/`;
    const added: string[] = [];
    let deleted = 0;
    for (const k of add) if (k.startsWith(prefix)) added.push(k.slice(prefix.length));
    for (const k of del) if (k.startsWith(prefix)) deleted++;
    const stored = await this.#s.entries(dir, limit === undefined ? undefined : limit + deleted);
    const names = new Set(stored.filter((n) => !del.has(prefix + n)));
    for (const n of added) if (!n.includes("/")) names.add(n);
    return [...names].sort().slice(0, limit);
  }

  dropEntry(path: string): void {
    this.#dropped.add(path);
  }

  addDependent(dep: string, id: string): void {
    this.#dependents.add(`deps/${encName(dep)}/${encName(id)}`);
  }

  async #owner(key: string): Promise<string | undefined> {
    if (!this.#owners.has(key)) {
      const entry = await this.#get(this.#s.key("k", key));
      this.#owners.set(key, typeof entry.value === "string" ? entry.value : undefined);
    }
    return this.#owners.get(key);
  }

  async liveKeyOwner(key: string): Promise<string | undefined> {
    // A task of an earlier step in this group may hold it.
    for (const row of this.#rows.values()) {
      if (row && row.key === key && !isFinal(row.state) && !this.#removed.has(row.id)) {
        return row.id;
      }
    }
    const id = await this.#owner(key);
    if (id === undefined) return undefined;
    const row = await this.row(id);
    return row && !isFinal(row.state) && row.key === key ? id : undefined;
  }

  async schedule(id: string): Promise<StoredSchedule | undefined> {
    if (!this.#schedules.has(id)) {
      this.#schedules.set(id, this.#s.decodeSchedule(await this.#get(this.#s.key("s", id))));
    }
    return this.#schedules.get(id);
  }

  putSchedule(schedule: StoredSchedule): void {
    this.#schedules.set(schedule.id, schedule);
    this.#putSchedules.set(schedule.id, schedule);
    this.#unschedules.delete(schedule.id);
  }

  async deleteSchedule(id: string): Promise<boolean> {
    const existed = (await this.schedule(id)) !== undefined;
    this.#schedules.set(id, undefined);
    this.#putSchedules.delete(id);
    this.#unschedules.add(id);
    return existed;
  }

  room(): boolean {
    return this.#checks.size < ROOM;
  }

  #ix(path: string): KvKey {
    return this.#s.key("i", ...path.split("/"));
  }

  /** Commit the step; `false` when another writer changed what it read. */
  async commit(): Promise<boolean> {
    const s = this.#s;
    const op = s.kv.atomic();
    let mutations = 0;
    let bytes = 0;
    const set = (key: KvKey, value: unknown) => {
      op.set(key, value);
      mutations++;
    };
    const del = (key: KvKey) => {
      op.delete(key);
      mutations++;
    };
    const keys = new Map<string, string | null>();
    for (const [id, row] of this.#rows) {
      const before = this.#before.get(id);
      if (this.#removed.has(id)) {
        del(s.key("t", id));
        for (const name of await s.entries(`deps/${encName(id)}`)) {
          del(this.#ix(`deps/${encName(id)}/${name}`));
        }
        if (before?.live && before.key !== undefined && (await this.#owner(before.key)) === id) {
          if (!keys.has(before.key)) keys.set(before.key, null);
        }
        continue;
      }
      if (!row || (before && sameRow(before.snap, row))) continue;
      set(s.key("t", id), encodeRow(row));
      bytes += row.payload.length + 1_024;
      const live = !isFinal(row.state);
      if (before?.live && before.key !== undefined && (!live || row.key !== before.key)) {
        if ((await this.#owner(before.key)) === id && !keys.has(before.key)) {
          keys.set(before.key, null);
        }
      }
      if (live && row.key !== undefined && !(before?.live && before.key === row.key)) {
        await this.#owner(row.key); // checked: a concurrent claim of the key fails this commit
        keys.set(row.key, id);
      }
    }
    for (const [key, id] of keys) {
      if (id === null) del(s.key("k", key));
      else set(s.key("k", key), id);
    }
    const { add, del: gone } = this.#pendingIndex();
    for (const path of add) set(this.#ix(path), true);
    for (const path of gone) del(this.#ix(path));
    for (const r of this.#results) {
      mutations += s.putResult(op, r);
      bytes += (r.value?.length ?? 0) + 1_024;
    }
    for (const id of this.#unresults) {
      del(s.key("r", id));
      for (const key of await s.resultParts(id)) del(key);
    }
    for (const [id, sched] of this.#putSchedules) {
      set(s.key("s", id), { v: RECORD_VERSION, ...sched });
    }
    for (const id of this.#unschedules) del(s.key("s", id));
    if (this.#seqDirty && this.#seq) set(s.key("meta", "seq"), this.#seq);
    for (const e of this.#events) {
      set(s.key("e", e.id), e);
      if (e.taskId !== undefined) set(s.key("et", e.taskId, e.id), true);
    }
    if (this.#checks.size > MAX_CHECKS || mutations > MAX_MUTATIONS || bytes > MAX_BYTES) {
      throw new StepTooLarge(
        `kv: this step reads ${this.#checks.size} records and makes ${mutations} changes of ` +
          `about ${bytes} bytes; one Deno KV commit allows ${MAX_CHECKS} checks, ` +
          `${MAX_MUTATIONS} changes and ${MAX_BYTES} bytes ` +
          `(a task with too many dependencies or dependents?)`,
      );
    }
    op.check(...this.#checks.values());
    try {
      return (await op.commit()).ok;
    } catch (error) {
      // Another connection to the file holds SQLite's write lock: like a lost check, retry.
      if (isLocked(error)) return false;
      throw error;
    }
  }
}

/** The task queue of a `kv:` store. */
export class KvQueue extends RecordQueue {
  #s: KvStore;

  /** Open over a store; use {@linkcode openKv}. */
  constructor(store: KvStore) {
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

  /** Complete an attempt; a result over the engine's limit fails the task instead. */
  override complete(
    id: string,
    token: string,
    result: StoredResult,
  ): Promise<Effects | undefined> {
    if (result.value !== undefined && result.value.length > KV_MAX_RESULT) {
      const error = {
        name: "ResultTooLargeError",
        message:
          `the result takes ${result.value.length} bytes; the kv engine stores at most ${KV_MAX_RESULT}`,
      };
      return this.fail(id, token, {
        error,
        result: { taskId: id, state: "failed", error, completedAt: result.completedAt },
      });
    }
    return super.complete(id, token, result);
  }

  /**
   * Wake an idle worker when another handle in this process changes the store: a watch on
   * the sequence record, which every enqueue and every event changes. (Another process's
   * writes to a local KV file are not seen by a watch: those are found by polling.)
   */
  subscribe(_queues: string[], onWake: () => void): () => void {
    const kv = this.#s.kv;
    if (!kv.watch) return () => {};
    const reader = kv.watch([this.#s.key("meta", "seq")]).getReader();
    (async () => {
      // The first reading is the current value, not a change.
      for (let first = true;; first = false) {
        const { done } = await reader.read();
        if (done) return;
        if (!first) onWake();
      }
    })().catch(() => {});
    return () => void reader.cancel().catch(() => {});
  }

  /** Close the queue: later calls throw. */
  override close(): Promise<void> {
    this.#s.closed = true;
    return Promise.resolve();
  }
}

/** The result store of a `kv:` store. */
export class KvResults implements ResultStore {
  #s: KvStore;
  /** Open over a store; use {@linkcode openKv}. */
  constructor(store: KvStore) {
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
    return r && (r.expiresAt === undefined || r.expiresAt > Date.now()) ? r : undefined;
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
  #s: KvStore;
  /** Open over a store; use {@linkcode openKv}. */
  constructor(store: KvStore) {
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

/** The `kv:` engine: queue, results and events in one Deno KV database. */
export class KvBackend implements Backend {
  /** The engine's name. */
  readonly name = "kv";
  /** The task queue. */
  readonly queue: KvQueue;
  /** The result store. */
  readonly results: KvResults;
  /** The event store. */
  readonly events: KvEvents;
  #store: KvStore;

  /**
   * Open over a KV database; use {@linkcode openKv}.
   *
   * @param kv The database.
   * @param prefix The key prefix of every record.
   * @param owned Whether closing the backend closes the database.
   */
  constructor(kv: KvLike, prefix: KvKey, owned: boolean) {
    this.#store = new KvStore(kv, prefix, owned);
    this.queue = new KvQueue(this.#store);
    this.results = new KvResults(this.#store);
    this.events = new KvEvents(this.#store);
  }

  /** Close: later calls throw; a database this engine opened is closed. */
  async close(): Promise<void> {
    if (this.#store.closed) return;
    await this.#store.step(() => Promise.resolve()).catch(() => {});
    this.#store.closed = true;
    if (this.#store.owned) this.#store.kv.close();
  }
}

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

/**
 * Open a `kv:` engine: on a KV file, the default KV, or a `Deno.Kv` you opened (which stays
 * open when the engine closes).
 *
 * @param target `kv:./path.kv`, `kv:` (the default database), `kv::memory:`, or a `Deno.Kv`.
 * @param options The key prefix.
 * @returns The backend.
 * @throws {ConfigError} When Deno KV is not enabled (`--unstable-kv`) or the path is bad.
 *
 * @example
 * ```ts ignore
 * import { openKv } from "@omniq/omniq/kv";
 * import { OmniQ } from "@omniq/omniq";
 * const kv = await Deno.openKv(":memory:");
 * await using q = await OmniQ.open({ backend: await openKv(kv) });
 * ```
 */
export async function openKv(
  target: string | KvLike = "kv:",
  options: KvOptions = {},
): Promise<KvBackend> {
  const prefix = options.prefix ?? ["omniq"];
  if (!Array.isArray(prefix)) throw new ConfigError("prefix: expected an array of key parts");
  if (typeof target !== "string") {
    if (!target || typeof target.atomic !== "function") {
      throw new ConfigError("kv: expected a kv: URL or a Deno.Kv");
    }
    return new KvBackend(target, prefix, false);
  }
  const open = (Deno as unknown as { openKv?: (path?: string) => Promise<KvLike> }).openKv;
  if (typeof open !== "function") {
    throw new ConfigError(
      'kv: Deno KV is not enabled: run with --unstable-kv (or "unstable": ["kv"] in deno.json)',
    );
  }
  const path = kvPath(target);
  // One database handle per file in a process: handles on one file would fight over
  // SQLite's write lock.
  const name = path === undefined || path === ":memory:" ? undefined : await absolute(path);
  let shared = name === undefined ? undefined : SHARED.get(name);
  if (!shared) {
    let kv: KvLike;
    try {
      kv = await open(path);
    } catch (error) {
      throw new ConfigError(
        `kv: cannot open ${path ?? "the default database"}: ${(error as Error).message}`,
      );
    }
    shared = { kv, users: 0 };
    if (name !== undefined) SHARED.set(name, shared);
  }
  shared.users++;
  const handle = shared;
  const release: KvLike = {
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
  return new KvBackend(release, prefix, true);
}

const SHARED = new Map<string, { kv: KvLike; users: number }>();

async function absolute(path: string): Promise<string> {
  const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) || "/" : ".";
  const base = path.slice(path.lastIndexOf("/") + 1);
  try {
    return `${await Deno.realPath(dir)}/${base}`;
  } catch {
    return path;
  }
}
