/**
 * What a worker needs from the `OmniQ` that made it: the stores, a way to forward a state
 * change's effects (results, events, local wake-ups), and in-process signals. Workers see
 * this interface, never the orchestrator's class, so worker types stay interchangeable.
 *
 * @module
 */

import type { Effects, ResultStore, StoredResult, TaskQueue } from "./backend.ts";
import type { CodecName } from "./codec.ts";
import type { Clock } from "./kit/clock.ts";

/** The orchestrator as a worker sees it. */
export interface WorkerHost {
  /** The task queue. */
  readonly queue: TaskQueue;
  /** The result store. */
  readonly results: ResultStore;
  /** Whether the queue stores results itself (in the same step as the state change). */
  readonly resultsInline: boolean;
  /** Forward a state change's effects: store results and events elsewhere, notify locally. */
  apply(effects: Effects): Promise<void>;
  /** Store a final result before the task is marked final, when the queue does not. */
  putResult(result: StoredResult): Promise<void>;
  /** Wait until work may be there (a local enqueue), or `ms` passes, or the signal aborts. */
  idle(ms: number, signal: AbortSignal): Promise<void>;
  /** Register the abort controller of a running attempt (for local cancellation). */
  track(taskId: string, controller: AbortController): () => void;
  /** The time attempts are dated by (the queue's clock). */
  readonly clock: Clock;
  /** The codec results are written with. */
  readonly codec: CodecName;
  /** Fire due schedule ticks; how many tasks were enqueued. */
  tick(): Promise<number>;
  /** Wait until a schedule changes in this process, or `ms` passes, or the signal aborts. */
  idleScheduler(ms: number, signal: AbortSignal): Promise<void>;
  /** Report an error that is not a task's (a lost connection, a failed sweep). */
  report(error: unknown, what: string): void;
  /** Run the periodic cleanup (stalled, expired, retention). */
  sweep(): Promise<void>;
}
