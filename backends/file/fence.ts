/**
 * The lock of a `file:` store on a {@linkcode ConditionalStorage} (an object store), which
 * is also the store's commit point.
 *
 * The lock is one blob, `lock`, holding its holder's token, a beat counter and the journal
 * of the commit in progress. Every change of it is conditional on the version its holder
 * last wrote: it is created only when absent, kept alive by rewriting it (a new version)
 * every `LOCK_HEARTBEAT_MS`, taken over from a crashed holder only on the very
 * version that was seen unchanged for {@linkcode LOCK_STALE_MS} (so of two breakers one
 * wins), and deleted only on its own version. A commit writes its journal into the lock on
 * the holder's version: that write succeeds only while nobody has taken the lock over, so
 * a holder that paused past the stale time (and lost the lock) commits nothing. The changes
 * themselves are then made on the versions the step read (see `journal.ts`), so a holder
 * that resumes part way through making them, after another process took over and finished
 * its commit from the journal, cannot overwrite anything newer. No comparison of clocks
 * between machines is involved: staleness is a version that did not change for a while as
 * seen by the waiter's own clock.
 *
 * @module
 */

import { delay } from "../../src/kit/async.ts";
import { OmniQError } from "../../src/errors.ts";
import { decodeJournal, encodeJournal, type Op } from "./journal.ts";
import { LOCK_STALE_MS } from "./options.ts";
import type { ConditionalStorage } from "./storage.ts";

const LOCK = "lock";
const EMPTY_JOURNAL = new Uint8Array(0);

/** The lock's bytes: `<token> <beat>\n<journal>`. */
function lockBytes(token: string, beat: number, journal: Uint8Array): Uint8Array {
  const head = new TextEncoder().encode(`${token} ${beat}\n`);
  const out = new Uint8Array(head.length + journal.length);
  out.set(head);
  out.set(journal, head.length);
  return out;
}

/** The journal a lock's bytes carry (none when empty; a foreign blob throws). */
function lockJournal(bytes: Uint8Array): Op[] {
  const nl = bytes.indexOf(10);
  if (nl < 0) throw new Error("not an OmniQ lock");
  const journal = bytes.subarray(nl + 1);
  return journal.length === 0 ? [] : decodeJournal(journal);
}

/** Thrown by a step whose process lost the store's lock (it paused past the stale time). */
export class LockLostError extends OmniQError {
  /** The error's name. */
  override readonly name = "LockLostError";
}

/** One holding of the lock, from acquire to release. */
export class FencedHold {
  #st: ConditionalStorage;
  #token: string;
  #beat = 0;
  #version: string;
  #journal: Uint8Array;
  #wrote: number;
  #chain: Promise<unknown> = Promise.resolve();
  /** Set when a write of the lock found another version: nothing more may be committed. */
  lost = false;
  /** Set when a commit stopped part way: the lock stays, for the next holder to finish. */
  abandoned = false;
  /** The journal of a crashed holder taken over with the lock, to be finished first. */
  readonly pending: Op[];

  constructor(
    st: ConditionalStorage,
    token: string,
    version: string,
    journal: Uint8Array,
    pending: Op[],
  ) {
    this.#st = st;
    this.#token = token;
    this.#version = version;
    this.#journal = journal;
    this.#wrote = Date.now();
    this.pending = pending;
  }

  /** Whether the lock was written recently enough that nobody can have taken it over. */
  fresh(): boolean {
    return !this.lost && Date.now() - this.#wrote < LOCK_STALE_MS / 2;
  }

  /** One write of the lock at a time, each on the version of the one before. */
  #write(journal: Uint8Array): Promise<void> {
    const next = this.#chain.then(async () => {
      if (this.lost) throw this.#lostError();
      const started = Date.now();
      const v = await this.#st.putIf(
        LOCK,
        lockBytes(this.#token, ++this.#beat, journal),
        this.#version,
      );
      if (v === undefined) {
        this.lost = true;
        throw this.#lostError();
      }
      this.#version = v;
      this.#journal = journal;
      // Fresh from when the write was sent: it may have landed any time after.
      this.#wrote = started;
    });
    this.#chain = next.catch(() => {});
    return next;
  }

  #lostError(): LockLostError {
    return new LockLostError(
      `the lock of ${this.#st.location} was taken over by another process (this one paused ` +
        `for longer than ${LOCK_STALE_MS} ms); the step made no change, run it again`,
    );
  }

  /** Keep the lock alive (a new version, same journal). */
  beat(): Promise<void> {
    return this.#write(this.#journal);
  }

  /** The commit point: the journal of `ops` into the lock, on the holder's version. */
  commit(ops: Op[]): Promise<void> {
    return this.#write(encodeJournal(ops));
  }

  /** Release: delete the lock on the holder's version (kept when a commit was abandoned). */
  async release(): Promise<void> {
    await this.#chain;
    if (this.lost || this.abandoned) return;
    await this.#st.deleteIf(LOCK, this.#version);
  }
}

/** Taking the lock of a conditional store, for one process. */
export class FencedLock {
  #st: ConditionalStorage;
  #writer: string;
  /** The version of another holder's lock first seen, and when (by this clock). */
  #seen?: { version: string; since: number };

  /**
   * @param st The store.
   * @param writer This process's name, the start of its tokens.
   */
  constructor(st: ConditionalStorage, writer: string) {
    this.#st = st;
    this.#writer = writer;
  }

  /** Wait for the lock and take it, or take over a crashed holder's. */
  async acquire(signal?: () => boolean): Promise<FencedHold> {
    const token = `${this.#writer}-${crypto.randomUUID()}`;
    for (let pause = 1;; pause = Math.min(pause * 2, 32)) {
      if (signal?.()) {
        throw new OmniQError(`${this.#st.location}: closed while waiting for the lock`);
      }
      const made = await this.#st.putIf(LOCK, lockBytes(token, 0, EMPTY_JOURNAL), null);
      if (made !== undefined) {
        this.#seen = undefined;
        return new FencedHold(this.#st, token, made, EMPTY_JOURNAL, []);
      }
      const held = await this.#st.readVersioned(LOCK);
      if (held === undefined) continue;
      const now = Date.now();
      if (this.#seen?.version !== held.version) this.#seen = { version: held.version, since: now };
      else if (now - this.#seen.since > LOCK_STALE_MS) {
        // Unchanged for longer than a live holder's heartbeat allows: take it over on that
        // version, carrying its journal, so a crash while finishing it leaves it again.
        let pending: Op[];
        let journal: Uint8Array;
        try {
          pending = lockJournal(held.data);
          journal = pending.length ? encodeJournal(pending) : EMPTY_JOURNAL;
        } catch {
          // A foreign blob where the lock should be: replaced, with nothing to finish.
          pending = [];
          journal = EMPTY_JOURNAL;
        }
        const v = await this.#st.putIf(LOCK, lockBytes(token, 0, journal), held.version);
        this.#seen = undefined;
        if (v !== undefined) return new FencedHold(this.#st, token, v, journal, pending);
        continue;
      }
      await delay(pause * (0.5 + Math.random()));
    }
  }
}
