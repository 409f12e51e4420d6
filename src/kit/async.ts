/**
 * Timers that end early on an abort signal, in the shape of `@std/async`'s `delay` and
 * `abortable`, so no engine or worker writes its own sleep.
 *
 * Unlike `@std/async`'s `delay`, an aborted {@linkcode delay} resolves instead of rejecting:
 * every caller here sleeps in a loop that checks its own state after waking, so an abort is
 * a wake-up, not an error.
 *
 * @example
 * ```ts
 * import { delay } from "@omniq/omniq/engine";
 * const stop = new AbortController();
 * setTimeout(() => stop.abort(), 5);
 * await delay(60_000, { signal: stop.signal }); // returns after about 5 ms
 * ```
 *
 * @module
 */

import { runtime } from "../runtime/mod.ts";

/** Options of {@linkcode delay}. */
export interface DelayOptions {
  /** Wake early when this aborts. */
  signal?: AbortSignal;
  /** Wake early when one of these functions is called (they are added and removed here). */
  wakers?: Set<() => void>;
  /**
   * Whether the timer keeps the process alive (Deno's `Deno.unrefTimer` semantics).
   *
   * @default {true}
   */
  persistent?: boolean;
}

/**
 * Wait `ms` milliseconds, or less when the signal aborts or a waker is called.
 *
 * @param ms How long to wait.
 * @param options A signal and wakers that end the wait early.
 */
export function delay(ms: number, options: DelayOptions = {}): Promise<void> {
  const { signal, wakers } = options;
  return new Promise<void>((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      wakers?.delete(done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    if (options.persistent === false) unref(timer);
    signal?.addEventListener("abort", done, { once: true });
    wakers?.add(done);
  });
}

/**
 * Race a promise against a signal: it rejects with the signal's reason when the signal
 * aborts first. The promise itself goes on; only the wait for it ends.
 *
 * @param promise What to wait for.
 * @param signal What ends the wait.
 */
export function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/**
 * Resolve `promise`, or `undefined` after `ms` (the timer never outlives the race).
 *
 * @param promise What to wait for.
 * @param ms The most to wait.
 */
export async function within<T>(promise: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function unref(timer: ReturnType<typeof setTimeout>): void {
  runtime.unrefTimer(timer);
}

/** A promise with its resolve and reject, as `Promise.withResolvers` (Node 22+) gives. */
export interface Resolvers<T> {
  /** The promise. */
  promise: Promise<T>;
  /** Resolve it. */
  resolve: (value: T | PromiseLike<T>) => void;
  /** Reject it. */
  reject: (reason?: unknown) => void;
}

/**
 * `Promise.withResolvers`, for runtimes that lack it (Node 20).
 *
 * @returns A new pending promise with its resolve and reject.
 */
export function withResolvers<T>(): Resolvers<T> {
  let resolve!: (value: T | PromiseLike<T>) => void;
  let reject!: (reason?: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/**
 * Resolve as `promise` does, or reject with `timeout()` once `ms` pass first (the timer
 * never outlives the race). The promise itself goes on; a late rejection of it is nobody's
 * error once the deadline has passed.
 *
 * @param promise What to wait for.
 * @param ms The most to wait.
 * @param timeout The error to reject with when the time is up.
 */
export async function deadline<T>(
  promise: Promise<T>,
  ms: number,
  timeout: () => unknown,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  promise.catch(() => {});
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => timer = setTimeout(() => reject(timeout()), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
