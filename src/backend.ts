/**
 * The storage contract every engine implements: {@linkcode TaskQueue},
 * {@linkcode ResultStore}, {@linkcode EventStore}, and {@linkcode Backend}, the factory that
 * gives all three. It speaks task-queue semantics only (claim, renew a lease, complete,
 * fail, cancel, sweep); no driver type crosses it.
 *
 * Times are epoch milliseconds. Payloads and values are bytes from the codec, so an engine
 * never decodes user data.
 *
 * ## Who does what
 * The orchestrator (`OmniQ`) decides policy: defaults, the retry delay, what result a task
 * ends with. The queue performs each state change as one atomic step, fenced by the claim's
 * token, and reports its {@linkcode Effects}: the lifecycle events it caused and the result
 * records it produced (expiry, cancellation, a final stall).
 *
 * When the queue's engine also holds the results or the events (one URL for everything,
 * the common case), {@linkcode TaskQueue.attach} says so, and the queue writes results and
 * events in the same transaction as the state change. Otherwise the orchestrator writes
 * them to the other stores: a final result before the task is marked final, and the events
 * the queue returns in its effects, after.
 *
 * @module
 */

import type {
  EventFilter,
  EventType,
  FinalState,
  ListOptions,
  QueueStats,
  SerializedError,
  TaskState,
} from "./types.ts";

export {
  endResult,
  isFinal,
  mapLinks,
  RECORD_VERSION,
  taskEvent,
  withStandIns,
  zeroCounts,
} from "./kit/policy.ts";

/**
 * The end of a wake-up subscription ({@linkcode TaskQueue.subscribe}): call it to stop;
 * `ready`, when there, settles once the engine delivers wake-ups (it never rejects: a
 * failed set-up is reported by the engine, and workers still poll).
 */
export type Subscription = (() => void) & { readonly ready?: Promise<void> };

/** How a stored task backs off between retries (durations resolved to ms). */
export interface StoredBackoff {
  /** `"exponential"` or `"fixed"`. */
  type: "exponential" | "fixed";
  /** The first delay in ms. */
  delay: number;
  /** The longest delay in ms. */
  max: number;
  /** The fraction of random spread either side. */
  jitter: number;
}

/** A task to store, every option resolved. */
export interface NewTask {
  /** The task id. */
  id: string;
  /** The task's registered name. */
  task: string;
  /** The named queue. */
  queue: string;
  /** Priority 0–9; 9 runs first. */
  priority: number;
  /** The encoded argument list. */
  payload: Uint8Array;
  /** When it was enqueued. */
  createdAt: number;
  /** When it is due. */
  runAt: number;
  /** When it expires if not started, if ever. */
  expiresAt?: number;
  /** The most attempts allowed (retries + 1). */
  maxAttempts: number;
  /** The retry backoff. */
  backoff: StoredBackoff;
  /** How long one attempt may run, in ms, if limited. */
  timeout?: number;
  /** How long its result is kept, in ms, if limited. */
  resultTtl?: number;
  /** The dedupe key. */
  key?: string;
  /**
   * Throttle: with `key`, the task holds its key until this time even after it ends (as well
   * as while it is live), so an enqueue with the same key before then gets its id instead.
   */
  keyUntil?: number;
  /**
   * Debounce: when a task holding `key` has not started (`waiting`, `scheduled`, `queued`),
   * replace its payload and `runAt` with this task's instead of storing this one (its id
   * stands for this one, `created: false`, with a `debounced` event, data `{ runAt }`); when
   * it is running, clear its `key` and store this task, which takes the key. Not stored.
   */
  debounce?: true;
  /** Ids of tasks that must complete first. */
  dependsOn: string[];
  /** What a failed dependency does to this task. */
  onDependencyFailure: "cancel" | "run";
  /** The schedule that enqueued it. */
  scheduleId?: string;
  /** Workflow links between this task and its dependencies. */
  links?: TaskLinks;
  /**
   * The queue the task moves to when it has spent its attempts, instead of ending `failed`
   * (cleared by the move, so a task is dead-lettered once).
   */
  deadLetter?: string;
  /**
   * Priority aging (ms): while the task is `queued` with a priority under 9, once `runAt +
   * ageAfter` has passed, a sweep raises its priority to 9 and appends an `aged` event (data
   * `{ from }`, the priority it had).
   */

