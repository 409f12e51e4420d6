/**
 * The blocking API: `OmniQSync` has the async API's calls, each of which blocks until it is
 * done. There is one mechanism for every engine: the async core runs in a dedicated Worker
 * (which imports the task modules named in `tasks`), and the calling thread blocks on
 * `Atomics.wait` over a `SharedArrayBuffer` into which the Worker writes each reply.
 * Timed waits with a heartbeat turn a dead Worker into a clear error instead of a hang.
 *
 * Values cross through the same codec as the async API; errors cross with their class
 * (`TaskFailedError`, `TimeoutError`, `ConfigError` …) and message.
 *
 * @example Blocking calls
 * ```ts
 * import { OmniQSync } from "@omniq/omniq/sync";
 * using q = OmniQSync.open({
 *   backend: "memory:",
 *   tasks: [new URL("./examples/tasks.ts", import.meta.url)],
 * });
 * const id = q.enqueue("charge", ["cus_1", 250]);
 * q.run({ until: "idle", queues: ["high"] });
 * console.assert((q.wait(id) as { cents: number }).cents === 250);
 * ```
 *
 * @module
 */

import { runtime, siblingModule, type Thread } from "./src/runtime/mod.ts";
import { decode, encode } from "./src/codec.ts";
import { parseDuration } from "./src/duration.ts";
import {
  ConfigError,
  DuplicateTaskError,
  OmniQError,
  SerializationError,
  TaskCancelledError,
  TaskExpiredError,
  TaskFailedError,
  TaskNotFoundError,
  TimeoutError,
  UnknownTaskError,
} from "./src/errors.ts";
import type {
  CleanupReport,
  EnqueueItem,
  EventsOptions,
  OmniQConfig,
  RunOptions,
  WaitOptions,
} from "./src/omniq.ts";
import type { TaskDefinition, TaskId } from "./src/task.ts";
import type {
  Duration,
  EnqueueOptions,
  EventRecord,
  ListOptions,
  QueueStats,
  ResultRecord,
  ScheduleOptions,
  ScheduleRecord,
  SerializedError,
  TaskRecord,
} from "./src/types.ts";

/** Options of the blocking bridge itself. */
export interface SyncOptions {
  /**
   * How long the Worker may show no sign of life before a call fails.
   * @default {"10s"}
   */
  heartbeatTimeout?: Duration;
  /**
   * How long opening may take (the Worker loads the core and the task modules).
   * @default {"60s"}
   */
  openTimeout?: Duration;
  /**
   * The reply buffer's size in bytes; longer replies cross in chunks.
   * @default {1048576}
   */
  bufferSize?: number;
}

/** The configuration of `OmniQSync.open`: as `OmniQ.open`, with URLs only (no instances). */
export type SyncConfig = string | Omit<OmniQConfig, "tasks"> & { tasks?: (URL | string)[] };

const STATE = 0, HEARTBEAT = 1, CHUNK = 2, TOTAL = 3;
// States of the reply word: 1 is a value reply (any state but these two).
const ERROR = 2, MORE = 3;

/**
 * Blocking counterparts of the async API. Open with {@linkcode OmniQSync.open}; close
 * with `close()` or `using`.
 */
export class OmniQSync implements Disposable {
  #worker: Thread;
  #buffer: SharedArrayBuffer;
  #header: Int32Array;
  #heartbeatTimeout: number;
  #closed = false;

  private constructor(worker: Thread, buffer: SharedArrayBuffer, heartbeatTimeout: number) {
    this.#worker = worker;
    this.#buffer = buffer;
    this.#header = new Int32Array(buffer, 0, 4);
    this.#heartbeatTimeout = heartbeatTimeout;
  }

  /**
   * Open a queue whose calls block.
   *
   * @param config A URL, or a config whose stores are URLs and whose `tasks` are module
   *   URLs or paths (the Worker imports them; task definitions cannot cross threads).
   * @param options The bridge's timeouts and buffer size.
   * @returns The open queue.
   * @throws {ConfigError} For a bad configuration (from the Worker, with its message).
   */
  static open(config?: SyncConfig, options: SyncOptions = {}): OmniQSync {
    const bufferSize = options.bufferSize ?? 1 << 20;
    if (!Number.isInteger(bufferSize) || bufferSize < 1024) {
      throw new ConfigError(`bufferSize: expected an integer of at least 1024, got ${bufferSize}`);
    }
    const heartbeat = parseDuration(options.heartbeatTimeout ?? "10s", "heartbeatTimeout");
    const openTimeout = parseDuration(options.openTimeout ?? "60s", "openTimeout");
    const buffer = new SharedArrayBuffer(bufferSize + 16);
    const worker = runtime.startThread(siblingModule("./sync_host", import.meta.url));
    const q = new OmniQSync(worker, buffer, heartbeat);
    worker.post({ buffer, config: portable(config) });
    try {
      q.#await(openTimeout);
    } catch (error) {
      worker.terminate();
      q.#closed = true;
      throw error;
    }
    return q;
  }

