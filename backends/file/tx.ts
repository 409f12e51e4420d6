/**
 * One locked step of a `file:` store: the shared staging (`backends/records/staging.ts`)
 * over the directory's files, and its commit, the list of file changes (records first, then
 * the index entries and key files they imply) made through the journal.
 *
 * @module
 */

import type { StoredSchedule } from "../../src/backend.ts";
import { encName, jsonBytes, parseJson } from "../../src/kit/encoding.ts";
import { holdsKey } from "../../src/kit/policy.ts";
import { encodeResult, encodeRow, encodeSchedule } from "../records/json.ts";
import type { Row } from "../records/space.ts";
import {
  indexMoves,
  keyMoves,
  type ReadState,
  readState,
  type Seqs,
  StagedTx,
} from "../records/staging.ts";
import type { Op } from "./journal.ts";
import { type FileSpace, keptListing, opEntry, seqStamp } from "./space.ts";
import { isConditional } from "./storage.ts";

const EMPTY = new Uint8Array(0);
const SEQ_FILE = "meta/seq.json";

/** One locked step: rows loaded and changed, written on commit with their indexes. */
export class FileTx extends StagedTx {
  #s: FileSpace;
  #before = new Map<string, ReadState>();
  /**
   * On a conditional store, the version each key was read at (`null`: absent): the
   * commit changes a key only on that version (see `journal.ts`).
   */
  #versions = new Map<string, string | null>();
  /** What identifies the sequence file as this turn read it (`seqStamp`). */
  #seqStamp: string | undefined;

  constructor(space: FileSpace) {
    super(12);
    this.#s = space;
  }

  protected async readRow(id: string): Promise<Row | undefined> {
    const [row, version] = await this.#s.readRowVersioned(id);
    if (version !== undefined) this.#versions.set(`tasks/${encName(id)}.json`, version);
    if (row) this.#before.set(id, readState(row));
    return row;
  }

  protected async readSchedule(id: string): Promise<StoredSchedule | undefined> {
    const key = `schedules/${encName(id)}.json`;
    const [schedule, version] = await this.#s.readScheduleVersioned(key);
    if (version !== undefined) this.#versions.set(key, version);
    return schedule;
  }

