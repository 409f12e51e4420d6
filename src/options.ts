/**
 * Resolving and validating options: enqueue options over task options over queue defaults
 * over built-in defaults, into the stored form; and the retry backoff.
 *
 * @module
 */

import type { NewTask, StoredBackoff, StoredRate } from "./backend.ts";
import { type CodecName, encode } from "./codec.ts";
import { optionalDuration, parseDuration } from "./duration.ts";
import { ConfigError } from "./errors.ts";
import { newId } from "./id.ts";
import { workerTypeNames } from "./registry.ts";
import type { BackoffOptions, EnqueueOptions, TaskDefaults, WorkerOptions } from "./types.ts";

/** Built-in defaults (DESIGN.md, "Delivery semantics"). */
export const DEFAULTS = {
  queue: "default",
  priority: 0,
  retries: 3,
  backoff: { type: "exponential", delay: 1_000, max: 3_600_000, jitter: 0.2 } as StoredBackoff,
  lease: 30_000,
  pollInterval: 1_000,
  shutdownGrace: 30_000,
  sweepInterval: 5_000,
  concurrency: 10,
  keepCompleted: 7 * 86_400_000,
  eventTtl: 7 * 86_400_000,
} as const;

const ENQUEUE_KEYS = new Set([
  "id",
  "queue",
  "priority",
  "delay",
  "runAt",
  "ttl",
  "resultTtl",
  "retries",
  "backoff",
  "timeout",
  "dependsOn",
  "onDependencyFailure",
  "key",
  "deadLetter",
  "ageAfter",
  "throttle",
  "debounce",
  "group",
  "groupConcurrency",
  "rateLimit",
]);

/** Refuse keys an options object does not know, naming the nearest known one. */
export function checkKeys(value: object, known: Iterable<string>, where: string): void {
  const names = [...known];
  for (const key of Object.keys(value)) {
    if (names.includes(key)) continue;
    const near = nearest(key, names);
    throw new ConfigError(
      `${where}.${key}: unknown option${
        near ? ` (did you mean "${near}"?)` : ""
      }; expected one of ${names.join(", ")}`,
    );
  }
}

/** The known name closest to a misspelled one, if any is close. */
export function nearest(word: string, names: string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const name of names) {
    const d = editDistance(word.toLowerCase(), name.toLowerCase());
    if (d < bestDistance) {
      best = name;
      bestDistance = d;
    }
  }
  return best;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

/** `"a"`, `"a" or "b"`, `"a", "b" or "c"`. */
function either(names: readonly string[]): string {
  const quoted = names.map((n) => JSON.stringify(n));
  return quoted.length <= 1
    ? (quoted[0] ?? "a registered worker type")
    : `${quoted.slice(0, -1).join(", ")} or ${quoted.at(-1)}`;
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (typeof value === "bigint") return `${value}n`;
  if (value === null || typeof value !== "object") return String(value);
  return Array.isArray(value) ? "an array" : "an object";
}

/** Check an integer option within a range. */
export function checkInteger(value: unknown, name: string, min: number, max: number): number {
  if (typeof value !== "number" || !Number.isInteger(value) || value < min || value > max) {
    const range = max === Infinity ? `an integer >= ${min}` : `an integer from ${min} to ${max}`;
    throw new ConfigError(`${name}: expected ${range}, got ${describe(value)}`);
  }
  return value;
}

/** Check a non-empty string option. */
export function checkName(value: unknown, name: string): string {
  if (typeof value !== "string" || value.trim() === "") {
    throw new ConfigError(`${name}: expected a non-empty string, got ${describe(value)}`);
  }
  return value;
}

