/**
 * The `file:` engine: queue, results and events in one directory, shared safely by several
 * processes on one machine (or one shared file system with atomic rename and link).
 *
 * Layout (every write goes to a temporary name and is renamed or linked into place, so a
 * crash never leaves a half-written task, result or schedule):
 *
 * - `tasks/<id>.json`: one record per task (payload in base64), with `v` (the record version);
 * - `ready/<queue>/<9-priority><seq>-<id>`, `sched/<queue>/<runAt>-<id>`, `running/<id>`,
 *   `expires/<time>-<id>`, `final/<time>-<id>`, `keys/<key>`, `deps/<dep>/<id>`: indexes
 *   derived from the records (a reader re-checks the record, so a stale entry is harmless);
 * - `results/<id>.json`, `schedules/<id>.json`;
 * - `events/<writer>.jsonl`: JSON lines per writing process, merged by id for queries;
 * - `meta/seq.json` (the task and event sequences) and `lock` (see below).
 *
 * Every state change runs while holding the directory's lock, a file created only when
 * absent (`link`), whose holder is the one process allowed to change the store; a lock older
 * than {@linkcode LOCK_STALE_MS} is broken (its holder crashed). So a claim, a completion or
 * a tick fired (`fireTick`'s compare-and-set of the schedule) is one exactly-once step
 * across processes. A step that changes several files writes the list of changes to
 * `meta/journal.json` first and deletes it once they are made; a holder that dies part way
 * leaves it, and the next holder of the lock makes the rest of the changes (each can be made
 * twice safely), so a step is never left half done. All access goes through the {@linkcode Storage} interface of
 * `backends/file/storage.ts`, so other stores can implement it.
 *
 * A foreign, truncated or corrupt file is skipped and reported once per process with a
 * warning naming it; it never stops a worker or hides other tasks.
 *
 * @example A queue in a directory
 * ```ts
 * import { OmniQ, defineTask } from "@omniq/omniq";
 * const double = defineTask("file-doc-double", (n: number) => n * 2);
 * const dir = await Deno.makeTempDir();
 * await using q = await OmniQ.open(`file:${dir}`);
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
  type EventQuery,
  type EventStore,
  isFinal,
  matchesEvent,
  type NewEvent,
  RECORD_VERSION,
  type ResultStore,
  type StoredEvent,
  type StoredResult,
  type StoredSchedule,
  type SweepOptions,
} from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import {
  decName,
  encName,
  fromBase64,
  jsonBytes,
  pad,
  parseJson,
  toBase64,
} from "../../src/kit/encoding.ts";
import {
  indexKeys,
  RecordQueue,
  type RecordSpace,
  type RecordTx,
  type Row,
} from "../records/queue.ts";
/**
 * The queue logic that the file, Deno KV and NATS engines share: `FileQueue`, `KvQueue` and
 * `NatsQueue` extend it, so their documentation shows what they inherit from it.
 */
export { RecordQueue } from "../records/queue.ts";
import { LocalStorage, type Storage } from "./storage.ts";

export { LocalStorage, type Storage } from "./storage.ts";

/** A lock older than this (ms) is taken to be a crashed holder's and broken. */
export const LOCK_STALE_MS = 10_000;

/** The most steps that share one turn of the lock (and one commit). */
const GROUP_MAX = 64;

