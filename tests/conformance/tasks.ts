// The tasks of the conformance suite, defined once at module top level (a task name may
// not be redefined with another function). Their behaviour is driven by arguments, and
// what they observe is kept in probes keyed by a case-unique string.

import { defineTask, taskContext } from "../../mod.ts";

/** What a case can learn about the handlers it ran. */
export interface Probe {
  /** Calls of the handler. */
  calls: number;
  /** The attempt number of each call, in order. */
  attempts: number[];
  /** The labels of `track` calls, in start order. */
  order: string[];
  /** The abort reasons seen by handlers' signals. */
  aborts: unknown[];
  /** Handlers that ran to their end (returned or threw on their own). */
  finished: number;
  /** Handlers running now (`track`). */
  active: number;
  /** The most handlers running at once (`track`). */
  maxActive: number;
  /** What `context` saw. */
  contexts: ContextSeen[];
}

/** What a handler saw through `taskContext()`. */
export interface ContextSeen {
  id: string;
  task: string;
  queue: string;
  attempt: number;
  signalIsAbortSignal: boolean;
  aborted: boolean;
}

const probes = new Map<string, Probe>();

/** The probe of a key, made on first use. */
export function probe(key: string): Probe {
  let p = probes.get(key);
  if (!p) {
    p = {
      calls: 0,
      attempts: [],
      order: [],
      aborts: [],
      finished: 0,
      active: 0,
      maxActive: 0,
      contexts: [],
    };
    probes.set(key, p);
  }
  return p;
}

const gates = new Map<string, () => void>();
const gatePromises = new Map<string, Promise<void>>();

function gateOf(key: string): Promise<void> {
  let promise = gatePromises.get(key);
  if (!promise) {
    promise = new Promise<void>((resolve) => gates.set(key, resolve));
    gatePromises.set(key, promise);
  }
  return promise;
}

/** Let the handlers parked on a gate go on. */
export function openGate(key: string): void {
  gateOf(key);
  gates.get(key)!();
}

/** Open every gate whose key starts with a case key (when a case ends). */
export function releaseGates(caseKey: string): void {
  for (const [key, open] of gates) if (key.startsWith(caseKey)) open();
}

/** Wait `ms`, or reject with the signal's reason when it aborts; leaves no timer behind. */
export function pause(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** An error class of the suite's own, to see that names cross the store. */
export class CustomError extends Error {
  override name = "CustomError";
}

/** Returns its argument. */
export const echo = defineTask("conformance.echo", (value: unknown) => value);

/** Adds two numbers (a task with a typed result). */
export const add = defineTask("conformance.add", (a: number, b: number) => a + b);

/** Always throws a `CustomError` with the message given. */
export const fail = defineTask("conformance.fail", (message: string): never => {
  probe(message).calls++;
  throw new CustomError(message);
});

/** Throws on its first `times` calls for a key, then returns `value`. */
export const flaky = defineTask(
  "conformance.flaky",
  (key: string, times: number, value: unknown) => {
    const p = probe(key);
    p.attempts.push(taskContext().attempt);
    if (++p.calls <= times) throw new Error(`flaky failure ${p.calls}`);
    return value;
  },
);

/** Sleeps `ms` unless its signal aborts (recording the reason under `key`). */
export const sleep = defineTask("conformance.sleep", async (ms: number, key?: string) => {
  const ctx = taskContext();
  const p = key === undefined ? undefined : probe(key);
  if (p) {
    p.calls++;
    p.attempts.push(ctx.attempt);
  }
  try {
    await pause(ms, ctx.signal);
  } catch (error) {
    p?.aborts.push(error);
    throw error;
  }
  if (p) p.finished++;
  return ms;
});

/**
 * Parks on the gate `key` until the case opens it, ignoring its signal (a handler that
 * does not listen), records the signal's abort, then returns `attempt-N`.
 */
export const gated = defineTask("conformance.gated", async (key: string) => {
  const ctx = taskContext();
  const p = probe(key);
  p.calls++;
  p.attempts.push(ctx.attempt);
  ctx.signal.addEventListener("abort", () => p.aborts.push(ctx.signal.reason), { once: true });
  await gateOf(key);
  p.finished++;
  return `attempt-${ctx.attempt}`;
});

/** Records `label` in start order and how many run at once, then sleeps `ms`. */
export const track = defineTask(
  "conformance.track",
  async (key: string, label: string, ms: number) => {
    const p = probe(key);
    p.order.push(label);
    p.maxActive = Math.max(p.maxActive, ++p.active);
    try {
      await pause(ms, taskContext().signal);
    } finally {
      p.active--;
    }
    return label;
  },
);

/** Returns a function, which the codec cannot carry. */
export const returnsFunction = defineTask("conformance.returns-function", () => () => 1);

/** Reports each fraction as progress, then returns how many it reported. */
export const progress = defineTask("conformance.progress", (fractions: number[]) => {
  const ctx = taskContext();
  for (const f of fractions) ctx.progress(f);
  return fractions.length;
});

/** Records what `taskContext()` shows; throws on attempt 1 when `failFirst`. */
export const context = defineTask("conformance.context", (key: string, failFirst: boolean) => {
  const ctx = taskContext();
  const seen: ContextSeen = {
    id: ctx.id,
    task: ctx.task,
    queue: ctx.queue,
    attempt: ctx.attempt,
    signalIsAbortSignal: ctx.signal instanceof AbortSignal,
    aborted: ctx.signal.aborted,
  };
  probe(key).contexts.push(seen);
  if (failFirst && ctx.attempt === 1) throw new Error("first attempt fails");
  return seen;
});

/** Returns the results of its dependencies, as `[id, value]` pairs. */
export const dependencies = defineTask(
  "conformance.dependencies",
  (): [string, unknown][] => [...taskContext().dependencies.entries()],
);

/** Returns `list` with `item` appended (a chain step: `list` is the piped result). */
export const append = defineTask(
  "conformance.append",
  (list: unknown[], item: unknown): unknown[] => [...list, item],
);

/**
 * Returns `plus` and the results of the dependencies named in `keys` (node names or task
 * ids), summed; throws when one of them has no result.
 */
export const sumOf = defineTask("conformance.sum-of", (keys: string[], plus: number) => {
  const results = taskContext().dependencies;
  let sum = plus;
  for (const key of keys) {
    if (!results.has(key)) throw new Error(`no dependency result under "${key}"`);
    sum += results.get(key) as number;
  }
  return sum;
});