/** Resolve a backoff option into its stored form. */
export function resolveBackoff(value: BackoffOptions | undefined, name: string): StoredBackoff {
  if (value === undefined) return DEFAULTS.backoff;
  if (typeof value === "number" || typeof value === "string") {
    return { ...DEFAULTS.backoff, delay: parseDuration(value, name) };
  }
  if (value === null || typeof value !== "object") {
    throw new ConfigError(
      `${name}: expected a duration or { type, delay, max? }, got ${describe(value)}`,
    );
  }
  checkKeys(value, ["type", "delay", "max", "jitter"], name);
  if (value.type !== "exponential" && value.type !== "fixed") {
    throw new ConfigError(
      `${name}.type: expected "exponential" or "fixed", got ${describe(value.type)}`,
    );
  }
  const jitter = value.jitter ?? DEFAULTS.backoff.jitter;
  if (typeof jitter !== "number" || !(jitter >= 0 && jitter <= 1)) {
    throw new ConfigError(`${name}.jitter: expected a number from 0 to 1, got ${describe(jitter)}`);
  }
  return {
    type: value.type,
    delay: parseDuration(value.delay, `${name}.delay`),
    max: value.max === undefined ? DEFAULTS.backoff.max : parseDuration(value.max, `${name}.max`),
    jitter,
  };
}

/**
 * The delay before retry number `attempt` (the attempt that just failed, from 1).
 *
 * @param backoff The stored backoff.
 * @param attempt The attempt that failed.
 * @param random A source of randomness in [0, 1) (for tests).
 */
export function retryDelay(backoff: StoredBackoff, attempt: number, random = Math.random): number {
  const base = backoff.type === "fixed"
    ? backoff.delay
    : Math.min(backoff.max, backoff.delay * 2 ** Math.max(0, attempt - 1));
  const spread = base * backoff.jitter * (2 * random() - 1);
  return Math.max(0, Math.round(base + spread));
}

/** Resolve one enqueue into a stored task. */
export function resolveTask(
  task: string,
  args: unknown,
  options: EnqueueOptions,
  taskOptions: EnqueueOptions,
  defaults: TaskDefaults,
  now: number,
  codec: CodecName = "msgpack",
): NewTask {
  if (!Array.isArray(args)) {
    throw new ConfigError(`args: expected an array of arguments, got ${describe(args)}`);
  }
  if (options === null || typeof options !== "object") {
    throw new ConfigError(`options: expected an object, got ${describe(options)}`);
  }
  checkKeys(options, ENQUEUE_KEYS, "options");
  const o = { ...defaults, ...taskOptions, ...stripUndefined(options) };
  const id = options.id === undefined ? newId() : checkName(options.id, "id");
  const queue = checkName(o.queue ?? DEFAULTS.queue, "queue");
  const priority = checkInteger(o.priority ?? DEFAULTS.priority, "priority", 0, 9);
  const retries = checkInteger(o.retries ?? DEFAULTS.retries, "retries", 0, 1_000_000);
  let runAt = now;
  if (options.delay !== undefined && options.runAt !== undefined) {
    throw new ConfigError("delay, runAt: give one of them, not both");
  }
  if (options.delay !== undefined) runAt = now + parseDuration(options.delay, "delay");
  if (options.runAt !== undefined) {
    const at = options.runAt instanceof Date ? options.runAt.getTime() : options.runAt;
    if (typeof at !== "number" || !Number.isFinite(at)) {
      throw new ConfigError(
        `runAt: expected a Date or epoch milliseconds, got ${describe(options.runAt)}`,
      );
    }
    runAt = at;
  }
  const ttl = optionalDuration(o.ttl, "ttl");
  const dependsOn = options.dependsOn ?? [];
  if (!Array.isArray(dependsOn) || dependsOn.some((d) => typeof d !== "string" || d === "")) {
    throw new ConfigError(`dependsOn: expected an array of task ids, got ${describe(dependsOn)}`);
  }
  const onDependencyFailure = options.onDependencyFailure ?? "cancel";
  if (onDependencyFailure !== "cancel" && onDependencyFailure !== "run") {
    throw new ConfigError(
      `onDependencyFailure: expected "cancel" or "run", got ${describe(onDependencyFailure)}`,
    );
  }
  if (options.key !== undefined) checkName(options.key, "key");
  const stored: NewTask = {
    id,
    task,
    queue,
    priority,
    payload: encode(args, "args", codec),
    createdAt: now,
    runAt,
    maxAttempts: retries + 1,
    backoff: resolveBackoff(o.backoff, "backoff"),
    dependsOn: [...new Set(dependsOn)],
    onDependencyFailure,
  };
  if (ttl !== undefined) stored.expiresAt = now + ttl;
  const timeout = optionalDuration(o.timeout, "timeout");
  if (timeout !== undefined) stored.timeout = timeout;
  const resultTtl = optionalDuration(o.resultTtl, "resultTtl");
  if (resultTtl !== undefined) stored.resultTtl = resultTtl;
  if (options.key !== undefined) stored.key = options.key;
  if (options.debounce !== undefined) {
    const window = parseDuration(options.debounce, "debounce");
    if (options.key === undefined) {
      throw new ConfigError("debounce: needs a key (the enqueues it merges share the key)");
    }
    if (window <= 0) throw new ConfigError(`debounce: expected a duration over 0, got ${window}ms`);
    if (options.throttle !== undefined) {
      throw new ConfigError("debounce, throttle: give one of them, not both");
    }
    if (options.delay !== undefined || options.runAt !== undefined) {
      throw new ConfigError("debounce: sets when the task is due; give no delay or runAt");
    }
    stored.runAt = now + window;
    stored.debounce = true;
  }
  if (options.throttle !== undefined) {
    const window = parseDuration(options.throttle, "throttle");
    if (options.key === undefined) {
      throw new ConfigError("throttle: needs a key (the duplicates it ignores share the key)");
    }
    if (window <= 0) throw new ConfigError(`throttle: expected a duration over 0, got ${window}ms`);
    stored.keyUntil = now + window;
  }
  // A dead-letter queue from the task or the defaults does not apply to a task enqueued into
  // that very queue (it is already where failures go); one given on this enqueue must differ.
  const deadLetter = options.deadLetter === undefined && o.deadLetter === queue
    ? undefined
    : checkDeadLetter(o.deadLetter, queue);
  if (deadLetter !== undefined) stored.deadLetter = deadLetter;
  if (o.group !== undefined) {
    stored.group = checkGroup(o.group);
    stored.groupLimit = checkInteger(o.groupConcurrency ?? 1, "groupConcurrency", 1, 1_000_000);
  } else if (o.groupConcurrency !== undefined) {
    throw new ConfigError("groupConcurrency: needs a group (the tasks it limits share a group)");
  }
  if (o.rateLimit !== undefined) stored.rate = resolveRate(o.rateLimit, stored, args);
  const ageAfter = optionalDuration(o.ageAfter, "ageAfter");
  if (ageAfter !== undefined) {
    if (ageAfter <= 0) {
      throw new ConfigError(`ageAfter: expected a duration over 0, got ${ageAfter}ms`);
    }
    stored.ageAfter = ageAfter;
  }
  return stored;
}

