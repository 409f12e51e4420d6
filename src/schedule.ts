/**
 * Schedules: cron or interval definitions resolved into their stored form, and the tick
 * arithmetic every engine shares. A tick is a point in time; its task's id is
 * `scheduleId:tickTime`, and an engine fires a tick by a compare-and-set on the schedule's
 * `nextRunAt`, so any number of schedulers fire each tick exactly once.
 *
 * @module
 */

import type { StoredSchedule } from "./backend.ts";
import { type CodecName, encode } from "./codec.ts";
import { checkTimeZone, type CronSpec, parseCron } from "./cron.ts";
import { optionalDuration, parseDuration } from "./duration.ts";
import { ConfigError } from "./errors.ts";
import { newId } from "./id.ts";
import { checkInteger, checkKeys, checkName, DEFAULTS, resolveBackoff } from "./options.ts";
import type { ScheduleOptions, ScheduleRecord, TaskDefaults, TaskOptions } from "./types.ts";

/** The shortest interval an `every` schedule may have. */
export const MIN_EVERY = 1_000;

/** How late a tick may be claimed before it counts as missed, by default. */
export const DEFAULT_MISFIRE_GRACE = 60_000;

const SCHEDULE_KEYS = [
  "cron",
  "every",
  "tz",
  "id",
  "queue",
  "priority",
  "startAt",
  "endAt",
  "misfire",
  "misfireGrace",
  "retries",
  "backoff",
  "timeout",
  "ttl",
  "resultTtl",
];

const cronCache = new Map<string, CronSpec>();

function cronOf(schedule: Pick<StoredSchedule, "cron" | "tz">): CronSpec {
  const key = `${schedule.tz ?? "UTC"} ${schedule.cron}`;
  let spec = cronCache.get(key);
  if (!spec) {
    spec = parseCron(schedule.cron!, schedule.tz ?? "UTC");
    if (cronCache.size > 1_000) cronCache.clear();
    cronCache.set(key, spec);
  }
  return spec;
}

/**
 * The first tick of a schedule strictly after `after`, within its `startAt`/`endAt`
 * window; `undefined` when the schedule has no more ticks.
 */
export function nextTick(
  schedule: Pick<StoredSchedule, "cron" | "every" | "tz" | "startAt" | "endAt" | "createdAt">,
  after: number,
): number | undefined {
  const from = schedule.startAt !== undefined ? Math.max(after, schedule.startAt - 1) : after;
  let next: number | undefined;
  if (schedule.every !== undefined) {
    const anchor = schedule.startAt ?? schedule.createdAt;
    next = from < anchor
      ? anchor
      : anchor + schedule.every * (Math.floor((from - anchor) / schedule.every) + 1);
  } else {
    next = cronOf(schedule).next(from);
  }
  if (next === undefined || (schedule.endAt !== undefined && next > schedule.endAt)) {
    return undefined;
  }
  return next;
}

function toMs(value: Date | number | undefined, name: string): number | undefined {
  if (value === undefined) return undefined;
  const ms = value instanceof Date ? value.getTime() : value;
  if (typeof ms !== "number" || !Number.isFinite(ms)) {
    throw new ConfigError(`${name}: expected a Date or epoch milliseconds`);
  }
  return ms;
}