  ageAfter?: number;
  /**
   * The task's group: a claim takes a queue's grouped tasks round-robin between groups (after
   * its ungrouped ones), one group's head at a time, and never starts a task of a group while
   * `groupLimit` of the group's tasks are running (decided in the claim's atomic step).
   */
  group?: string;
  /** With `group`: the most tasks of the group running at once. */
  groupLimit?: number;
  /**
   * A rate limit: the task starts only while fewer than `limit` tasks of the same `key` have
   * started within the last `per` ms (each task counted once, at its latest start; decided in
   * the claim's atomic step). A task with a rate limit is claimed as a grouped task is: in the
   * lane of its group, or without one in the lane of its key (`rateLane`), round-robin with the
   * queue's other lanes, so a limited lane never holds up another.
   */
  rate?: StoredRate;
}

/** A stored rate limit (see {@linkcode NewTask.rate}). */
export interface StoredRate {
  /** The bucket: `g:<group>`, `k:<key>` or `q:<queue>`. */
  key: string;
  /** The most starts per window. */
  limit: number;
  /** The window, in ms. */
  per: number;
}

/** How a workflow task uses its dependencies' results (stored as given, e.g. as JSON). */
export interface TaskLinks {
  /** Node names of dependencies, by dependency id: results are keyed by both. */
  names?: Record<string, string>;
  /** The dependency whose result is prepended to the arguments (a chain step). */
  pipe?: string;
  /**
   * The W3C `traceparent` of the span that enqueued the task, when tracing records
   * (`src/telemetry.ts`): its attempts' spans are that span's children.
   */
  trace?: string;
}

/** A task as the queue stores it. */
export interface StoredTask extends NewTask {
  /** The current state. */
  state: TaskState;
  /** Attempts started so far. */
  attempts: number;
  /** When the latest attempt started. */
  startedAt?: number;
  /** When it reached a final state. */
  completedAt?: number;
  /** The latest progress fraction. */
  progress?: number;
  /** The last error. */
  error?: SerializedError;
  /** The worker that runs its current attempt (while `running`, where the engine says). */
  worker?: string;
}

/** A claimed task: the token fences every later change of this attempt. */
export interface ClaimedTask extends StoredTask {
  /** The fencing token of this claim. */
  token: string;
  /** When the lease ends unless renewed. */
  leaseUntil: number;
}

/** A result as stored: the value is the codec's bytes. */
export interface StoredResult {
  /** The task id. */
  taskId: string;
  /** How the task ended. */
  state: FinalState;
  /** The encoded return value, for `completed`. */
  value?: Uint8Array;
  /** The error, for the other states. */
  error?: SerializedError;
  /** When it ended. */
  completedAt: number;
  /** When to delete it, if ever. */
  expiresAt?: number;
}

/** An event to append; the store gives it an id. */
export interface NewEvent {
  /** The event type. */
  type: EventType;
  /** The task it concerns. */
  taskId?: string;
  /** The task's queue. */
  queue?: string;
  /** When it happened. */
  at: number;
  /** The attempt it concerns. */
  attempt?: number;
  /** Details (JSON-safe). */
  data?: Record<string, unknown>;
}

/** An event as stored. */
export interface StoredEvent extends NewEvent {
  /** Its id in the store; ids grow in append order. */
  id: string;
}

/** What a state change caused, for the orchestrator to forward. */
export interface Effects {
  /** The events the change caused; with ids when the queue wrote them itself. */
  events: (NewEvent | StoredEvent)[];
  /** Result records the change produced that the queue did not store itself. */
  results: StoredResult[];
}

/** What `enqueue` did with each task, in order. */
export interface EnqueueOutcome {
  /** The id of each task: its own, or that of the live task with the same key. */
  ids: string[];
  /** Whether each task was stored (`false`: deduplicated by key). */
  created: boolean[];
  /** The events of the stored tasks. */
  effects: Effects;
}

/** A claim request from a worker. */
export interface ClaimRequest {
  /** The queues to take from, drained in this order. */
  queues: string[];
  /** How many tasks at most. */
  limit: number;
  /** The lease length in ms. */
  lease: number;
  /** The claiming worker's id (for diagnostics). */
  worker: string;
}

