/**
 * The records of a `kv:` store: the {@linkcode RecordSpace} the shared record queue runs on.
 * It owns the group commits (steps asked for while a commit is in flight share the next
 * one; a group that lost to another writer runs again on fresh reads), the reads of
 * records, schedules, index entries and results (a large result value in parts), and the
 * once-per-process reports of unreadable records.
 *
 * @module
 */

import type { StoredResult, StoredSchedule } from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import { delay } from "../../src/kit/async.ts";
import { checkRecordVersion, closedError, RECORD_VERSION } from "../../src/kit/policy.ts";
import type { RecordSpace, RecordTx, Row } from "../records/space.ts";
import { type PendingStep, StepQueue } from "../records/steps.ts";
import { readable } from "../records/json.ts";
import { decodeRow, decodeSchedule, type Obj, StepTooLarge } from "./codec.ts";
import {
  keyText,
  type KvAtomic,
  type KvEntryMaybe,
  type KvKey,
  type KvKeyPart,
  type KvLike,
} from "./connection.ts";
import { GROUP_STEPS, KV_MAX_RESULT, MAX_CONFLICTS, PART } from "./options.ts";
import { KvTx } from "./tx.ts";

/** The shared machinery of one open KV: prefix, group commits, reads, corrupt reports. */
export class KvSpace implements RecordSpace {
  readonly kv: KvLike;
  readonly prefix: KvKey;
  readonly owned: boolean;
  closed = false;
  onCorrupt?: (path: string, reason: string) => void;
  /** A result value over Deno KV's size budget fails its task (see `KV_MAX_RESULT`). */
  readonly resultLimit = { bytes: KV_MAX_RESULT, engine: "kv" } as const;
  /**
   * The sequences record as this handle's last commit left it (`undefined`: not known). A
   * step uses it instead of reading the record, and its commit checks the versionstamp as
   * for a read: when another writer moved the sequences meanwhile, the check fails, and
   * the group runs again on a fresh read. One writer (the common case) never reads it again.
   */
  seqSeen?: KvEntryMaybe;
  #steps = new StepQueue(GROUP_STEPS, (take) => this.#run(take()));
  #reported = new Set<string>();

  constructor(kv: KvLike, prefix: KvKey, owned: boolean) {
    this.kv = kv;
    this.prefix = prefix;
    this.owned = owned;
  }

  key(...parts: KvKeyPart[]): KvKey {
    return [...this.prefix, ...parts];
  }

  check(): void {
    if (this.closed) throw closedError("kv");
  }

  corrupt(path: string, why: unknown): void {
    if (this.#reported.has(path)) return;
    this.#reported.add(path);
    const reason = String((why as Error)?.message ?? why);
    console.warn(`omniq kv: skipping unreadable record ${path}: ${reason}`);
    this.onCorrupt?.(path, reason);
  }

  /**
   * Run a step. Steps asked for while a commit is in flight wait and then share the next
   * commit (group commit): each runs on the reads and changes of those before it, a step
   * that throws is rolled back alone, and when another writer wins the commit every step of
   * the group runs again on fresh reads.
   */
  step<T>(fn: (tx: RecordTx) => Promise<T>): Promise<T> {
    this.check();
    return this.#steps.push(fn);
  }

  /** Let the steps asked for so far finish. */
  idle(): Promise<void> {
    return this.#steps.idle();
  }

  // Not the shared `runSteps` (records/steps.ts), which rejects a failed step at once: here
  // a step that failed may have read what another writer changed, and if that writer wins
  // the commit the whole group runs again on fresh reads, that step too; and a group larger
  // than one commit's room leaves steps for the next.
  async #run(group: PendingStep[]): Promise<void> {
    for (let conflicts = 0;; conflicts++) {
      this.check();
      const tx = new KvTx(this);
      const done: [PendingStep, unknown][] = [];
      const failed: [PendingStep, unknown][] = [];
      const later: PendingStep[] = [];
      for (const step of group) {
        if (done.length + failed.length > 0 && !tx.roomForStep()) {
          later.push(step);
          continue;
        }
        const mark = tx.mark();
        try {
          done.push([step, await step.fn(tx)]);
        } catch (error) {
          mark();
          failed.push([step, error]);
        }
      }
      let ok: boolean;
      try {
        ok = await tx.commit();
      } catch (error) {
        this.seqSeen = undefined;
        if (error instanceof StepTooLarge && done.length > 1) {
          // Too much for one commit together: each on its own.
          for (const step of group) {
            await this.#run([step]).catch((e) => step.reject(e));
          }
          return;
        }
        for (const [step] of done) step.reject(error);
        for (const [step, e] of failed) step.reject(e);
        this.#steps.requeue(later);
        return;
      }
      if (ok) {
        for (const [step, out] of done) step.resolve(out);
        for (const [step, e] of failed) step.reject(e);
        this.#steps.requeue(later);
        return;
      }
      this.seqSeen = undefined;
      if (conflicts >= MAX_CONFLICTS) {
        throw new OmniQError(`kv: a step lost to other writers ${conflicts} times; gave up`);
      }
      await delay(Math.min(1 + conflicts, 20) * Math.random());
    }
  }