/** Resolve `schedule` options into a stored schedule (its first tick set). */
export function resolveSchedule(
  task: string,
  args: unknown,
  options: ScheduleOptions,
  taskOptions: TaskOptions,
  defaults: TaskDefaults,
  now: number,
  codec: CodecName = "msgpack",
): StoredSchedule {
  if (options === null || typeof options !== "object") {
    throw new ConfigError("schedule: expected an options object with cron or every");
  }
  checkKeys(options, SCHEDULE_KEYS, "schedule");
  if (!Array.isArray(args)) {
    throw new ConfigError(`args: expected an array of arguments`);
  }
  if (options.cron !== undefined && options.every !== undefined) {
    throw new ConfigError("cron, every: give one of them, not both");
  }
  if (options.cron === undefined && options.every === undefined) {
    throw new ConfigError("cron, every: expected one of them (a cron expression or an interval)");
  }
  const tz = options.tz === undefined ? undefined : checkTimeZone(options.tz);
  let every: number | undefined;
  if (options.every !== undefined) {
    if (tz !== undefined) throw new ConfigError("tz: applies to cron schedules only");
    every = parseDuration(options.every, "every");
    if (every < MIN_EVERY) {
      throw new ConfigError(`every: expected at least ${MIN_EVERY / 1000}s, got ${every}ms`);
    }
  } else {
    parseCron(options.cron!, tz ?? "UTC");
  }
  const o = { ...defaults, ...taskOptions, ...stripUndefined(options) };
  const misfire = options.misfire ?? "skip";
  if (misfire !== "skip" && misfire !== "once") {
    throw new ConfigError(`misfire: expected "skip" or "once", got ${JSON.stringify(misfire)}`);
  }
  const startAt = toMs(options.startAt, "startAt");
  const endAt = toMs(options.endAt, "endAt");
  if (startAt !== undefined && endAt !== undefined && endAt <= startAt) {
    throw new ConfigError("endAt: expected a time after startAt");
  }
  const schedule: StoredSchedule = {
    id: options.id === undefined ? `s-${newId()}` : checkName(options.id, "id"),
    task,
    payload: encode(args, "args", codec),
    misfire,
    misfireGrace: parseDuration(options.misfireGrace ?? DEFAULT_MISFIRE_GRACE, "misfireGrace"),
    paused: false,
    createdAt: now,
    queue: checkName(o.queue ?? DEFAULTS.queue, "queue"),
    priority: checkInteger(o.priority ?? DEFAULTS.priority, "priority", 0, 9),
    maxAttempts: checkInteger(o.retries ?? DEFAULTS.retries, "retries", 0, 1_000_000) + 1,
    backoff: resolveBackoff(o.backoff, "backoff"),
  };
  if (schedule.id.includes(":")) throw new ConfigError(`id: a schedule id may not contain ":"`);
  if (options.cron !== undefined) schedule.cron = options.cron.trim();
  if (every !== undefined) schedule.every = every;
  if (tz !== undefined) schedule.tz = tz;
  if (startAt !== undefined) schedule.startAt = startAt;
  if (endAt !== undefined) schedule.endAt = endAt;
  const timeout = optionalDuration(o.timeout, "timeout");
  if (timeout !== undefined) schedule.timeout = timeout;
  const ttl = optionalDuration(o.ttl, "ttl");
  if (ttl !== undefined) schedule.ttl = ttl;
  const resultTtl = optionalDuration(o.resultTtl, "resultTtl");
  if (resultTtl !== undefined) schedule.resultTtl = resultTtl;
  const first = nextTick(schedule, now - 1);
  if (first !== undefined) schedule.nextRunAt = first;
  return schedule;
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

/** The task id of a schedule's tick. */
export function tickTaskId(scheduleId: string, tick: number): string {
  return `${scheduleId}:${tick}`;
}

/** A stored schedule as users see it. */
export function toScheduleRecord(s: StoredSchedule, args: unknown[]): ScheduleRecord {
  const record: ScheduleRecord = {
    id: s.id,
    task: s.task,
    args,
    queue: s.queue,
    priority: s.priority,
    paused: s.paused,
    misfire: s.misfire,
    misfireGrace: s.misfireGrace,
    createdAt: new Date(s.createdAt),
  };
  if (s.cron !== undefined) record.cron = s.cron;
  if (s.every !== undefined) record.every = s.every;
  if (s.tz !== undefined) record.tz = s.tz;
  if (s.nextRunAt !== undefined) record.nextRunAt = new Date(s.nextRunAt);
  if (s.lastRunAt !== undefined) record.lastRunAt = new Date(s.lastRunAt);
  if (s.startAt !== undefined) record.startAt = new Date(s.startAt);
  if (s.endAt !== undefined) record.endAt = new Date(s.endAt);
  return record;
}
