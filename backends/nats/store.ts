// The steps of a `nats:` store: one at a time across processes under the bucket's lock
// (taken and broken by compare-and-set), steps asked for meanwhile sharing one turn and one
// commit (the record engines' step queue, `backends/records/steps.ts`), and the journal
// that makes a step of several writes whole even when its holder dies part way
// (docs/engines/nats.md tells the whole design).

import type { NewEvent, StoredResult } from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import { delay } from "../../src/kit/async.ts";
import { jsonBytes, pad, parseJson } from "../../src/kit/encoding.ts";
import type { RecordSpace, RecordTx } from "../records/space.ts";
import { type PendingStep, runSteps, StepQueue } from "../records/steps.ts";
import { bounded, encodeResult, errorText, isWrongSequence, tok } from "./codec.ts";
import { type Journal, type JournalOp, journalParts } from "./journal.ts";
import {
  GROUP_MAX,
  JOURNAL_KEY,
  JOURNAL_PART,
  JOURNAL_PARTS,
  LOCK_HEARTBEAT_MS,
  LOCK_KEY,
  LOCK_STALE_MS,
  NATS_MAX_RESULT,
  SEQ_KEY,
} from "./limits.ts";
import { NatsMirror } from "./mirror.ts";
import { NatsTx } from "./tx.ts";

const text = new TextDecoder();
const utf8 = new TextEncoder();

/** The connection, the buckets and the mirror of one open `nats:` store, and its steps. */
export class NatsStore extends NatsMirror implements RecordSpace {
  /** A result value over the message size budget fails its task (see `NATS_MAX_RESULT`). */
  readonly resultLimit = { bytes: NATS_MAX_RESULT, engine: "nats" } as const;
  #steps = new StepQueue(GROUP_MAX, (take) => this.#turn(take()));

  // ---- steps ----

  /** Run a step under the lock; steps asked for meanwhile share the next turn. */
  step<T>(fn: (tx: RecordTx) => Promise<T>): Promise<T> {
    this.check();
    return this.#steps.push(fn);
  }

  /** One turn of the lock for a group of steps. */
  async #turn(group: PendingStep[]): Promise<void> {
    let rev: number;
    try {
      rev = await this.#acquire();
    } catch (error) {
      for (const s of group) s.reject(error);
      return;
    }
    let heartbeat: Promise<void> = Promise.resolve();
    const timer = setInterval(() => {
      heartbeat = heartbeat.then(async () => {
        try {
          rev = await this.kv.update(LOCK_KEY, this.#lockValue(this.owner), rev);
        } catch {
          // A lost lock shows at release (and in the fenced writes).
        }
      });
    }, LOCK_HEARTBEAT_MS);
    try {
      await this.caughtUp(rev);
      // A holder that died (or failed) part way through a commit left its journal.
      await this.#recover();
      this.holding = true;
      // The group's steps share one transaction and one commit (one journal, one batch of
      // writes, one commit point); a step that throws is rolled back to its mark alone.
      const tx = new NatsTx(this);
      const done = await runSteps(tx, group);
      try {
        await tx.commit();
      } catch (error) {
        for (const [s] of done) s.reject(error);
        done.length = 0;
      }
      for (const [s, out] of done) s.resolve(out);
    } catch (error) {
      for (const s of group) s.reject(error);
    } finally {
      clearInterval(timer);
      await heartbeat;
      this.holding = false;
      this.flush();
      await this.#release(rev);
    }
  }