/** How an attempt failed, and what happens next. */
export interface Failure {
  /** The error of this attempt. */
  error: SerializedError;
  /** Retry at this time; absent means the task fails for good. */
  retryAt?: number;
  /** The final result, when the task fails for good. */
  result?: StoredResult;
  /**
   * Instead of ending or retrying, move the task to this queue (its `deadLetter`): it is
   * queued there at once with its attempts reset and its `deadLetter` and ttl (`expiresAt`)
   * cleared, keeping its error, and a `dead_lettered` event (the old queue, data `{ to, error }`) is appended.
   * Neither `retryAt` nor `result` is given with it.
   */
  deadLetter?: string;
}

/** What a sweep may do; each part is optional. */
export interface SweepOptions {
  /** Now, in the orchestrator's clock (engines with a server clock may use their own). */
  now: number;
  /** Delete final task records that ended before this time. */
  purgeBefore?: number;
}

/** Where the queue's companion stores live. */
export interface Attachment {
  /** The queue's own engine stores the results: write them in the same step. */
  results: boolean;
  /** The queue's own engine stores the events: write them in the same step. */
  events: boolean;
}

/** A schedule as stored: its definition, its state and the template of its tasks. */
export interface StoredSchedule {
  /** The schedule id (no `:`; tick task ids are `id:tickTime`). */
  id: string;
  /** The task it enqueues. */
  task: string;
  /** The encoded arguments of each run. */
  payload: Uint8Array;
  /** A cron expression, or … */
  cron?: string;
  /** … an interval in ms. */
  every?: number;
  /** The cron expression's IANA time zone. */
  tz?: string;
  /** No tick before this time. */
  startAt?: number;
  /** No tick after this time. */
  endAt?: number;
  /** What happens to ticks missed by more than `misfireGrace`. */
  misfire: "skip" | "once";
  /** How late (ms) a tick may be fired and still count as on time. */
  misfireGrace: number;
  /** Whether it is paused. */
  paused: boolean;
  /** The next tick to fire; absent once the schedule has no more ticks. */
  nextRunAt?: number;
  /** The latest tick fired. */
  lastRunAt?: number;
  /** When it was created. */
  createdAt: number;
  /** The queue of its tasks. */
  queue: string;
  /** Their priority. */
  priority: number;
  /** Their most attempts. */
  maxAttempts: number;
  /** Their backoff. */
  backoff: StoredBackoff;
  /** Their attempt timeout (ms). */
  timeout?: number;
  /** Their ttl (ms after the tick's enqueue). */
  ttl?: number;
  /** Their result ttl (ms). */
  resultTtl?: number;
}

/** One tick to fire: a compare-and-set of the schedule's `nextRunAt`. */
export interface TickClaim {
  /** The schedule id. */
  scheduleId: string;
  /** The tick being fired: must equal the stored `nextRunAt`, or nothing happens. */
  tick: number;
  /** The schedule's next tick after this one (absent: no more ticks). */
  next?: number;
  /** The task to enqueue for this tick (absent: the tick is skipped as missed). */
  task?: NewTask;
}

/**
 * The task queue of one engine. Every method that changes state is one atomic step.
 */
