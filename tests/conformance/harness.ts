// What every conformance case gets: a fresh, isolated store per case, an `open` that makes
// OmniQs on it and closes them when the case ends, a case-unique key for the probes of
// tasks.ts, and polling helpers that wait on state rather than on fixed sleeps.

import assert from "node:assert/strict";
import { type EventRecord, OmniQ, type OmniQConfig, type TaskState } from "../../mod.ts";
import type { RegisterOptions } from "./register.ts";
import { releaseGates } from "./tasks.ts";

/** Where a fixture's stores live, as `OmniQ.open` config keys. */
export type StoreConfig = Pick<OmniQConfig, "backend" | "queue" | "results" | "events">;

/** A fresh, isolated store for one case; disposing it removes whatever it created. */
export interface StoreFixture extends AsyncDisposable {
  /** The config keys that point an OmniQ at this store; every OmniQ opened with them shares it. */
  readonly stores: StoreConfig;
}

/** What a backend's test file gives {@linkcode runConformance}. */
export interface ConformanceOptions extends RegisterOptions {
  /** Make a fresh, isolated store: called once per case. */
  store: () => Promise<StoreFixture>;
}

/** What a case's function receives. */
export interface CaseContext {
  /**
   * Open an OmniQ on this case's store (worker polls every 20 ms unless the config says
   * otherwise); it is closed when the case ends, and any error it reports through
   * `onError` fails the case.
   */
  open(config?: Omit<OmniQConfig, keyof StoreConfig>): Promise<OmniQ>;
  /** A string unique to this case, for dedupe keys and the probes of tasks.ts. */
  readonly key: string;
}

/** One behaviour of the contract. */
export interface Case {
  /** What the case shows, as a sentence. */
  name: string;
  /** The case. */
  fn: (ctx: CaseContext) => Promise<void>;
}

/** How long one case may take before it fails (no case needs more than a few seconds). */
const CASE_TIMEOUT = 30_000;

/** Run one case on a fresh store, closing everything it opened. */
export async function runCase(options: ConformanceOptions, c: Case): Promise<void> {
  await using fixture = await options.store();
  const key = crypto.randomUUID();
  const opened: OmniQ[] = [];
  const reports: string[] = [];
  const ctx: CaseContext = {
    key,
    async open(config = {}) {
      const q = await OmniQ.open({
        ...config,
        ...fixture.stores,
        worker: { pollInterval: "20ms", shutdownGrace: "5s", ...config.worker },
      });
      opened.push(q);
      q.onError((error, what) => reports.push(`${what}: ${(error as Error)?.stack ?? error}`));
      return q;
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
    // A behaviour that never happens (a task never run, a wait with no timeout) fails the
    // case instead of hanging the run; closing the queues below ends what is still pending.
    await Promise.race([c.fn(ctx), timeout]);
  } finally {
    clearTimeout(timer);
    // A failed case may leave a handler parked on a gate: let it finish before closing.
    releaseGates(key);
    for (const q of opened) await q.close();
  }
  assert.deepEqual(reports, [], "no error was reported through onError");
}

/**
 * Claim one task of a queue as a worker that will never renew its lease (a dead worker),
 * forwarding the claim's effects as a real worker does.
 */
export async function ghostClaim(q: OmniQ, lease: number, queue = "default") {
  const claimed = await q.stores.queue.claim({ queues: [queue], limit: 1, lease, worker: "ghost" });
  await q.apply(claimed.effects);
  assert.equal(claimed.tasks.length, 1, "the ghost claimed the task");
  return claimed.tasks[0];
}

/** Poll `probe` until it returns something other than `undefined` or `false`. */
export async function until<T>(
  what: string,
  probe: () => T | undefined | false | Promise<T | undefined | false>,
  timeout = 5_000,
): Promise<T> {
  const deadline = Date.now() + timeout;
  for (let pause = 2;; pause = Math.min(pause * 2, 25)) {
    const value = await probe();
    if (value !== undefined && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeout}ms waiting for ${what}`);
    await sleep(pause);
  }
}

/** Wait until a task is in one of the given states. */
export function untilState(
  q: OmniQ,
  id: string,
  state: TaskState | TaskState[],
  timeout?: number,
): Promise<TaskState> {
  const states = Array.isArray(state) ? state : [state];
  return until(`task ${id} to be ${states.join(" or ")}`, async () => {
    const s = (await q.get(id))?.state;
    return s !== undefined && states.includes(s) && s;
  }, timeout);
}

/** Every stored event of a task, oldest first. */
export async function eventsOf(q: OmniQ, taskId: string): Promise<EventRecord[]> {
  return await collect(q.events({ taskId }));
}

/** The types of a task's stored events, oldest first. */
export async function typesOf(q: OmniQ, taskId: string): Promise<string[]> {
  return (await eventsOf(q, taskId)).map((e) => e.type);
}

/**
 * The most attempts running at once by the event log: each runs from its `started` to its
 * `completed` event (one ending at the instant another starts does not overlap it).
 */
export function mostAtOnce(events: EventRecord[]): { most: number; points: number } {
  const points: [number, number][] = [];
  for (const e of events) {
    if (e.type === "started") points.push([e.at.getTime(), 1]);
    if (e.type === "completed") points.push([e.at.getTime(), -1]);
  }
  points.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let most = 0;
  for (const [, delta] of points) most = Math.max(most, now += delta);
  return { most, points: points.length };
}

/** The most `started` events within any window of `per` ms (the window's end excluded). */
export function mostStartsWithin(events: EventRecord[], per: number): number {
  const starts = events.filter((e) => e.type === "started").map((e) => e.at.getTime()).sort(
    (a, b) => a - b,
  );
  let most = 0;
  for (let i = 0, j = 0; j < starts.length; j++) {
    while (starts[j] - starts[i] >= per) i++;
    most = Math.max(most, j - i + 1);
  }
  return most;
}

/** How many tasks the queue holds, over every state. */
export async function totalTasks(q: OmniQ): Promise<number> {
  const { total } = await q.stats();
  return Object.values(total).reduce((a, b) => a + b, 0);
}

/** A plain pause (for the few cases that must let time pass, such as a TTL). */
export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * Every item of an async iterable, in order: `Array.fromAsync`, which Node 20 lacks (the
 * suite also runs under Node, against the npm build).
 */
export async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const item of items) out.push(item);
  return out;
}
