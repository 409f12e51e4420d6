/**
 * The time an engine and the core stamp and compare tasks by. The system clock by
 * default; a {@linkcode ManualClock} in tests moves time forward without waiting, so a
 * case about TTLs, leases or retention asserts on conditions, not on sleeps.
 *
 * @example A test that ages a task by an hour at once
 * ```ts
 * import { ManualClock } from "@omniq/omniq/engine";
 * const clock = new ManualClock(Date.UTC(2026, 0, 1));
 * clock.advance(3_600_000);
 * console.assert(clock.now() === Date.UTC(2026, 0, 1, 1));
 * ```
 *
 * @module
 */

/** A source of the current time, in epoch milliseconds. */
export interface Clock {
  /** The current time, in epoch milliseconds. */
  now(): number;
}

/** The system clock (`Date.now()`). */
export const systemClock: Clock = Object.freeze({ now: () => Date.now() });

/** A clock that moves only when told to: for tests. */
export class ManualClock implements Clock {
  #now: number;

  /**
   * Make a clock that shows `start` until it is moved.
   *
   * @param start The time it shows at first (epoch ms); the system time by default.
   */
  constructor(start: number = Date.now()) {
    this.#now = start;
  }

  /** The time it shows. */
  now(): number {
    return this.#now;
  }

  /**
   * Move it forward.
   *
   * @param ms How far, in milliseconds (not negative: time does not run backwards).
   */
  advance(ms: number): void {
    if (!Number.isFinite(ms) || ms < 0) {
      throw new RangeError(`advance: expected a non-negative number of ms, got ${ms}`);
    }
    this.#now += ms;
  }
}
