/**
 * The types that OmniQ's users see: task, result and event records, and the options of
 * `enqueue`, `worker`, `events` and `list`. Everything public and typed lives here, the way
 * a contract should: in one place.
 *
 * @module
 */

/**
 * A length of time: a number of milliseconds, or a string such as `"250ms"`, `"30s"`,
 * `"5m"`, `"1h"` or `"2d"`.
 */
export type Duration = number | string;

/**
 * The states of a task.
 *
 * `waiting` (dependencies not done) · `scheduled` (delay/runAt in the future) · `queued` ·
 * `running` · `completed` · `failed` · `cancelled` · `expired`.
 */
export type TaskState =
  | "waiting"
  | "scheduled"
  | "queued"
  | "running"
  | "completed"
  | "failed"
  | "cancelled"
  | "expired";

/** The final task states: a task in one of them never runs again unless retried. */
export type FinalState = "completed" | "failed" | "cancelled" | "expired";

/** Every task state, in lifecycle order. */
export const TASK_STATES: readonly TaskState[] = [
  "waiting",
  "scheduled",
  "queued",
  "running",
  "completed",
  "failed",
  "cancelled",
  "expired",
];

/** The states after which a task does not run again (unless {@linkcode OmniQ.retry}). */
export const FINAL_STATES: readonly FinalState[] = ["completed", "failed", "cancelled", "expired"];

/** The types of lifecycle events. */
export type EventType =
  | "enqueued"
  | "scheduled"
  | "started"
  | "progress"
  | "completed"
  | "failed"
  | "retrying"
  | "stalled"
  | "cancelled"
  | "expired"
  | "schedule_fired"
  | "schedule_paused"
  | "schedule_resumed"
  | "dead_lettered"
  | "aged"
  | "debounced"
  | "queue_paused"
  | "queue_resumed"
  | "corrupt";

/** Every event type. */
export const EVENT_TYPES: readonly EventType[] = [
  "enqueued",
  "scheduled",
  "started",
  "progress",
  "completed",
  "failed",
  "retrying",
  "stalled",
  "cancelled",
  "expired",
  "schedule_fired",
  "schedule_paused",
  "schedule_resumed",
  "dead_lettered",
  "aged",
  "debounced",
  "queue_paused",
  "queue_resumed",
  "corrupt",
];

/** An error as stored: it crosses processes, so only its name, message and stack. */
export interface SerializedError {
  /** The error's class name, e.g. `"TypeError"` or `"TimeoutError"`. */
  name: string;
  /** The error's message. */
  message: string;
  /** The stack trace, where the error had one. */
  stack?: string;
}

/** How long to wait before a retry. */
export type BackoffOptions = Duration | {
  /** `"exponential"` doubles the delay on each attempt; `"fixed"` keeps it. */
  type: "exponential" | "fixed";
  /** The first delay. */
  delay: Duration;
  /**
   * The longest delay.
   * @default {"1h"}
   */
  max?: Duration;
  /**
   * The fraction of random spread either side of the delay.
   * @default {0.2}
   */
  jitter?: number;
};

