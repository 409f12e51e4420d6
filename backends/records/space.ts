/**
 * What a record engine supplies to the shared record queue: the task record ({@linkcode Row}),
 * one step's view of the records ({@linkcode RecordTx}) and the engine's records
 * ({@linkcode RecordSpace}), and the names of the index entries derived from a record.
 *
 * Index entries are paths (`ready/<queue>/<9-priority><seq>-<id>`, `sched/<queue>/<runAt>-<id>`,
 * `running/<id>`, `expires/<time>-<id>`, `aging/<time>-<id>`, `final/<time>-<id>`,
 * `deps/<dep>/<id>`; a task with a lane (a group or a rate limit: `laneOf`) is queued in
 * `gready/<queue>/<lane>.<9-priority><seq>-<id>` instead of `ready/…`, a grouped one while
 * running is also in `grun/<group>/<id>`, and a rate-limited one that started is in
 * `rstart/<bucket>/<startedAt>-<id>`), with each
 * name segment made safe by `encName`. They are hints: a step re-reads the record an entry
 * names, and drops an entry that no longer matches it.
 *
 * @module
 */

import type { StoredSchedule, StoredTask } from "../../src/backend.ts";
import type { NewEvent, StoredEvent, StoredResult } from "../../src/backend.ts";
import { decName, encName as encodeName, pad } from "../../src/kit/encoding.ts";
import { AGED_PRIORITY, isFinal, laneOf, UNSTARTED_STATES } from "../../src/kit/policy.ts";

