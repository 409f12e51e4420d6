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
 * across processes. All access goes through the {@linkcode Storage} interface of
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
  type Attachment,
  type Backend,
  type ClaimedTask,
  type ClaimRequest,
  type Effects,
  endResult,
  type EnqueueOutcome,
  type EventQuery,
  type EventStore,
  type Failure,
  isFinal,
  matchesEvent,
  matchesList,
  type NewEvent,
  type NewTask,
  noEffects,
  RECORD_VERSION,
  type ResultStore,
  type StoredEvent,
  type StoredResult,
  type StoredSchedule,
  type StoredTask,
  type SweepOptions,
  taskEvent,
  type TaskQueue,
  type TickClaim,
} from "../src/backend.ts";
import { DuplicateTaskError, OmniQError } from "../src/errors.ts";
import type { FinalState, ListOptions, QueueStats, StateCounts } from "../src/types.ts";
import { TASK_STATES } from "../src/types.ts";
import { decName, encName, fromBase64, jsonBytes, pad, parseJson, toBase64 } from "./file/codec.ts";
import { LocalStorage, type Storage } from "./file/storage.ts";

export { LocalStorage, type Storage } from "./file/storage.ts";

/** A lock older than this (ms) is taken to be a crashed holder's and broken. */
export const LOCK_STALE_MS = 10_000;

/** How often (ms) the lock's holder marks it as alive during a long step. */
const LOCK_HEARTBEAT_MS = 2_000;

/** A temporary file older than this (ms) is a crashed writer's, deleted by the sweep. */
const TMP_STALE_MS = 3_600_000;

interface Row extends StoredTask {
  seq: number;
  token?: string;
  leaseUntil?: number;
}

const EXPIRED = { name: "TaskExpiredError", message: "expired before it started" };
const LIVE_WAIT = new Set(["waiting", "scheduled", "queued"]);

function closedError(): OmniQError {
  return new OmniQError("the file backend is closed");
}

/** The shared machinery of one open directory: storage, lock, sequences, corrupt reports. */
class Store {
  readonly storage: Storage;
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
    console.warn(
      `omniq file: skipping unreadable file ${this.storage.location}/${key}: ${
        (why as Error)?.message ?? why
      }`,
    );
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

/** The index entries a task record implies. */
function indexKeys(row: Row): string[] {
  const id = encName(row.id);
  const q = encName(row.queue);
  const out: string[] = [];
  switch (row.state) {
    case "queued":
      out.push(`ready/${q}/${9 - row.priority}${pad(row.seq)}-${id}`);
      break;
    case "scheduled":
      out.push(`sched/${q}/${pad(row.runAt)}-${id}`);
      break;
    case "running":
      out.push(`running/${id}`);
      break;
  }
  if (LIVE_WAIT.has(row.state) && row.expiresAt !== undefined) {
    out.push(`expires/${pad(row.expiresAt)}-${id}`);
  }
  if (isFinal(row.state)) out.push(`final/${pad(row.completedAt ?? 0)}-${id}`);
  return out;
}

/** The id at the end of an index entry name (`…-<id>`). */
function entryId(name: string): string | undefined {
  const dash = name.indexOf("-");
  if (dash === -1) return undefined;
  try {
    return decName(name.slice(dash + 1));
  } catch {
    return undefined;
  }
}

function entryTime(name: string): number {
  const dash = name.indexOf("-");
  return dash === -1 ? NaN : Number(name.slice(0, dash));
}

const EMPTY = new Uint8Array(0);

/** One locked step: rows loaded and changed, written on commit with their indexes. */
class Tx {
  #s: Store;
  #rows = new Map<string, Row | undefined>();
  #before = new Map<string, { index: string[]; key?: string; live: boolean }>();
  #seq?: { task: number; event: number };
  #seqDirty = false;
  #events: StoredEvent[] = [];
  #results: StoredResult[] = [];
  #removed = new Set<string>();