/** Options a task definition may set; each `enqueue` may override them. */
export interface TaskOptions {
  /**
   * The named queue the task goes to.
   * @default {"default"}
   */
  queue?: string;
  /**
   * An integer 0–9; 9 runs first.
   * @default {0}
   */
  priority?: number;
  /**
   * Retries after the first attempt: `retries: n` allows n + 1 attempts.
   * @default {3}
   */
  retries?: number;
  /**
   * The delay before a retry.
   * @default {{ type: "exponential", delay: "1s", max: "1h", jitter: 0.2 }}
   */
  backoff?: BackoffOptions;
  /** How long one attempt may run: then its signal aborts and the attempt fails. */
  timeout?: Duration;
  /** A task not started within this time after enqueue ends `expired`. */
  ttl?: Duration;
  /** How long the result is kept after the task ends. */
  resultTtl?: Duration;
  /**
   * A dead-letter queue: a task that has spent its attempts (or failed with a permanent
   * error, or stalled on its last attempt) moves to this queue, keeping its id, its events
   * and its last error, with its attempts reset, instead of ending `failed`. A worker of that
   * queue runs it again; if it fails there too, it ends `failed`. It must differ from the
   * task's queue.
   */
  deadLetter?: string;
  /**
   * Priority aging: a task still queued this long after it became due is raised to priority 9,
   * so it runs ahead of newer work of any priority and a low priority cannot starve. Workers
   * check at each sweep (`sweepInterval`), and an `aged` event records the change.
   */
  ageAfter?: Duration;
  /**
   * A group (a tenant, a customer, an account): workers claim round-robin between a queue's
   * groups, so one group's backlog does not starve another's, and at most `groupConcurrency`
   * tasks of a group run at once across every worker sharing the store. Names are 1–256
   * characters with no control characters.
   */
  group?: string;
  /**
   * With `group`: at most this many tasks of the group run at once, in all processes.
   * @default {1}
   */
  groupConcurrency?: number;
  /**
   * A rate limit: at most `limit` tasks start per `per` window (sliding), across every worker
   * and process sharing the store, decided in the claim's atomic step. The tasks it holds back
   * wait queued (they are not failed or retried). With `group`, each group has its own limit;
   * with `key`, each key (computed from the arguments at enqueue) has its own; else the task's
   * queue does (for the tasks of that queue that have a rate limit).
   */
  rateLimit?: RateLimit;
}

/** A rate limit (see {@linkcode TaskOptions.rateLimit}). */
export interface RateLimit {
  /** The most tasks started per window: an integer ≥ 1. */
  limit: number;
  /** The window. */
  per: Duration;
  /** The key whose tasks share the limit, from a task's arguments (not with `group`). */
  // deno-lint-ignore no-explicit-any
  key?: (...args: any[]) => string;
}

/** Options of {@linkcode OmniQ.enqueue}. */
export interface EnqueueOptions extends TaskOptions {
  /** A caller-chosen task id; an id that exists throws `DuplicateTaskError`. */
  id?: string;
  /** Wait this long before the task is due. */
  delay?: Duration;
  /** The time the task is due (a `Date` or epoch milliseconds). */
  runAt?: Date | number;
  /** Ids of tasks that must complete before this one runs. */
  dependsOn?: string[];
  /**
   * What to do when a dependency fails, is cancelled or expires: `"cancel"` this task too,
   * or `"run"` it anyway.
   * @default {"cancel"}
   */
  onDependencyFailure?: "cancel" | "run";
  /** A dedupe key: while a task with the same key is not final, its id is returned instead. */
  key?: string;
  /**
   * Throttle (with `key`): the task holds its key for this long after it was enqueued, even
   * once it has ended, so a duplicate within the window gets its id and stores nothing.
   */
  throttle?: Duration;
  /**
   * Debounce (with `key`): the task is due this long after the enqueue, and a later enqueue
   * with the same key before it starts replaces its arguments and pushes its due time back,
   * so the last enqueue of a burst wins and runs once. (One that comes while it runs makes a
   * new task, which takes the key over.)
   */
  debounce?: Duration;
}