/** Characters `encName` keeps as they are: a name made only of them is its own safe form. */
const PLAIN_NAME = /^[A-Za-z0-9_~!'()-]*$/;

/**
 * `encName` with a fast path for the common plain ids and queue names (UUIDs, words): every
 * step builds index names, so the memory engine's claims would otherwise spend a tenth of
 * their time encoding names that need none.
 */
export function encName(s: string): string {
  return PLAIN_NAME.test(s) ? s : encodeName(s);
}

/**
 * A group's name in index entries: `encName` with `-` escaped too, so a `gready/` entry is
 * `<group>.<rest>` with neither `.` nor `-` in the group part, and one group's entries are
 * contiguous: every entry of the groups after group `g` sorts after `<g>/`.
 */
export function groupName(group: string): string {
  return encName(group).replace(/-/g, "%2D");
}

/** A task record: the stored task, its FIFO sequence and its claim. */
export interface Row extends StoredTask {
  /** Its place in FIFO order among tasks of equal priority. */
  seq: number;
  /** The fencing token of the current claim. */
  token?: string;
  /** When the current claim's lease ends. */
  leaseUntil?: number;
}

/** One step's view of the records: reads, then changes applied together on commit. */
export interface RecordTx {
  /** A task record (read once per step; later calls give the same object). */
  row(id: string): Promise<Row | undefined>;
  /** Add a new record (the caller has checked that the id is free). */
  add(row: Row): void;
  /** Delete a read record, its index entries and its dependents' entries. */
  remove(id: string): void;
  /** The next FIFO sequence number. */
  nextSeq(): Promise<number>;
  /** Append the step's own events (they are given ids now, stored on commit; an engine may keep these very objects). */
  appendEvents(events: NewEvent[]): Promise<StoredEvent[]>;
  /** Store results on commit. */
  putResults(results: StoredResult[]): void;
  /** Delete a result on commit. */
  deleteResult(taskId: string): void;
  /**
   * The names of the index entries under a directory (`ready/<queue>` …), sorted; the first
   * `limit`; with `after`, of those that sort after it (a seek, not a scan).
   */
  entries(dir: string, limit?: number, after?: string): Promise<string[]>;
  /** Delete a stale index entry (a path `dir/name`). */
  dropEntry(path: string): void;
  /** Record that `id` waits for `dep`. */
  addDependent(dep: string, id: string): void;
  /** The live task that holds a dedupe key, if any. */
  liveKeyOwner(key: string): Promise<string | undefined>;
  /** A schedule (read once per step). */
  schedule(id: string): Promise<StoredSchedule | undefined>;
  /** Store a schedule on commit. */
  putSchedule(schedule: StoredSchedule): void;
  /** Delete a schedule on commit; whether it existed. */
  deleteSchedule(id: string): Promise<boolean>;
  /** The paused queues, sorted (read once per step). */
  pausedQueues(): Promise<readonly string[]>;
  /** Store the paused queues (sorted, no repeats) on commit. */
  setPausedQueues(queues: readonly string[]): Promise<void>;
  /** The group (its `groupName`) a queue's last grouped claim served (read once per step). */
  groupCursor(queue: string): Promise<string | undefined>;
  /** Store the group a queue's grouped claim served last, on commit. */
  setGroupCursor(queue: string, group: string): Promise<void>;
  /** Whether the step may read more records (an engine may bound one step's size). */
  room(): boolean;
  /** Read these task records ahead, together, where the engine can (a hint). */
  prefetch?(ids: string[]): Promise<void>;
}

/** An engine's records: steps, plus reads outside a step for queries. */
export interface RecordSpace {
  /** Run `fn` as one step: its changes commit together, or not at all. */
  step<T>(fn: (tx: RecordTx) => Promise<T>): Promise<T>;
  /** Throw when the engine is closed. */
  check(): void;
  /** Report an unreadable record or entry (once per process). */
  corrupt(path: string, why: unknown): void;
  /** A task record, outside a step. */
  readRow(id: string): Promise<Row | undefined>;
  /** Every task record, in FIFO order. */
  allRows(): Promise<Row[]>;
  /** Every schedule, by id. */
  allSchedules(): Promise<StoredSchedule[]>;
  /** Index entry names under a directory, sorted, outside a step; the first `limit`. */
  entries(dir: string, limit?: number): Promise<string[]>;
  /**
   * The largest result value the engine stores, and its name for the error; a completion
   * with a larger one fails its task instead (see `oversizedResult`). Absent: no limit.
   */
  readonly resultLimit?: { readonly bytes: number; readonly engine: string };
}

/** The states a task's `ttl` can expire it in (the ones with an `expires/` entry). */
export const LIVE_WAIT: ReadonlySet<string> = new Set(UNSTARTED_STATES);

/** The index entries a task record implies. */
export function indexKeys(row: Row): string[] {
  const id = encName(row.id);
  const q = encName(row.queue);
  const out: string[] = [];
  switch (row.state) {
    case "queued": {
      const lane = laneOf(row);
      if (lane === undefined) out.push(`ready/${q}/${9 - row.priority}${pad(row.seq)}-${id}`);
      else out.push(`gready/${q}/${groupName(lane)}.${9 - row.priority}${pad(row.seq)}-${id}`);
      if (row.ageAfter !== undefined && row.priority < AGED_PRIORITY) {
        out.push(`aging/${pad(row.runAt + row.ageAfter)}-${id}`);
      }
      break;
    }
    case "scheduled":
      out.push(`sched/${q}/${pad(row.runAt)}-${id}`);
      break;
    case "running":
      out.push(`running/${id}`);
      if (row.group !== undefined) out.push(`grun/${groupName(row.group)}/${id}`);
      break;
  }
  if (LIVE_WAIT.has(row.state) && row.expiresAt !== undefined) {
    out.push(`expires/${pad(row.expiresAt)}-${id}`);
  }
  if (isFinal(row.state)) out.push(`final/${pad(row.completedAt ?? 0)}-${id}`);
  // A rate bucket's starts: each task once, at its latest start, until it is purged.
  if (row.rate !== undefined && row.startedAt !== undefined) {
    out.push(`rstart/${groupName(row.rate.key)}/${pad(row.startedAt)}-${id}`);
  }
  return out;
}

/** The id at the end of an index entry name (`…-<id>`). */
export function entryId(name: string): string | undefined {
  const dash = name.indexOf("-");
  return dash === -1 ? undefined : nameId(name.slice(dash + 1));
}

/**
 * The id an entry named by the id alone stands for (`running/<id>`, `deps/<dep>/<id>`);
 * `undefined` for a name `encName` did not make (a stray file, say), which readers skip.
 */
export function nameId(name: string): string | undefined {
  try {
    return decName(name);
  } catch {
    return undefined;
  }
}

/** The time at the start of an index entry name (`<time>-…`); `NaN` when there is none. */
export function entryTime(name: string): number {
  const dash = name.indexOf("-");
  return dash === -1 ? NaN : Number(name.slice(0, dash));
}

/** A stored task as the public contract gives it (no sequence or claim). */
export function view(row: Row): StoredTask {
  const { seq: _seq, token: _token, leaseUntil: _lease, worker, ...task } = row as Row;
  if (worker !== undefined) (task as StoredTask).worker = worker;
  task.dependsOn = [...task.dependsOn];
  return task;
}
