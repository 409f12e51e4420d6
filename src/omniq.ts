/**
 * The `OmniQ` orchestrator: opens the configured stores, validates and enqueues tasks,
 * reads records, results and events, cancels and retries, and makes workers.
 *
 * Why this file is longer than the others: it is the public facade, and most of its
 * lines are the reference docs and examples of its methods. The work behind them lives in
 * the modules it imports: `stores.ts` (opening), `prepare.ts` (validating what is
 * enqueued), `ticks.ts` (schedules), `waits.ts`, `listeners.ts`, `outcome.ts` (what ends an
 * attempt) and `records.ts` (what users see).
 *
 * @module
 */

import type {
  Backend,
  Effects,
  EventStore,
  ResultStore,
  StoredEvent,
  StoredResult,
  TaskQueue,
} from "./backend.ts";
import { traceEnqueue, tracingOn } from "./telemetry.ts";
import { type CodecName, decode } from "./codec.ts";
import { validateConfig } from "./config.ts";
import { nextTick, resolveSchedule, toScheduleRecord } from "./schedule.ts";
import {
  chainItems,
  type Flow,
  groupItems,
  type LinkedItem,
  orderBatch,
  type Step,
  Workflow,
} from "./workflow.ts";
import { parseDuration } from "./duration.ts";
import { ConfigError, OmniQError, TaskCancelledError } from "./errors.ts";
import type { WorkerHost } from "./host.ts";
import {
  checkKeys,
  checkName,
  DEFAULTS,
  resolveBackoff,
  type ResolvedWorkerOptions,
  resolveWorker,
} from "./options.ts";
import type { TaskDefinition, TaskId } from "./task.ts";
import type {
  EnqueueOptions,
  EventRecord,
  EventType,
  ListOptions,
  QueueStats,
  ResultRecord,
  ScheduleOptions,
  ScheduleRecord,
  TaskDefaults,
  TaskRecord,
  WorkerOptions,
} from "./types.ts";
import { EVENT_TYPES } from "./types.ts";
import { Outcomes } from "./outcome.ts";
import { delay } from "./kit/async.ts";
import { type Clock, systemClock } from "./kit/clock.ts";
import { Listeners } from "./listeners.ts";
import { Waits } from "./waits.ts";
import { checkPayload, prepareBatch, resolveName } from "./prepare.ts";
import { toEventRecord, toResultRecord, toTaskRecord } from "./records.ts";
import { openStores } from "./stores.ts";
import { runtime } from "./runtime/mod.ts";
import { fireDueTicks } from "./ticks.ts";
import { AsyncWorker, type Worker } from "../workers/async.ts";
import type { Executor } from "../workers/executor.ts";
import { workerType } from "./registry.ts";
import {
  type CleanupReport,
  DEFAULT_URL,
  type EngineOptions,
  type EnqueueItem,
  type EventsOptions,
  type OmniQConfig,
  type RunOptions,
  type StoreTarget,
  type WaitOptions,
} from "./api.ts";

export {
  type CleanupReport,
  DEFAULT_URL,
  type EngineOptions,
  type EnqueueItem,
  type EventsOptions,
  type OmniQConfig,
  type RunOptions,
  type StoreTarget,
  type WaitOptions,
};
export { toEventRecord, toResultRecord, toTaskRecord };

/**
 * A task queue: enqueue tasks, run workers, read results and events.
 *
 * @example Enqueue, run, wait
 * ```ts
 * import { defineTask, OmniQ } from "@omniq/omniq";
 * const add = defineTask("omniq-doc-add", (a: number, b: number) => a + b);
 * await using q = await OmniQ.open("memory:");
 * const id = await q.enqueue(add, [1, 2]);
 * await q.run({ until: "idle" });
 * const sum: number = await q.wait(id);
 * console.assert(sum === 3);
 * ```
 */
