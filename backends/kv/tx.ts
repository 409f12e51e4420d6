/**
 * One step (or group of steps) of a `kv:` store: the shared staging
 * (`backends/records/staging.ts`) over KV reads, each read remembered with its versionstamp,
 * and its commit, one `kv.atomic()` that checks every one of them, so a commit that lost to
 * another writer fails whole and the group runs again on fresh reads.
 *
 * @module
 */

import type { StoredSchedule } from "../../src/backend.ts";
import { encName } from "../../src/kit/encoding.ts";
import { holdsKey } from "../../src/kit/policy.ts";
import type { Row } from "../records/space.ts";
import {
  cursorsOf,
  indexMoves,
  keyMoves,
  pausedOf,
  type ReadState,
  readState,
  sameRow,
  type Seqs,
  StagedTx,
} from "../records/staging.ts";
import { encodeRow, encodeSchedule, StepTooLarge } from "./codec.ts";
import { isLocked, keyText, type KvEntryMaybe, type KvKey } from "./connection.ts";
import { GROUP_ROOM, MAX_BYTES, MAX_CHECKS, MAX_MUTATIONS, ROOM } from "./options.ts";
import type { KvSpace } from "./space.ts";

/** One step: reads with their versionstamps, changes committed in one checked atomic. */
export class KvTx extends StagedTx {
  #s: KvSpace;
  #checks = new Map<string, { key: KvKey; versionstamp: string | null }>();
  #before = new Map<string, ReadState & { snap: Row }>();
  #owners = new Map<string, string | undefined>();
  /** Records read ahead (not yet checked: a record counts as read when the step uses it). */
  #ahead = new Map<string, KvEntryMaybe>();
  /** The sequences, read ahead (checked once the step uses them). */
  #seqAhead?: Promise<KvEntryMaybe>;
  /** The sequences record as this step read it. */
  #seqEntry?: KvEntryMaybe;

  constructor(space: KvSpace) {
    super(12);
    this.#s = space;
  }

  /** Whether a group commit may take another step. */
  roomForStep(): boolean {
    return this.#checks.size < GROUP_ROOM;
  }

