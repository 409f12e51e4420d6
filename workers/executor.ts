/**
 * Where handlers run. The worker loop (claims, leases, retries, results, events) is the
 * same for every worker type; an {@linkcode Executor} only runs one attempt and returns
 * its encoded result: in this thread, in a Web Worker, or in a subprocess.
 *
 * @module
 */

import { type RunMessage, runTask } from "./runner.ts";

/** Runs attempts; at most `size` at once. */
export interface Executor {
  /**
   * Run one attempt. Rejects with the handler's error (or the signal's reason once it
   * aborts: a pool then terminates the Worker or child that ran it).
   */
  run(
    message: RunMessage,
    signal: AbortSignal,
    progress: (fraction: number) => void,
  ): Promise<Uint8Array>;
  /** Release threads or processes. */
  close(): Promise<void>;
}

/** Handlers on this event loop: the async worker. */
export class InlineExecutor implements Executor {
  /** Run the handler here. */
  run(
    message: RunMessage,
    signal: AbortSignal,
    progress: (f: number) => void,
  ): Promise<Uint8Array> {
    return runTask(message, signal, progress);
  }
  /** Nothing to release. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