export interface TaskQueue extends ScheduleStore {
  /** The largest encoded payload the engine accepts, in bytes, if limited. */
  readonly maxPayloadBytes?: number;
  /** Say which companion stores live in this engine; called once before any other call. */
  attach(attachment: Attachment): void;
  /**
   * Store tasks, all or none. A task whose `key` matches a live (not final) task is not
   * stored; the live task's id is returned for it. A task whose id exists throws
   * `DuplicateTaskError` and nothing is stored.
   */
  enqueue(tasks: NewTask[]): Promise<EnqueueOutcome>;
  /** One task, or `undefined`. */
  get(id: string): Promise<StoredTask | undefined>;
  /** Tasks matching a filter, oldest first. */
  list(filter: ListOptions): Promise<StoredTask[]>;
  /** Counts per queue and state. */
  stats(): Promise<QueueStats>;
  /**
   * Claim up to `limit` due tasks: queues in the given order, then higher priority first,
   * then FIFO. Each claim increments `attempts`, sets a fresh token and a lease, and
   * appends a `started` event.
   */
  claim(request: ClaimRequest): Promise<{ tasks: ClaimedTask[]; effects: Effects }>;
  /** Extend a lease; `false` when the token no longer holds it (lost lease or cancelled). */
  renew(id: string, token: string, lease: number): Promise<boolean>;
  /** Record progress of a running attempt; `undefined` when the token is stale. */
  progress(id: string, token: string, value: number): Promise<Effects | undefined>;
  /** Complete an attempt; `undefined` when the token is stale (nothing changed). */
  complete(id: string, token: string, result: StoredResult): Promise<Effects | undefined>;
  /** Fail an attempt: retry it at `retryAt`, or fail for good; `undefined` when stale. */
  fail(id: string, token: string, failure: Failure): Promise<Effects | undefined>;
  /** Cancel a task that is not final; `undefined` when it was final or unknown. */
  cancel(id: string, reason: string): Promise<Effects | undefined>;
  /** Queue a final task again with its attempts reset; `undefined` when it is not final. */
  retry(id: string): Promise<Effects | undefined>;
  /**
   * Recover stalled tasks (expired leases: back to the queue with a `stalled` event, or
   * `failed` when out of attempts), expire tasks past their `ttl`, raise the priority of
   * tasks that aged (`NewTask.ageAfter`), and purge final records.
   */
  sweep(options: SweepOptions): Promise<Effects>;
  /**
   * Pause (`true`) or resume a queue, persisted in the store: while paused, `claim` takes
   * nothing from it (decided inside the claim's atomic step), and its tasks stay as they are.
   * Appends `queue_paused` or `queue_resumed` (no taskId; `queue` set); `undefined` when the
   * queue is already in that state.
   */
  setQueuePaused(queue: string, paused: boolean): Promise<Effects | undefined>;
  /** The paused queues, sorted. */
  pausedQueues(): Promise<string[]>;
  /** The earliest `runAt` of a scheduled task in these queues, if any. */
  nextDue(queues: string[]): Promise<number | undefined>;
  /**
   * Optional: call `onWake` soon after a task of these queues becomes due in any process
   * (an enqueue, a retry, a release, or a new delayed task that may change `nextDue`), so
   * an idle worker claims at once instead of at its next poll. A hint only: it may be
   * spurious or missed (workers still poll every `pollInterval`). Engines with a
   * cross-process signal (PostgreSQL `LISTEN/NOTIFY`) implement it; others omit it.
   * Returns the function that ends the subscription; where the signal takes a round trip to
   * set up (a `LISTEN`, a `SUBSCRIBE`), that function carries a `ready` promise that settles
   * once wake-ups flow, which `Worker.start()` waits for.
   */
  subscribe?(queues: string[], onWake: () => void): Subscription;
  /** Release what the queue holds (connections, files). */
  close(): Promise<void>;
}

/** Stored schedules and tick claiming: part of every engine's queue. */
export interface ScheduleStore {
  /**
   * Store a schedule as given, replacing one of the same id (the orchestrator has already
   * carried over its paused state and next tick where they apply).
   */
  putSchedule(schedule: StoredSchedule): Promise<void>;
  /** One schedule, or `undefined`. */
  getSchedule(id: string): Promise<StoredSchedule | undefined>;
  /** Every schedule, by id. */
  listSchedules(): Promise<StoredSchedule[]>;
  /**
   * Pause (`paused: true`) or resume a schedule; on resume `nextRunAt` is its next tick
   * after now, so ticks missed while paused never fire. Appends `schedule_paused` or
   * `schedule_resumed` (no taskId; data `{ scheduleId }`); `undefined` when unknown or
   * already in that state.
   */
  setSchedulePaused(id: string, paused: boolean, nextRunAt?: number): Promise<Effects | undefined>;
  /** Delete a schedule (its tasks stay); whether it existed. */
  deleteSchedule(id: string): Promise<boolean>;
  /** Unpaused schedules whose `nextRunAt` is at or before `now`, earliest first. */
  dueSchedules(now: number, limit: number): Promise<StoredSchedule[]>;
  /** The earliest `nextRunAt` of an unpaused schedule, if any. */
  nextScheduleAt(): Promise<number | undefined>;
  /**
   * Fire a tick in one atomic step: only when the schedule exists, is not paused and its
   * `nextRunAt` equals `tick`, set `nextRunAt` to `next` (absent: none) and `lastRunAt` to
   * `tick`, and, when `task` is given, enqueue it as `enqueue` would (with its `enqueued`
   * event) unless a task with its id exists, then append `schedule_fired` (taskId = the
   * task's id, data `{ scheduleId, tick }`). Without `task` the tick is skipped (a missed
   * tick): only the schedule advances. `undefined` when the compare-and-set failed
   * (another scheduler fired the tick first, or the schedule was paused or changed).
   */
  fireTick(claim: TickClaim): Promise<Effects | undefined>;
}

