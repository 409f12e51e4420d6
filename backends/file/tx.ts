/**
 * One locked step of a `file:` store: the shared staging (`backends/records/staging.ts`)
 * over the directory's files, and its commit, the list of file changes (records first, then
 * the index entries and key files they imply) made through the journal.
 *
 * @module
 */

import type { StoredSchedule } from "../../src/backend.ts";
import { encName, jsonBytes, parseJson } from "../../src/kit/encoding.ts";
import { isFinal } from "../../src/kit/policy.ts";
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
import type { FileSpace } from "./space.ts";

const EMPTY = new Uint8Array(0);
const SEQ_FILE = "meta/seq.json";

/** One locked step: rows loaded and changed, written on commit with their indexes. */
export class FileTx extends StagedTx {
  #s: FileSpace;
  #before = new Map<string, ReadState>();

  constructor(space: FileSpace) {
    super(12);
    this.#s = space;
  }

  protected async readRow(id: string): Promise<Row | undefined> {
    const row = await this.#s.readRow(id);
    if (row) this.#before.set(id, readState(row));
    return row;
  }

  protected readSchedule(id: string): Promise<StoredSchedule | undefined> {
    return this.#s.readSchedule(`schedules/${encName(id)}.json`);
  }

  protected async readSeqs(): Promise<Seqs> {
    const bytes = await this.#s.storage.read(SEQ_FILE);
    if (!bytes) return { task: 0, event: 0 };
    try {
      const raw = parseJson(bytes) as Seqs;
      if (typeof raw.task === "number" && typeof raw.event === "number") return raw;
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

  async entries(dir: string, limit?: number): Promise<string[]> {
    return (await this.#s.storage.list(dir)).sort().slice(0, limit);
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

  async commit(): Promise<void> {
    const st = this.#s.storage;
    // Records first, then the indexes they imply: a reader re-checks the record, so an
    // index entry is only ever a hint. The whole list goes through the journal, so a crash
    // part way leaves it to be finished by the next holder of the lock.
    const ops: Op[] = [];
    for (const r of this.results) {
      ops.push({ w: `results/${encName(r.taskId)}.json`, d: encodeResult(r) });
    }
    for (const id of this.unresults) ops.push({ x: `results/${encName(id)}.json` });
    for (const [id, s] of this.putSchedules) {
      ops.push({ w: `schedules/${encName(id)}.json`, d: encodeSchedule(s) });
    }
    for (const id of this.unschedules) ops.push({ x: `schedules/${encName(id)}.json` });
    for (const path of this.dependents) ops.push({ w: path, d: EMPTY });
    for (const [id, row] of this.rows) {
      const before = this.#before.get(id);
      if (this.removed.has(id)) {
        ops.push({ x: `tasks/${encName(id)}.json` });
        for (const k of before?.index ?? []) ops.push({ x: k });
        for (const dep of await st.list(`deps/${encName(id)}`)) {
          ops.push({ x: `deps/${encName(id)}/${dep}` });
        }
        continue;
      }
      if (!row) continue;
      ops.push({ w: `tasks/${encName(id)}.json`, d: encodeRow(row) });
      const index = indexMoves(before?.index ?? [], row);
      for (const k of index.add) ops.push({ w: k, d: EMPTY });
      for (const k of index.del) ops.push({ x: k });
      // Live keys: the key file names the live task that owns it.
      const keys = keyMoves(before, row);
      if (keys.release !== undefined) {
        const keyFile = `keys/${encName(keys.release)}`;
        const owner = await st.read(keyFile);
        if (owner && new TextDecoder().decode(owner) === id) ops.push({ x: keyFile });
      }
      if (keys.take !== undefined) {
        ops.push({ c: `keys/${encName(keys.take)}`, d: new TextEncoder().encode(id) });
      }
    }
    for (const path of this.dropped) ops.push({ x: path });
    if (this.seqDirty && this.seq) ops.push({ w: SEQ_FILE, d: jsonBytes(this.seq) });
    if (this.events.length > 0) {
      ops.push({ a: `events/${this.#s.writer}.jsonl`, events: this.events });
    }
    await this.#s.apply(ops);
  }
}
