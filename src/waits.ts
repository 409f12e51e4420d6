/**
 * Waiting for a task to end: read its result, and until there is one sleep with a growing
 * pause (up to the poll interval), woken at once when this process stores the task's end
 * or, where the result store can tell, when another process does.
 *
 * @module
 */

import type { ResultStore, TaskQueue } from "./backend.ts";
import { OmniQError, TaskNotFoundError, TimeoutError } from "./errors.ts";
import { delay } from "./kit/async.ts";
import { resultValue } from "./records.ts";

/** The waits of one `OmniQ`, by task id. */
export class Waits {
  #queue: TaskQueue;
  #results: ResultStore;
  #pollInterval: number;
  #waiters = new Map<string, Set<() => void>>();
  #closed = false;

  /**
   * @param queue Where a task's existence is checked.
   * @param results Where its end is read.
   * @param pollInterval The longest pause between two reads.
   */
  constructor(queue: TaskQueue, results: ResultStore, pollInterval: number) {
    this.#queue = queue;
    this.#results = results;
    this.#pollInterval = pollInterval;
  }

  /**
   * Wait for a task's end and give what a wait on it gives (its value, or its error).
   *
   * @param id The task id.
   * @param timeout The most to wait (ms), or `undefined` for no limit.
   * @param signal Ends the wait by throwing its reason.
   */
  async wait<R>(id: string, timeout: number | undefined, signal?: AbortSignal): Promise<R> {
    const deadline = timeout === undefined ? Infinity : Date.now() + timeout;
    let pause = 5;
    let checkedExists = false;
    let unwatch: (() => void) | undefined;
    try {
      for (;;) {
        const result = await this.#results.get(id);
        if (result) return resultValue<R>(result);
        if (!checkedExists) {
          const task = await this.#queue.get(id);
          if (!task) throw new TaskNotFoundError(`no task with id "${id}"`);
          checkedExists = true;
          // A result stored by another process wakes this wait at once, where the store can
          // tell (the loop reads the result again after the watch starts).
          unwatch = this.#results.watch?.(id, () => this.wake(id));
        }
        const left = deadline - Date.now();
        if (left <= 0) {
          throw new TimeoutError(`waiting for task ${id}: not done after ${timeout}ms`);
        }
        signal?.throwIfAborted();
        await this.#pause(id, Math.min(pause, left), signal);
        pause = Math.min(pause * 2, this.#pollInterval);
        if (this.#closed) throw new OmniQError("this OmniQ was closed while waiting");
      }
    } finally {
      unwatch?.();
    }
  }

  /** Wake the waits for a task (they read its result again). */
  wake(id: string): void {
    for (const done of [...(this.#waiters.get(id) ?? [])]) done();
  }

  /** End every wait (each throws that the queue closed). */
  close(): void {
    this.#closed = true;
    for (const set of this.#waiters.values()) for (const notify of [...set]) notify();
  }

  async #pause(id: string, ms: number, signal?: AbortSignal): Promise<void> {
    let wakers = this.#waiters.get(id);
    if (!wakers) this.#waiters.set(id, wakers = new Set());
    await delay(ms, { signal, wakers });
    if (wakers.size === 0 && this.#waiters.get(id) === wakers) this.#waiters.delete(id);
  }
}