  constructor(store: Store) {
    this.#s = store;
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

  /** Add a new row (the caller has checked the id is free). */
  add(row: Row): void {
    this.#rows.set(row.id, row);
  }

  /** Drop a row and its record. */
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

  async commit(): Promise<void> {
    const st = this.#s.storage;
    // Records first, then the indexes they imply: a reader re-checks the record, so an
    // index entry is only ever a hint.
    for (const r of this.#results) {
      await st.writeAtomic(`results/${encName(r.taskId)}.json`, encodeResult(r));
    }
    for (const [id, row] of this.#rows) {
      const before = this.#before.get(id);
      if (this.#removed.has(id)) {
        await st.delete(`tasks/${encName(id)}.json`);
        for (const k of before?.index ?? []) await st.delete(k);
        continue;
      }
      if (!row) continue;
      const after = indexKeys(row);
      const live = !isFinal(row.state);
      await st.writeAtomic(`tasks/${encName(id)}.json`, encodeRow(row));
      for (const k of after) {
        if (!before?.index.includes(k)) await st.writeAtomic(k, EMPTY);
      }
      for (const k of before?.index ?? []) if (!after.includes(k)) await st.delete(k);
      // Live keys: the key file names the live task that owns it.
      if (before?.live && before.key !== undefined && (!live || row.key !== before.key)) {
        const keyFile = `keys/${encName(before.key)}`;
        const owner = await st.read(keyFile);
        if (owner && new TextDecoder().decode(owner) === id) await st.delete(keyFile);
      }
      if (live && row.key !== undefined && !(before?.live && before.key === row.key)) {
        await st.createIfAbsent(`keys/${encName(row.key)}`, new TextEncoder().encode(id));
      }
    }
    if (this.#seqDirty && this.#seq) await st.writeAtomic("meta/seq.json", jsonBytes(this.#seq));
    if (this.#events.length > 0) {
      const lines = this.#events.map((e) => JSON.stringify(e) + "\n").join("");
      await st.append(`events/${this.#s.writer}.jsonl`, new TextEncoder().encode(lines));
    }
  }
}

async function liveKeyOwner(tx: Tx, s: Store, key: string): Promise<string | undefined> {
  const bytes = await s.storage.read(`keys/${encName(key)}`);
  if (!bytes) return undefined;
  const id = new TextDecoder().decode(bytes);
  const row = await tx.row(id);
  if (!row || isFinal(row.state) || row.key !== key) {
    await s.storage.delete(`keys/${encName(key)}`);
    return undefined;
  }
  return id;
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

/** The task queue of a `file:` store. */
export class FileQueue implements TaskQueue {
  #s: Store;
  #attached: Attachment = { results: true, events: true };

  /** Open over a store; use {@linkcode openFile}. */
  constructor(store: Store) {
    this.#s = store;
  }

  /** Say which companion stores live in this engine. */
  attach(attachment: Attachment): void {
    this.#attached = { ...attachment };
  }

  async #effects(tx: Tx, events: NewEvent[], results: StoredResult[]): Promise<Effects> {
    const out = noEffects();
    if (this.#attached.results) tx.putResults(results);
    else out.results = results;
    out.events = this.#attached.events ? await tx.appendEvents(events) : events;
    return out;
  }

  #schedule(row: Row, now: number): void {
    row.state = row.runAt > now ? "scheduled" : "queued";
  }

  #leave(row: Row): void {
    delete row.token;
    delete row.leaseUntil;
  }

  async #end(
    tx: Tx,
    row: Row,
    state: Exclude<FinalState, "completed">,
    now: number,
    error: { name: string; message: string },
    events: NewEvent[],
    results: StoredResult[],
    data?: Record<string, unknown>,
  ): Promise<void> {
    this.#leave(row);
    row.state = state;
    row.completedAt = now;
    row.error = error;
    results.push(endResult(row, state, error, now));
    events.push(taskEvent(state === "failed" ? "failed" : state, row, now, data));
    await this.#cascade(tx, row, now, events, results);
  }

