// One step of a `nats:` store: rows read from the mirror, changes gathered and written on
// commit, each task record fenced by the revision the step read.

import type { StoredEvent, StoredResult, StoredSchedule } from "../../src/backend.ts";
import type { NewEvent } from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import { pad } from "../../src/kit/encoding.ts";
import { isFinal } from "../../src/kit/policy.ts";
import type { RecordTx, Row } from "../records/queue.ts";
import {
  bounded,
  encodeRow,
  encodeSchedule,
  errorText,
  isWrongSequence,
  sameRow,
  tok,
} from "./codec.ts";
import type { JournalOp } from "./journal.ts";
import type { Versioned } from "./mirror.ts";
import type { NatsStore } from "./store.ts";

const text = new TextDecoder();

/** One step: rows read from the mirror, changes written on commit, fenced by revision. */
export class NatsTx implements RecordTx {
  #s: NatsStore;
  #rows = new Map<string, Row | undefined>();
  #orig = new Map<string, Versioned<Row>>();
  #created = new Set<string>();
  #removed = new Set<string>();
  #seq?: { task: number; event: number };
  #seqDirty = false;
  #events: StoredEvent[] = [];
  #results: StoredResult[] = [];
  #unresults = new Set<string>();
  #schedules = new Map<string, StoredSchedule | undefined>();
  #putSchedules = new Map<string, StoredSchedule>();
  #unschedules = new Set<string>();

  constructor(store: NatsStore) {
    this.#s = store;
  }

