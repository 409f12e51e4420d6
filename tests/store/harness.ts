// What every store-level case gets: the backend of a fresh, isolated store (attached to its
// own results and events unless the case says otherwise), a way to open more handles on the
// same store, and builders for the records the orchestrator would hand the engine.

import type { Attachment, Backend, NewTask, StoredSchedule } from "../../src/backend.ts";
import type { RegisterOptions } from "../conformance/register.ts";

/** A fresh, isolated store for one case; disposing it closes the backend and removes the store. */
export interface StoreFixture extends AsyncDisposable {
  /** The backend on the fresh store; the suite calls `queue.attach` before anything else. */
  readonly backend: Backend;
  /**
   * Open another handle on the same store, as a second process would (the suite closes it
   * when the case ends). Cases that play two processes, or reopen a store, need it: without
   * it they fail, unless skipped.
   */
  connect?(): Promise<Backend>;
}

/** What an engine's test file gives {@linkcode runStoreConformance}. */
export interface StoreConformanceOptions extends RegisterOptions {
  /** Make a fresh, isolated store: called once per case. */
  open: () => Promise<StoreFixture>;
}

/** What a store-level case's function receives. */
export interface StoreCaseContext {
  /** The case's backend, attached as the case asked. */
  readonly backend: Backend;
  /**
   * Another handle on the case's store, attached the same way; it is closed when the case
   * ends.
   *
   * @throws {Error} When the fixture gives no `connect`.
   */
  connect(): Promise<Backend>;
}

/** One behaviour of the storage contract, checked on the `Backend` itself. */
export interface StoreCase {
  /** What the case shows, as a sentence. */
  name: string;
  /**
   * Which companion stores the queue holds (`TaskQueue.attach`).
   *
   * @default {{ results: true, events: true }}
   */
  attach?: Attachment;
  /** The case. */
  fn: (ctx: StoreCaseContext) => Promise<void>;
}

/** How long one case may take before it fails (none needs more than a few seconds). */
const CASE_TIMEOUT = 30_000;

/** Run one case on a fresh store, closing every handle it opened. */
export async function runStoreCase(options: StoreConformanceOptions, c: StoreCase): Promise<void> {
  await using fixture = await options.open();
  const attachment = c.attach ?? { results: true, events: true };
  fixture.backend.queue.attach(attachment);
  const opened: Backend[] = [];
  const ctx: StoreCaseContext = {
    backend: fixture.backend,
    async connect() {
      if (!fixture.connect) {
        throw new Error(
          "this case opens a second handle on the store: give the fixture a connect(), or " +
            "skip the case with the engine's reason",
        );
      }
      const backend = await fixture.connect();
      opened.push(backend);
      backend.queue.attach(attachment);
      return backend;
    },
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`the case did not end within ${CASE_TIMEOUT / 1000} s`)),
      CASE_TIMEOUT,
    );
  });
  try {
    await Promise.race([c.fn(ctx), timeout]);
  } finally {
    clearTimeout(timer);
    for (const backend of opened) await backend.close();
  }
}

/** A claim's worker fields: a long lease, so that only a sweep with a later `now` stalls it. */
export const WORKER = { lease: 30_000, worker: "store-suite" } as const;

/**
 * A task record as the orchestrator would build it, due now in the default queue (three
 * attempts, exponential backoff, no dependencies); `fields` replaces any of it.
 */
export function newTask(id: string, fields: Partial<NewTask> = {}): NewTask {
  const now = Date.now();
  return {
    id,
    task: "noop",
    queue: "default",
    priority: 0,
    payload: new Uint8Array([1, 2, 3]),
    createdAt: now,
    runAt: now,
    maxAttempts: 3,
    backoff: { type: "exponential", delay: 1000, max: 60_000, jitter: 0.2 },
    dependsOn: [],
    onDependencyFailure: "cancel",
    ...fields,
  };
}

/** An interval schedule every minute, next tick at 1 000 000; `fields` replaces any of it. */
export function newSchedule(id: string, fields: Partial<StoredSchedule> = {}): StoredSchedule {
  return {
    id,
    task: "tick",
    payload: new Uint8Array([7]),
    every: 60_000,
    misfire: "skip",
    misfireGrace: 1000,
    paused: false,
    nextRunAt: 1_000_000,
    createdAt: 500_000,
    queue: "default",
    priority: 0,
    maxAttempts: 1,
    backoff: { type: "fixed", delay: 1000, max: 1000, jitter: 0 },
    ...fields,
  };
}

/** The task of a schedule's tick, as the orchestrator builds it (id `schedule:tick`). */
export function tickTask(scheduleId: string, tick: number, fields: Partial<NewTask> = {}): NewTask {
  return newTask(`${scheduleId}:${tick}`, { task: "tick", scheduleId, ...fields });
}

/** A plain pause, for the cases that must let a due time pass. */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
