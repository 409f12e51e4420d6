/**
 * What the PostgreSQL and Redis halves of `bench/server_cost.ts` share: the workload's
 * constants, the {@linkcode Subject} and {@linkcode Phase} every engine and peer is measured
 * through, OmniQ's own subject, and the small waiting helpers.
 *
 * A module of its own, not part of `server_cost.ts`: that file imports both halves for its
 * `main()`, and the halves importing it back would make an import cycle.
 *
 * @module
 */
import { defineTask, getTask, OmniQ, type TaskDefinition } from "../mod.ts";
import { delay } from "../src/kit/async.ts";

/** Tasks per `enqueueMany` call (and per batch of the peers' bulk inserts). */
export const BATCH = 500;
/** The worker's concurrency, OmniQ's and the peers'. */
export const CONCURRENCY = 10;
const DONE_TIMEOUT_MS = 300_000;

/**
 * The no-op task the OmniQ subjects enqueue, named as `bench/throughput.ts` names the same
 * no-op. That module, which `server_cost.ts` imports `flag` from, registers it when imported,
 * and `defineTask` refuses a second handler under one name: so this takes the registered one
 * when there is one (asked when a subject is made, after every module has loaded).
 */
function noop(): TaskDefinition<[number], unknown> {
  return getTask("bench-noop") ?? defineTask("bench-noop", (_i: number) => undefined);
}

/**
 * A short random id for a schema, key prefix or queue name.
 *
 * @returns Ten hex digits.
 */
export function randomId(): string {
  return crypto.randomUUID().replaceAll("-", "").slice(0, 10);
}

/**
 * Resolves once `test()` is true, asking every `everyMs`.
 *
 * @param what What is awaited, for the error.
 * @param test The condition.
 * @param everyMs How often to ask.
 * @param timeoutMs How long to wait.
 * @throws After `timeoutMs`.
 */
export async function until(
  what: string,
  test: () => Promise<boolean>,
  everyMs = 20,
  timeoutMs = DONE_TIMEOUT_MS,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`${what}: not done after ${timeoutMs} ms`);
    await delay(everyMs);
  }
}

/**
 * Send the task indexes `0 … tasks - 1` in batches of {@linkcode BATCH}, one batch at a time.
 *
 * @param tasks How many tasks.
 * @param send Enqueues one batch, given its tasks' indexes.
 */
export async function inBatches(
  tasks: number,
  send: (indexes: number[]) => Promise<unknown>,
): Promise<void> {
  for (let i = 0; i < tasks; i += BATCH) {
    await send(Array.from({ length: Math.min(BATCH, tasks - i) }, (_, j) => i + j));
  }
}

/** One phase of a measured engine: connect (not counted), work, disconnect. */
export interface Phase {
  /** Connect and get ready; not counted. */
  open(): Promise<void>;
  /** The work: enqueue, or process until every task is done. */
  work(): Promise<void>;
  /** Disconnect; counted with the work (a worker's stop is part of its run). */
  close(): Promise<void>;
}

/** An engine or a peer: its two phases, then a check and its clean-up (not counted). */
export interface Subject {
  /** The row label. */
  label: string;
  /** The schema holding its tables (PostgreSQL). */
  schema: string;
  /** Enqueue the tasks. */
  enqueue: Phase;
  /** Process them. */
  process: Phase;
  /** Throw unless every task completed; run after the last counters are read. */
  check(): Promise<void>;
  /** Remove what it stored. */
  drop(): Promise<void>;
}

/** What `measurePostgres` and `measureRedis` run. */
export interface CostOptions {
  /** Tasks enqueued, then processed. */
  tasks: number;
  /** Whether to measure the peers too (pg-boss and graphile-worker; BullMQ). */
  peers: boolean;
}

/**
 * OmniQ on the store at `href` (a fresh schema or key prefix): `enqueueMany` in batches of
 * {@linkcode BATCH}, then `run({ until: "idle", concurrency: CONCURRENCY })`.
 *
 * @param label The row label.
 * @param href The store's URL.
 * @param schema The schema of its tables (PostgreSQL), or `""`.
 * @param tasks How many tasks.
 * @returns The subject.
 */
export function omniq(label: string, href: string, schema: string, tasks: number): Subject {
  const task = noop();
  let q: OmniQ | undefined;
  const open = async () => void (q = await OmniQ.open(href));
  const close = () => q!.close();
  return {
    label,
    schema,
    enqueue: {
      open,
      work: () => inBatches(tasks, (ids) => q!.enqueueMany(ids.map((i) => ({ task, args: [i] })))),
      close,
    },
    process: { open, work: () => q!.run({ until: "idle", concurrency: CONCURRENCY }), close },
    check: async () => {
      const c = await OmniQ.open(href);
      try {
        const stats = await c.stats();
        if (stats.total.completed !== tasks) {
          throw new Error(`${label}: lost tasks: ${JSON.stringify(stats.total)}`);
        }
      } finally {
        await c.close();
      }
    },
    drop: () => Promise.resolve(),
  };
}
