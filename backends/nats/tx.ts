// One step of a `nats:` store: the record engines' shared staging over rows read from the
// mirror, and its commit, each task record fenced by the revision the step read.

import type { StoredSchedule } from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import { holdsKey } from "../../src/kit/policy.ts";
import type { Row } from "../records/space.ts";
import { type Seqs, StagedTx } from "../records/staging.ts";
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
export class NatsTx extends StagedTx {
  #s: NatsStore;
  #orig = new Map<string, Versioned<Row>>();

  constructor(store: NatsStore) {
    super(16);
    this.#s = store;
  }

  protected readRow(id: string): Row | undefined {
    const found = this.#s.rows.get(id);
    if (found) this.#orig.set(id, found);
    return found ? { ...found.value } : undefined;
  }

  protected readSchedule(id: string): StoredSchedule | undefined {
    return this.#s.schedules.get(id)?.value;
  }

  protected readSeqs(): Seqs {
    return { ...(this.#s.seq?.value ?? this.#recoverSeq()) };
  }

  #recoverSeq(): Seqs {
    let task = 0;
    for (const r of this.#s.rows.values()) task = Math.max(task, r.value.seq);
    return { task: task + 1, event: Date.now() * 1000 };
  }

  entries(dir: string, limit?: number, after?: string): Promise<string[]> {
    return Promise.resolve(this.#s.indexEntries(dir, limit, after));
  }

  override dropEntry(_path: string): void {
    // Index entries are derived from the records: none is ever stale.
  }

  override addDependent(_dep: string, _id: string): void {
    // Derived from the dependent's `dependsOn` once its record is written.
  }

  async liveKeyOwner(key: string): Promise<string | undefined> {
    const id = this.#s.keyOwner.get(key);
    if (id === undefined) return undefined;
    const row = await this.row(id);
    return row && holdsKey(row, Date.now()) && row.key === key ? id : undefined;
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
    for (const r of this.results) for (const op of s.resultOps(r)) add(op);
    for (const id of this.unresults) add({ op: "del", bucket: "results", key: s.resultKey(id) });
    for (const [id, sched] of this.putSchedules) {
      const value = text.decode(encodeSchedule(sched));
      add(
        { op: "put", bucket: "tasks", key: `s.${tok(id)}`, value },
        (rev) => s.schedules.set(id, { value: sched, rev }),
      );
    }
    for (const id of this.unschedules) {
      add({ op: "del", bucket: "tasks", key: `s.${tok(id)}` }, () => s.schedules.delete(id));
    }
    for (const [id, row] of this.rows) {
      const orig = this.#orig.get(id);
      const key = `t.${tok(id)}`;
      if (this.removed.has(id)) {
        if (orig) add({ op: "remove", key, rev: orig.rev }, () => s.setRow(id, undefined, 0));
        continue;
      }
      if (!row) continue;
      if (this.created.has(id) && !orig) {
        add(
          { op: "create", key, value: text.decode(encodeRow(row)) },
          (rev) => s.setRow(id, row, rev),
        );
      } else if (orig && !sameRow(orig.value, row)) {
        const value = text.decode(encodeRow(row));
        add({ op: "update", key, value, rev: orig.rev }, (rev) => s.setRow(id, row, rev));
      }
    }
    for (const e of this.events) {
      add({ op: "event", subject: s.eventSubject(e), id: e.id, value: JSON.stringify(e) });
    }
    const seqChanged = this.seqDirty && this.seq !== undefined;
    if (ops.length === 0 && !seqChanged) return;
    const journaled = ops.length + (seqChanged ? 1 : 0) > 1;
    const seqFrom = s.seq?.rev ?? 0;
    const seq = { ...(this.seq ??= this.readSeqs()) };
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