  /** A key's bytes, its version noted on a conditional store. */
  async #read(key: string): Promise<Uint8Array | undefined> {
    const st = this.#s.storage;
    if (!isConditional(st)) return await st.read(key);
    const got = await st.readVersioned(key);
    this.#versions.set(key, got?.version ?? null);
    return got?.data;
  }

  /**
   * The version a change of `key` is made on: the one read, else the current one (read
   * now, under the lock, before the commit point); `undefined` on a store without versions.
   */
  async #on(key: string): Promise<string | null | undefined> {
    const st = this.#s.storage;
    if (!isConditional(st)) return undefined;
    if (this.#versions.has(key)) return this.#versions.get(key);
    const v = (await st.versionOf(key)) ?? null;
    this.#versions.set(key, v);
    return v;
  }

  protected async readSeqs(): Promise<Seqs> {
    this.#seqStamp = undefined;
    const bytes = await this.#read(SEQ_FILE);
    if (!bytes) return { task: 0, event: 0 };
    try {
      const raw = parseJson(bytes) as Seqs;
      if (typeof raw.task === "number" && typeof raw.event === "number") {
        this.#seqStamp = seqStamp(raw);
        return raw;
      }
      throw new Error("bad sequence record");
    } catch (error) {
      this.#s.corrupt(SEQ_FILE, error);
      return await this.#recoverSeq();
    }
  }

  /** Rebuild the sequences from the records, when their file is lost. */
  async #recoverSeq(): Promise<Seqs> {
    let task = 0;
    for (const row of await this.#s.allRows()) task = Math.max(task, row.seq);
    let event = 0;
    for (const e of await this.#s.allEvents()) event = Math.max(event, Number(e.id));
    return { task: task + 1, event: event + 1 };
  }

  async entries(dir: string, limit?: number, after?: string): Promise<string[]> {
    if (!keptListing(dir)) {
      const names = (await this.#s.storage.list(dir)).sort();
      return (after === undefined ? names : names.filter((n) => n > after)).slice(0, limit);
    }
    // The kept listings are checked against the sequence file as this turn read it (the
    // turn's own steps move the sequences in memory before they commit).
    await this.seqs();
    return (await this.#s.listing(dir, this.#seqStamp)).first(limit, after);
  }

  async liveKeyOwner(key: string): Promise<string | undefined> {
    const keyFile = `keys/${encName(key)}`;
    const bytes = await this.#read(keyFile);
    if (!bytes) return undefined;
    const id = new TextDecoder().decode(bytes);
    const row = await this.row(id);
    if (!row || !holdsKey(row, Date.now()) || row.key !== key) {
      const st = this.#s.storage;
      const v = await this.#on(keyFile);
      if (isConditional(st) && v) await st.deleteIf(keyFile, v);
      else await st.delete(keyFile);
      this.#versions.delete(keyFile);
      return undefined;
    }
    return id;
  }

  async commit(): Promise<void> {
    const st = this.#s.storage;
    // Records first, then the indexes they imply: a reader re-checks the record, so an
    // index entry is only ever a hint. The whole list goes through the journal, so a crash
    // part way leaves it to be finished by the next holder of the lock.
    const ops: Op[] = [];
    // A write or delete of a record carries the version it is made on (conditional stores).
    const w = async (key: string, d: Uint8Array) => ops.push({ w: key, d, v: await this.#on(key) });
    const x = async (key: string) => ops.push({ x: key, v: await this.#on(key) });
    for (const r of this.results) await w(`results/${encName(r.taskId)}.json`, encodeResult(r));
    for (const id of this.unresults) await x(`results/${encName(id)}.json`);
    for (const [id, s] of this.putSchedules) {
      await w(`schedules/${encName(id)}.json`, encodeSchedule(s));
    }
    for (const id of this.unschedules) await x(`schedules/${encName(id)}.json`);
    for (const path of this.dependents) ops.push({ w: path, d: EMPTY });
    for (const [id, row] of this.rows) {
      const before = this.#before.get(id);
      if (this.removed.has(id)) {
        await x(`tasks/${encName(id)}.json`);
        for (const k of before?.index ?? []) ops.push({ x: k });
        for (const dep of await st.list(`deps/${encName(id)}`)) {
          ops.push({ x: `deps/${encName(id)}/${dep}` });
        }
        continue;
      }
      if (!row) continue;
      await w(`tasks/${encName(id)}.json`, encodeRow(row));
      const index = indexMoves(before?.index ?? [], row);
      for (const k of index.add) ops.push({ w: k, d: EMPTY });
      for (const k of index.del) ops.push({ x: k });
      // Live keys: the key file names the live task that owns it.
      const keys = keyMoves(before, row);
      if (keys.release !== undefined) {
        const keyFile = `keys/${encName(keys.release)}`;
        const owner = await this.#read(keyFile);
        if (owner && new TextDecoder().decode(owner) === id) await x(keyFile);
      }
      if (keys.take !== undefined) {
        ops.push({ c: `keys/${encName(keys.take)}`, d: new TextEncoder().encode(id) });
      }
    }
    for (const path of this.dropped) ops.push({ x: path });
    // A commit that changes an index directory others may keep a listing of tells them so
    // with a new generation in the sequence file (see `FileSpace.listing`).
    let written: Seqs | undefined;
    if (ops.some(changesListing)) written = { ...await this.seqs(), gen: this.#s.nextGen() };
    else if (this.seqDirty && this.seq) written = this.seq;
    if (written) await w(SEQ_FILE, jsonBytes(written));
    if (this.events.length > 0) {
      ops.push({ a: this.#s.eventLog(this.events.length), events: this.events });
    }
    let ok = false;
    try {
      await this.#s.apply(ops);
      ok = true;
    } finally {
      this.#s.committed(ops, written && seqStamp(written), ok);
    }
  }
}

/** Whether a change is to an entry of an index directory whose listing is kept. */
function changesListing(op: Op): boolean {
  const entry = opEntry(op);
  return entry !== undefined && keptListing(entry[0]);
}
