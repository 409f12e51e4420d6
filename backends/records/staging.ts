/**
 * The staging that the `file:`, `kv:` and `nats:` engines' transactions share: the records
 * a step read (each once), the records, results, schedules, sequences and events it changed,
 * kept until the engine commits them, and the marks that roll one failed step of a group
 * back alone. An engine's transaction extends {@linkcode StagedTx} with how it reads (and
 * fences) a record, a schedule and the sequences, and how it commits; the helpers below tell
 * a commit which index entries and dedupe keys a changed record moves.
 *
 * @module
 */

import type { NewEvent, StoredEvent, StoredResult, StoredSchedule } from "../../src/backend.ts";
import { pad } from "../../src/kit/encoding.ts";
import { keepsKey } from "../../src/kit/policy.ts";
import { encName, indexKeys, type RecordTx, type Row } from "./space.ts";

/** The task and event sequences of a store. */
export interface Seqs {
  /** The last FIFO sequence number given to a task. */
  task: number;
  /** The last event id given. */
  event: number;
  /** The `file:` engine's generation of its index listings (see `FileSpace.listing`). */
  gen?: string;
  /**
   * The paused queues, sorted. They live in this record because every step that claims a
   * task reads it (for its events' ids) and every engine checks it on commit, so a claim
   * decides on the pause it read, atomically, for no extra read.
   */
  paused?: string[];
  /** The group each queue's grouped claims served last (see `RecordTx.groupCursor`). */
  cursors?: Record<string, string>;
}

/** The group cursors a sequences record holds, if any. */
export function cursorsOf(seqs: { cursors?: unknown }): Record<string, string> | undefined {
  const c = seqs.cursors;
  return c !== null && typeof c === "object" && !Array.isArray(c)
    ? c as Record<string, string>
    : undefined;
}

/** The paused queues a sequences record holds (a record of an older OmniQ has none). */
export function pausedOf(seqs: { paused?: unknown }): string[] | undefined {
  const p = seqs.paused;
  return Array.isArray(p) && p.every((q) => typeof q === "string") ? p : undefined;
}

/** A step's changes, staged in memory until the engine commits them. */
export abstract class StagedTx implements RecordTx {
  /** Records read or added, as the step left them (`undefined`: read and absent). */
  protected rows: Map<string, Row | undefined> = new Map();
  /** Ids of records this transaction added. */
  protected created: Set<string> = new Set();
  /** Ids of records to delete. */
  protected removed: Set<string> = new Set();
  /** The sequences, once read. */
  protected seq?: Seqs;
  /** Whether the sequences changed. */
  protected seqDirty = false;
  /** Events to append (ids given). */
  protected events: StoredEvent[] = [];
  /** Results to store. */
  protected results: StoredResult[] = [];
  /** Task ids whose results to delete. */
  protected unresults: Set<string> = new Set();
  /** Stale index entries to delete. */
  protected dropped: Set<string> = new Set();
  /** Dependency index entries (`deps/<dep>/<id>`) to write. */
  protected dependents: Set<string> = new Set();
  /** Schedules read or changed (`undefined`: absent or deleted). */
  protected schedules: Map<string, StoredSchedule | undefined> = new Map();
  /** Schedules to store. */
  protected putSchedules: Map<string, StoredSchedule> = new Map();
  /** Ids of schedules to delete. */
  protected unschedules: Set<string> = new Set();
  readonly #eventIdWidth: number;

  /** @param eventIdWidth The digits of an event id (ids sort as text). */
  constructor(eventIdWidth: number) {
    this.#eventIdWidth = eventIdWidth;
  }

  /** Read a record from the store (called once per id and step). */
  protected abstract readRow(id: string): Row | undefined | Promise<Row | undefined>;
  /** Read a schedule from the store (called once per id and step). */
  protected abstract readSchedule(
    id: string,
  ): StoredSchedule | undefined | Promise<StoredSchedule | undefined>;
  /** Read the sequences from the store (called once per step that needs them). */
  protected abstract readSeqs(): Seqs | Promise<Seqs>;
  /** The names of the index entries under a directory, sorted; the first `limit`. */
  abstract entries(dir: string, limit?: number, after?: string): Promise<string[]>;
  /** The live task that holds a dedupe key, if any. */
  abstract liveKeyOwner(key: string): Promise<string | undefined>;

  /** The changes so far; calling the result rolls a failed step back to them. */
  mark(): () => void {
    const rows = new Map([...this.rows].map(([id, r]) => [id, r && { ...r }]));
    const seq = this.seq && { ...this.seq };
    const seqDirty = this.seqDirty;
    const events = this.events.length;
    const results = [...this.results];
    const sets = [
      this.created,
      this.removed,
      this.unresults,
      this.dropped,
      this.dependents,
      this.unschedules,
    ].map((set) => [set, new Set(set)] as const);
    const schedules = new Map(this.schedules);
    const putSchedules = new Map(this.putSchedules);
    return () => {
      this.rows = rows;
      this.seq = seq;
      this.seqDirty = seqDirty;
      this.events.length = events;
      this.results = results;
      for (const [set, copy] of sets) {
        set.clear();
        for (const v of copy) set.add(v);
      }
      this.schedules = schedules;
      this.putSchedules = putSchedules;
    };
  }

  /** A task record (read once per step; later calls give the same object). */
  async row(id: string): Promise<Row | undefined> {
    if (this.rows.has(id)) return this.rows.get(id);
    const row = await this.readRow(id);
    this.rows.set(id, row);
    return row;
  }

