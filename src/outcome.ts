/**
 * The outcome service: what becomes of an attempt once its handler is done. Every worker
 * type (async, thread and process pools alike) ends an attempt through it, and
 * `OmniQ.retry` runs an ended task again through it, so the policy lives once:
 *
 * - complete: the result, dated when the handler finished, with its TTL;
 * - fail: a permanent error (an unknown task, a value the codec cannot carry) or a last
 *   attempt ends the task `failed`, or moves it to its dead-letter queue when it has one;
 *   any other error schedules a retry after the backoff;
 * - hand back: a worker that stops before the handler finishes returns the task to its
 *   queue, due at once (the attempt still counts);
 * - with results in another store, the result is written before the fenced state change,
 *   after a renewal proves the claim is still held; on a manual retry the old result goes
 *   before the task is queued again.
 *
 * Each write is fenced by the claim token and tried again on a passing fault (a lost
 * connection, a busy lock), so a handler's work is not thrown away and a second try after
 * one that took effect changes nothing.
 *
 * @module
 */

import type { ClaimedTask, Effects, StoredResult } from "./backend.ts";
import { OmniQError, SerializationError, serializeError } from "./errors.ts";
import type { WorkerHost } from "./host.ts";
import { retryDelay } from "./options.ts";
import { delay } from "./kit/async.ts";

/** Errors no retry can fix: the task fails at once. */
const PERMANENT = new Set(["UnknownTaskError", "SerializationError"]);

/**
 * How many times an attempt's outcome is written before the service gives up on it (the
 * lease then lapses and the task runs again).
 */
const OUTCOME_TRIES = 5;

/** The error a handed-back attempt records. */
export const HANDED_BACK: OmniQError = new OmniQError(
  "the worker stopped before the task finished",
);

/**
 * What {@linkcode Outcomes.fail} did: ended the task, scheduled a retry at `retryAt`, or
 * moved the task to its dead-letter queue.
 */
export type FailVerdict =
  | { retryAt: number }
  | { ended: true }
  | { deadLettered: string }
  | undefined;

/** Ends attempts and re-runs ended tasks, for every worker type. */
export class Outcomes {
  #host: WorkerHost;
  #lease: number;

  /**
   * @param host The stores and the effects sink.
   * @param lease The lease a renewal asks for before a split-store result is written.
   */
  constructor(host: WorkerHost, lease: number) {
    this.#host = host;
    this.#lease = lease;
  }

  /** The attempt returned `value` (encoded), at `finishedAt`. */
  async complete(task: ClaimedTask, value: Uint8Array, finishedAt: number): Promise<void> {
    const host = this.#host;
    const result: StoredResult = {
      taskId: task.id,
      state: "completed",
      value,
      completedAt: finishedAt,
    };
    if (task.resultTtl !== undefined) result.expiresAt = finishedAt + task.resultTtl;
    if (!(await this.#storeResultFirst(task, result))) return;
    await this.#settle(task, () => host.queue.complete(task.id, task.token, result));
  }

  /**
   * The attempt threw `thrown` at `finishedAt`: retry after the backoff, or end the task.
   *
   * @returns When a retry was scheduled, its time; `undefined` when the claim was lost.
   */
  async fail(task: ClaimedTask, thrown: unknown, finishedAt: number): Promise<FailVerdict> {
    const host = this.#host;
    const error = serializeError(thrown);
    const permanent = PERMANENT.has(error.name) || thrown instanceof SerializationError;
    if (!permanent && task.attempts < task.maxAttempts) {
      const retryAt = host.clock.now() + retryDelay(task.backoff, task.attempts);
      const took = await this.#settle(
        task,
        () => host.queue.fail(task.id, task.token, { error, retryAt }),
      );
      return took ? { retryAt } : undefined;
    }
    if (task.deadLetter !== undefined) {
      const to = task.deadLetter;
      const took = await this.#settle(
        task,
        () => host.queue.fail(task.id, task.token, { error, deadLetter: to }),
      );
      return took ? { deadLettered: to } : undefined;
    }
    const result: StoredResult = {
      taskId: task.id,
      state: "failed",
      error,
      completedAt: finishedAt,
    };
    if (task.resultTtl !== undefined) result.expiresAt = finishedAt + task.resultTtl;
    if (!(await this.#storeResultFirst(task, result))) return undefined;
    const took = await this.#settle(
      task,
      () => host.queue.fail(task.id, task.token, { error, result }),
    );
    return took ? { ended: true } : undefined;
  }

  /** The worker stops before the handler finished: back to the queue, due at once. */
  async handBack(task: ClaimedTask): Promise<void> {
    const error = { name: "WorkerStopped", message: HANDED_BACK.message };
    await this.#settle(
      task,
      () => this.#host.queue.fail(task.id, task.token, { error, retryAt: this.#host.clock.now() }),
    );
  }

  /**
   * Run a failed, cancelled or expired task again, attempts reset. With results in another
   * store, the old result goes first, so a wait never reads it as the new run's.
   *
   * @returns Whether the task was queued again.
   */
  async rerun(id: string): Promise<boolean> {
    const host = this.#host;
    const effects = await host.queue.retry(id);
    if (!effects) return false;
    if (!host.resultsInline) await host.results.delete([id]);
    await host.apply(effects);
    return true;
  }

  /**
   * With results in another store, write the result before the fenced state change; renew
   * first, so a worker that lost its lease does not overwrite the new attempt's result.
   */
  async #storeResultFirst(task: ClaimedTask, result: StoredResult): Promise<boolean> {
    const host = this.#host;
    if (host.resultsInline) return true;
    if (!(await host.queue.renew(task.id, task.token, this.#lease))) return false;
    await host.putResult(result);
    return true;
  }

  /**
   * Write an outcome, trying again after an error with a growing pause.
   *
   * @returns Whether the change took effect (the claim was still held).
   */
  async #settle(task: ClaimedTask, change: () => Promise<Effects | undefined>): Promise<boolean> {
    for (let tries = 1, pause = 50;; tries++, pause = Math.min(pause * 4, 2_000)) {
      let effects: Effects | undefined;
      try {
        effects = await change();
      } catch (error) {
        if (tries >= OUTCOME_TRIES) throw error;
        this.#host.report(error, `task ${task.id}`);
        await delay(pause);
        continue;
      }
      if (effects) await this.#host.apply(effects);
      return effects !== undefined;
    }
  }
}