/** A step waiting for its turn. */
interface PendingStep {
  fn: (tx: RecordTx) => Promise<unknown>;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

/** How often (ms) the lock's holder marks it as alive during a long step. */
const LOCK_HEARTBEAT_MS = 2_000;

/** A temporary file older than this (ms) is a crashed writer's, deleted by the sweep. */
const TMP_STALE_MS = 3_600_000;

function closedError(): OmniQError {
  return new OmniQError("the file backend is closed");
}

/** The shared machinery of one open directory: storage, lock, sequences, corrupt reports. */
class Store implements RecordSpace {
  readonly storage: Storage;
  /** Told of each unreadable file once (the queue turns it into a `corrupt` event). */
  onCorrupt?: (path: string, reason: string) => void;
  readonly writer = `${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  closed = false;
  #chain: Promise<void> = Promise.resolve();
  #reported = new Set<string>();

  constructor(storage: Storage) {
    this.storage = storage;
  }

  check(): void {
    if (this.closed) throw closedError();
  }

  /** Report a foreign or corrupt file once. */
  corrupt(key: string, why: unknown): void {
    if (this.#reported.has(key)) return;
    this.#reported.add(key);
    const reason = String((why as Error)?.message ?? why);
    console.warn(`omniq file: skipping unreadable file ${this.storage.location}/${key}: ${reason}`);
    this.onCorrupt?.(key, reason);
  }

  /**
   * One step under the lock. Steps asked for while a turn waits for the lock share the next
   * turn: one transaction, one commit (one journal), each step rolled back alone if it fails.
   */
  step<T>(fn: (tx: RecordTx) => Promise<T>): Promise<T> {
    this.check();
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({
        fn: fn as (tx: RecordTx) => Promise<unknown>,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      if (!this.#flushing) this.#flush();
    });
  }

  #pending: PendingStep[] = [];
  #flushing = false;

  /** Run the waiting steps in one turn of the lock, then the next ones, until none wait. */
  #flush(): void {
    this.#flushing = true;
    let group: PendingStep[] | undefined;
    const done: [PendingStep, unknown][] = [];
    this.locked(async (tx) => {
      group = this.#pending.splice(0, GROUP_MAX);
      for (const s of group) {
        const mark = tx.mark();
        try {
          done.push([s, await s.fn(tx)]);
        } catch (error) {
          mark();
          s.reject(error);
        }
      }
    }).then(
      () => {
        for (const [s, out] of done) s.resolve(out);
      },
      (error) => {
        // The turn failed (no lock, or the commit): every step of it fails with it.
        for (const [s] of done) s.reject(error);
        if (!group) { for (const s of this.#pending.splice(0, GROUP_MAX)) s.reject(error); }
      },
    ).finally(() => {
      this.#flushing = false;
      if (this.#pending.length > 0) this.#flush();
    });
  }

  /** Index entry names under a directory, sorted. */
  async entries(dir: string, limit?: number): Promise<string[]> {
    return (await this.storage.list(dir)).sort().slice(0, limit);
  }

  /** Run `fn` holding the directory lock (and this process's turn). */
  async locked<T>(fn: (tx: Tx) => Promise<T>): Promise<T> {
    this.check();
    const prev = this.#chain;
    let release!: () => void;
    this.#chain = new Promise((r) => release = r);
    await prev;
    try {
      this.check();
      const token = await this.#acquire();
      // A holder that crashed (or failed) part way through a commit left its journal.
      await this.#replay();
      // A step longer than the heartbeat keeps its lock fresh, so it is never taken as stale.
      const heartbeat = setInterval(() => {
        this.storage.touch("lock").catch(() => {});
      }, LOCK_HEARTBEAT_MS);
      try {
        const tx = new Tx(this);
        const out = await fn(tx);
        await tx.commit();
        return out;
      } finally {
        clearInterval(heartbeat);
        const held = await this.storage.read("lock");
        if (held && new TextDecoder().decode(held) === token) await this.storage.delete("lock");
      }
    } finally {
      release();
    }
  }

  /**
   * Make a commit's changes: a single change directly (each is atomic), several through
   * the journal, so they all happen even when this process dies part way.
   */
  async apply(ops: Op[]): Promise<void> {
    if (ops.length === 0) return;
    if (ops.length === 1 && !("a" in ops[0])) return applyOp(this.storage, ops[0], false);
    await this.storage.writeAtomic(JOURNAL, encodeJournal(ops));
    for (const op of ops) await applyOp(this.storage, op, false);
    await this.storage.delete(JOURNAL);
  }

  async #replay(): Promise<void> {
    const bytes = await this.storage.read(JOURNAL);
    if (!bytes) return;
    let ops: Op[];
    try {
      ops = decodeJournal(bytes);
    } catch (error) {
      // Written atomically, so only a foreign file can be unreadable: set it aside.
      this.corrupt(JOURNAL, error);
      await this.storage.renameIfAbsent(JOURNAL, `meta/journal-${crypto.randomUUID()}.bad`);
      return;
    }
    for (const op of ops) await applyOp(this.storage, op, true);
    await this.storage.delete(JOURNAL);
  }

  async #acquire(): Promise<string> {
    const token = `${this.writer}-${crypto.randomUUID()}`;
    const bytes = new TextEncoder().encode(token);
    for (let pause = 1;; pause = Math.min(pause * 2, 16)) {
      if (await this.storage.createIfAbsent("lock", bytes)) return token;
      const at = await this.storage.modified("lock");
      if (at !== undefined && Date.now() - at > LOCK_STALE_MS) {
        const held = await this.storage.read("lock");
        // Break it only if it is still the same stale lock.
        if (held && (await this.storage.modified("lock")) === at) {
          await this.storage.delete("lock");
        }
        continue;
      }
      await new Promise((r) => setTimeout(r, pause * (0.5 + Math.random())));
    }
  }

  async readRow(id: string): Promise<Row | undefined> {
    const key = `tasks/${encName(id)}.json`;
    const bytes = await this.storage.read(key);
    if (!bytes) return undefined;
    try {
      return decodeRow(parseJson(bytes));
    } catch (error) {
      if (error instanceof OmniQError) throw error;
      this.corrupt(key, error);
      return undefined;
    }
  }

  async allRows(): Promise<Row[]> {
    const rows: Row[] = [];
    for (const name of await this.storage.list("tasks")) {
      if (!name.endsWith(".json")) {
        if (!name.startsWith(".")) this.corrupt(`tasks/${name}`, "not a task record");
        continue;
      }
      let id: string;
      try {
        id = decName(name.slice(0, -5));
      } catch (error) {
        this.corrupt(`tasks/${name}`, error);
        continue;
      }
      const row = await this.readRow(id);
      if (row) rows.push(row);
    }
    return rows.sort((a, b) => a.seq - b.seq);
  }

  async readSchedule(key: string): Promise<StoredSchedule | undefined> {
    const bytes = await this.storage.read(key);
    if (!bytes) return undefined;
    try {
      return decodeSchedule(parseJson(bytes));
    } catch (error) {
      if (error instanceof OmniQError) throw error;
      this.corrupt(key, error);
      return undefined;
    }
  }

  async allSchedules(): Promise<StoredSchedule[]> {
    const out: StoredSchedule[] = [];
    for (const name of await this.storage.list("schedules")) {
      if (!name.endsWith(".json")) continue;
      const s = await this.readSchedule(`schedules/${name}`);
      if (s) out.push(s);
    }
    return out.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }
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
  const r = raw as Record<string, unknown>;
  if (!r || typeof r !== "object") throw new Error("not a record");
  checkVersion(r.v);
  if (typeof r.id !== "string" || typeof r.state !== "string" || typeof r.seq !== "number") {
    throw new Error("not a task record");
  }
  const { v: _v, payload, ...rest } = r;
  return { ...rest, payload: fromBase64(payload as string) } as unknown as Row;
}

function encodeRow(row: Row): Uint8Array {
  return jsonBytes({ v: RECORD_VERSION, ...row, payload: toBase64(row.payload) });
}

function decodeSchedule(raw: unknown): StoredSchedule {
  const r = raw as Record<string, unknown>;
  if (!r || typeof r !== "object") throw new Error("not a record");
  checkVersion(r.v);
  if (typeof r.id !== "string") throw new Error("not a schedule record");
  const { v: _v, payload, ...rest } = r;
  return { ...rest, payload: fromBase64(payload as string) } as unknown as StoredSchedule;
}

function encodeSchedule(s: StoredSchedule): Uint8Array {
  return jsonBytes({ v: RECORD_VERSION, ...s, payload: toBase64(s.payload) });
}

function encodeResult(r: StoredResult): Uint8Array {
  const { value, ...rest } = r;
  return jsonBytes({
    v: RECORD_VERSION,
    ...rest,
    ...(value === undefined ? {} : { value: toBase64(value) }),
  });
}

function decodeResult(raw: unknown): StoredResult {
  const r = raw as Record<string, unknown>;
  if (!r || typeof r !== "object") throw new Error("not a record");
  checkVersion(r.v);
  if (typeof r.taskId !== "string" || typeof r.state !== "string") {
    throw new Error("not a result record");
  }
  const { v: _v, value, ...rest } = r;
  const out = { ...rest } as unknown as StoredResult;
  if (value !== undefined) out.value = fromBase64(value as string);
  return out;
}

const EMPTY = new Uint8Array(0);

/** One locked step: rows loaded and changed, written on commit with their indexes. */
class Tx implements RecordTx {
  #s: Store;
  #rows = new Map<string, Row | undefined>();
  #before = new Map<string, { index: string[]; key?: string; live: boolean }>();
  #seq?: { task: number; event: number };
  #seqDirty = false;
  #events: StoredEvent[] = [];
  #results: StoredResult[] = [];
  #unresults = new Set<string>();
  #removed = new Set<string>();
  #dropped = new Set<string>();
  #dependents: string[] = [];
  #schedules = new Map<string, StoredSchedule | undefined>();
  #putSchedules = new Map<string, StoredSchedule>();
  #unschedules = new Set<string>();

  constructor(store: Store) {
    this.#s = store;
  }

  /** The changes so far; calling the result rolls a failed step back to them. */
  mark(): () => void {
    const rows = new Map([...this.#rows].map(([id, r]) => [id, r && { ...r }]));
    const seq = this.#seq && { ...this.#seq };
    const seqDirty = this.#seqDirty;
    const lengths = [this.#events.length, this.#results.length, this.#dependents.length];
    const sets = [this.#unresults, this.#removed, this.#dropped, this.#unschedules]
      .map((set) => [set, new Set(set)] as const);
    const schedules = new Map(this.#schedules);
    const putSchedules = new Map(this.#putSchedules);
    return () => {
      this.#rows = rows;
      this.#seq = seq;
      this.#seqDirty = seqDirty;
      [this.#events.length, this.#results.length, this.#dependents.length] = lengths;
      for (const [set, copy] of sets) {
        set.clear();
        for (const v of copy) set.add(v);
      }
      this.#schedules = schedules;
      this.#putSchedules = putSchedules;
    };
  }

  async row(id: string): Promise<Row | undefined> {
    if (this.#rows.has(id)) return this.#rows.get(id);
    const row = await this.#s.readRow(id);
    this.#rows.set(id, row);
    if (row) {
      this.#before.set(id, {
        index: indexKeys(row),
        key: row.key,
        live: !isFinal(row.state),
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
      const bytes = await this.#s.storage.read("meta/seq.json");
      let seq = { task: 0, event: 0 };
      if (bytes) {
        try {
          const raw = parseJson(bytes) as { task: number; event: number };
          if (typeof raw.task === "number" && typeof raw.event === "number") seq = raw;
          else throw new Error("bad sequence record");
        } catch (error) {
          this.#s.corrupt("meta/seq.json", error);
          seq = await this.#recoverSeq();
        }
      }
      this.#seq = seq;
    }
    return this.#seq;
  }

  /** Rebuild the sequences from the records, when their file is lost. */
  async #recoverSeq(): Promise<{ task: number; event: number }> {
    let task = 0;
    for (const row of await this.#s.allRows()) task = Math.max(task, row.seq);
    let event = 0;
    for (const e of await readEvents(this.#s)) event = Math.max(event, Number(e.id));
    return { task: task + 1, event: event + 1 };
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
    this.#results.push(...results);
  }

  deleteResult(taskId: string): void {
    this.#unresults.add(taskId);
  }

  async entries(dir: string, limit?: number): Promise<string[]> {
    return (await this.#s.storage.list(dir)).sort().slice(0, limit);
  }

  dropEntry(path: string): void {
    this.#dropped.add(path);
  }

  addDependent(dep: string, id: string): void {
    this.#dependents.push(`deps/${encName(dep)}/${encName(id)}`);
  }

  async liveKeyOwner(key: string): Promise<string | undefined> {
    const bytes = await this.#s.storage.read(`keys/${encName(key)}`);
    if (!bytes) return undefined;
    const id = new TextDecoder().decode(bytes);
    const row = await this.row(id);
    if (!row || isFinal(row.state) || row.key !== key) {
      await this.#s.storage.delete(`keys/${encName(key)}`);
      return undefined;
    }
    return id;
  }

  async schedule(id: string): Promise<StoredSchedule | undefined> {
    if (!this.#schedules.has(id)) {
      this.#schedules.set(id, await this.#s.readSchedule(`schedules/${encName(id)}.json`));
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
    return true;
  }

  async commit(): Promise<void> {
    const st = this.#s.storage;
    // Records first, then the indexes they imply: a reader re-checks the record, so an
    // index entry is only ever a hint. The whole list goes through the journal, so a crash
    // part way leaves it to be finished by the next holder of the lock.
    const ops: Op[] = [];
    for (const r of this.#results) {
      ops.push({ w: `results/${encName(r.taskId)}.json`, d: encodeResult(r) });
    }
    for (const id of this.#unresults) ops.push({ x: `results/${encName(id)}.json` });
    for (const [id, s] of this.#putSchedules) {
      ops.push({ w: `schedules/${encName(id)}.json`, d: encodeSchedule(s) });
    }
    for (const id of this.#unschedules) ops.push({ x: `schedules/${encName(id)}.json` });
    for (const path of this.#dependents) ops.push({ w: path, d: EMPTY });
    for (const [id, row] of this.#rows) {
      const before = this.#before.get(id);
      if (this.#removed.has(id)) {
        ops.push({ x: `tasks/${encName(id)}.json` });
        for (const k of before?.index ?? []) ops.push({ x: k });
        for (const dep of await st.list(`deps/${encName(id)}`)) {
          ops.push({ x: `deps/${encName(id)}/${dep}` });
        }
        continue;
      }
      if (!row) continue;
      const after = indexKeys(row);
      const live = !isFinal(row.state);
      ops.push({ w: `tasks/${encName(id)}.json`, d: encodeRow(row) });
      for (const k of after) if (!before?.index.includes(k)) ops.push({ w: k, d: EMPTY });
      for (const k of before?.index ?? []) if (!after.includes(k)) ops.push({ x: k });
      // Live keys: the key file names the live task that owns it.
      if (before?.live && before.key !== undefined && (!live || row.key !== before.key)) {
        const keyFile = `keys/${encName(before.key)}`;
        const owner = await st.read(keyFile);
        if (owner && new TextDecoder().decode(owner) === id) ops.push({ x: keyFile });
      }
      if (live && row.key !== undefined && !(before?.live && before.key === row.key)) {
        ops.push({ c: `keys/${encName(row.key)}`, d: new TextEncoder().encode(id) });
      }
    }
    for (const path of this.#dropped) ops.push({ x: path });
    if (this.#seqDirty && this.#seq) ops.push({ w: "meta/seq.json", d: jsonBytes(this.#seq) });
    if (this.#events.length > 0) {
      ops.push({ a: `events/${this.#s.writer}.jsonl`, events: this.#events });
    }
    await this.#s.apply(ops);
  }
}