  /** Index entries this transaction adds and deletes (by comparing rows with their reads). */
  #pendingIndex(): { add: Set<string>; del: Set<string> } {
    const add = new Set<string>(this.dependents);
    const del = new Set<string>();
    for (const [id, row] of this.rows) {
      const before = this.#before.get(id)?.index ?? [];
      if (this.removed.has(id) || !row) {
        for (const k of before) del.add(k);
        continue;
      }
      const moves = indexMoves(before, row);
      for (const k of moves.add) add.add(k);
      for (const k of moves.del) del.add(k);
    }
    for (const k of this.dropped) if (!add.has(k)) del.add(k);
    for (const k of add) del.delete(k);
    return { add, del };
  }

  async #get(key: KvKey): Promise<KvEntryMaybe> {
    const entry = await this.#s.kv.get(key);
    this.#checks.set(keyText(key), { key, versionstamp: entry.versionstamp });
    return entry;
  }

  /**
   * Read these task records ahead, ten to a `getMany`, and the sequences beside them when
   * the step has not read them yet (nearly every step gives a sequence number or an event
   * id): one round of reads where there were two in a row.
   */
  async prefetch(ids: string[]): Promise<void> {
    const want = [...new Set(ids)].filter((id) => !this.rows.has(id) && !this.#ahead.has(id));
    const reads: Promise<void>[] = [];
    // The sequences, unless this handle knows them from its last commit: in the first
    // `getMany` (a read of one more key, not one more read).
    let seq = this.seq === undefined && this.#seqAhead === undefined && !this.#s.seqSeen;
    for (let i = 0; i < want.length || seq;) {
      const withSeq = seq;
      // A `getMany` reads at most ten keys.
      const part = want.slice(i, i + (withSeq ? 9 : 10));
      i += part.length;
      const keys = part.map((id) => this.#s.key("t", id));
      if (withSeq) keys.push(this.#s.key("meta", "seq"));
      seq = false;
      const read = this.#s.kv.getMany(keys);
      if (withSeq) {
        const ahead = read.then((entries) => entries[part.length]);
        ahead.catch(() => {}); // a failed read fails the step through `reads`
        this.#seqAhead = ahead;
      }
      reads.push(read.then((entries) => part.forEach((id, j) => this.#ahead.set(id, entries[j]))));
    }
    await Promise.all(reads);
  }

  protected async readRow(id: string): Promise<Row | undefined> {
    const key = this.#s.key("t", id);
    let entry = this.#ahead.get(id);
    if (entry) {
      this.#ahead.delete(id);
      this.#checks.set(keyText(key), { key, versionstamp: entry.versionstamp });
    } else entry = await this.#get(key);
    const row = this.#s.decodeRow(entry);
    if (row) this.#before.set(id, { ...readState(row), snap: { ...row } });
    return row;
  }

  protected async readSchedule(id: string): Promise<StoredSchedule | undefined> {
    return this.#s.decodeSchedule(await this.#get(this.#s.key("s", id)));
  }

  protected async readSeqs(): Promise<Seqs> {
    const key = this.#s.key("meta", "seq");
    // Read ahead, or as this handle's last commit left it (either is checked on commit),
    // or read now.
    let entry: KvEntryMaybe;
    const known = this.#seqAhead ? await this.#seqAhead : this.#s.seqSeen;
    if (known) {
      entry = known;
      this.#seqAhead = undefined;
      this.#checks.set(keyText(key), { key, versionstamp: entry.versionstamp });
    } else entry = await this.#get(key);
    this.#seqEntry = entry;
    const raw = entry.value as
      | { task?: unknown; event?: unknown; paused?: unknown; cursors?: unknown }
      | null;
    if (!raw || typeof raw.task !== "number" || typeof raw.event !== "number") {
      return { task: 0, event: 0 };
    }
    const seqs: Seqs = { task: raw.task, event: raw.event };
    const paused = pausedOf(raw);
    if (paused) seqs.paused = paused;
    const cursors = cursorsOf(raw);
    if (cursors) seqs.cursors = cursors;
    return seqs;
  }

  async entries(dir: string, limit?: number, after?: string): Promise<string[]> {
    // Stored entries, with this transaction's own changes (of earlier steps in the group).
    const { add, del } = this.#pendingIndex();
    const prefix = `${dir}/`;
    const added: string[] = [];
    let deleted = 0;
    for (const k of add) if (k.startsWith(prefix)) added.push(k.slice(prefix.length));
    for (const k of del) if (k.startsWith(prefix)) deleted++;
    const stored = await this.#s.entries(
      dir,
      limit === undefined ? undefined : limit + deleted,
      after,
    );
    const names = new Set(stored.filter((n) => !del.has(prefix + n)));
    for (const n of added) if (!n.includes("/") && (after === undefined || n > after)) names.add(n);
    return [...names].sort().slice(0, limit);
  }

  async #owner(key: string): Promise<string | undefined> {
    if (!this.#owners.has(key)) {
      const entry = await this.#get(this.#s.key("k", key));
      this.#owners.set(key, typeof entry.value === "string" ? entry.value : undefined);
    }
    return this.#owners.get(key);
  }

  async liveKeyOwner(key: string): Promise<string | undefined> {
    const now = Date.now();
    // A task of an earlier step in this group may hold it.
    for (const row of this.rows.values()) {
      if (row && row.key === key && holdsKey(row, now) && !this.removed.has(row.id)) {
        return row.id;
      }
    }
    const id = await this.#owner(key);
    if (id === undefined) return undefined;
    const row = await this.row(id);
    return row && holdsKey(row, now) && row.key === key ? id : undefined;
  }

  override room(): boolean {
    return this.#checks.size < ROOM;
  }

  #ix(path: string): KvKey {
    return this.#s.key("i", ...path.split("/"));
  }

  /** Commit the step; `false` when another writer changed what it read. */
  async commit(): Promise<boolean> {
    const s = this.#s;
    const op = s.kv.atomic();
    let mutations = 0;
    let bytes = 0;
    const set = (key: KvKey, value: unknown) => {
      op.set(key, value);
      mutations++;
    };
    const del = (key: KvKey) => {
      op.delete(key);
      mutations++;
    };
    const keys = new Map<string, string | null>();
    for (const [id, row] of this.rows) {
      const before = this.#before.get(id);
      if (this.removed.has(id)) {
        del(s.key("t", id));
        for (const name of await s.entries(`deps/${encName(id)}`)) {
          del(this.#ix(`deps/${encName(id)}/${name}`));
        }
        if (before?.live && before.key !== undefined && (await this.#owner(before.key)) === id) {
          if (!keys.has(before.key)) keys.set(before.key, null);
        }
        continue;
      }
      if (!row || (before && sameRow(before.snap, row))) continue;
      set(s.key("t", id), encodeRow(row));
      bytes += row.payload.length + 1_024;
      const moves = keyMoves(before, row);
      if (moves.release !== undefined) {
        if ((await this.#owner(moves.release)) === id && !keys.has(moves.release)) {
          keys.set(moves.release, null);
        }
      }
      if (moves.take !== undefined) {
        await this.#owner(moves.take); // checked: a concurrent claim of the key fails this commit
        keys.set(moves.take, id);
      }
    }
    for (const [key, id] of keys) {
      if (id === null) del(s.key("k", key));
      else set(s.key("k", key), id);
    }
    const { add, del: gone } = this.#pendingIndex();
    for (const path of add) set(this.#ix(path), true);
    for (const path of gone) del(this.#ix(path));
    for (const r of this.results) {
      mutations += s.putResult(op, r);
      bytes += (r.value?.length ?? 0) + 1_024;
    }
    for (const id of this.unresults) {
      del(s.key("r", id));
      for (const key of await s.resultParts(id)) del(key);
    }
    for (const [id, sched] of this.putSchedules) set(s.key("s", id), encodeSchedule(sched));
    for (const id of this.unschedules) del(s.key("s", id));
    if (this.seqDirty && this.seq) set(s.key("meta", "seq"), this.seq);
    for (const e of this.events) {
      set(s.key("e", e.id), e);
      if (e.taskId !== undefined) set(s.key("et", e.taskId, e.id), true);
    }
    if (this.#checks.size > MAX_CHECKS || mutations > MAX_MUTATIONS || bytes > MAX_BYTES) {
      throw new StepTooLarge(
        `kv: this step reads ${this.#checks.size} records and makes ${mutations} changes of ` +
          `about ${bytes} bytes; one Deno KV commit allows ${MAX_CHECKS} checks, ` +
          `${MAX_MUTATIONS} changes and ${MAX_BYTES} bytes ` +
          `(a task with too many dependencies or dependents?)`,
      );
    }
    op.check(...this.#checks.values());
    try {
      const result = await op.commit();
      if (result.ok) {
        const key = s.key("meta", "seq");
        if (this.seqDirty && this.seq) {
          s.seqSeen = result.versionstamp === undefined
            ? undefined
            : { key, value: { ...this.seq }, versionstamp: result.versionstamp };
        } else if (this.#seqEntry) s.seqSeen = this.#seqEntry;
      }
      return result.ok;
    } catch (error) {
      // Another connection to the file holds SQLite's write lock: like a lost check, retry.
      if (isLocked(error)) return false;
      throw error;
    }
  }
}