/** Results of finished tasks. */
export interface ResultStore {
  /** Store results (replacing any of the same task). */
  put(results: StoredResult[]): Promise<void>;
  /** A result, or `undefined` (also once it expired). */
  get(taskId: string): Promise<StoredResult | undefined>;
  /** Delete results. */
  delete(taskIds: string[]): Promise<void>;
  /** Delete expired results; returns how many. */
  sweep(now: number): Promise<number>;
  /**
   * Optional: call `onStored` soon after a result of `taskId` is stored by any process, so
   * `wait` returns at once instead of at its next poll. A hint only: it may be spurious or
   * missed (`wait` still polls). Engines with a server-side watch (a NATS KV watch)
   * implement it; others omit it. Returns the function that ends the watch.
   */
  watch?(taskId: string, onStored: () => void): () => void;
  /** Release what the store holds. */
  close(): Promise<void>;
}

/** A query of stored events. */
export interface EventQuery extends Omit<EventFilter, "since" | "until"> {
  /** Only events at or after this time (ms). */
  since?: number;
  /** Only events before this time (ms). */
  until?: number;
}

/** Lifecycle events, appended in order. */
export interface EventStore {
  /** Append events; returns them with their ids, in order. */
  append(events: NewEvent[]): Promise<StoredEvent[]>;
  /** Events matching a query, in append order. */
  query(query: EventQuery): Promise<StoredEvent[]>;
  /** Delete events older than this time; returns how many. */
  sweep(before: number): Promise<number>;
  /** Release what the store holds. */
  close(): Promise<void>;
}

/** One engine: the three stores over one connection, file or directory. */
export interface Backend {
  /** The engine's name, e.g. `"sqlite"`. */
  readonly name: string;
  /** The task queue. */
  readonly queue: TaskQueue;
  /** The result store. */
  readonly results: ResultStore;
  /** The event store. */
  readonly events: EventStore;
  /** Close the engine (its stores' `close` are part of this). */
  close(): Promise<void>;
}

/** Whether a stored task matches a list filter's state, queue and name. */
export function matchesList(task: StoredTask, filter: ListOptions): boolean {
  if (filter.queue !== undefined && task.queue !== filter.queue) return false;
  if (filter.task !== undefined && task.task !== filter.task) return false;
  if (filter.since !== undefined && task.createdAt < Number(filter.since)) return false;
  if (filter.until !== undefined && task.createdAt >= Number(filter.until)) return false;
  if (filter.state !== undefined) {
    const states = Array.isArray(filter.state) ? filter.state : [filter.state];
    if (!states.includes(task.state)) return false;
  }
  return true;
}

/** Whether a stored event matches a query's filters (not its `after` or `limit`). */
export function matchesEvent(event: StoredEvent | NewEvent, query: EventQuery): boolean {
  if (query.taskId !== undefined && event.taskId !== query.taskId) return false;
  if (query.queue !== undefined && event.queue !== query.queue) return false;
  if (query.type !== undefined) {
    const types = Array.isArray(query.type) ? query.type : [query.type];
    if (!types.includes(event.type)) return false;
  }
  if (query.since !== undefined && event.at < query.since) return false;
  if (query.until !== undefined && event.at >= query.until) return false;
  return true;
}

/** An empty set of effects. */
export function noEffects(): Effects {
  return { events: [], results: [] };
}
