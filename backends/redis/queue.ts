// The Redis engine's task queue: each operation one call of its Lua script (lua/), the
// completions of one event-loop turn gathered into one call.

import { setImmediate } from "node:timers";
import type {
  Attachment,
  ClaimedTask,
  ClaimRequest,
  Effects,
  EnqueueOutcome,
  Failure,
  NewTask,
  StoredResult,
  StoredSchedule,
  StoredTask,
  Subscription,
  SweepOptions,
  TaskQueue,
  TickClaim,
} from "../../src/backend.ts";
import { DuplicateTaskError, OmniQError } from "../../src/errors.ts";
import { zeroCounts } from "../../src/kit/policy.ts";
import {
  type ListOptions,
  type QueueStats,
  type StateCounts,
  TASK_STATES,
  type TaskState,
} from "../../src/types.ts";
import {
  arr,
  type Json,
  num,
  pairs,
  record,
  resultJson,
  scheduleJson,
  taskArgs,
  toEvent,
  toResult,
  toSchedule,
  toTask,
} from "./codec.ts";
import { type Connection, message, type Outcome } from "./connection.ts";
import type { ScriptName } from "./lua/mod.ts";
import { describeTarget } from "./options.ts";

/** Rows handled per sweep script call. */
export const SWEEP_BATCH = 500;
/** Most completions sent in one call of the `complete` script. */
const COMPLETE_BATCH = 100;
/** How long (ms) the due time a claim brings stands in for a `nextDue` query. */
const DUE_HINT_MS = 100;

/** Whether an event says a task was put off to a later time (or, debounced, moved). */
function schedules(e: Json): boolean {
  return e.type === "scheduled" || e.type === "retrying" || e.type === "debounced";
}

/** A completion waiting for the next call of the `complete` script. */
interface PendingCompletion {
  /** Its five script arguments. */
  args: string[];
  resolve: (effects: Effects | undefined) => void;
  reject: (error: unknown) => void;
}

/** The task queue of a Redis engine. */
export class RedisQueue implements TaskQueue {
  /** 64 MiB: a batch of tasks travels as one script call, which Redis caps at 512 MiB. */
  readonly maxPayloadBytes = 64 * 1024 * 1024;
  readonly #c: Connection;
  #completions: PendingCompletion[] = [];
  /** The earliest due time the latest claim that drained its queues brought. */
  #dueHint: { queues: string; due: number | undefined; at: number } | undefined;

  constructor(c: Connection) {
    this.#c = c;
  }