/** A task as stored, returned by {@linkcode OmniQ.get} and {@linkcode OmniQ.list}. */
export interface TaskRecord {
  /** The task's id. */
  id: string;
  /** The task's registered name. */
  task: string;
  /** The arguments it was enqueued with. */
  args: unknown[];
  /** The named queue. */
  queue: string;
  /** Priority 0–9. */
  priority: number;
  /** The current state. */
  state: TaskState;
  /** Attempts started so far (a stall counts as one). */
  attempts: number;
  /** The most attempts allowed (`retries + 1`). */
  maxAttempts: number;
  /** When it was enqueued. */
  createdAt: Date;
  /** When it is (or was) due. */
  runAt: Date;
  /** When the latest attempt started. */
  startedAt?: Date;
  /** When it reached a final state. */
  completedAt?: Date;
  /** When it expires if not started (from `ttl`). */
  expiresAt?: Date;
  /** The latest progress fraction reported by the handler (0–1). */
  progress?: number;
  /** The last error, if any attempt failed. */
  error?: SerializedError;
  /** The ids this task depends on. */
  dependsOn: string[];
  /** The dedupe key, if one was given. */
  key?: string;
  /** Until when it holds its key after it ends (`throttle`), if it does. */
  keyUntil?: Date;
  /** The schedule that enqueued this task, if any. */
  scheduleId?: string;
  /** The id of the worker running it (while `running`). */
  worker?: string;
  /** The queue it moves to once it has spent its attempts, if any (see `deadLetter`). */
  deadLetter?: string;
  /** How long it waits queued before its priority is raised to 9 (ms), if it ages. */
  ageAfter?: number;
  /** Its group, if any (see `group`). */
  group?: string;
  /** With a group: at most this many of the group's tasks run at once. */
  groupConcurrency?: number;
  /** Its rate limit, if any: the bucket its starts count in, and the limit per window (ms). */
  rateLimit?: { key: string; limit: number; per: number };
}

/** The outcome of a task, returned by {@linkcode OmniQ.result}. */
export interface ResultRecord<T = unknown> {
  /** The task's id. */
  taskId: string;
  /** How it ended. */
  state: FinalState;
  /** The handler's return value, when `state` is `"completed"`. */
  value?: T;
  /** The error, when it did not complete. */
  error?: SerializedError;
  /** When it ended. */
  completedAt: Date;
  /** When this result will be deleted (from `resultTtl`). */
  expiresAt?: Date;
}

/** A lifecycle event, as returned by {@linkcode OmniQ.events}. */
export interface EventRecord {
  /** The event's id in its store (ordered within the store). */
  id: string;
  /** What happened. */
  type: EventType;
  /** The task it concerns, if any. */
  taskId?: string;
  /** The task's queue, if any. */
  queue?: string;
  /** When it happened. */
  at: Date;
  /** The attempt it concerns, if any. */
  attempt?: number;
  /** Details: an error, a retry delay, a progress fraction, a reason. */
  data?: Record<string, unknown>;
}

/** A filter of {@linkcode OmniQ.events}. */
export interface EventFilter {
  /** Only the events of this task. */
  taskId?: string;
  /** Only events of this type (or of one of these types). */
  type?: EventType | EventType[];
  /** Only events of this queue. */
  queue?: string;
  /** Only events at or after this time. */
  since?: Date | number;
  /** Only events before this time. */
  until?: Date | number;
  /** At most this many events. */
  limit?: number;
  /** Only events after this event id. */
  after?: string;
}

/** A filter of {@linkcode OmniQ.list}. */
export interface ListOptions {
  /** Only tasks in this state (or in one of these states). */
  state?: TaskState | TaskState[];
  /** Only tasks of this queue. */
  queue?: string;
  /** Only tasks of this name. */
  task?: string;
  /** Only tasks enqueued at or after this time (engines get epoch ms). */
  since?: Date | number;
  /** Only tasks enqueued before this time (engines get epoch ms). */
  until?: Date | number;
  /**
   * At most this many tasks.
   * @default {100}
   */
  limit?: number;
  /** Skip this many first. */
  offset?: number;
}

/** Counts of tasks per state. */
export type StateCounts = Record<TaskState, number>;

/** What {@linkcode OmniQ.stats} returns. */
export interface QueueStats {
  /** Counts over every queue. */
  total: StateCounts;
  /** Counts per named queue. */
  queues: Record<string, StateCounts>;
  /**
   * The paused queues, sorted ({@linkcode OmniQ.pauseQueue}). `OmniQ.stats` always gives it;
   * an engine's own `stats` leaves it out.
   */
  paused?: string[];
}

