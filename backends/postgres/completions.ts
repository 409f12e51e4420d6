/**
 * The batched completion path of the PostgreSQL engine: completions that arrive in the
 * same turn of the event loop (the tasks of one claim), or while two statements are on
 * their way, share one statement outside a transaction; each is still fenced by its own
 * token. A completion the statement leaves out (a task with dependents to release, or a
 * stale token) goes on to the shared step in a transaction.
 *
 * @module
 */

import { setImmediate } from "node:timers";
import type { Effects, StoredResult } from "../../src/backend.ts";
import { RECORD_VERSION, taskEvent } from "../../src/kit/policy.ts";
import { toRef } from "../sql/rows.ts";
import { type Connection, hex, json, run } from "./connection.ts";
import * as q from "./queries.ts";

/** How many completion statements one engine has on their way at once. */
const COMPLETIONS_IN_FLIGHT = 2;
/** The most completions one statement carries. */
const COMPLETION_BATCH = 500;

/** A completion waiting to be sent with others. */
interface Completion {
  id: string;
  token: string;
  result: StoredResult;
  resolve: (done: Effects | undefined) => void;
  reject: (error: unknown) => void;
}

/** Gathers completions into shared statements. */
export class Completions {
  readonly #c: Connection;
  /** Completions waiting for a statement in flight to return; then sent together. */
  #waiting: Completion[] = [];
  #inFlight = 0;
  /** Whether a send is due on the next turn of the event loop. */
  #gathering = false;

  constructor(c: Connection) {
    this.#c = c;
  }

  /**
   * Complete an attempt of a task no other task depends on, with others.
   *
   * @returns The effects, or `undefined` when the shared statement left it out (the caller
   *   then completes it in a transaction of its own, which also tells a stale token).
   */
  add(id: string, token: string, result: StoredResult): Promise<Effects | undefined> {
    return new Promise<Effects | undefined>((resolve, reject) => {
      this.#waiting.push({ id, token, result, resolve, reject });
      if (this.#gathering) return;
      // Sent on the next turn of the event loop, not now: the tasks of one claim end in the
      // same turn, so their completions share a statement, and the worker's next claim
      // finds all their slots free (a completion sent alone would split every batch).
      this.#gathering = true;
      setImmediate(() => {
        this.#gathering = false;
        this.#send();
      });
    });
  }

  /**
   * Send the waiting completions as one statement, unless COMPLETIONS_IN_FLIGHT are on
   * their way: then they wait and go with the next.
   */
  #send(): void {
    if (this.#inFlight >= COMPLETIONS_IN_FLIGHT || !this.#waiting.length) return;
    // One statement updates each task once: a second completion of a task waits its turn.
    const batch: Completion[] = [];
    const rest: Completion[] = [];
    const ids = new Set<string>();
    for (const w of this.#waiting) {
      if (ids.has(w.id) || batch.length >= COMPLETION_BATCH) rest.push(w);
      else {
        ids.add(w.id);
        batch.push(w);
      }
    }
    this.#waiting = rest;
    this.#inFlight++;
    this.#complete(batch).then(
      (done) => {
        for (const w of batch) w.resolve(done.get(w.id));
      },
      (error) => {
        for (const w of batch) w.reject(error);
      },
    ).finally(() => {
      this.#inFlight--;
      this.#send();
    });
  }

  /**
   * The completions of tasks no other task depends on, in one statement outside a
   * transaction (atomic by itself): the fenced updates, their results and their events,
   * in one round trip.
   */
  async #complete(batch: Completion[]): Promise<Map<string, Effects>> {
    const c = this.#c;
    const { results: kept, events: logged } = c.attached;
    const rows = await c.write("complete", (db) =>
      run(db, q.completeAlone(c.s, kept, logged), [
        batch.map((w) => w.id),
        batch.map((w) => w.token),
        batch.map((w) => w.result.completedAt),
        batch.map((w) => w.result.state),
        batch.map((w) => hex(w.result.value)),
        batch.map((w) => json(w.result.error)),
        batch.map((w) => w.result.expiresAt ?? null),
        RECORD_VERSION,
      ]));
    // Each event is dated when its handler finished (the worker frees the slot then).
    const finished = new Map(batch.map((w) => [w.id, w.result.completedAt]));
    const done = new Map<string, Effects>();
    for (const row of rows) {
      const event = taskEvent("completed", toRef(row), finished.get(row.id)!);
      done.set(row.id, {
        events: [logged ? { ...event, id: String(row.event_id) } : event],
        results: [],
      });
    }
    return done;
  }
}