  /**
   * Run a task-changing script. One that scheduled a task (a delayed enqueue, a dependent
   * released to a later run time, a retry, a debounced holder's new run time) makes the due
   * time the last claim brought stale.
   */
  async #change(name: ScriptName, args: (string | number)[]): Promise<Outcome> {
    const out = await this.#c.change(name, args);
    if (this.#dueHint !== undefined && arr<Json>(out.events).some(schedules)) {
      this.#dueHint = undefined;
    }
    return out;
  }

  attach(attachment: Attachment): void {
    this.#c.attached = { ...attachment };
  }

  subscribe(queues: string[], onWake: () => void): Subscription {
    return this.#c.subscribe(queues, onWake);
  }

  async enqueue(tasks: NewTask[]): Promise<EnqueueOutcome> {
    if (tasks.length === 0) return { ids: [], created: [], effects: { events: [], results: [] } };
    const args: string[] = [String(tasks.length)];
    for (const t of tasks) args.push(...taskArgs(t));
    const out = await this.#change("enqueue", args);
    const x = out.x as { err?: string; id?: string; ids?: string[]; created?: boolean[] };
    if (x.err === "dependency") throw new OmniQError(`dependsOn: no task with id "${x.id}"`);
    if (x.err === "duplicate") throw new DuplicateTaskError(`id: a task with id "${x.id}" exists`);
    return { ids: arr(x.ids), created: arr(x.created), effects: this.#c.effects(out) };
  }

  async get(id: string): Promise<StoredTask | undefined> {
    const key = `${this.#c.prefix}task:${id}`;
    const h = pairs(await this.#c.command("get", ["HGETALL", key]));
    if (Object.keys(h).length === 0) return undefined;
    try {
      return toTask(id, h);
    } catch (error) {
      if (error instanceof OmniQError) throw error;
      throw new OmniQError(
        `${describeTarget(this.#c.options)}: the task record ${key} is damaged: ${message(error)}`,
      );
    }
  }

  async list(filter: ListOptions): Promise<StoredTask[]> {
    // An empty list of states matches no task (the script reads '' as no filter).
    if (Array.isArray(filter.state) && filter.state.length === 0) return [];
    const states = filter.state === undefined
      ? ""
      : (Array.isArray(filter.state) ? filter.state : [filter.state]).join(",");
    const rows = arr<unknown>(
      await this.#c.script("list", [
        filter.queue ?? "",
        filter.task ?? "",
        states,
        String(filter.offset ?? 0),
        String(filter.limit ?? 100),
        filter.since === undefined ? "" : String(Number(filter.since)),
        filter.until === undefined ? "" : String(Number(filter.until)),
      ]),
    );
    const out: StoredTask[] = [];
    for (const row of rows) {
      const h = pairs(row);
      try {
        out.push(toTask(h.id, h));
      } catch {
        // A damaged record is left out of listings; `get` names what is wrong with it.
      }
    }
    return out;
  }

  async stats(): Promise<QueueStats> {
    const h = pairs(await this.#c.command("stats", ["HGETALL", `${this.#c.prefix}counts`]));
    const total = zeroCounts();
    const queues: Record<string, StateCounts> = {};
    for (const [field, value] of Object.entries(h)) {
      const colon = field.indexOf(":");
      const state = field.slice(0, colon) as TaskState;
      const n = Number(value);
      if (colon < 0 || !TASK_STATES.includes(state) || !(n > 0)) continue;
      total[state] += n;
      (queues[field.slice(colon + 1)] ??= zeroCounts())[state] += n;
    }
    return { total, queues };
  }

  async claim(request: ClaimRequest): Promise<{ tasks: ClaimedTask[]; effects: Effects }> {
    const out = await this.#change("claim", [
      String(request.limit),
      String(request.lease),
      request.worker,
      crypto.randomUUID(),
      ...request.queues,
    ]);
    const x = out.x as { tasks: unknown; drained?: boolean; due?: string };
    // A worker that got fewer tasks than it asked for asks next when one is due.
    this.#dueHint = x.drained === true
      ? {
        queues: JSON.stringify(request.queues),
        due: x.due === undefined ? undefined : Number(x.due),
        at: Date.now(),
      }
      : undefined;
    const tasks: ClaimedTask[] = [];
    const extra: Effects = { events: [], results: [] };
    for (const entry of arr<[string, unknown]>(x.tasks)) {
      const [id, values] = entry;
      const h = record(values);
      try {
        const task = toTask(id, h);
        tasks.push({ ...task, token: h.token, leaseUntil: num(h.lease, "lease") });
      } catch (error) {
        // A damaged record fails alone, with the reason in its events; the rest run.
        const failed = await this.#change("corrupt", [
          id,
          h.token ?? "",
          h.queue ?? "",
          message(error),
        ]);
        const fx = this.#c.effects(failed);
        extra.events.push(...fx.events);
        extra.results.push(...fx.results);
      }
    }
    return { tasks, effects: this.#c.effects(out, extra) };
  }

  async renew(id: string, token: string, lease: number): Promise<boolean> {
    return Number(await this.#c.script("renew", [id, token, String(lease)])) === 1;
  }

  async progress(id: string, token: string, value: number): Promise<Effects | undefined> {
    const out = await this.#change("progress", [id, token, String(value)]);
    return out.x === true ? this.#c.effects(out) : undefined;
  }

  complete(id: string, token: string, result: StoredResult): Promise<Effects | undefined> {
    return new Promise((resolve, reject) => {
      this.#completions.push({
        args: [
          id,
          token,
          resultJson(result),
          result.expiresAt === undefined ? "" : String(result.expiresAt),
          String(result.completedAt),
        ],
        resolve,
        reject,
      });
      // The completions of one turn of the event loop (a worker's tasks often end together)
      // go in one script call: one round of parsing, counting and replying for them all.
      if (this.#completions.length === 1) setImmediate(() => this.#flushCompletions());
    });
  }

  #flushCompletions(): void {
    const pending = this.#completions;
    this.#completions = [];
    for (let i = 0; i < pending.length; i += COMPLETE_BATCH) {
      void this.#completeBatch(pending.slice(i, i + COMPLETE_BATCH));
    }
  }

  async #completeBatch(batch: PendingCompletion[]): Promise<void> {
    let out: Outcome;
    try {
      out = await this.#change("complete", [
        String(batch.length),
        ...batch.flatMap((p) => p.args),
      ]);
    } catch (error) {
      for (const p of batch) p.reject(error);
      return;
    }
    // Each completion's own effects: the script counts the events and results up to it.
    try {
      const events = arr<Json>(out.events);
      const results = arr<Json>(out.results);
      const rows = arr<[unknown, number, number]>(out.x);
      let e = 0;
      let r = 0;
      batch.forEach((p, i) => {
        const [done, eEnd, rEnd] = rows[i] ?? ["no outcome", e, r];
        if (done === true) {
          p.resolve({
            events: events.slice(e, eEnd).map((x) => toEvent(x)),
            results: results.slice(r, rEnd).map(toResult),
          });
        } else if (done === false) {
          p.resolve(undefined);
        } else {
          p.reject(this.#c.wrap(new Error(String(done)), "complete"));
        }
        e = eEnd;
        r = rEnd;
      });
    } catch (error) {
      // An outcome this engine cannot read: no completion waits forever (settled ones stay).
      for (const p of batch) p.reject(this.#c.wrap(error, "complete"));
    }
  }

  async fail(id: string, token: string, failure: Failure): Promise<Effects | undefined> {
    const r = failure.result;
    const out = await this.#change("fail", [
      id,
      token,
      JSON.stringify(failure.error),
      failure.retryAt === undefined ? "" : String(failure.retryAt),
      r === undefined ? "" : resultJson(r),
      r?.expiresAt === undefined ? "" : String(r.expiresAt),
      r === undefined ? "" : String(r.completedAt),
      failure.deadLetter ?? "",
    ]);
    return out.x === true ? this.#c.effects(out) : undefined;
  }

  async cancel(id: string, reason: string): Promise<Effects | undefined> {
    const out = await this.#change("cancel", [id, reason]);
    return out.x === true ? this.#c.effects(out) : undefined;
  }

  async retry(id: string): Promise<Effects | undefined> {
    const out = await this.#change("retry", [id]);
    return out.x === true ? this.#c.effects(out) : undefined;
  }

  async sweep(options: SweepOptions): Promise<Effects> {
    const effects: Effects = { events: [], results: [] };
    // Bounded batches keep each script short, so other clients are never held up long.
    for (let round = 0; round < 100; round++) {
      const out = await this.#change("sweep", [
        options.purgeBefore === undefined ? "" : String(options.purgeBefore),
        String(SWEEP_BATCH),
      ]);
      const fx = this.#c.effects(out);
      effects.events.push(...fx.events);
      effects.results.push(...fx.results);
      if (out.x !== true) break;
    }
    return effects;
  }

  async setQueuePaused(queue: string, paused: boolean): Promise<Effects | undefined> {
    const out = await this.#change("pauseQueue", [queue, paused ? "1" : "0"]);
    // The due time the last claim brought left paused queues out: it is stale now.
    this.#dueHint = undefined;
    return out.x === true ? this.#c.effects(out) : undefined;
  }

  async pausedQueues(): Promise<string[]> {
    const queues = arr<string>(
      await this.#c.command("pausedQueues", ["SMEMBERS", `${this.#c.prefix}paused`]),
    );
    return queues.sort((a, b) => a < b ? -1 : a > b ? 1 : 0);
  }

  async nextDue(queues: string[]): Promise<number | undefined> {
    if (queues.length === 0) return undefined;
    // The answer the claim just before brought, if it is fresh: a task scheduled since then
    // wakes the worker through pub/sub anyway, and it asks again.
    const hint = this.#dueHint;
    this.#dueHint = undefined;
    if (
      hint !== undefined && hint.queues === JSON.stringify(queues) &&
      Date.now() - hint.at <= DUE_HINT_MS
    ) {
      return hint.due;
    }
    const out = await this.#c.script("nextDue", queues);
    return out === null || out === undefined ? undefined : Number(out);
  }

  async putSchedule(s: StoredSchedule): Promise<void> {
    await this.#c.script("putSchedule", [
      s.id,
      scheduleJson(s),
      s.paused ? "1" : "0",
      s.nextRunAt === undefined ? "" : String(s.nextRunAt),
      s.lastRunAt === undefined ? "" : String(s.lastRunAt),
    ]);
  }

  async getSchedule(id: string): Promise<StoredSchedule | undefined> {
    const h = pairs(
      await this.#c.command("getSchedule", ["HGETALL", `${this.#c.prefix}schedule:${id}`]),
    );
    return h.d === undefined ? undefined : toSchedule(h);
  }

  async #schedules(ids: string[]): Promise<StoredSchedule[]> {
    const rows = await Promise.all(
      ids.map((id) =>
        this.#c.command("listSchedules", ["HGETALL", `${this.#c.prefix}schedule:${id}`])
      ),
    );
    return rows.map(pairs).filter((h) => h.d !== undefined).map(toSchedule);
  }

  async listSchedules(): Promise<StoredSchedule[]> {
    const ids = arr<string>(
      await this.#c.command("listSchedules", ["SMEMBERS", `${this.#c.prefix}schedules`]),
    ).sort((a, b) => a < b ? -1 : a > b ? 1 : 0);
    return await this.#schedules(ids);
  }

  async setSchedulePaused(
    id: string,
    paused: boolean,
    nextRunAt?: number,
  ): Promise<Effects | undefined> {
    const out = await this.#change("pauseSchedule", [
      id,
      paused ? "1" : "0",
      nextRunAt === undefined ? "" : String(nextRunAt),
    ]);
    return out.x === true ? this.#c.effects(out) : undefined;
  }

  async deleteSchedule(id: string): Promise<boolean> {
    return Number(await this.#c.script("deleteSchedule", [id])) === 1;
  }

  async dueSchedules(now: number, limit: number): Promise<StoredSchedule[]> {
    const ids = arr<string>(
      await this.#c.command("dueSchedules", [
        "ZRANGEBYSCORE",
        `${this.#c.prefix}schedules:next`,
        "-inf",
        String(now),
        "LIMIT",
        "0",
        String(limit),
      ]),
    );
    return (await this.#schedules(ids)).filter((s) =>
      !s.paused && s.nextRunAt !== undefined && s.nextRunAt <= now
    );
  }

  async nextScheduleAt(): Promise<number | undefined> {
    const top = arr<string>(
      await this.#c.command("nextScheduleAt", [
        "ZRANGE",
        `${this.#c.prefix}schedules:next`,
        "0",
        "0",
        "WITHSCORES",
      ]),
    );
    return top.length === 2 ? Number(top[1]) : undefined;
  }

  async fireTick(claim: TickClaim): Promise<Effects | undefined> {
    const args = [
      claim.scheduleId,
      String(claim.tick),
      claim.next === undefined ? "" : String(claim.next),
      claim.task ? "1" : "0",
    ];
    if (claim.task) args.push(...taskArgs(claim.task));
    const out = await this.#change("fireTick", args);
    return out.x === true ? this.#c.effects(out) : undefined;
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}