  /** Add a new record. */
  add(row: Row): void {
    this.rows.set(row.id, row);
    this.created.add(row.id);
  }

  /** Delete a read record on commit. */
  remove(id: string): void {
    this.removed.add(id);
  }

  /** The sequences, read once. */
  protected async seqs(): Promise<Seqs> {
    this.seq ??= await this.readSeqs();
    return this.seq;
  }

  /** The next FIFO sequence number. */
  async nextSeq(): Promise<number> {
    const seq = await this.seqs();
    this.seqDirty = true;
    return ++seq.task;
  }

  /** Give events their ids; they are appended on commit. */
  async appendEvents(events: NewEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const seq = await this.seqs();
    this.seqDirty = true;
    const out = events.map((e) => ({ ...e, id: pad(++seq.event, this.#eventIdWidth) }));
    this.events.push(...out);
    return out;
  }

  /** Store results on commit (a later put wins over an earlier delete). */
  putResults(results: StoredResult[]): void {
    for (const r of results) this.unresults.delete(r.taskId);
    this.results.push(...results);
  }

  /** Delete a result on commit (a later delete wins over an earlier put). */
  deleteResult(taskId: string): void {
    this.results = this.results.filter((r) => r.taskId !== taskId);
    this.unresults.add(taskId);
  }

  /** Delete a stale index entry on commit. */
  dropEntry(path: string): void {
    this.dropped.add(path);
  }

  /** Record that `id` waits for `dep` (a `deps/<dep>/<id>` entry). */
  addDependent(dep: string, id: string): void {
    this.dependents.add(`deps/${encName(dep)}/${encName(id)}`);
  }

  /** A schedule (read once per step). */
  async schedule(id: string): Promise<StoredSchedule | undefined> {
    if (!this.schedules.has(id)) this.schedules.set(id, await this.readSchedule(id));
    return this.schedules.get(id);
  }

  /** Store a schedule on commit. */
  putSchedule(schedule: StoredSchedule): void {
    this.schedules.set(schedule.id, schedule);
    this.putSchedules.set(schedule.id, schedule);
    this.unschedules.delete(schedule.id);
  }

  /** Delete a schedule on commit; whether it existed. */
  async deleteSchedule(id: string): Promise<boolean> {
    const existed = (await this.schedule(id)) !== undefined;
    this.schedules.set(id, undefined);
    this.putSchedules.delete(id);
    this.unschedules.add(id);
    return existed;
  }

  /** The paused queues, from the sequences record. */
  async pausedQueues(): Promise<readonly string[]> {
    return pausedOf(await this.seqs()) ?? [];
  }

  /** Store the paused queues in the sequences record, on commit. */
  async setPausedQueues(queues: readonly string[]): Promise<void> {
    const seq = await this.seqs();
    this.seq = { ...seq, paused: [...queues] };
    if (queues.length === 0) delete this.seq.paused;
    this.seqDirty = true;
  }

  /** The group a queue's last grouped claim served, from the sequences record. */
  async groupCursor(queue: string): Promise<string | undefined> {
    const cursor = cursorsOf(await this.seqs())?.[queue];
    return typeof cursor === "string" ? cursor : undefined;
  }

  /** Store a queue's group cursor in the sequences record, on commit. */
  async setGroupCursor(queue: string, group: string): Promise<void> {
    const seq = await this.seqs();
    if (cursorsOf(seq)?.[queue] === group) return;
    this.seq = { ...seq, cursors: { ...cursorsOf(seq), [queue]: group } };
    this.seqDirty = true;
  }

  /** Whether the step may read more records (unbounded unless the engine says otherwise). */
  room(): boolean {
    return true;
  }
}

/** What a step read of a record: the index entries and the dedupe key it held then. */
export interface ReadState {
  /** The index entries the record implied. */
  index: string[];
  /** Its dedupe key. */
  key?: string;
  /** Whether its key entry was kept (it was live, or had a throttle window: `keepsKey`). */
  live: boolean;
}

/** The state a commit compares a changed record with. */
export function readState(row: Row): ReadState {
  return { index: indexKeys(row), key: row.key, live: keepsKey(row) };
}

/** The index entries a commit writes and deletes for a record it changed. */
export function indexMoves(
  before: readonly string[],
  row: Row,
): { add: string[]; del: string[] } {
  const after = indexKeys(row);
  return {
    add: after.filter((k) => !before.includes(k)),
    del: before.filter((k) => !after.includes(k)),
  };
}

/** The dedupe key a changed record gives up, and the one it takes, if any. */
export function keyMoves(
  before: Pick<ReadState, "key" | "live"> | undefined,
  row: Row,
): { release?: string; take?: string } {
  const live = keepsKey(row);
  const out: { release?: string; take?: string } = {};
  if (before?.live && before.key !== undefined && (!live || row.key !== before.key)) {
    out.release = before.key;
  }
  if (live && row.key !== undefined && !(before?.live && before.key === row.key)) {
    out.take = row.key;
  }
  return out;
}

/** Whether a step left a row as it read it (the record queue only assigns top-level fields). */
export function sameRow(a: Row, b: Row): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if (
      (a as unknown as Record<string, unknown>)[k] !== (b as unknown as Record<string, unknown>)[k]
    ) return false;
  }
  return true;
}