  /** Block until the Worker replies; decode the reply or throw its error. */
  #await(startup?: number): unknown {
    const h = this.#header;
    const chunks: Uint8Array[] = [];
    let lastBeat = Atomics.load(h, HEARTBEAT);
    let lastChange = Date.now();
    for (;;) {
      const state = Atomics.load(h, STATE);
      if (state === 0) {
        Atomics.wait(h, STATE, 0, 100);
        const beat = Atomics.load(h, HEARTBEAT);
        if (beat !== lastBeat) {
          lastBeat = beat;
          lastChange = Date.now();
        } else if (Date.now() - lastChange > (startup ?? this.#heartbeatTimeout)) {
          this.#closed = true;
          this.#worker.terminate();
          throw new OmniQError(
            startup === undefined
              ? `the OmniQSync worker stopped responding (no heartbeat for ${this.#heartbeatTimeout}ms); it was terminated`
              : `the OmniQSync worker did not start within ${startup}ms`,
          );
        }
        continue;
      }
      const length = Atomics.load(h, CHUNK);
      chunks.push(new Uint8Array(this.#buffer, 16, length).slice());
      Atomics.store(h, STATE, 0);
      if (state === MORE) {
        this.#worker.post({ more: true });
        continue;
      }
      const total = Atomics.load(h, TOTAL);
      const bytes = chunks.length === 1 ? chunks[0] : concat(chunks, total);
      const value = decode(bytes);
      if (state === ERROR) throw revive(value as ErrorReply);
      return value;
    }
  }

  #call(method: string, args: unknown[]): unknown {
    if (this.#closed) throw new OmniQError("this OmniQSync is closed");
    const bytes = encode(args, "args");
    this.#worker.post({ method, args: bytes });
    return this.#await();
  }

  /**
   * Enqueue a task; see `OmniQ.enqueue`.
   *
   * @param task A task definition or name (definitions cross as their name).
   * @param args The arguments.
   * @param options The enqueue options.
   * @returns The task id.
   */
  // deno-lint-ignore no-explicit-any
  enqueue<A extends any[], R>(
    task: TaskDefinition<A, R> | string,
    args: NoInfer<A>,
    options: EnqueueOptions = {},
  ): TaskId<R> {
    return this.#call("enqueue", [nameOf(task), args, options]) as TaskId<R>;
  }

  /**
   * Enqueue several tasks in one step; see `OmniQ.enqueueMany`.
   *
   * @param items Each a task, its arguments and options.
   * @returns The ids, in item order.
   */
  enqueueMany(items: EnqueueItem[]): TaskId[] {
    const named = items.map((item) => ({ ...item, task: nameOf(item.task) }));
    return this.#call("enqueueMany", [named]) as TaskId[];
  }

  /**
   * A task's record; see `OmniQ.get`.
   *
   * @param id The task id.
   */
  get(id: string): TaskRecord | undefined {
    return this.#call("get", [id]) as TaskRecord | undefined;
  }

  /**
   * A task's result; see `OmniQ.result`.
   *
   * @param id The task id.
   */
  result<R = unknown>(id: TaskId<R> | string): ResultRecord<R> | undefined {
    return this.#call("result", [id]) as ResultRecord<R> | undefined;
  }

  /**
   * Block until a task ends; see `OmniQ.wait`.
   *
   * @param id The task id.
   * @param options A timeout.
   * @returns The handler's return value.
   */
  wait<R>(id: TaskId<R> | string, options: Omit<WaitOptions, "signal"> = {}): R {
    return this.#call("wait", [id, options]) as R;
  }

  /**
   * Cancel a task; see `OmniQ.cancel`.
   *
   * @param id The task id.
   */
  cancel(id: string): boolean {
    return this.#call("cancel", [id]) as boolean;
  }

  /**
   * Run a failed task again; see `OmniQ.retry`.
   *
   * @param id The task id.
   */
  retry(id: string): boolean {
    return this.#call("retry", [id]) as boolean;
  }

  /** Counts per queue and state; see `OmniQ.stats`. */
  stats(): QueueStats {
    return this.#call("stats", []) as QueueStats;
  }

  /**
   * Tasks matching a filter; see `OmniQ.list`.
   *
   * @param filter State, queue, task, limit, offset.
   */
  list(filter: ListOptions = {}): TaskRecord[] {
    return this.#call("list", [filter]) as TaskRecord[];
  }

  /**
   * Stored events matching a filter, as an array (`follow` is not available here).
   *
   * @param filter Task, type, queue, time range, limit.
   */
  events(filter: Omit<EventsOptions, "follow" | "signal"> = {}): EventRecord[] {
    return this.#call("events", [filter]) as EventRecord[];
  }

  /**
   * Process tasks in the Worker until nothing is due or running; see `OmniQ.run`.
   *
   * @param options `{ until: "idle" }` and worker options.
   */
  run(options: RunOptions = { until: "idle" }): void {
    this.#call("run", [options]);
  }

  /** Sweep now; see `OmniQ.cleanup`. */
  cleanup(): CleanupReport {
    return this.#call("cleanup", []) as CleanupReport;
  }

  /**
   * Create or update a schedule; see `OmniQ.schedule`.
   *
   * @param task A task definition or name.
   * @param args The arguments of each run.
   * @param options `cron` or `every`, and task options.
   * @returns The schedule id.
   */
  // deno-lint-ignore no-explicit-any
  schedule<A extends any[]>(
    task: TaskDefinition<A> | string,
    args: NoInfer<A>,
    options: ScheduleOptions,
  ): string {
    return this.#call("schedule", [nameOf(task), args, options]) as string;
  }

  /** Every stored schedule; see `OmniQ.schedules`. */
  schedules(): ScheduleRecord[] {
    return this.#call("schedules", []) as ScheduleRecord[];
  }

  /**
   * Pause a schedule; see `OmniQ.pauseSchedule`.
   *
   * @param id The schedule id.
   */
  pauseSchedule(id: string): boolean {
    return this.#call("pauseSchedule", [id]) as boolean;
  }

  /**
   * Resume a schedule; see `OmniQ.resumeSchedule`.
   *
   * @param id The schedule id.
   */
  resumeSchedule(id: string): boolean {
    return this.#call("resumeSchedule", [id]) as boolean;
  }

  /**
   * Delete a schedule; see `OmniQ.unschedule`.
   *
   * @param id The schedule id.
   */
  unschedule(id: string): boolean {
    return this.#call("unschedule", [id]) as boolean;
  }

  /** Close the queue and end the Worker. Idempotent. */
  close(): void {
    if (this.#closed) return;
    try {
      this.#call("close", []);
    } finally {
      this.#closed = true;
      this.#worker.terminate();
    }
  }

  /** Close on `using`. */
  [Symbol.dispose](): void {
    this.close();
  }
}

function nameOf(task: TaskDefinition | string): string {
  return typeof task === "string" ? task : task?.name;
}

function portable(config: SyncConfig | undefined): unknown {
  if (config === undefined || typeof config === "string") return config;
  if (config === null || typeof config !== "object") {
    throw new ConfigError(`config: expected a URL string or an object, got ${config}`);
  }
  for (const key of ["backend", "queue", "results", "events"] as const) {
    const v = config[key];
    if (v !== undefined && typeof v !== "string") {
      throw new ConfigError(
        `${key}: OmniQSync takes store URLs only; an opened backend cannot cross to its Worker`,
      );
    }
  }
  const tasks = config.tasks?.map((t, i) => {
    if (t instanceof URL) return t.href;
    if (typeof t === "string") return t;
    throw new ConfigError(
      `tasks[${i}]: OmniQSync takes task module URLs or paths; a task definition cannot cross to its Worker`,
    );
  });
  return { ...config, ...(tasks ? { tasks } : {}) };
}

function concat(chunks: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

interface ErrorReply extends SerializedError {
  taskId?: string;
  remote?: SerializedError;
}

const SIMPLE: Record<string, new (message: string) => Error> = {
  OmniQError,
  ConfigError,
  SerializationError,
  TimeoutError,
  UnknownTaskError,
  TaskNotFoundError,
  DuplicateTaskError,
};

/** Rebuild an error of the right class from the Worker's reply. */
function revive(reply: ErrorReply): Error {
  let error: Error;
  if (reply.name === "TaskFailedError" && reply.taskId && reply.remote) {
    error = new TaskFailedError(reply.taskId, reply.remote);
  } else if (reply.name === "TaskCancelledError" && reply.taskId) {
    error = new TaskCancelledError(reply.taskId);
  } else if (reply.name === "TaskExpiredError" && reply.taskId) {
    error = new TaskExpiredError(reply.taskId);
  } else if (SIMPLE[reply.name]) {
    error = new SIMPLE[reply.name](reply.message);
  } else {
    error = new Error(reply.message);
    error.name = reply.name;
  }
  error.message = reply.message;
  if (reply.stack) error.stack = reply.stack;
  return error;
}