/**
 * One storage change of a commit: write (`w`), delete (`x`), create when absent (`c`), or
 * append events to a log (`a`).
 */
type Op =
  | { w: string; d: Uint8Array }
  | { x: string }
  | { c: string; d: Uint8Array }
  | { a: string; events: StoredEvent[] };

/** The journal's name: a commit's changes, written before they are made. */
const JOURNAL = "meta/journal.json";

function eventLines(events: StoredEvent[]): Uint8Array {
  return new TextEncoder().encode(events.map((e) => JSON.stringify(e) + "\n").join(""));
}

/** Make one change (again, when replaying: every change can be made twice). */
async function applyOp(st: Storage, op: Op, replay: boolean): Promise<void> {
  if ("w" in op) await st.writeAtomic(op.w, op.d);
  else if ("x" in op) await st.delete(op.x);
  else if ("c" in op) await st.createIfAbsent(op.c, op.d);
  else if (!replay) await st.append(op.a, eventLines(op.events));
  else {
    // The log may hold some of these events, or a torn line: keep its whole lines that are
    // not among them, then add them all.
    const ids = new Set(op.events.map((e) => e.id));
    const old = new TextDecoder().decode(await st.read(op.a) ?? new Uint8Array(0));
    const lines = old.split("\n");
    lines.pop(); // the text after the last newline: empty, or a torn line
    const kept = lines.filter((line) => {
      try {
        return !ids.has((JSON.parse(line) as StoredEvent).id);
      } catch {
        return true; // a foreign line stays (the reader reports it)
      }
    });
    const head = new TextEncoder().encode(kept.map((line) => line + "\n").join(""));
    await st.writeAtomic(op.a, concat(head, eventLines(op.events)));
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

function encodeJournal(ops: Op[]): Uint8Array {
  return jsonBytes(ops.map((op) => "d" in op ? { ...op, d: toBase64(op.d) } : op));
}

function decodeJournal(bytes: Uint8Array): Op[] {
  const raw = parseJson(bytes);
  if (!Array.isArray(raw)) throw new Error("not a journal");
  return raw.map((op) => {
    if (typeof op?.w === "string" || typeof op?.c === "string") {
      return { ...op, d: fromBase64(op.d) } as Op;
    }
    if (typeof op?.x === "string") return op as Op;
    if (typeof op?.a === "string" && Array.isArray(op.events)) return op as Op;
    throw new Error("not a journal entry");
  });
}

async function readEvents(s: Store): Promise<StoredEvent[]> {
  const out: StoredEvent[] = [];
  for (const name of await s.storage.list("events")) {
    const key = `events/${name}`;
    if (!name.endsWith(".jsonl")) {
      s.corrupt(key, "not an event log");
      continue;
    }
    const bytes = await s.storage.read(key);
    if (!bytes) continue;
    let text: string;
    try {
      text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    } catch (error) {
      s.corrupt(key, error);
      continue;
    }
    const lines = text.split("\n");
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i];
      if (line === "") continue;
      try {
        const e = JSON.parse(line) as StoredEvent;
        if (typeof e.id !== "string" || typeof e.type !== "string" || typeof e.at !== "number") {
          throw new Error("not an event");
        }
        out.push(e);
      } catch (error) {
        // A torn last line of a crashed writer, or a foreign line.
        s.corrupt(`${key}:${i + 1}`, error);
      }
    }
  }
  return out.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

/** The task queue of a `file:` store: the record engines' queue over the directory. */
export class FileQueue extends RecordQueue {
  #s: Store;

  /** Open over a store; use {@linkcode openFile}. */
  constructor(store: Store) {
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
  #s: Store;
  /** Open over a store; use {@linkcode openFile}. */
  constructor(store: Store) {
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
    return r && (r.expiresAt === undefined || r.expiresAt > Date.now()) ? r : undefined;
  }
  async #read(key: string): Promise<StoredResult | undefined> {
    const bytes = await this.#s.storage.read(key);
    if (!bytes) return undefined;
    try {
      return decodeResult(parseJson(bytes));
    } catch (error) {
      if (error instanceof OmniQError) throw error;
      this.#s.corrupt(key, error);
      return undefined;
    }
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
  #s: Store;
  /** Open over a store; use {@linkcode openFile}. */
  constructor(store: Store) {
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
    for (const e of await readEvents(this.#s)) {
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

/** The `file:` engine: queue, results and events in one directory. */
export class FileBackend implements Backend {
  /** The engine's name. */
  readonly name = "file";
  /** The task queue. */
  readonly queue: FileQueue;
  /** The result store. */
  readonly results: FileResults;
  /** The event store. */
  readonly events: FileEvents;
  #store: Store;

  /**
   * Open over a storage; use {@linkcode openFile} for a directory.
   *
   * @param storage Where the files live.
   */
  constructor(storage: Storage) {
    this.#store = new Store(storage);
    this.queue = new FileQueue(this.#store);
    this.results = new FileResults(this.#store);
    this.events = new FileEvents(this.#store);
  }

  /** Close: later calls throw. */
  async close(): Promise<void> {
    if (this.#store.closed) return;
    // Wait for the step in progress.
    await this.#store.locked(() => Promise.resolve()).catch(() => {});
    this.#store.closed = true;
    await this.#store.storage.close();
  }
}

/** Options of {@linkcode openFile}. */
export interface FileOptions {
  /** Use this storage instead of the local directory (e.g. an object store). */
  storage?: Storage;
}

/**
 * The directory a `file:` target names: `file:./dir`, `file:dir`, `file:///abs/dir`, a
 * `file:` URL object, or a plain path.
 *
 * @param target The target.
 * @returns The directory path.
 */
export function filePath(target: string | URL): string {
  if (target instanceof URL) {
    if (target.protocol !== "file:") {
      throw new OmniQError(`expected a file: URL, got ${target.protocol}`);
    }
    return decodeURIComponent(target.pathname);
  }
  let rest = target;
  if (/^file:/i.test(rest)) rest = rest.slice(5);
  if (rest.startsWith("///")) return decodeURIComponent(rest.slice(2));
  if (rest.startsWith("//localhost/")) return decodeURIComponent(rest.slice(11));
  if (rest.startsWith("//")) {
    throw new OmniQError(`expected a path like ./dir or ///absolute/dir, got "//${rest.slice(2)}"`);
  }
  if (rest === "") throw new OmniQError("file: needs a directory, e.g. file:./omniq-data");
  return decodeURIComponent(rest);
}

/**
 * Open a `file:` engine on a directory (created when missing).
 *
 * @param target `file:./dir`, `file:///abs/dir`, a `file:` URL, or a path.
 * @param options Another storage to use, if any.
 * @returns The backend.
 *
 * @example
 * ```ts
 * import { openFile } from "@omniq/omniq/file";
 * const dir = await Deno.makeTempDir();
 * const backend = await openFile(`file:${dir}`);
 * console.assert(backend.name === "file");
 * await backend.close();
 * ```
 */
export async function openFile(
  target: string | URL,
  options: FileOptions = {},
): Promise<FileBackend> {
  if (options.storage) return new FileBackend(options.storage);
  const dir = filePath(target);
  await Deno.mkdir(dir, { recursive: true });
  return new FileBackend(new LocalStorage(dir));
}