  #lockValue(owner: string | null): Uint8Array {
    return jsonBytes({ owner, at: Date.now() });
  }

  async #acquire(): Promise<number> {
    let watchedRev = -1;
    let since = Date.now();
    for (let pause = 1;; pause = Math.min(pause * 2, 50)) {
      this.check();
      const lock = this.lock;
      if (!lock) {
        try {
          return await this.kv.create(LOCK_KEY, this.#lockValue(this.owner));
        } catch (error) {
          if (!isWrongSequence(error)) throw this.#wrap(error);
          const e = await this.kv.get(LOCK_KEY).catch(() => null);
          if (e && !this.lock) this.apply(e, false);
          continue;
        }
      }
      if (lock.value.owner === null || lock.value.owner === this.owner) {
        // Free, or this process's own lock left by a release that failed.
        try {
          return await this.kv.update(LOCK_KEY, this.#lockValue(this.owner), lock.rev);
        } catch (error) {
          if (!isWrongSequence(error)) throw this.#wrap(error);
        }
      } else if (lock.rev !== watchedRev) {
        watchedRev = lock.rev;
        since = Date.now();
      } else if (Date.now() - since > LOCK_STALE_MS) {
        // Its holder stopped renewing it (checked at the server, not in a mirror that may lag):
        // break it, by compare-and-set.
        const now = await this.kv.get(LOCK_KEY).catch(() => null);
        if (now && now.revision === lock.rev) {
          await this.kv.update(LOCK_KEY, this.#lockValue(null), lock.rev).catch(() => {});
        } else if (now) this.apply(now, false);
        since = Date.now();
        continue;
      }
      await delay(pause + Math.random() * pause, { wakers: this.lockWakers });
      if (this.lock && this.lock.rev === lock.rev && lock.value.owner === null) {
        // A failed compare-and-set on a lock that looks free: the mirror is behind.
        const e = await this.kv.get(LOCK_KEY).catch(() => null);
        if (e && e.revision > (this.lock?.rev ?? 0)) this.apply(e, false);
      }
    }
  }

  async #release(rev: number): Promise<void> {
    try {
      const next = await this.kv.update(LOCK_KEY, this.#lockValue(null), rev);
      if (!this.lock || this.lock.rev < next) {
        this.lock = { value: { owner: null }, rev: next };
      }
    } catch {
      // Lost (broken as stale) or unreachable: others break it after LOCK_STALE_MS, and
      // this process takes its own lock back at once.
    }
  }

  #wrap(error: unknown): Error {
    if (error instanceof OmniQError) return error;
    return new OmniQError(`nats: ${this.where}: ${errorText(error)}`, { cause: error });
  }

  resultKey(taskId: string): string {
    return `r.${tok(taskId)}`;
  }

  /** The writes that store a result (and its expiry index key). */
  resultOps(r: StoredResult): JournalOp[] {
    if (r.value !== undefined && r.value.length > NATS_MAX_RESULT) {
      throw new OmniQError(
        `nats: a result of ${r.value.length} bytes is over this engine's limit of ${NATS_MAX_RESULT}`,
      );
    }
    const ops: JournalOp[] = [
      {
        op: "put",
        bucket: "results",
        key: this.resultKey(r.taskId),
        value: text.decode(encodeResult(r)),
      },
    ];
    if (r.expiresAt !== undefined) {
      const key = `e.${pad(r.expiresAt)}.${tok(r.taskId)}`;
      ops.push({ op: "put", bucket: "results", key, value: "" });
    }
    return ops;
  }

  /**
   * Make one change; returns the key's new revision (0 for deletes and events). Replaying a
   * journal, a fenced change that fails was already made (or made moot), and is skipped.
   */
  async runOp(op: JournalOp, replay: boolean): Promise<number> {
    try {
      switch (op.op) {
        case "put":
          return await (op.bucket === "tasks" ? this.kv : this.rkv).put(
            op.key,
            utf8.encode(op.value),
          );
        case "del":
          await (op.bucket === "tasks" ? this.kv : this.rkv).delete(op.key);
          return 0;
        case "create":
          return await this.kv.create(op.key, utf8.encode(op.value));
        case "update":
          return await this.kv.update(op.key, utf8.encode(op.value), op.rev);
        case "remove":
          await this.kv.delete(op.key, { previousSeq: op.rev });
          return 0;
        case "event":
          // The id makes a second publish of the same event (a replay) a duplicate the
          // stream drops (within its two-minute duplicate window).
          await this.js.publish(op.subject, utf8.encode(op.value), { msgID: op.id });
          return 0;
      }
    } catch (error) {
      if (replay && isWrongSequence(error)) return 0;
      throw error;
    }
  }

  /** Write the sequence record from revision `from` (0: absent): a step's commit point. */
  async commitSeq(from: number, seq: { task: number; event: number }): Promise<number> {
    const bytes = jsonBytes(seq);
    const rev = from > 0
      ? await this.kv.update(SEQ_KEY, bytes, from)
      : await this.kv.create(SEQ_KEY, bytes);
    if (!this.seq || this.seq.rev < rev) this.seq = { value: seq, rev };
    return rev;
  }

  /**
   * Write a step's journal (in parts when large), fenced by the revision of the journal
   * before it, so a holder whose lock was broken cannot replace a newer one.
   */
  async writeJournal(journal: Journal): Promise<number> {
    let bytes = jsonBytes(journal);
    if (bytes.length > JOURNAL_PART) {
      const id = crypto.randomUUID().replaceAll("-", "");
      const parts: Uint8Array[] = [];
      for (let i = 0; i < bytes.length; i += JOURNAL_PART) {
        parts.push(bytes.subarray(i, i + JOURNAL_PART));
      }
      await bounded(parts.map((part, n) => () => this.kv.put(`${JOURNAL_PARTS}${id}.${n}`, part)));
      bytes = jsonBytes({ parts: { id, n: parts.length } });
    }
    const prev = this.journal;
    const rev = prev
      ? await this.kv.update(JOURNAL_KEY, bytes, prev.rev)
      : await this.kv.create(JOURNAL_KEY, bytes);
    if (!this.journal || this.journal.rev < rev) this.journal = { value: bytes, rev };
    // The parts of the journal before (replayed or finished by now) are not needed any more.
    const old = prev?.value && prev.value.length < 200 ? journalParts(prev.value) : undefined;
    if (old) {
      await bounded(
        Array.from(
          { length: old.n },
          (_, n) => () => this.kv.delete(`${JOURNAL_PARTS}${old.id}.${n}`).catch(() => {}),
        ),
      );
    }
    return rev;
  }

  async #readJournal(bytes: Uint8Array): Promise<Journal> {
    const parts = journalParts(bytes);
    if (parts) {
      const chunks: Uint8Array[] = [];
      for (let n = 0; n < parts.n; n++) {
        const e = await this.kv.get(`${JOURNAL_PARTS}${parts.id}.${n}`);
        if (!e || e.operation !== "PUT") throw new Error(`part ${n} of the journal is missing`);
        chunks.push(e.value);
      }
      bytes = new Uint8Array(chunks.reduce((a, c) => a + c.length, 0));
      let at = 0;
      for (const c of chunks) {
        bytes.set(c, at);
        at += c.length;
      }
    }
    const j = parseJson(bytes) as Journal;
    if (typeof j?.seqFrom !== "number" || typeof j.seq !== "string" || !Array.isArray(j.ops)) {
      throw new Error("not a journal");
    }
    return j;
  }

  /** Finish the step a holder left unfinished (its journal's commit point not reached). */
  async #recover(): Promise<void> {
    const j = this.journal;
    if (!j?.value || j.rev <= this.checkedJournal) return;
    let journal: Journal;
    try {
      journal = await this.#readJournal(j.value);
    } catch (error) {
      if (error instanceof OmniQError) throw error;
      this.corrupt(`${this.names.bucket}/${JOURNAL_KEY}`, error);
      this.checkedJournal = j.rev;
      return;
    }
    if ((this.seq?.rev ?? 0) === journal.seqFrom) {
      try {
        await bounded(journal.ops.map((op) => () => this.runOp(op, true)));
        const rev = await this.commitSeq(journal.seqFrom, JSON.parse(journal.seq));
        await this.caughtUp(rev);
      } catch (error) {
        throw this.#wrap(error);
      }
    }
    this.checkedJournal = j.rev;
  }

  eventSubject(e: NewEvent): string {
    return `${this.names.stream}.${e.taskId === undefined ? "_" : tok(e.taskId)}.${e.type}`;
  }

  /** Let the steps under way finish, then close. */
  override async close(): Promise<void> {
    if (this.closed) return;
    await this.#steps.idle();
    await super.close();
  }
}