/**
 * Resolve a `rateLimit` option into its stored form: its bucket (the task's group, the key
 * its `key` function gives for these arguments, or the task's queue) and its window in ms.
 */
export function resolveRate(value: unknown, task: NewTask, args: unknown[]): StoredRate {
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new ConfigError(
      `rateLimit: expected { limit, per, key? }, got ${describe(value)}`,
    );
  }
  checkKeys(value, ["limit", "per", "key"], "rateLimit");
  const r = value as { limit?: unknown; per?: unknown; key?: unknown };
  const limit = checkInteger(r.limit, "rateLimit.limit", 1, 1_000_000_000);
  const per = parseDuration(r.per as string, "rateLimit.per");
  if (per <= 0) throw new ConfigError(`rateLimit.per: expected a duration over 0, got ${per}ms`);
  if (r.key === undefined) {
    return { key: task.group !== undefined ? `g:${task.group}` : `q:${task.queue}`, limit, per };
  }
  if (typeof r.key !== "function") {
    throw new ConfigError(
      `rateLimit.key: expected a function of the arguments, got ${describe(r.key)}`,
    );
  }
  if (task.group !== undefined) {
    throw new ConfigError("rateLimit.key, group: give one of them (a group is its own key)");
  }
  let key: unknown;
  try {
    key = (r.key as (...a: unknown[]) => unknown)(...args);
  } catch (error) {
    throw new ConfigError(
      `rateLimit.key: the key function threw: ${(error as Error)?.message ?? error}`,
      {
        cause: error,
      },
    );
  }
  if (typeof key !== "string" || key === "") {
    throw new ConfigError(
      `rateLimit.key: expected the key function to return a non-empty string, got ${describe(key)}`,
    );
  }
  return { key: `k:${checkGroup(key, "rateLimit.key")}`, limit, per };
}