export class OmniQ implements AsyncDisposable {
  /**
   * The stores in use, for tools and tests that work below the orchestrator (a custom
   * dashboard, a test that plays a dead worker). Programs use the methods instead.
   */
  readonly stores: Readonly<{ queue: TaskQueue; results: ResultStore; events: EventStore }>;
  #queue: TaskQueue;
  #results: ResultStore;
  #events: EventStore;
  #host: WorkerHost;
  #outcomes: Outcomes;
  #opened: Backend[];
  #defaults: TaskDefaults;
  #codec: CodecName;
  #clock: Clock;
  #taskModules: string[];
  #scheduleWakers = new Set<() => void>();
  #workerDefaults: WorkerOptions;
  #resultsInline: boolean;
  #eventsInline: boolean;
  #closed = false;
  #workers = new Set<Worker>();
  #wakers = new Set<() => void>();
  /** A wake-up that came while no worker was idle, kept for the next idle wait. */
  #missedWake = false;
  #waits: Waits;
  #running = new Map<string, AbortController>();
  #listeners: Listeners;
  #pollInterval: number;
  #errorHandlers = new Set<(error: unknown, what: string) => void>();

  private constructor(
    queue: Backend,
    results: Backend,
    events: Backend,
    opened: Backend[],
    config: OmniQConfig,
    taskModules: string[],
  ) {
    this.#taskModules = taskModules;
    this.#queue = queue.queue;
    this.#results = results.results;
    this.#events = events.events;
    this.stores = Object.freeze({
      queue: this.#queue,
      results: this.#results,
      events: this.#events,
    });
    this.#opened = opened;
    this.#resultsInline = results === queue;
    this.#eventsInline = events === queue;
    this.#queue.attach({ results: this.#resultsInline, events: this.#eventsInline });
    this.#defaults = config.defaults ?? {};
    this.#codec = config.codec ?? "msgpack";
    this.#clock = config.clock ?? systemClock;
    this.#workerDefaults = config.worker ?? {};
    // After the codec and the clock: the host hands both to workers.
    this.#host = this.#makeHost();
    // Reruns renew no lease; attempts get theirs from each worker's own service.
    this.#outcomes = new Outcomes(this.#host, 0);
    this.#pollInterval = resolveWorker({}, this.#workerDefaults).pollInterval;
    this.#waits = new Waits(this.#queue, this.#results, this.#pollInterval);
    this.#listeners = new Listeners(this.#events, this.#pollInterval, (e, w) => this.#report(e, w));
  }

  /**
   * Open a queue.
   *
   * @param config A URL for everything (`"sqlite:./omniq.db"`, `"memory:"` …) or a config
   *   object. With nothing, SQLite in `./omniq.db`.
   * @returns The open queue; close it with `close()` or `await using`.
   * @throws {ConfigError} For an unknown key, a bad value or an unknown URL scheme.
   */
  static async open(config: string | OmniQConfig = {}): Promise<OmniQ> {
    const unsupported = runtime.unsupported();
    if (unsupported) throw new ConfigError(unsupported);
    const given: OmniQConfig = typeof config === "string" ? { backend: config } : config;
    if (given === null || typeof given !== "object") {
      throw new ConfigError(`config: expected a URL string or an object, got ${typeof given}`);
    }
    const cfg = validateConfig(given);
    // Checked as the options themselves, so an unknown key is refused here, not ignored.
    resolveWorker(cfg.worker ?? {}, {}, "worker");
    if (cfg.defaults?.backoff !== undefined) {
      resolveBackoff(cfg.defaults.backoff, "defaults.backoff");
    }
    const { queue, results, events, opened, modules } = await openStores(cfg);
    return new OmniQ(queue, results, events, opened, cfg, modules);
  }

  #check(): void {
    if (this.#closed) throw new OmniQError("this OmniQ is closed");
  }

  /**
   * Enqueue a task.
   *
   * @param task A task definition (typed arguments) or a task name.
   * @param args The arguments, as an array.
   * @param options Queue, priority, delay, retries, dependencies, dedupe key …
   * @returns The task id (or, with a `key` that a live task holds, that task's id).
   * @throws {ConfigError} For a bad option; {@linkcode SerializationError} for arguments
   *   the codec cannot carry; {@linkcode DuplicateTaskError} for an `id` that exists.
   */
  // deno-lint-ignore no-explicit-any
  async enqueue<A extends any[], R>(
    task: TaskDefinition<A, R> | string,
    args: NoInfer<A>,
    options: EnqueueOptions = {},
  ): Promise<TaskId<R>> {
    const [id] = await this.enqueueMany([{ ...options, task, args }]);
    return id as TaskId<R>;
  }

