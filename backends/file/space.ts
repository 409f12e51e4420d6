/**
 * The records of a `file:` store: the {@linkcode RecordSpace} the shared record queue runs
 * on. It owns the directory's lock (a file created only when absent, broken when older than
 * `LOCK_STALE_MS`, kept fresh by a heartbeat during a long step), the replay of a journal a
 * crashed holder left, the steps (those asked for while a turn waits for the lock share it),
 * the reads of records, schedules and event logs, and the once-per-process reports of
 * unreadable files.
 *
 * @module
 */

import { runtime } from "../../src/runtime/mod.ts";
import type { StoredEvent, StoredSchedule } from "../../src/backend.ts";
import { decName, encName } from "../../src/kit/encoding.ts";
import { delay } from "../../src/kit/async.ts";
import { closedError } from "../../src/kit/policy.ts";
import { decodeRow, decodeSchedule, readable } from "../records/json.ts";
import type { RecordSpace, RecordTx, Row } from "../records/space.ts";
import { SortedNames } from "../records/sorted.ts";
import type { Seqs } from "../records/staging.ts";
import { type PendingStep, runSteps, StepQueue } from "../records/steps.ts";
import { applyOp, decodeJournal, encodeJournal, JOURNAL, type Op } from "./journal.ts";
import { GROUP_MAX, LOCK_HEARTBEAT_MS, LOCK_STALE_MS } from "./options.ts";
import { isConditional, type Storage } from "./storage.ts";
import { type FencedHold, FencedLock, LockLostError } from "./fence.ts";
import { FileTx } from "./tx.ts";

/** Events per segment of a writer's event log on an object store (about 200 KiB of JSON). */
export const LOG_SEGMENT_EVENTS = 1_000;

/**
 * Whether a directory's listing is kept between turns (see `FileSpace.listing`): the index
 * directories claims and sweeps list, which grow with the store (a claim lists its queue's
 * `gready/` lanes too, on every claim that is not full). Not `deps/<id>`: there is
 * one per task with dependents, each small, and most are absent.
 */
export function keptListing(dir: string): boolean {
  return dir.startsWith("ready/") || dir.startsWith("gready/") || dir.startsWith("sched/") ||
    dir === "running" || dir === "expires" || dir === "aging" || dir === "final";
}

/** The longest a kept listing of an index directory is used before it is listed again. */
export const LISTING_MAX_AGE_MS = 1_000;

/** What identifies a sequence file's content: a kept listing is valid for one. */
export function seqStamp(seqs: Seqs): string | undefined {
  return seqs.gen === undefined ? undefined : `${seqs.gen} ${seqs.task} ${seqs.event}`;
}

/** The directory and name of the key a change writes or deletes (not an event append). */
export function opEntry(op: Op): [dir: string, name: string] | undefined {
  const key = "w" in op ? op.w : "x" in op ? op.x : "c" in op ? op.c : undefined;
  const slash = key?.lastIndexOf("/") ?? -1;
  return slash === -1 ? undefined : [key!.slice(0, slash), key!.slice(slash + 1)];
}

/** The shared machinery of one open directory: storage, lock, steps, corrupt reports. */
export class FileSpace implements RecordSpace {
  /** Where the files live. */
  readonly storage: Storage;
  /** Told of each unreadable file once (the queue turns it into a `corrupt` event). */
  onCorrupt?: (path: string, reason: string) => void;
  /** This process's name in event logs and lock tokens. */
  readonly writer = `${runtime.pid}-${crypto.randomUUID().slice(0, 8)}`;
  /** Whether the engine was closed. */
  closed = false;
  #chain: Promise<void> = Promise.resolve();
  #reported = new Set<string>();
  #steps = new StepQueue(GROUP_MAX, (take) => this.#turn(take));
  /** On a conditional store (an object store): its fenced lock, and the holding of it. */
  #fence?: FencedLock;
  #hold?: FencedHold;
  /** The kept listings of index directories (see `listing`). */
  #listings = new Map<string, SortedNames>();
  /** The sequence file's content they are valid for (`stamp`); `undefined` when unsure. */
  #stamp: string | undefined;
  /** When they were last taken from the disk. */
  #listedAt = 0;
  #gens = 0;
  /** This writer's event log segment on an object store, and the events put in it so far. */
  #segment = 0;
  #segmentEvents = 0;

