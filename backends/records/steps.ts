/**
 * The step queue of a record engine: steps asked for while others run wait, and then run
 * together as one group (one turn of the engine's lock, one commit). Each engine's
 * {@linkcode RecordSpace.step} pushes here; the engine says how a group runs.
 *
 * One drain runs at a time. A step pushed while a drain is settling (after its last look at
 * the queue, before its promise settled) would otherwise wait for the next step to start a
 * drain: the drain starts again when it ends with steps left.
 *
 * @module
 */

import { OmniQError } from "../../src/errors.ts";
import type { RecordTx } from "./space.ts";

/** A step waiting for its turn, with the promise it settles. */
export interface PendingStep {
  /** The step. */
  fn: (tx: RecordTx) => Promise<unknown>;
  /** Settle the step's promise with its value (after its commit). */
  resolve: (value: unknown) => void;
  /** Settle the step's promise with an error. */
  reject: (error: unknown) => void;
}

/**
 * How an engine runs a group: `take()` gives the group (at most the queue's group size),
 * called once when the engine is ready for it (after taking its lock, so steps asked for
 * while it waited join the group). It settles every step it took; when it throws, the
 * steps it took that are not settled yet fail with that error.
 */
export type RunGroup = (take: () => PendingStep[]) => Promise<void>;

/** Steps waiting for their turn, drained in groups by one drain at a time. */
export class StepQueue {
  #pending: PendingStep[] = [];
  #draining?: Promise<void>;
  readonly #max: number;
  readonly #run: RunGroup;

  /**
   * A queue of steps.
   *
   * @param max The most steps one group takes.
   * @param run How a group runs.
   */
  constructor(max: number, run: RunGroup) {
    this.#max = max;
    this.#run = run;
  }

  /** Queue a step; it settles once its group committed (or failed). */
  push<T>(fn: (tx: RecordTx) => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({
        fn: fn as (tx: RecordTx) => Promise<unknown>,
        resolve: resolve as (value: unknown) => void,
        reject,
      });
      this.#start();
    });
  }

  /** Put steps back at the front, to run first in the next group. */
  requeue(steps: PendingStep[]): void {
    this.#pending.unshift(...steps);
  }

  /** The drain under way, if any; it settles (never rejects) once it has no steps left. */
  idle(): Promise<void> {
    return this.#draining ?? Promise.resolve();
  }

  #start(): void {
    this.#draining ??= this.#drain().finally(() => {
      this.#draining = undefined;
      if (this.#pending.length > 0) this.#start();
    });
  }

  async #drain(): Promise<void> {
    while (this.#pending.length > 0) {
      let group: PendingStep[] | undefined;
      const take = () => group ??= this.#pending.splice(0, this.#max);
      try {
        await this.#run(take);
        // A group the engine never took would be asked for again and again.
        if (group === undefined) throw new OmniQError("a group of steps was not run");
      } catch (error) {
        for (const step of take()) step.reject(error);
      }
    }
  }
}

/**
 * Run a group's steps one after another on one transaction. A step that throws is rolled
 * back to its mark alone and its promise rejected at once; the others' values are returned,
 * for the caller to settle once the transaction committed.
 */
export async function runSteps<Tx extends RecordTx & { mark(): () => void }>(
  tx: Tx,
  steps: PendingStep[],
): Promise<[PendingStep, unknown][]> {
  const done: [PendingStep, unknown][] = [];
  for (const step of steps) {
    const mark = tx.mark();
    try {
      done.push([step, await step.fn(tx)]);
    } catch (error) {
      mark();
      step.reject(error);
    }
  }
  return done;
}
