/**
 * Task ids: time-ordered (a millisecond timestamp, then randomness, like UUIDv7), so ids
 * sort roughly in creation order and index well in every engine.
 *
 * @module
 */

let lastTime = 0;
let counter = 0;

/** A new time-ordered id, 26 characters of lower-case base 32. */
export function newId(): string {
  const now = Date.now();
  if (now === lastTime) counter++;
  else {
    lastTime = now;
    counter = 0;
  }
  const random = crypto.getRandomValues(new Uint8Array(10));
  // 10 characters of time, 4 of a per-millisecond counter, 12 of randomness.
  return now.toString(32).padStart(10, "0") + counter.toString(32).padStart(4, "0") +
    Array.from(random.subarray(0, 8), (b) => (b % 32).toString(32)).join("") +
    Array.from(random.subarray(8), (b) => b.toString(32).padStart(2, "0")).join("");
}