/** Options of a worker. */
export interface WorkerOptions {
  /**
   * How tasks run: on the event loop (`"async"`), in Web Workers (`"thread"`) or in
   * subprocesses (`"process"`).
   * @default {"async"}
   */
  type?: "async" | "thread" | "process";
  /**
   * How many handlers run at once. A slot is free as soon as its handler returns: the
   * attempt's outcome is written while the next task is claimed, so for that moment the
   * store may count more tasks `running` than this. The `completed` (or `failed`) event
   * is dated when the handler returned.
   * @default {10}
   */
  concurrency?: number;
  /**
   * The queues to take tasks from, drained in this order.
   * @default {["default"]}
   */
  queues?: string[];
  /**
   * The lease a claim carries; renewed while the handler runs.
   * @default {"30s"}
   */
  lease?: Duration;
  /**
   * How often an idle worker looks for work written by other processes.
   * @default {"1s"}
   */
  pollInterval?: Duration;
  /**
   * How long `stop()` waits for running tasks before it aborts them.
   * @default {"30s"}
   */
  shutdownGrace?: Duration;
  /**
   * Whether the worker fires stored schedules.
   * @default {true}
   */
  scheduler?: boolean;
  /**
   * Process pools: what the children may do beyond reading their task modules, as Deno
   * permissions (`{ net: ["api.example.com"], write: ["/tmp/out"] }`). Never `-A` by default.
   */
  permissions?: Record<string, boolean | string[]>;
  /**
   * How often the worker sweeps stalled, expired and old records.
   * @default {"5s"}
   */
  sweepInterval?: Duration;
}

/** Task defaults of a queue: what a task gets when neither its definition nor enqueue says. */
export interface TaskDefaults extends TaskOptions {
  /**
   * How long final task records are kept.
   * @default {"7d"}
   */
  keepCompleted?: Duration;
  /**
   * How long events are kept.
   * @default {"7d"}
   */
  eventTtl?: Duration;
}

/** Options of {@linkcode OmniQ.schedule}: `cron` or `every`, and the tasks' options. */
export interface ScheduleOptions extends TaskOptions {
  /** A cron expression: 5 fields, or 6 with seconds first (`"*\/10 * * * * *"`). */
  cron?: string;
  /** An interval, at least 1 s: ticks at `startAt` (or creation) plus whole intervals. */
  every?: Duration;
  /**
   * The IANA time zone of a cron expression.
   * @default {"UTC"}
   */
  tz?: string;
  /** A caller-chosen schedule id; scheduling again with it updates that schedule. */
  id?: string;
  /** No tick before this time. */
  startAt?: Date | number;
  /** No tick after this time. */
  endAt?: Date | number;
  /**
   * After downtime longer than `misfireGrace`: `"skip"` the missed ticks, or fire `"once"`
   * to catch up.
   * @default {"skip"}
   */
  misfire?: "skip" | "once";
  /**
   * How late a tick may be claimed and still fire normally.
   * @default {"60s"}
   */
  misfireGrace?: Duration;
}

/** A stored schedule, returned by {@linkcode OmniQ.schedules}. */
export interface ScheduleRecord {
  /** The schedule id. */
  id: string;
  /** The task it enqueues. */
  task: string;
  /** The arguments of each run. */
  args: unknown[];
  /** The cron expression, for cron schedules. */
  cron?: string;
  /** The interval in ms, for interval schedules. */
  every?: number;
  /** The cron expression's time zone. */
  tz?: string;
  /** The queue its tasks go to. */
  queue: string;
  /** Their priority. */
  priority: number;
  /** Whether it is paused. */
  paused: boolean;
  /** The next tick, if any. */
  nextRunAt?: Date;
  /** The latest tick fired. */
  lastRunAt?: Date;
  /** No tick before this time. */
  startAt?: Date;
  /** No tick after this time. */
  endAt?: Date;
  /** What happens after downtime. */
  misfire: "skip" | "once";
  /** How late a tick may fire, in ms. */
  misfireGrace: number;
  /** When it was created. */
  createdAt: Date;
}