  decodeRow(entry: KvEntryMaybe): Row | undefined {
    if (entry.versionstamp === null) return undefined;
    return readable(() => decodeRow(entry.value), (why) => this.corrupt(keyText(entry.key), why));
  }

  decodeSchedule(entry: KvEntryMaybe): StoredSchedule | undefined {
    if (entry.versionstamp === null) return undefined;
    return readable(
      () => decodeSchedule(entry.value),
      (why) => this.corrupt(keyText(entry.key), why),
    );
  }

  async readRow(id: string): Promise<Row | undefined> {
    return this.decodeRow(await this.kv.get(this.key("t", id)));
  }

  async allRows(): Promise<Row[]> {
    const rows: Row[] = [];
    for await (const entry of this.kv.list({ prefix: this.key("t") }, { batchSize: 500 })) {
      const row = this.decodeRow(entry);
      if (row) rows.push(row);
    }
    return rows.sort((a, b) => a.seq - b.seq);
  }

  async allSchedules(): Promise<StoredSchedule[]> {
    const out: StoredSchedule[] = [];
    for await (const entry of this.kv.list({ prefix: this.key("s") })) {
      const s = this.decodeSchedule(entry);
      if (s) out.push(s);
    }
    return out;
  }

  async entries(dir: string, limit?: number, after?: string): Promise<string[]> {
    const names: string[] = [];
    const prefix = this.key("i", ...dir.split("/"));
    const options = limit === undefined
      ? { batchSize: 500 }
      : { limit, batchSize: Math.min(500, limit) };
    // A start key is inclusive: the smallest key after `after` is `after` and a NUL.
    const selector = after === undefined
      ? { prefix }
      : { prefix, start: [...prefix, `${after}\0`] };
    for await (const entry of this.kv.list(selector, options)) {
      const name = entry.key[entry.key.length - 1];
      if (typeof name === "string") names.push(name);
    }
    return names;
  }

  /** The keys of a result's parts. */
  async resultParts(taskId: string): Promise<KvKey[]> {
    const keys: KvKey[] = [];
    for await (const e of this.kv.list({ prefix: this.key("rv", taskId) })) keys.push(e.key);
    return keys;
  }

  /** Add the writes of a result to an atomic operation; how many mutations. */
  putResult(op: KvAtomic, r: StoredResult): number {
    const { value, ...rest } = r;
    const record: Obj = { v: RECORD_VERSION, ...rest };
    const options = r.expiresAt === undefined
      ? undefined
      : { expireIn: Math.max(1, r.expiresAt - Date.now()) };
    let n = 1;
    if (value !== undefined && value.length > PART) {
      if (value.length > KV_MAX_RESULT) {
        throw new OmniQError(
          `kv: a result of ${value.length} bytes is over this engine's limit of ${KV_MAX_RESULT}`,
        );
      }
      record.parts = Math.ceil(value.length / PART);
      for (let i = 0; i * PART < value.length; i++) {
        op.set(this.key("rv", r.taskId, i), value.subarray(i * PART, (i + 1) * PART), options);
        n++;
      }
    } else if (value !== undefined) record.value = value;
    op.set(this.key("r", r.taskId), record, options);
    return n;
  }

  async readResult(taskId: string): Promise<StoredResult | undefined> {
    const entry = await this.kv.get(this.key("r", taskId));
    if (entry.versionstamp === null) return undefined;
    try {
      const r = entry.value as Obj;
      if (!r || typeof r !== "object") throw new Error("not a record");
      checkRecordVersion(r.v, "a result record", true);
      if (typeof r.taskId !== "string" || typeof r.state !== "string") {
        throw new Error("not a result record");
      }
      const { v: _v, parts, ...rest } = r;
      const out = rest as unknown as StoredResult;
      if (typeof parts === "number") {
        const chunks: Uint8Array[] = [];
        for (let i = 0; i < parts; i += 10) {
          const keys = Array.from(
            { length: Math.min(10, parts - i) },
            (_, j) => this.key("rv", taskId, i + j),
          );
          for (const e of await this.kv.getMany(keys)) {
            if (!(e.value instanceof Uint8Array)) throw new Error("a part of the value is missing");
            chunks.push(e.value);
          }
        }
        const value = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
        let at = 0;
        for (const c of chunks) {
          value.set(c, at);
          at += c.length;
        }
        out.value = value;
      }
      return out;
    } catch (error) {
      if (error instanceof OmniQError) throw error;
      this.corrupt(keyText(entry.key), error);
      return undefined;
    }
  }
}

/** One step: reads with their versionstamps, changes committed in one checked atomic. */