  constructor(storage: Storage) {
    this.storage = storage;
    if (isConditional(storage)) this.#fence = new FencedLock(storage, this.writer);
  }

  /**
   * The log a commit appends `count` events to. On a local directory it is one file per
   * writer. On an object store an append rewrites the whole object, so a writer's log is cut
   * into segments of at most {@linkcode LOG_SEGMENT_EVENTS} events (`<writer>-<n>.jsonl`):
   * an append costs the same in a long-running worker as in a fresh one.
   */
  eventLog(count: number): string {
    if (!this.#fence) return `events/${this.writer}.jsonl`;
    if (this.#segmentEvents > 0 && this.#segmentEvents + count > LOG_SEGMENT_EVENTS) {
      this.#segment++;
      this.#segmentEvents = 0;
    }
    this.#segmentEvents += count;
    return `events/${this.writer}-${this.#segment}.jsonl`;
  }

  check(): void {
    if (this.closed) throw closedError("file");
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
    return this.#steps.push(fn);
  }

  /** One turn of the lock for the steps waiting when it is taken. */
  async #turn(take: () => PendingStep[]): Promise<void> {
    // When the turn fails (no lock, or the commit), every step of it fails with it.
    const done = await this.locked((tx) => runSteps(tx, take()));
    for (const [s, out] of done) s.resolve(out);
  }

  /** Index entry names under a directory, sorted. */
  async entries(dir: string, limit?: number): Promise<string[]> {
    return (await this.storage.list(dir)).sort().slice(0, limit);
  }

  /**
   * The sorted listing of an index directory (one that {@linkcode keptListing} keeps), for
   * a turn of the lock that read the sequence file with {@linkcode seqStamp} `stamp`.
   *
   * A claim lists `ready/<queue>` and a sweep lists `final`, and both grow with the store:
   * listing 20,000 queued tasks on every claim cut processing to a third. So a listing is
   * kept in memory, and each commit of this process applies its own changes to it. It is
   * kept while the sequence file is as this process last wrote it: each commit that changes
   * an index directory writes a new generation there (its writer's name and a count), and
   * an older OmniQ that keeps the generation it read still moves the sequences. As a bound
   * on anything else that changes the directory (a hand edit), a listing is taken from the
   * disk again once it is {@linkcode LISTING_MAX_AGE_MS} old.
   */
  async listing(dir: string, stamp: string | undefined): Promise<SortedNames> {
    const now = Date.now();
    if (stamp === undefined || stamp !== this.#stamp || now - this.#listedAt > LISTING_MAX_AGE_MS) {
      this.#listings.clear();
      this.#stamp = stamp;
      this.#listedAt = now;
    }
    let names = this.#listings.get(dir);
    if (!names) {
      names = new SortedNames((await this.storage.list(dir)).sort());
      this.#listings.set(dir, names);
    }
    return names;
  }

  /** The generation a commit that changes an index directory writes. */
  nextGen(): string {
    return `${this.writer}:${++this.#gens}`;
  }

  /**
   * After a commit: apply its changes to the kept listings, and note the sequence file it
   * wrote (its {@linkcode seqStamp}; `undefined` when it wrote none, and so changed no index
   * directory). A commit that failed part way leaves the listings unsure: they are dropped.
   */
  committed(ops: Op[], written: string | undefined, ok: boolean): void {
    if (!ok) {
      this.#listings.clear();
      this.#stamp = undefined;
      return;
    }
    if (written === undefined) return;
    for (const op of ops) {
      const entry = opEntry(op);
      const names = entry && this.#listings.get(entry[0]);
      if (!names) continue;
      if ("x" in op) names.delete(entry![1]);
      else names.add(entry![1]);
    }
    this.#stamp = written;
  }