  /**
   * Enqueue several tasks in one step: all are stored or none.
   *
   * @param items Each a task, its arguments and its options.
   * @returns The ids, in item order.
   */
  enqueueMany(items: EnqueueItem[]): Promise<TaskId[]> {
    if (!Array.isArray(items)) {
      return Promise.reject(
        new ConfigError("enqueueMany: expected an array of { task, args, ...options }"),
      );
    }
    for (const item of items) {
      if (item && typeof item === "object" && "links" in item) {
        return Promise.reject(new ConfigError("links: unknown option"));
      }
    }
    return this.#submit(items as LinkedItem[]);
  }

  /** Validate, order (dependencies first) and store a batch; ids in item order. */
  async #submit(items: LinkedItem[]): Promise<TaskId[]> {
    this.#check();
    const tasks = prepareBatch(items, {
      defaults: this.#defaults,
      codec: this.#codec,
      maxPayloadBytes: this.#queue.maxPayloadBytes,
      clock: this.#clock,
    });
    const ordered = orderBatch(tasks);
    const traced = tracingOn() ? await traceEnqueue(ordered) : undefined;
    let outcome;
    try {
      outcome = await this.#queue.enqueue(ordered);
    } catch (error) {
      traced?.(error);
      throw error;
    }
    traced?.();
    await this.apply(outcome.effects);
    if (outcome.created.some(Boolean)) this.#wake();
    if (ordered === tasks) return outcome.ids;
    const idOf = new Map(ordered.map((t, i) => [t, outcome.ids[i]]));
    return tasks.map((t) => idOf.get(t)!);
  }

  /**
   * Enqueue a chain: each step runs after the one before completed, and gets its result as
   * its first argument. All steps are stored in one atomic step.
   *
   * @param steps The steps: `{ task, args, ...options }` (args after the piped result).
   * @returns The last step's id (to wait on) and every step's id.
   *
   * @example
   * ```ts
   * import { defineTask, OmniQ } from "@omniq/omniq";
   * const start = defineTask("chain-doc-start", (n: number) => n + 1);
   * const double = defineTask("chain-doc-double", (n: number) => n * 2);
   * await using q = await OmniQ.open("memory:");
   * const flow = await q.chain([{ task: start, args: [1] }, { task: double, args: [] }]);
   * await q.run({ until: "idle" });
   * console.assert((await q.wait(flow.id)) === 4);
   * ```
   */
  async chain<R = unknown>(steps: Step[]): Promise<Flow<R>> {
    const ids = await this.#submit(chainItems(steps));
    return { id: ids[ids.length - 1] as TaskId<R>, ids };
  }

  /**
   * Enqueue a group: the members run in parallel; a collector task waits for them all and
   * returns their results as a list, in member order.
   *
   * @param members The members: `{ task, args, ...options }`.
   * @param options Options of the collector task (its `queue`, `id` …).
   * @returns The collector's id (to wait on for the list) and the members' ids.
   */
  async group(members: Step[], options: EnqueueOptions = {}): Promise<Flow<unknown[]>> {
    const ids = await this.#submit(groupItems(members, options));
    return { id: ids[ids.length - 1] as TaskId<unknown[]>, ids: ids.slice(0, -1) };
  }

  /**
   * A workflow builder: named nodes and edges, enqueued as one atomic step; see
   * {@linkcode Workflow}.
   *
   * @returns A builder: `.add(name, { task, args, after })`, then `.enqueue()`.
   */
  workflow(): Workflow {
    this.#check();
    return new Workflow((items) => this.#submit(items));
  }

  /**
   * Create a schedule (or update the one with the same `id`, keeping its paused state and,
   * when its timing did not change, its next tick). Stored in the backend, fired by
   * workers (or `tick()`), each tick exactly once across any number of schedulers.
   *
   * @param task A task definition or name.
   * @param args The arguments of each run.
   * @param options `cron` (with `tz`) or `every`, a window, misfire handling, task options.
   * @returns The schedule id.
   * @throws {ConfigError} For a bad expression, time zone, interval or option; nothing is
   *   stored.
   *
   * @example Every 30 seconds
   * ```ts
   * import { defineTask, OmniQ } from "@omniq/omniq";
   * const ping = defineTask("schedule-doc-ping", () => "pong");
   * await using q = await OmniQ.open("memory:");
   * const id = await q.schedule(ping, [], { every: "30s", id: "pinger" });
   * console.assert((await q.schedules())[0].id === id);
   * ```
   */
  // deno-lint-ignore no-explicit-any
  async schedule<A extends any[]>(
    task: TaskDefinition<A> | string,
    args: NoInfer<A>,
    options: ScheduleOptions,
  ): Promise<string> {
    this.#check();
    const [name, definition] = resolveName(task);
    const now = this.#clock.now();
    let schedule = resolveSchedule(
      name,
      args,
      options,
      definition?.options ?? {},
      this.#defaults,
      now,
      this.#codec,
    );
    checkPayload(schedule.payload, this.#queue.maxPayloadBytes);
    const existing = await this.#queue.getSchedule(schedule.id);
    if (existing) {
      // Re-registering (a program that schedules at every start) keeps the anchor, the
      // paused state and, when the timing is the same, the next tick.
      schedule = { ...schedule, createdAt: existing.createdAt, paused: existing.paused };
      const same = existing.cron === schedule.cron && existing.every === schedule.every &&
        existing.tz === schedule.tz && existing.startAt === schedule.startAt &&
        existing.endAt === schedule.endAt;
      const next = same ? existing.nextRunAt : nextTick(schedule, now - 1);
      if (next === undefined) delete schedule.nextRunAt;
      else schedule.nextRunAt = next;
      if (existing.lastRunAt !== undefined) schedule.lastRunAt = existing.lastRunAt;
    }
    await this.#queue.putSchedule(schedule);
    this.#wakeScheduler();
    return schedule.id;
  }

  /** Every stored schedule, by id. */
  async schedules(): Promise<ScheduleRecord[]> {
    this.#check();
    return (await this.#queue.listSchedules()).map((s) =>
      toScheduleRecord(s, decode(s.payload) as unknown[])
    );
  }

  /**
   * Pause a schedule: no tick fires until it is resumed, in any process, across restarts.
   *
   * @param id The schedule id.
   * @returns Whether it changed (`false`: unknown or already paused).
   */
  async pauseSchedule(id: string): Promise<boolean> {
    this.#check();
    const effects = await this.#queue.setSchedulePaused(id, true);
    if (!effects) return false;
    await this.apply(effects);
    return true;
  }

  /**
   * Resume a schedule at its next tick after now: ticks missed while paused do not fire.
   *
   * @param id The schedule id.
   * @returns Whether it changed (`false`: unknown or not paused).
   */
  async resumeSchedule(id: string): Promise<boolean> {
    this.#check();
    const schedule = await this.#queue.getSchedule(id);
    if (!schedule || !schedule.paused) return false;
    const effects = await this.#queue.setSchedulePaused(
      id,
      false,
      nextTick(schedule, this.#clock.now()),
    );
    if (!effects) return false;
    await this.apply(effects);
    this.#wakeScheduler();
    return true;
  }

  /**
   * Delete a schedule; tasks it already enqueued stay.
   *
   * @param id The schedule id.
   * @returns Whether it existed.
   */
  unschedule(id: string): Promise<boolean> {
    this.#check();
    return this.#queue.deleteSchedule(id);
  }

  /**
   * Fire every stored schedule tick that is due, once: what workers do on their own, and
   * what a per-minute `Deno.cron` calls on Deno Deploy. A tick claimed more than its
   * `misfireGrace` late is missed: skipped (`misfire: "skip"`), or fired once to catch up
   * (`"once"`); the schedule resumes at its first tick that is not missed, so after a
   * per-minute driver skips a run, the tick of the minute it runs in still fires.
   *
   * @returns How many tasks were enqueued.
   */
  async tick(): Promise<number> {
    this.#check();
    const fired = await fireDueTicks(this.#queue, (effects) => this.apply(effects), this.#clock);
    if (fired > 0) this.#wake();
    return fired;
  }

  #wakeScheduler(): void {
    const wakers = [...this.#scheduleWakers];
    this.#scheduleWakers.clear();
    for (const wake of wakers) wake();
  }

  /**
   * A task's record.
   *
   * @param id The task id.
   * @returns The record, or `undefined` when there is no such task.
   */
  async get(id: string): Promise<TaskRecord | undefined> {
    this.#check();
    const task = await this.#queue.get(id);
    return task && toTaskRecord(task, this.#clock.now());
  }

  /**
   * A task's result.
   *
   * @param id The task id.
   * @returns The result, or `undefined` while the task is not final (or after `resultTtl`).
   */
  async result<R = unknown>(id: TaskId<R> | string): Promise<ResultRecord<R> | undefined> {
    this.#check();
    const result = await this.#results.get(id);
    return result && toResultRecord<R>(result);
  }

  /**
   * Wait for a task to end.
   *
   * @param id The task id.
   * @param options A timeout or a signal.
   * @returns The handler's return value.
   * @throws {TaskFailedError} When it failed; {@linkcode TaskCancelledError},
   *   {@linkcode TaskExpiredError} for those ends; {@linkcode TimeoutError} when the wait
   *   timed out; {@linkcode TaskNotFoundError} when there is no such task.
   */
  async wait<R>(id: TaskId<R> | string, options: WaitOptions = {}): Promise<R> {
    this.#check();
    const timeout = options.timeout === undefined
      ? undefined
      : parseDuration(options.timeout, "timeout");
    return await this.#waits.wait<R>(id, timeout, options.signal);
  }

  /**
   * Cancel a task: a queued, scheduled or waiting task ends `cancelled`; a running task's
   * signal aborts and its outcome is discarded.
   *
   * @param id The task id.
   * @returns Whether anything changed.
   */
  async cancel(id: string): Promise<boolean> {
    this.#check();
    const effects = await this.#queue.cancel(id, "cancelled by request");
    if (!effects) return false;
    this.#running.get(id)?.abort(new TaskCancelledError(id, "cancelled by request"));
    await this.apply(effects);
    return true;
  }

  /**
   * Run a failed, cancelled or expired task again, with its attempts reset.
   *
   * @param id The task id.
   * @returns Whether the task was queued again.
   */
  async retry(id: string): Promise<boolean> {
    this.#check();
    if (!(await this.#outcomes.rerun(id))) return false;
    this.#wake();
    return true;
  }

  /** Counts of tasks per queue and state, and the paused queues. */
  async stats(): Promise<QueueStats & { paused: string[] }> {
    this.#check();
    const [stats, paused] = await Promise.all([this.#queue.stats(), this.#queue.pausedQueues()]);
    return { ...stats, paused };
  }

  /**
   * Pause a queue, in every process sharing the store and across restarts: workers claim
   * nothing from it until it is resumed; its tasks stay queued (running ones finish).
   *
   * @param queue The queue's name (it need not hold tasks yet).
   * @returns Whether it changed (`false`: already paused).
   */
  async pauseQueue(queue: string): Promise<boolean> {
    return await this.#setQueuePaused(queue, true);
  }

  /**
   * Resume a paused queue: workers claim from it again at once.
   *
   * @param queue The queue's name.
   * @returns Whether it changed (`false`: not paused).
   */
  async resumeQueue(queue: string): Promise<boolean> {
    return await this.#setQueuePaused(queue, false);
  }

  async #setQueuePaused(queue: string, paused: boolean): Promise<boolean> {
    this.#check();
    checkName(queue, "queue");
    const effects = await this.#queue.setQueuePaused(queue, paused);
    if (!effects) return false;
    await this.apply(effects);
    if (!paused) this.#wake();
    return true;
  }

  /**
   * Tasks matching a filter, oldest first.
   *
   * @param filter State, queue, task name, enqueue time range (`since`, `until`), limit,
   *   offset.
   */
  async list(filter: ListOptions = {}): Promise<TaskRecord[]> {
    this.#check();
    checkKeys(filter, ["state", "queue", "task", "since", "until", "limit", "offset"], "list");
    const { since, until } = filter;
    const query: ListOptions = { ...filter };
    if (since !== undefined) query.since = toMs(since, "since");
    if (until !== undefined) query.until = toMs(until, "until");
    const now = this.#clock.now();
    return (await this.#queue.list(query)).map((t) => toTaskRecord(t, now));
  }

  /**
   * Make a worker (not yet started).
   *
   * @param options Overrides of the configured worker options.
   * @returns The worker: `start()` it, `stop()` it.
   */
  worker(options: WorkerOptions = {}): Worker {
    this.#check();
    const resolved = resolveWorker(options, this.#workerDefaults);
    const worker = new AsyncWorker(this.#host, resolved, {
      executor: this.#executor(resolved, options),
    });
    this.#workers.add(worker);
    return worker;
  }

  /** Where a worker's handlers run: here, or in a pool its registered type makes. */
  #executor(resolved: ResolvedWorkerOptions, options: WorkerOptions): Executor {
    const type = workerType(resolved.type);
    if (!type) {
      throw new ConfigError(
        `worker.type: no worker type "${resolved.type}" is registered (import @omniq/omniq)`,
      );
    }
    if (type.needsModules && this.#taskModules.length === 0) {
      throw new ConfigError(
        `worker.type: "${resolved.type}" workers import their handlers: give the task modules ` +
          `in tasks (URLs or paths) when opening the queue`,
      );
    }
    return type.create({
      size: resolved.concurrency,
      modules: this.#taskModules,
      lease: resolved.lease,
      permissions: options.permissions ?? this.#workerDefaults.permissions,
    });
  }

  /**
   * Process tasks until nothing is due or running, then return. Does not wait for future
   * delays or schedule ticks; does wait for retries of the tasks it ran.
   *
   * @param options `{ until: "idle" }` and worker options.
   */
  async run(options: RunOptions = { until: "idle" }): Promise<void> {
    this.#check();
    const { until, ...workerOptions } = options;
    if (until !== "idle") {
      throw new ConfigError(`until: expected "idle", got ${JSON.stringify(until)}`);
    }
    const resolved = resolveWorker(workerOptions, this.#workerDefaults);
    const worker = new AsyncWorker(this.#host, resolved, {
      untilIdle: true,
      executor: this.#executor(resolved, workerOptions),
    });
    this.#workers.add(worker);
    try {
      await worker.start();
      await worker.done;
    } finally {
      this.#workers.delete(worker);
    }
  }

  /**
   * Stored events matching a filter, oldest first; with `follow`, keeps waiting for new ones.
   *
   * @param filter Task, type, queue, time range, limit; `follow` to tail.
   */
  async *events(filter: EventsOptions = {}): AsyncIterableIterator<EventRecord> {
    this.#check();
    const { follow, signal, limit, since, until, ...rest } = filter;
    checkKeys(rest, ["taskId", "type", "queue", "after"], "events");
    let left = limit ?? Infinity;
    let after = rest.after;
    const query = {
      ...rest,
      since: since === undefined ? undefined : toMs(since, "since"),
      until: until === undefined ? undefined : toMs(until, "until"),
    };
    while (left > 0) {
      const page = await this.#events.query({ ...query, after, limit: Math.min(left, 500) });
      for (const e of page) {
        yield toEventRecord(e);
        after = e.id;
        if (--left <= 0) return;
      }
      if (page.length === 500) continue;
      if (!follow || this.#closed || signal?.aborted) return;
      await delay(this.#pollInterval, { signal });
    }
  }

  /**
   * Call a function for each new event of a type (`"*"` for all), from this process at once
   * and from other processes sharing the event store within the poll interval.
   *
   * @param type An event type, or `"*"`.
   * @param listener The function to call.
   * @returns A function that unsubscribes.
   */
  on(type: EventType | "*", listener: (event: EventRecord) => void): () => void {
    this.#check();
    if (type !== "*" && !EVENT_TYPES.includes(type)) {
      throw new ConfigError(`on: unknown event type ${JSON.stringify(type)}`);
    }
    return this.#listeners.add(type, listener);
  }

  /**
   * Call a function for errors that are not a task's own (a failed claim, sweep or lease
   * renewal); by default they are written to the console.
   *
   * @param handler The function to call.
   * @returns A function that unsubscribes.
   */
  onError(handler: (error: unknown, what: string) => void): () => void {
    this.#errorHandlers.add(handler);
    return () => this.#errorHandlers.delete(handler);
  }

  #report(error: unknown, what: string): void {
    if (this.#errorHandlers.size === 0) {
      console.error(`omniq: ${what}:`, error);
      return;
    }
    for (const handler of this.#errorHandlers) handler(error, what);
  }

  /**
   * Sweep now: recover stalled tasks, expire tasks past their `ttl`, delete results past
   * their `resultTtl`, final task records past `keepCompleted`, events past `eventTtl`.
   * Workers do this on their own every `sweepInterval`.
   */
  async cleanup(): Promise<CleanupReport> {
    this.#check();
    const now = this.#clock.now();
    const keep = parseDuration(this.#defaults.keepCompleted ?? DEFAULTS.keepCompleted);
    const eventTtl = parseDuration(this.#defaults.eventTtl ?? DEFAULTS.eventTtl);
    const effects = await this.#queue.sweep({ now, purgeBefore: now - keep });
    await this.apply(effects);
    const results = await this.#results.sweep(now);
    const eventsDeleted = await this.#events.sweep(now - eventTtl);
    return { events: effects.events.length, results, eventsDeleted };
  }

  /**
   * Forward the effects of a state change: store results and events that the queue did not
   * store itself, then notify this process's listeners, waiters and workers.
   */
  async apply(effects: Effects): Promise<void> {
    if (effects.results.length > 0) await this.#results.put(effects.results);
    let events = effects.events as StoredEvent[];
    if (events.length === 0) return;
    if (!this.#eventsInline) events = await this.#events.append(effects.events);
    this.#listeners.deliver(events);
    let released = false;
    for (const e of events) {
      switch (e.type) {
        case "completed":
        case "failed":
        case "cancelled":
        case "expired":
          this.#waits.wake(e.taskId!);
          break;
        case "enqueued":
        case "scheduled":
          if (e.data?.released) released = true;
      }
    }
    if (released) this.#wake();
  }

  #wake(): void {
    const wakers = [...this.#wakers];
    this.#wakers.clear();
    // No worker is idle right now (one may be between a claim that saw nothing and its
    // idle wait): keep the wake-up for the next idle wait, so it is not lost.
    if (wakers.length === 0) this.#missedWake = true;
    for (const wake of wakers) wake();
  }

  #makeHost(): WorkerHost {
    return {
      queue: this.#queue,
      results: this.#results,
      resultsInline: this.#resultsInline,
      apply: (effects) => this.apply(effects),
      putResult: (result: StoredResult) => this.#results.put([result]),
      idle: (ms, signal) => {
        if (this.#missedWake) {
          this.#missedWake = false;
          return Promise.resolve();
        }
        return delay(ms, { signal, wakers: this.#wakers });
      },
      track: (taskId, controller) => {
        this.#running.set(taskId, controller);
        return () => {
          if (this.#running.get(taskId) === controller) this.#running.delete(taskId);
        };
      },
      codec: this.#codec,
      clock: this.#clock,
      tick: () => this.tick(),
      idleScheduler: (ms, signal) => delay(ms, { signal, wakers: this.#scheduleWakers }),
      report: (error, what) => this.#report(error, what),
      sweep: async () => {
        try {
          await this.cleanup();
        } catch (error) {
          this.#report(error, "sweep");
        }
      },
    };
  }

  /** Stop every worker (draining running tasks), then close the stores this queue opened. */
  async close(): Promise<void> {
    if (this.#closed) return;
    await Promise.allSettled([...this.#workers].map((w) => w.stop()));
    this.#closed = true;
    this.#listeners.stop();
    this.#wake();
    this.#waits.close();
    await Promise.allSettled(this.#opened.map((b) => b.close()));
  }

  /** Close on `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

function toMs(value: Date | number, name: string): number {
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    throw new ConfigError(`${name}: expected a Date or epoch milliseconds`);
  }
  return ms;
}
