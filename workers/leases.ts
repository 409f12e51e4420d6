/**
 * One timer renews the leases of all of a worker's running attempts. A timer per attempt
 * cost a worker of no-op tasks about a twentieth of its time (one `setInterval` made and
 * cleared per task); most attempts end before their first renewal is due, and this keeps
 * them from touching a timer at all.
 *
 * An attempt is renewed once a third of its lease has passed since its claim or its last
 * renewal. The timer looks every sixth of a lease, so a renewal goes out at most half a
 * lease after the previous one, and the lease never runs out while its worker lives.
 *
 * @module
 */

import type { ClaimedTask } from "../src/backend.ts";
import type { WorkerHost } from "../src/host.ts";

/** One held lease. */
interface Held {
  task: ClaimedTask;
  /** When it was claimed or last renewed (`Date.now()`). */
  renewedAt: number;
  /** A renewal of it is out. */
  renewing: boolean;
  /** Called once when a renewal finds the claim gone (re-claimed elsewhere, or cancelled). */
  lost: () => void;
}

/** The leases one worker holds, renewed by one timer. */
export class LeaseKeeper {
  #host: WorkerHost;
  #lease: number;
  #every: number;
  #held = new Map<ClaimedTask, Held>();
  #timer: ReturnType<typeof setInterval> | undefined;

  /**
   * @param host The queue to renew through, and where errors are reported.
   * @param lease The lease length each renewal asks for, ms.
   */
  constructor(host: WorkerHost, lease: number) {
    this.#host = host;
    this.#lease = lease;
    this.#every = Math.max(5, Math.floor(lease / 3));
  }

  /**
   * Keep an attempt's lease until {@linkcode LeaseKeeper.release}.
   *
   * @param task The claimed task: the attempt (each claim makes a new object).
   * @param lost Called when the claim turns out to be gone.
   */
  hold(task: ClaimedTask, lost: () => void): void {
    this.#held.set(task, { task, renewedAt: Date.now(), renewing: false, lost });
    this.#timer ??= setInterval(() => this.#tick(), Math.max(2, Math.floor(this.#every / 2)));
  }

  /** Stop renewing an attempt's lease. */
  release(task: ClaimedTask): void {
    this.#held.delete(task);
  }

  #tick(): void {
    if (this.#held.size === 0) {
      // Idle: no timer until the next attempt starts.
      clearInterval(this.#timer);
      this.#timer = undefined;
      return;
    }
    const now = Date.now();
    for (const held of this.#held.values()) {
      if (held.renewing || now - held.renewedAt < this.#every) continue;
      held.renewing = true;
      this.#renew(held);
    }
  }

  async #renew(held: Held): Promise<void> {
    const { task } = held;
    const sent = Date.now();
    try {
      if (await this.#host.queue.renew(task.id, task.token, this.#lease)) held.renewedAt = sent;
      else if (this.#held.get(task) === held) {
        this.#held.delete(task);
        held.lost();
      }
    } catch (error) {
      this.#host.report(error, `lease renewal of ${task.id}`);
    } finally {
      held.renewing = false;
    }
  }

  /** Stop the timer (the worker has ended). */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
    this.#held.clear();
  }
}