  /** Run `fn` holding the directory lock (and this process's turn). */
  async locked<T>(fn: (tx: FileTx) => Promise<T>): Promise<T> {
    this.check();
    const prev = this.#chain;
    let release!: () => void;
    this.#chain = new Promise((r) => release = r);
    await prev;
    try {
      this.check();
      if (this.#fence) return await this.#lockedFenced(this.#fence, fn);
      const token = await this.#acquire();
      // A holder that crashed (or failed) part way through a commit left its journal.
      await this.#replay();
      // A step longer than the heartbeat keeps its lock fresh, so it is never taken as stale.
      const heartbeat = setInterval(() => {
        this.storage.touch("lock").catch(() => {});
      }, LOCK_HEARTBEAT_MS);
      try {
        const tx = new FileTx(this);
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

  /** {@linkcode locked} on a conditional store: the fenced lock (see `fence.ts`). */
  async #lockedFenced<T>(fence: FencedLock, fn: (tx: FileTx) => Promise<T>): Promise<T> {
    const hold = await fence.acquire(() => this.closed);
    this.#hold = hold;
    const heartbeat = setInterval(() => hold.beat().catch(() => {}), LOCK_HEARTBEAT_MS);
    try {
      // A crashed holder's commit, taken over with its lock, is finished first.
      if (hold.pending.length > 0) await this.#applyFenced(hold, hold.pending);
      const tx = new FileTx(this);
      const out = await fn(tx);
      await tx.commit();
      return out;
    } finally {
      clearInterval(heartbeat);
      this.#hold = undefined;
      await hold.release().catch(() => {});
    }
  }

  /**
   * Make a committed journal's changes, each on the version its step read. A holder that
   * can no longer be sure of its lock stops, and leaves the rest to the next holder.
   */
  async #applyFenced(hold: FencedHold, ops: Op[]): Promise<void> {
    for (const op of ops) {
      if (!hold.fresh()) {
        hold.abandoned = true;
        throw new LockLostError(
          `${this.storage.location}: this process held the lock too long to finish a commit ` +
            `safely; the next holder finishes it`,
        );
      }
      try {
        await applyOp(this.storage, op, true);
      } catch (error) {
        hold.abandoned = true;
        throw error;
      }
    }
  }

  /**
   * Make a commit's changes: a single change directly (each is atomic), several through
   * the journal, so they all happen even when this process dies part way. On a conditional
   * store the journal goes into the lock, on the holder's version (the commit point).
   */
  async apply(ops: Op[]): Promise<void> {
    if (ops.length === 0) return;
    if (this.#hold) {
      await this.#hold.commit(ops);
      return await this.#applyFenced(this.#hold, ops);
    }
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
      await delay(pause * (0.5 + Math.random()));
    }
  }

  /**
   * A task's record and, on a conditional store, the version it was read at (`null`:
   * absent; `undefined` on a store without versions).
   */
  async readRowVersioned(id: string): Promise<[Row | undefined, string | null | undefined]> {
    if (!isConditional(this.storage)) return [await this.readRow(id), undefined];
    const key = `tasks/${encName(id)}.json`;
    const got = await this.storage.readVersioned(key);
    if (!got) return [undefined, null];
    return [readable(() => decodeRow(got.data), (why) => this.corrupt(key, why)), got.version];
  }

  async readRow(id: string): Promise<Row | undefined> {
    const key = `tasks/${encName(id)}.json`;
    const bytes = await this.storage.read(key);
    if (!bytes) return undefined;
    return readable(() => decodeRow(bytes), (why) => this.corrupt(key, why));
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

  /** A schedule and the version it was read at, as {@linkcode readRowVersioned}. */
  async readScheduleVersioned(
    key: string,
  ): Promise<[StoredSchedule | undefined, string | null | undefined]> {
    if (!isConditional(this.storage)) return [await this.readSchedule(key), undefined];
    const got = await this.storage.readVersioned(key);
    if (!got) return [undefined, null];
    return [readable(() => decodeSchedule(got.data), (why) => this.corrupt(key, why)), got.version];
  }

  /** The schedule stored at a key (`schedules/<id>.json`), if readable. */
  async readSchedule(key: string): Promise<StoredSchedule | undefined> {
    const bytes = await this.storage.read(key);
    if (!bytes) return undefined;
    return readable(() => decodeSchedule(bytes), (why) => this.corrupt(key, why));
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

  /** Every event of every writer's log, by id; torn and foreign lines reported and skipped. */
  async allEvents(): Promise<StoredEvent[]> {
    const out: StoredEvent[] = [];
    for (const name of await this.storage.list("events")) {
      const key = `events/${name}`;
      if (!name.endsWith(".jsonl")) {
        this.corrupt(key, "not an event log");
        continue;
      }
      const bytes = await this.storage.read(key);
      if (!bytes) continue;
      let text: string;
      try {
        text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
      } catch (error) {
        this.corrupt(key, error);
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
          this.corrupt(`${key}:${i + 1}`, error);
        }
      }
    }
    return out.sort((a, b) => a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
  }
}