/** Check a group name: 1–256 characters, no control characters. */
export function checkGroup(value: unknown, what = "group"): string {
  const name = checkName(value, what);
  if (name.length > 256) {
    throw new ConfigError(`${what}: expected at most 256 characters, got ${name.length}`);
  }
  // deno-lint-ignore no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name)) {
    throw new ConfigError(
      `${what}: control characters are not allowed, got ${JSON.stringify(name)}`,
    );
  }
  return name;
}

/**
 * Check a `deadLetter` option against the queue it would leave.
 *
 * @param value The option as given.
 * @param queue The task's queue, when known.
 * @param where The option's name in errors.
 * @returns The dead-letter queue, if any.
 */
export function checkDeadLetter(
  value: unknown,
  queue: string | undefined,
  where = "deadLetter",
): string | undefined {
  if (value === undefined) return undefined;
  const name = checkName(value, where);
  if (name === queue) {
    throw new ConfigError(
      `${where}: the dead-letter queue must differ from the task's queue ("${queue}")`,
    );
  }
  return name;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  let any = false;
  for (const key in value) {
    if (value[key] === undefined) {
      any = true;
      break;
    }
  }
  // Usually nothing to strip: the object is only spread after this, never changed.
  if (!any) return value;
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** Worker options with every duration resolved. */
export interface ResolvedWorkerOptions {
  /** How tasks run. */
  type: "async" | "thread" | "process";
  /** Tasks at once. */
  concurrency: number;
  /** Queues in drain order. */
  queues: string[];
  /** Lease length (ms). */
  lease: number;
  /** Idle poll interval (ms). */
  pollInterval: number;
  /** Shutdown grace (ms). */
  shutdownGrace: number;
  /** Sweep interval (ms). */
  sweepInterval: number;
  /** Whether schedules fire. */
  scheduler: boolean;
}

const WORKER_KEYS = [
  "type",
  "concurrency",
  "queues",
  "lease",
  "pollInterval",
  "shutdownGrace",
  "scheduler",
  "sweepInterval",
  "permissions",
];

/** Resolve worker options over the configured ones and the defaults. */
export function resolveWorker(
  options: WorkerOptions,
  configured: WorkerOptions,
  where = "worker",
): ResolvedWorkerOptions {
  checkKeys(options, WORKER_KEYS, where);
  const o = { ...configured, ...stripUndefined(options) };
  const type = o.type ?? "async";
  const types = workerTypeNames();
  if (typeof type !== "string" || !types.includes(type)) {
    throw new ConfigError(`${where}.type: expected ${either(types)}, got ${describe(type)}`);
  }
  const queues = o.queues ?? [DEFAULTS.queue];
  if (!Array.isArray(queues) || queues.length === 0) {
    throw new ConfigError(
      `${where}.queues: expected a non-empty array of queue names, got ${describe(queues)}`,
    );
  }
  queues.forEach((q, i) => checkName(q, `${where}.queues[${i}]`));
  const lease = parseDuration(o.lease ?? DEFAULTS.lease, `${where}.lease`);
  if (lease < 10) throw new ConfigError(`${where}.lease: expected at least 10ms, got ${lease}ms`);
  return {
    type,
    concurrency: checkInteger(
      o.concurrency ?? DEFAULTS.concurrency,
      `${where}.concurrency`,
      1,
      100_000,
    ),
    queues: [...new Set(queues)],
    lease,
    pollInterval: Math.max(
      1,
      parseDuration(o.pollInterval ?? DEFAULTS.pollInterval, `${where}.pollInterval`),
    ),
    shutdownGrace: parseDuration(
      o.shutdownGrace ?? DEFAULTS.shutdownGrace,
      `${where}.shutdownGrace`,
    ),
    sweepInterval: Math.max(
      1,
      parseDuration(o.sweepInterval ?? DEFAULTS.sweepInterval, `${where}.sweepInterval`),
    ),
    scheduler: o.scheduler ?? true,
  };
}