  /** The changes so far; calling the result rolls a failed step back to them. */
  mark(): () => void {
    const rows = new Map([...this.#rows].map(([id, r]) => [id, r && { ...r }]));
    const seq = this.#seq && { ...this.#seq };
    const seqDirty = this.#seqDirty;
    const events = this.#events.length;
    const results = this.#results.length;
    const sets = [this.#created, this.#removed, this.#unresults, this.#unschedules]
      .map((set) => [set, new Set(set)] as const);
    const schedules = new Map(this.#schedules);
    const putSchedules = new Map(this.#putSchedules);
    return () => {
      this.#rows = rows;
      this.#seq = seq;
      this.#seqDirty = seqDirty;
      this.#events.length = events;
      this.#results.length = results;
      for (const [set, copy] of sets) {
        set.clear();
        for (const v of copy) set.add(v);
      }
      this.#schedules = schedules;
      this.#putSchedules = putSchedules;
    };
  }

  row(id: string): Promise<Row | undefined> {
    if (!this.#rows.has(id)) {
      const found = this.#s.rows.get(id);
      if (found) this.#orig.set(id, found);
      this.#rows.set(id, found ? { ...found.value } : undefined);
    }
    return Promise.resolve(this.#rows.get(id));
  }

  add(row: Row): void {
    this.#rows.set(row.id, row);
    this.#created.add(row.id);
  }

  remove(id: string): void {
    this.#removed.add(id);
  }

  #seqs(): { task: number; event: number } {
    this.#seq ??= { ...(this.#s.seq?.value ?? this.#recoverSeq()) };
    return this.#seq;
  }

  #recoverSeq(): { task: number; event: number } {
    let task = 0;
    for (const r of this.#s.rows.values()) task = Math.max(task, r.value.seq);
    return { task: task + 1, event: Date.now() * 1000 };
  }

  nextSeq(): Promise<number> {
    this.#seqDirty = true;
    return Promise.resolve(++this.#seqs().task);
  }

  appendEvents(events: NewEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return Promise.resolve([]);
    const seq = this.#seqs();
    this.#seqDirty = true;
    const out = events.map((e) => ({ ...e, id: pad(++seq.event, 16) }));
    this.#events.push(...out);
    return Promise.resolve(out);
  }

  putResults(results: StoredResult[]): void {
    this.#results.push(...results);
  }

  deleteResult(taskId: string): void {
    this.#unresults.add(taskId);
  }

  entries(dir: string, limit?: number): Promise<string[]> {
    return Promise.resolve(this.#s.indexEntries(dir, limit));
  }

  dropEntry(_path: string): void {
    // Index entries are derived from the records: none is ever stale.
  }

  addDependent(_dep: string, _id: string): void {
    // Derived from the dependent's `dependsOn` once its record is written.
  }

  async liveKeyOwner(key: string): Promise<string | undefined> {
    const id = this.#s.keyOwner.get(key);
    if (id === undefined) return undefined;
    const row = await this.row(id);
    return row && !isFinal(row.state) && row.key === key ? id : undefined;
  }

  schedule(id: string): Promise<StoredSchedule | undefined> {
    if (!this.#schedules.has(id)) this.#schedules.set(id, this.#s.schedules.get(id)?.value);
    return Promise.resolve(this.#schedules.get(id));
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

  /**
   * Write the step's changes. One change is written as is. Several go through a journal:
   * the journal first, then every change (task records fenced by the revision the step
   * read), then the sequence record last, the commit point. A holder that dies part way
   * leaves the journal, and the next holder of the lock makes the rest of the changes.
   */
  async commit(): Promise<void> {
    const s = this.#s;
    const ops: JournalOp[] = [];
    /** How each change shows in this process's mirror once made, given its revision. */
    const mirror: (((rev: number) => void) | undefined)[] = [];
    const add = (op: JournalOp, then?: (rev: number) => void) => {
      ops.push(op);
      mirror.push(then);
    };
    for (const r of this.#results) for (const op of s.resultOps(r)) add(op);
    for (const id of this.#unresults) add({ op: "del", bucket: "results", key: s.resultKey(id) });
    for (const [id, sched] of this.#putSchedules) {
      const value = text.decode(encodeSchedule(sched));
      add(
        { op: "put", bucket: "tasks", key: `s.${tok(id)}`, value },
        (rev) => s.schedules.set(id, { value: sched, rev }),
      );
    }
    for (const id of this.#unschedules) {
      add({ op: "del", bucket: "tasks", key: `s.${tok(id)}` }, () => s.schedules.delete(id));
    }
    for (const [id, row] of this.#rows) {
      const orig = this.#orig.get(id);
      const key = `t.${tok(id)}`;
      if (this.#removed.has(id)) {
        if (orig) add({ op: "remove", key, rev: orig.rev }, () => s.setRow(id, undefined, 0));
        continue;
      }
      if (!row) continue;
      if (this.#created.has(id) && !orig) {
        add(
          { op: "create", key, value: text.decode(encodeRow(row)) },
          (rev) => s.setRow(id, row, rev),
        );
      } else if (orig && !sameRow(orig.value, row)) {
        const value = text.decode(encodeRow(row));
        add({ op: "update", key, value, rev: orig.rev }, (rev) => s.setRow(id, row, rev));
      }
    }
    for (const e of this.#events) {
      add({ op: "event", subject: s.eventSubject(e), id: e.id, value: JSON.stringify(e) });
    }
    const seqChanged = this.#seqDirty && this.#seq !== undefined;
    if (ops.length === 0 && !seqChanged) return;
    const journaled = ops.length + (seqChanged ? 1 : 0) > 1;
    const seqFrom = s.seq?.rev ?? 0;
    const seq = { ...this.#seqs() };
    try {
      const jrev = journaled ? await s.writeJournal({ seqFrom, seq: JSON.stringify(seq), ops }) : 0;
      await bounded(ops.map((op, i) => async () => {
        const rev = await s.runOp(op, false);
        mirror[i]?.(rev);
      }));
      if (journaled || seqChanged) await s.commitSeq(seqFrom, seq);
      if (journaled) s.checkedJournal = jrev;
    } catch (error) {
      if (isWrongSequence(error)) {
        throw new OmniQError(
          `nats: a record changed under this step (the step's lock was lost?): ${errorText(error)}`,
          { cause: error },
        );
      }
      throw new OmniQError(`nats: ${s.where}: ${errorText(error)}`, { cause: error });
    }
  }
}