  async #cascade(
    tx: Tx,
    row: Row,
    now: number,
    events: NewEvent[],
    results: StoredResult[],
  ): Promise<void> {
    const names = await this.#s.storage.list(`deps/${encName(row.id)}`);
    for (const name of names) {
      let depId: string;
      try {
        depId = decName(name);
      } catch {
        continue;
      }
      const dependent = await tx.row(depId);
      if (!dependent || dependent.state !== "waiting") continue;
      if (row.state !== "completed" && dependent.onDependencyFailure === "cancel") {
        const reason = `dependency ${row.id} ${row.state}`;
        await this.#end(
          tx,
          dependent,
          "cancelled",
          now,
          { name: "TaskCancelledError", message: reason },
          events,
          results,
          { reason, dependency: row.id },
        );
      } else if (await this.#depsDone(tx, dependent)) {
        this.#schedule(dependent, now);
        events.push(
          taskEvent(stateOf(dependent) === "scheduled" ? "scheduled" : "enqueued", dependent, now, {
            state: dependent.state,
            released: true,
          }),
        );
      }
    }
  }

  async #depsDone(tx: Tx, row: Row): Promise<boolean> {
    for (const d of row.dependsOn) {
      const dep = await tx.row(d);
      if (!dep) continue;
      const ok = row.onDependencyFailure === "run" ? isFinal(dep.state) : dep.state === "completed";
      if (!ok) return false;
    }
    return true;
  }

  /** Store tasks, all or none. */
  enqueue(tasks: NewTask[]): Promise<EnqueueOutcome> {
    return this.#s.locked(async (tx) => {
      const now = Date.now();
      const batchIds = new Set<string>();
      for (const t of tasks) {
        for (const d of t.dependsOn) {
          if (!batchIds.has(d) && !(await tx.row(d))) {
            throw new OmniQError(`dependsOn: no task with id "${d}"`);
          }
        }
        const keyed = t.key !== undefined && (await liveKeyOwner(tx, this.#s, t.key)) !== undefined;
        if (!keyed && (batchIds.has(t.id) || (await tx.row(t.id)))) {
          throw new DuplicateTaskError(`id: a task with id "${t.id}" exists`);
        }
        batchIds.add(t.id);
      }
      const ids: string[] = [];
      const created: boolean[] = [];
      const events: NewEvent[] = [];
      const results: StoredResult[] = [];
      const standIn = new Map<string, string>();
      const batchKeys = new Map<string, string>();
      for (const t of tasks) {
        const live = t.key === undefined
          ? undefined
          : batchKeys.get(t.key) ?? await liveKeyOwner(tx, this.#s, t.key);
        if (live !== undefined) {
          ids.push(live);
          created.push(false);
          standIn.set(t.id, live);
          continue;
        }
        const row = await this.#insert(
          tx,
          standIn.size === 0 ? t : withStandIns(t, standIn),
          now,
          events,
          results,
        );
        if (t.key !== undefined && !isFinal(row.state)) batchKeys.set(t.key, t.id);
        ids.push(t.id);
        created.push(true);
      }
      return { ids, created, effects: await this.#effects(tx, events, results) };
    });
  }

  async #insert(
    tx: Tx,
    t: NewTask,
    now: number,
    events: NewEvent[],
    results: StoredResult[],
  ): Promise<Row> {
    const row: Row = { ...t, state: "queued", attempts: 0, seq: await tx.nextSeq() };
    tx.add(row);
    let failedDep: Row | undefined;
    for (const d of row.dependsOn) {
      const dep = await tx.row(d);
      if (dep && isFinal(dep.state) && dep.state !== "completed") {
        failedDep = dep;
        break;
      }
    }
    if (failedDep && row.onDependencyFailure === "cancel") {
      const reason = `dependency ${failedDep.id} ${failedDep.state}`;
      await this.#end(
        tx,
        row,
        "cancelled",
        now,
        { name: "TaskCancelledError", message: reason },
        events,
        results,
        {
          reason,
          dependency: failedDep.id,
        },
      );
      return row;
    }
    for (const d of row.dependsOn) {
      await this.#s.storage.writeAtomic(`deps/${encName(d)}/${encName(row.id)}`, EMPTY);
    }
    if (!(await this.#depsDone(tx, row))) {
      row.state = "waiting";
      events.push(taskEvent("enqueued", row, now, { state: "waiting" }));
      return row;
    }
    this.#schedule(row, now);
    events.push(
      row.state === "scheduled"
        ? taskEvent("scheduled", row, now, { runAt: row.runAt })
        : taskEvent("enqueued", row, now, { state: "queued" }),
    );
    return row;
  }

  /** Store a schedule (an upsert). */
  async putSchedule(schedule: StoredSchedule): Promise<void> {
    await this.#s.locked(async () => {
      await this.#s.storage.writeAtomic(
        `schedules/${encName(schedule.id)}.json`,
        encodeSchedule(schedule),
      );
    });
  }

  /** One schedule. */
  getSchedule(id: string): Promise<StoredSchedule | undefined> {
    this.#s.check();
    return this.#s.readSchedule(`schedules/${encName(id)}.json`);
  }

  /** Every schedule, by id. */
  listSchedules(): Promise<StoredSchedule[]> {
    this.#s.check();
    return this.#s.allSchedules();
  }

  /** Pause or resume a schedule. */
  setSchedulePaused(id: string, paused: boolean, nextRunAt?: number): Promise<Effects | undefined> {
    return this.#s.locked(async (tx) => {
      const key = `schedules/${encName(id)}.json`;
      const s = await this.#s.readSchedule(key);
      if (!s || s.paused === paused) return undefined;
      s.paused = paused;
      if (!paused) {
        if (nextRunAt === undefined) delete s.nextRunAt;
        else s.nextRunAt = nextRunAt;
      }
      await this.#s.storage.writeAtomic(key, encodeSchedule(s));
      const event: NewEvent = {
        type: paused ? "schedule_paused" : "schedule_resumed",
        at: Date.now(),
        data: { scheduleId: id },
      };
      return await this.#effects(tx, [event], []);
    });
  }

  /** Delete a schedule. */
  deleteSchedule(id: string): Promise<boolean> {
    return this.#s.locked(() => this.#s.storage.delete(`schedules/${encName(id)}.json`));
  }

  /** Unpaused schedules due by `now`, earliest first. */
  async dueSchedules(now: number, limit: number): Promise<StoredSchedule[]> {
    this.#s.check();
    return (await this.#s.allSchedules())
      .filter((s) => !s.paused && s.nextRunAt !== undefined && s.nextRunAt <= now)
      .sort((a, b) => a.nextRunAt! - b.nextRunAt!)
      .slice(0, limit);
  }

  /** The earliest next tick of an unpaused schedule. */
  async nextScheduleAt(): Promise<number | undefined> {
    this.#s.check();
    let next: number | undefined;
    for (const s of await this.#s.allSchedules()) {
      if (s.paused || s.nextRunAt === undefined) continue;
      if (next === undefined || s.nextRunAt < next) next = s.nextRunAt;
    }
    return next;
  }

  /** Fire a tick: a compare-and-set of the schedule's next tick (under the lock), and its task. */
  fireTick(claim: TickClaim): Promise<Effects | undefined> {
    return this.#s.locked(async (tx) => {
      const key = `schedules/${encName(claim.scheduleId)}.json`;
      const s = await this.#s.readSchedule(key);
      if (!s || s.paused || s.nextRunAt !== claim.tick) return undefined;
      if (claim.next === undefined) delete s.nextRunAt;
      else s.nextRunAt = claim.next;
      s.lastRunAt = claim.tick;
      await this.#s.storage.writeAtomic(key, encodeSchedule(s));
      const events: NewEvent[] = [];
      const results: StoredResult[] = [];
      const task = claim.task;
      if (task && !(await tx.row(task.id))) {
        const now = Date.now();
        await this.#insert(tx, task, now, events, results);
        events.push({
          type: "schedule_fired",
          taskId: task.id,
          queue: task.queue,
          at: now,
          data: { scheduleId: s.id, tick: claim.tick },
        });
      }
      return await this.#effects(tx, events, results);
    });
  }

  /** One task, or `undefined`. */
  async get(id: string): Promise<StoredTask | undefined> {
    this.#s.check();
    const row = await this.#s.readRow(id);
    return row ? view(row) : undefined;
  }

  /** Tasks matching a filter, oldest first. */
  async list(filter: ListOptions): Promise<StoredTask[]> {
    this.#s.check();
    const out: StoredTask[] = [];
    let skip = filter.offset ?? 0;
    const limit = filter.limit ?? 100;
    for (const row of await this.#s.allRows()) {
      if (out.length >= limit) break;
      if (!matchesList(row, filter)) continue;
      if (skip > 0) {
        skip--;
        continue;
      }
      out.push(view(row));
    }
    return out;
  }

  /** Counts per queue and state. */
  async stats(): Promise<QueueStats> {
    this.#s.check();
    const total = zeroCounts();
    const queues: Record<string, StateCounts> = {};
    for (const row of await this.#s.allRows()) {
      total[row.state]++;
      (queues[row.queue] ??= zeroCounts())[row.state]++;
    }
    return { total, queues };
  }

  async #promote(tx: Tx, queue: string, now: number): Promise<Row[]> {
    const promoted: Row[] = [];
    const names = (await this.#s.storage.list(`sched/${encName(queue)}`)).sort();
    for (const name of names) {
      const at = entryTime(name);
      if (Number.isNaN(at)) continue;
      if (at > now) break;
      const id = entryId(name);
      if (id === undefined) {
        this.#s.corrupt(`sched/${encName(queue)}/${name}`, "not an index entry");
        continue;
      }
      const row = await tx.row(id);
      if (row && row.state === "scheduled" && row.runAt <= now) {
        row.state = "queued";
        promoted.push(row);
      } else if (!row || row.state !== "scheduled") {
        await this.#s.storage.delete(`sched/${encName(queue)}/${name}`);
      }
    }
    return promoted;
  }

  /** Claim due tasks: queue order, then priority, then FIFO. */
  claim(request: ClaimRequest): Promise<{ tasks: ClaimedTask[]; effects: Effects }> {
    return this.#s.locked(async (tx) => {
      const now = Date.now();
      const claimed: ClaimedTask[] = [];
      const events: NewEvent[] = [];
      const results: StoredResult[] = [];
      for (const queue of request.queues) {
        const promoted = await this.#promote(tx, queue, now);
        const dir = `ready/${encName(queue)}`;
        // Promoted rows are not in the ready index yet: merge them in by their ready name.
        const names = new Set(await this.#s.storage.list(dir));
        for (const row of promoted) {
          names.add(`${9 - row.priority}${pad(row.seq)}-${encName(row.id)}`);
        }
        for (const name of [...names].sort()) {
          if (claimed.length >= request.limit) break;
          const id = entryId(name);
          if (id === undefined) {
            this.#s.corrupt(`${dir}/${name}`, "not an index entry");
            continue;
          }
          const row = await tx.row(id);
          if (!row || row.state !== "queued" || row.queue !== queue) {
            if (!row || row.state !== "queued") await this.#s.storage.delete(`${dir}/${name}`);
            continue;
          }
          if (row.expiresAt !== undefined && row.expiresAt <= now) {
            await this.#end(tx, row, "expired", now, EXPIRED, events, results);
            continue;
          }
          row.state = "running";
          row.attempts++;
          row.token = crypto.randomUUID();
          row.leaseUntil = now + request.lease;
          row.startedAt = now;
          claimed.push({ ...view(row), token: row.token, leaseUntil: row.leaseUntil });
          events.push(taskEvent("started", row, now));
        }
        if (claimed.length >= request.limit) break;
      }
      return { tasks: claimed, effects: await this.#effects(tx, events, results) };
    });
  }

  async #held(tx: Tx, id: string, token: string): Promise<Row | undefined> {
    const row = await tx.row(id);
    return row && row.state === "running" && row.token === token ? row : undefined;
  }

  /** Extend a lease. */
  renew(id: string, token: string, lease: number): Promise<boolean> {
    return this.#s.locked(async (tx) => {
      const row = await this.#held(tx, id, token);
      if (row) row.leaseUntil = Date.now() + lease;
      return row !== undefined;
    });
  }

  /** Record progress. */
  progress(id: string, token: string, value: number): Promise<Effects | undefined> {
    return this.#s.locked(async (tx) => {
      const row = await this.#held(tx, id, token);
      if (!row) return undefined;
      row.progress = value;
      return await this.#effects(
        tx,
        [taskEvent("progress", row, Date.now(), { progress: value })],
        [],
      );
    });
  }

  /** Complete an attempt. */
  complete(id: string, token: string, result: StoredResult): Promise<Effects | undefined> {
    return this.#s.locked(async (tx) => {
      const row = await this.#held(tx, id, token);
      if (!row) return undefined;
      const now = Date.now();
      this.#leave(row);
      row.state = "completed";
      row.completedAt = result.completedAt;
      if (this.#attached.results) tx.putResults([result]);
      const events: NewEvent[] = [taskEvent("completed", row, now)];
      const results: StoredResult[] = [];
      await this.#cascade(tx, row, now, events, results);
      return await this.#effects(tx, events, results);
    });
  }

  /** Fail an attempt: retry later or fail for good. */
  fail(id: string, token: string, failure: Failure): Promise<Effects | undefined> {
    return this.#s.locked(async (tx) => {
      const row = await this.#held(tx, id, token);
      if (!row) return undefined;
      const now = Date.now();
      const error = { name: failure.error.name, message: failure.error.message };
      if (failure.retryAt !== undefined) {
        this.#leave(row);
        row.error = failure.error;
        row.runAt = failure.retryAt;
        this.#schedule(row, now);
        return await this.#effects(tx, [
          taskEvent("retrying", row, now, { error, retryAt: failure.retryAt }),
        ], []);
      }
      this.#leave(row);
      row.state = "failed";
      row.completedAt = now;
      row.error = failure.error;
      if (this.#attached.results && failure.result) tx.putResults([failure.result]);
      const events: NewEvent[] = [taskEvent("failed", row, now, { error })];
      const results: StoredResult[] = [];
      await this.#cascade(tx, row, now, events, results);
      return await this.#effects(tx, events, results);
    });
  }

  /** Cancel a task that is not final. */
  cancel(id: string, reason: string): Promise<Effects | undefined> {
    return this.#s.locked(async (tx) => {
      const row = await tx.row(id);
      if (!row || isFinal(row.state)) return undefined;
      const events: NewEvent[] = [];
      const results: StoredResult[] = [];
      await this.#end(
        tx,
        row,
        "cancelled",
        Date.now(),
        {
          name: "TaskCancelledError",
          message: reason,
        },
        events,
        results,
        { reason },
      );
      return await this.#effects(tx, events, results);
    });
  }

  /** Queue a failed, cancelled or expired task again. */
  retry(id: string): Promise<Effects | undefined> {
    return this.#s.locked(async (tx) => {
      const row = await tx.row(id);
      if (!row || !isFinal(row.state) || row.state === "completed") return undefined;
      const now = Date.now();
      row.attempts = 0;
      delete row.error;
      delete row.completedAt;
      delete row.startedAt;
      delete row.progress;
      delete row.expiresAt;
      row.runAt = now;
      if (this.#attached.results) await this.#s.storage.delete(`results/${encName(id)}.json`);
      this.#schedule(row, now);
      return await this.#effects(tx, [
        taskEvent("enqueued", row, now, { state: "queued", retry: true }),
      ], []);
    });
  }

  /** Recover stalled tasks, expire old ones, purge final records. */
  sweep(options: SweepOptions): Promise<Effects> {
    return this.#s.locked(async (tx) => {
      const { now } = options;
      const st = this.#s.storage;
      const events: NewEvent[] = [];
      const results: StoredResult[] = [];
      for (const name of await st.list("running")) {
        let id: string;
        try {
          id = decName(name);
        } catch {
          continue;
        }
        const row = await tx.row(id);
        if (!row || row.state !== "running") {
          await st.delete(`running/${name}`);
          continue;
        }
        if (row.leaseUntil === undefined || row.leaseUntil >= now) continue;
        events.push(taskEvent("stalled", row, now, { attempt: row.attempts }));
        if (row.attempts < row.maxAttempts) {
          this.#leave(row);
          row.runAt = now;
          this.#schedule(row, now);
        } else {
          const message = `the worker's lease expired on attempt ${row.attempts}`;
          await this.#end(
            tx,
            row,
            "failed",
            now,
            { name: "StalledError", message },
            events,
            results,
            {
              error: { name: "StalledError", message },
            },
          );
        }
      }
      for (const name of (await st.list("expires")).sort()) {
        if (Number.isNaN(entryTime(name))) continue;
        if (entryTime(name) > now) break;
        const id = entryId(name);
        const row = id === undefined ? undefined : await tx.row(id);
        if (!row || !LIVE_WAIT.has(row.state) || row.expiresAt === undefined) {
          await st.delete(`expires/${name}`);
          continue;
        }
        if (row.expiresAt <= now) {
          await this.#end(tx, row, "expired", now, EXPIRED, events, results);
        }
      }
      if (options.purgeBefore !== undefined) {
        for (const name of (await st.list("final")).sort()) {
          if (Number.isNaN(entryTime(name))) continue;
          if (entryTime(name) >= options.purgeBefore) break;
          const id = entryId(name);
          const row = id === undefined ? undefined : await tx.row(id);
          if (!row || !isFinal(row.state)) {
            await st.delete(`final/${name}`);
            continue;
          }
          if (row.completedAt! < options.purgeBefore) {
            tx.remove(id!);
            for (const dep of await st.list(`deps/${encName(id!)}`)) {
              await st.delete(`deps/${encName(id!)}/${dep}`);
            }
          }
        }
      }
      // Temporary files of writers that crashed between write and rename.
      for (const name of await st.list("tmp")) {
        const at = await st.modified(`tmp/${name}`);
        if (at !== undefined && now - at > TMP_STALE_MS) await st.delete(`tmp/${name}`);
      }
      return await this.#effects(tx, events, results);
    });
  }

  /** The earliest due time of a scheduled task in these queues. */
  async nextDue(queues: string[]): Promise<number | undefined> {
    this.#s.check();
    let next: number | undefined;
    for (const queue of queues) {
      for (const name of (await this.#s.storage.list(`sched/${encName(queue)}`)).sort()) {
        const id = entryId(name);
        const row = id === undefined ? undefined : await this.#s.readRow(id);
        if (
          row && row.state === "scheduled" && pad(row.runAt) === name.slice(0, name.indexOf("-"))
        ) {
          if (next === undefined || row.runAt < next) next = row.runAt;
          break;
        }
      }
    }
    return next;
  }

  /** Close the queue. */
  close(): Promise<void> {
    this.#s.closed = true;
    return Promise.resolve();
  }
}

function view(row: Row): StoredTask {
  const { seq: _seq, token: _token, leaseUntil: _lease, ...task } = row;
  return { ...task, dependsOn: [...task.dependsOn] };
}

function zeroCounts(): StateCounts {
  return Object.fromEntries(TASK_STATES.map((s) => [s, 0])) as StateCounts;
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

/** A task whose dependencies on deduplicated tasks of its batch point at the live ones. */
function withStandIns(t: NewTask, standIn: Map<string, string>): NewTask {
  const to = (id: string) => standIn.get(id) ?? id;
  const out: NewTask = { ...t, dependsOn: [...new Set(t.dependsOn.map(to))] };
  if (t.links) {
    out.links = {};
    if (t.links.pipe !== undefined) out.links.pipe = to(t.links.pipe);
    if (t.links.names) {
      out.links.names = Object.fromEntries(
        Object.entries(t.links.names).map(([id, name]) => [to(id), name]),
      );
    }
  }
  return out;
}

/** A row's state, read afresh (TypeScript narrows `row.state` across calls that change it). */
function stateOf(row: Row): Row["state"] {
  return row.state;
}
