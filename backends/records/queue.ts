/**
 * The queue logic of the record engines (`memory:`, `file:`, `kv:` and `nats:`): tasks as
 * records with derived index entries, changed in steps. An engine supplies a
 * {@linkcode RecordSpace} (`./space.ts`): how a step reads records and index entries and how
 * it commits them (the `file:` engine under a directory lock, the `kv:` engine as one atomic
 * commit checked against the versionstamps of every record it read). {@linkcode RecordQueue}
 * does the rest, identically for all of them; the transitions several calls share are in
 * `./transitions.ts`.
 *
 * @module
 */

import {
  type Attachment,
  type ClaimedTask,
  type ClaimRequest,
  type Effects,
  type EnqueueOutcome,
  type Failure,
  matchesList,
  type NewEvent,
  type NewTask,
  noEffects,
  type StoredResult,
  type StoredSchedule,
  type StoredTask,
  type SweepOptions,
  type TaskQueue,
  type TickClaim,
} from "../../src/backend.ts";
import { DuplicateTaskError, OmniQError } from "../../src/errors.ts";
import { pad } from "../../src/kit/encoding.ts";
import {
  cancelError,
  EXPIRED_ERROR,
  isFinal,
  laneOf,
  laneRoom,
  oversizedResult,
  queuePauseEvent,
  taskEvent,
  withStandIns,
  zeroCounts,
} from "../../src/kit/policy.ts";
import type { ListOptions, QueueStats, StateCounts } from "../../src/types.ts";
import {
  encName,
  entryId,
  groupName,
  nameId,
  type RecordSpace,
  type RecordTx,
  type Row,
  view,
} from "./space.ts";
import {
  cascade,
  deadLetter,
  debounce,
  end,
  insert,
  leave,
  promote,
  readyName,
  release,
  SLACK,
  type StepOut,
  stepOut,
  sweepStep,
} from "./transitions.ts";

export {
  encName,
  entryId,
  indexKeys,
  type RecordSpace,
  type RecordTx,
  type Row,
  view,
} from "./space.ts";

/** The error of a task that expired before it started (the kit's `EXPIRED_ERROR`). */
export const EXPIRED: Readonly<{ name: string; message: string }> = EXPIRED_ERROR;

/** What a grouped claim of one queue works with. */
interface GroupClaim {
  queue: string;
  request: ClaimRequest;
  now: number;
  claimed: ClaimedTask[];
  out: StepOut;
  /** Whether the queue is paused (read on first call). */
  paused: () => Promise<boolean>;
}

/** The task queue of a record engine (see the module doc). */
export class RecordQueue implements TaskQueue {
  /** The largest encoded payload the engine accepts, if limited. */
  readonly maxPayloadBytes?: number;
  #s: RecordSpace;
  #attached: Attachment = { results: true, events: true };
  #reports: NewEvent[] = [];
  /** The grouped tasks each transaction started, by group (see `#claimGroups`). */
  #groupClaims = new WeakMap<RecordTx, Map<string, Set<string>>>();

  /**
   * Open over an engine's records.
   *
   * @param space The engine's records.
   * @param maxPayloadBytes Its payload limit, if any.
   */
  constructor(space: RecordSpace, maxPayloadBytes?: number) {
    this.#s = space;
    if (maxPayloadBytes !== undefined) this.maxPayloadBytes = maxPayloadBytes;
  }

  /** Say which companion stores live in this engine. */
  attach(attachment: Attachment): void {
    this.#attached = { ...attachment };
  }

  /** Queue an event reporting an unreadable record; it goes out with the next step's effects. */
  report(event: NewEvent): void {
    this.#reports.push(event);
  }

  async #effects(tx: RecordTx, out: StepOut): Promise<Effects> {
    const effects = noEffects();
    const { events, results } = out;
    if (this.#reports.length > 0) events.push(...this.#reports.splice(0));
    if (this.#attached.results) tx.putResults(results);
    else effects.results = results;
    effects.events = this.#attached.events ? await tx.appendEvents(events) : events;
    return effects;
  }

  /** Store tasks, all or none. */
  enqueue(tasks: NewTask[]): Promise<EnqueueOutcome> {
    return this.#s.step(async (tx) => {
      const now = Date.now();
      // Every id and dependency is read below: on an engine with reads over the wire, in
      // one round rather than one after another.
      await tx.prefetch?.(tasks.flatMap((t) => [t.id, ...t.dependsOn]));
      // The ids of the batch so far (a batch of one needs none).
      const batchIds = tasks.length > 1 ? new Set<string>() : undefined;
      for (const t of tasks) {
        for (const d of t.dependsOn) {
          if (!batchIds?.has(d) && !(await tx.row(d))) {
            throw new OmniQError(`dependsOn: no task with id "${d}"`);
          }
        }
        // A task deduplicated by its key stores nothing, so its id may exist; a debounced one
        // whose key holder runs is stored.
        const owner = t.key === undefined ? undefined : await tx.liveKeyOwner(t.key);
        const keyed = owner !== undefined &&
          !(t.debounce && (await tx.row(owner))?.state === "running");
        if (!keyed && (batchIds?.has(t.id) || (await tx.row(t.id)))) {
          throw new DuplicateTaskError(`id: a task with id "${t.id}" exists`);
        }
        batchIds?.add(t.id);
      }
      const ids: string[] = [];
      const created: boolean[] = [];
      const out = stepOut();
      // Made on first use: most batches hold no dedupe keys.
      let standIn: Map<string, string> | undefined;
      let batchKeys: Map<string, string> | undefined;
      for (const t of tasks) {
        const live = t.key === undefined
          ? undefined
          : batchKeys?.get(t.key) ?? await tx.liveKeyOwner(t.key);
        if (live !== undefined && t.debounce && await debounce(tx, live, t, now, out)) {
          ids.push(live);
          created.push(false);
          (standIn ??= new Map()).set(t.id, live);
          continue;
        }
        if (live !== undefined && !(t.debounce && (await tx.row(live))?.state === "running")) {
          ids.push(live);
          created.push(false);
          (standIn ??= new Map()).set(t.id, live);
          continue;
        }
        const row = await insert(tx, standIn ? withStandIns(t, standIn) : t, now, out);
        if (t.key !== undefined && !isFinal(row.state)) (batchKeys ??= new Map()).set(t.key, t.id);
        ids.push(t.id);
        created.push(true);
      }
      return { ids, created, effects: await this.#effects(tx, out) };
    });
  }

  /** Store a schedule (an upsert). */
  putSchedule(schedule: StoredSchedule): Promise<void> {
    return this.#s.step((tx) => {
      tx.putSchedule(schedule);
      return Promise.resolve();
    });
  }

  /** One schedule. */
  getSchedule(id: string): Promise<StoredSchedule | undefined> {
    return this.#s.step((tx) => tx.schedule(id));
  }

  /** Every schedule, by id. */
  listSchedules(): Promise<StoredSchedule[]> {
    this.#s.check();
    return this.#s.allSchedules();
  }

  /** Pause or resume a schedule. */
  setSchedulePaused(id: string, paused: boolean, nextRunAt?: number): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const found = await tx.schedule(id);
      if (!found || found.paused === paused) return undefined;
      const s = { ...found, paused };
      if (!paused) {
        if (nextRunAt === undefined) delete s.nextRunAt;
        else s.nextRunAt = nextRunAt;
      }
      tx.putSchedule(s);
      const event: NewEvent = {
        type: paused ? "schedule_paused" : "schedule_resumed",
        at: Date.now(),
        data: { scheduleId: id },
      };
      return await this.#effects(tx, { events: [event], results: [] });
    });
  }

  /** Pause or resume a queue. */
  setQueuePaused(queue: string, paused: boolean): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const now = await tx.pausedQueues();
      if (now.includes(queue) === paused) return undefined;
      const next = paused ? [...now, queue].sort() : now.filter((q) => q !== queue);
      await tx.setPausedQueues(next);
      const event = queuePauseEvent(queue, paused, Date.now());
      return await this.#effects(tx, { events: [event], results: [] });
    });
  }

  /** The paused queues, sorted. */
  async pausedQueues(): Promise<string[]> {
    return [...await this.#s.step((tx) => tx.pausedQueues())];
  }

  /** Delete a schedule. */
  deleteSchedule(id: string): Promise<boolean> {
    return this.#s.step((tx) => tx.deleteSchedule(id));
  }

  /** Unpaused schedules due by `now`, earliest first. */
  async dueSchedules(now: number, limit: number): Promise<StoredSchedule[]> {
    this.#s.check();
    return (await this.#s.allSchedules())
      .filter((s) => !s.paused && s.nextRunAt !== undefined && s.nextRunAt <= now)
      .sort((a, b) => a.nextRunAt! - b.nextRunAt!)
      .slice(0, limit);
  }

  /** The earliest next tick of an unpaused schedule. */
  async nextScheduleAt(): Promise<number | undefined> {
    this.#s.check();
    let next: number | undefined;
    for (const s of await this.#s.allSchedules()) {
      if (s.paused || s.nextRunAt === undefined) continue;
      if (next === undefined || s.nextRunAt < next) next = s.nextRunAt;
    }
    return next;
  }

  /** Fire a tick: a compare-and-set of the schedule's next tick, and its task. */
  fireTick(claim: TickClaim): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const found = await tx.schedule(claim.scheduleId);
      if (!found || found.paused || found.nextRunAt !== claim.tick) return undefined;
      const s = { ...found, lastRunAt: claim.tick };
      if (claim.next === undefined) delete s.nextRunAt;
      else s.nextRunAt = claim.next;
      tx.putSchedule(s);
      const out = stepOut();
      const task = claim.task;
      if (task && !(await tx.row(task.id))) {
        const now = Date.now();
        await insert(tx, task, now, out);
        out.events.push({
          type: "schedule_fired",
          taskId: task.id,
          queue: task.queue,
          at: now,
          data: { scheduleId: s.id, tick: claim.tick },
        });
      }
      return await this.#effects(tx, out);
    });
  }

  /** One task, or `undefined`. */
  async get(id: string): Promise<StoredTask | undefined> {
    this.#s.check();
    const row = await this.#s.readRow(id);
    return row ? view(row) : undefined;
  }

  /** Tasks matching a filter, oldest first. */
  async list(filter: ListOptions): Promise<StoredTask[]> {
    this.#s.check();
    const out: StoredTask[] = [];
    let skip = filter.offset ?? 0;
    const limit = filter.limit ?? 100;
    for (const row of await this.#s.allRows()) {
      if (out.length >= limit) break;
      if (!matchesList(row, filter)) continue;
      if (skip > 0) {
        skip--;
        continue;
      }
      out.push(view(row));
    }
    return out;
  }

  /** Counts per queue and state. */
  async stats(): Promise<QueueStats> {
    this.#s.check();
    const total = zeroCounts();
    const queues: Record<string, StateCounts> = {};
    for (const row of await this.#s.allRows()) {
      total[row.state]++;
      (queues[row.queue] ??= zeroCounts())[row.state]++;
    }
    return { total, queues };
  }

  /** Claim due tasks: queue order, then priority, then FIFO. */
  claim(request: ClaimRequest): Promise<{ tasks: ClaimedTask[]; effects: Effects }> {
    return this.#s.step(async (tx) => {
      const now = Date.now();
      const claimed: ClaimedTask[] = [];
      const out = stepOut();
      for (const queue of request.queues) {
        const room = request.limit - claimed.length;
        const promoted = await promote(this.#s, tx, { queue, now, room });
        const dir = `ready/${encName(queue)}`;
        // Promoted rows are not in the ready index yet: merge them in by their ready name.
        let sorted = await tx.entries(dir, room + SLACK);
        if (promoted.length > 0) {
          const names = new Set(sorted);
          for (const row of promoted) names.add(readyName(row));
          sorted = [...names].sort();
        }
        // Asked only when there is something to take: an idle claim reads no more than it did.
        // A paused queue's due tasks are promoted above all the same, so `nextDue` does not
        // keep naming them.
        const paused = async () => (await tx.pausedQueues()).includes(queue);
        if (sorted.length > 0 && await paused()) continue;
        await tx.prefetch?.(
          sorted.slice(0, room).map(entryId).filter((id) => id !== undefined),
        );
        for (const name of sorted) {
          if (claimed.length >= request.limit || !tx.room()) break;
          const id = entryId(name);
          if (id === undefined) {
            this.#s.corrupt(`${dir}/${name}`, "not an index entry");
            continue;
          }
          const row = await tx.row(id);
          if (!row || row.state !== "queued" || row.queue !== queue) {
            if (!row || row.state !== "queued") tx.dropEntry(`${dir}/${name}`);
            continue;
          }
          if (row.expiresAt !== undefined && row.expiresAt <= now) {
            await end(tx, row, { state: "expired", now, error: { ...EXPIRED_ERROR } }, out);
            continue;
          }
          claimed.push(this.#start(row, request, now, out));
        }
        if (claimed.length < request.limit && tx.room()) {
          await this.#claimGroups(tx, { queue, request, now, claimed, out, paused });
        }
        if (claimed.length >= request.limit || !tx.room()) break;
      }
      return { tasks: claimed, effects: await this.#effects(tx, out) };
    });
  }

  /**
   * Claim a queue's lanes (groups, and rate buckets of tasks without a group: `laneOf`)
   * round-robin: from the lane after the one served last (the queue's group cursor), the head
   * of each lane in turn while there is room under its group's cap and its rate limit
   * (`laneRoom`), one per lane a round, until the claim is full or a round takes nothing.
   */
  async #claimGroups(tx: RecordTx, at: GroupClaim): Promise<void> {
    const { queue, request, now, claimed, out } = at;
    const dir = `gready/${encName(queue)}`;
    // Most queues have no lanes: they read nothing more (the cursor lives in the sequences
    // record, which an idle claim would otherwise read, and Deno KV check, for nothing).
    if ((await tx.entries(dir, 1)).length === 0) return;
    const start = await tx.groupCursor(queue);
    // The tasks this transaction started, by the index directory that counts them (a
    // transaction of several steps lists what was committed before it only).
    let mine = this.#groupClaims.get(tx);
    if (!mine) this.#groupClaims.set(tx, mine = new Map());
    // Counted once per step: the ids listed (of tasks running, or started in the window),
    // and those this transaction started.
    const counts = new Map<string, Set<string>>();
    const counted = async (dir: string, bound: number, after?: string) => {
      let ids = counts.get(dir);
      if (!ids) {
        const names = await tx.entries(dir, bound + SLACK, after);
        ids = new Set<string>();
        for (const name of names) {
          const id = after === undefined ? nameId(name) : entryId(name);
          if (id !== undefined) ids.add(id);
        }
        for (const id of mine.get(dir) ?? []) ids.add(id);
        counts.set(dir, ids);
      }
      return ids;
    };
    let last: string | undefined;
    let checkedPause = false;
    for (let from = start, took = true; took && claimed.length < request.limit;) {
      took = false;
      const seen = new Set<string>();
      let after = from === undefined ? undefined : `${from}/`;
      let wrapped = from === undefined;
      while (claimed.length < request.limit && tx.room()) {
        const names = await tx.entries(dir, SLACK, after);
        if (names.length === 0) {
          if (wrapped) break;
          wrapped = true;
          after = undefined;
          continue;
        }
        const group = names[0].slice(0, names[0].indexOf("."));
        if (seen.has(group)) break;
        seen.add(group);
        after = `${group}/`;
        if (!checkedPause) {
          if (await at.paused()) return;
          checkedPause = true;
        }
        const row = await this.#groupHead(tx, dir, names, group, at);
        if (!row) continue;
        // The group's running tasks and the rate bucket's starts in the window, each only
        // where it limits the lane.
        const limits: [string, Set<string>][] = [];
        if (row.group !== undefined) {
          const dir = `grun/${group}`;
          limits.push([dir, await counted(dir, row.groupLimit ?? 1)]);
        }
        if (row.rate !== undefined) {
          const dir = `rstart/${groupName(row.rate.key)}`;
          limits.push([dir, await counted(dir, row.rate.limit, `${pad(now - row.rate.per)}.`)]);
        }
        const busy = limits.find(([dir]) => dir.startsWith("grun/"))?.[1].size ?? 0;
        const started = limits.find(([dir]) => dir.startsWith("rstart/"))?.[1].size ?? 0;
        if (laneRoom(row, busy, started) <= 0) continue;
        for (const [dir, ids] of limits) {
          ids.add(row.id);
          let own = mine.get(dir);
          if (!own) mine.set(dir, own = new Set());
          own.add(row.id);
        }
        claimed.push(this.#start(row, request, now, out));
        took = true;
        last = group;
      }
      from = last;
    }
    if (last !== undefined && last !== start) await tx.setGroupCursor(queue, last);
  }

  /** The first claimable task of a group among listed entries; stale ones are dropped. */
  async #groupHead(
    tx: RecordTx,
    dir: string,
    names: string[],
    group: string,
    at: GroupClaim,
  ): Promise<Row | undefined> {
    for (const name of names) {
      if (!name.startsWith(`${group}.`)) break;
      const id = entryId(name);
      if (id === undefined) {
        this.#s.corrupt(`${dir}/${name}`, "not an index entry");
        continue;
      }
      const row = await tx.row(id);
      if (
        !row || row.state !== "queued" || row.queue !== at.queue || laneOf(row) === undefined ||
        groupName(laneOf(row)!) !== group
      ) {
        if (!row || row.state !== "queued") tx.dropEntry(`${dir}/${name}`);
        continue;
      }
      if (row.expiresAt !== undefined && row.expiresAt <= at.now) {
        const error = { ...EXPIRED_ERROR };
        await end(tx, row, { state: "expired", now: at.now, error }, at.out);
        continue;
      }
      return row;
    }
    return undefined;
  }

  /** Start a claimed task's attempt: running, with a fresh token and lease. */
  #start(row: Row, request: ClaimRequest, now: number, out: StepOut): ClaimedTask {
    row.state = "running";
    row.attempts++;
    row.token = crypto.randomUUID();
    row.leaseUntil = now + request.lease;
    row.worker = request.worker;
    row.startedAt = now;
    const task = view(row) as ClaimedTask;
    task.token = row.token;
    task.leaseUntil = row.leaseUntil;
    out.events.push(taskEvent("started", row, now));
    return task;
  }

  /**
   * The record, if the claim `token` still holds it. With `readAhead`, the engine reads it
   * beside what the step's events need (see `RecordTx.prefetch`); a renewal writes no event.
   */
  async #held(
    tx: RecordTx,
    id: string,
    token: string,
    readAhead = true,
  ): Promise<Row | undefined> {
    if (readAhead) await tx.prefetch?.([id]);
    const row = await tx.row(id);
    return row && row.state === "running" && row.token === token ? row : undefined;
  }

  /** Extend a lease. */
  renew(id: string, token: string, lease: number): Promise<boolean> {
    return this.#s.step(async (tx) => {
      const row = await this.#held(tx, id, token, false);
      if (row) row.leaseUntil = Date.now() + lease;
      return row !== undefined;
    });
  }

  /** Record progress. */
  progress(id: string, token: string, value: number): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const row = await this.#held(tx, id, token);
      if (!row) return undefined;
      row.progress = value;
      const event = taskEvent("progress", row, Date.now(), { progress: value });
      return await this.#effects(tx, { events: [event], results: [] });
    });
  }

  /** Complete an attempt; a result over the engine's limit fails the task instead. */
  complete(id: string, token: string, result: StoredResult): Promise<Effects | undefined> {
    const limit = this.#s.resultLimit;
    const oversized = limit && oversizedResult(id, result, limit);
    if (oversized) return this.fail(id, token, oversized);
    return this.#s.step(async (tx) => {
      const row = await this.#held(tx, id, token);
      if (!row) return undefined;
      const now = Date.now();
      leave(row);
      row.state = "completed";
      row.completedAt = result.completedAt;
      if (this.#attached.results) tx.putResults([result]);
      // When the handler finished, not when this write came: the worker frees the slot then.
      const out = stepOut();
      out.events.push(taskEvent("completed", row, result.completedAt));
      await cascade(tx, row, now, out);
      return await this.#effects(tx, out);
    });
  }

  /** Fail an attempt: retry later or fail for good. */
  fail(id: string, token: string, failure: Failure): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const row = await this.#held(tx, id, token);
      if (!row) return undefined;
      const now = Date.now();
      const error = { name: failure.error.name, message: failure.error.message };
      const out = stepOut();
      if (failure.deadLetter !== undefined) {
        deadLetter(row, { to: failure.deadLetter, now, error: failure.error }, out);
        return await this.#effects(tx, out);
      }
      leave(row);
      row.error = failure.error;
      if (failure.retryAt !== undefined) {
        row.runAt = failure.retryAt;
        release(row, now);
        out.events.push(taskEvent("retrying", row, now, { error, retryAt: failure.retryAt }));
        return await this.#effects(tx, out);
      }
      row.state = "failed";
      row.completedAt = failure.result?.completedAt ?? now;
      if (this.#attached.results && failure.result) tx.putResults([failure.result]);
      out.events.push(taskEvent("failed", row, row.completedAt, { error }));
      await cascade(tx, row, now, out);
      return await this.#effects(tx, out);
    });
  }

  /** Cancel a task that is not final. */
  cancel(id: string, reason: string): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const row = await tx.row(id);
      if (!row || isFinal(row.state)) return undefined;
      const out = stepOut();
      const ending = { state: "cancelled", now: Date.now(), error: cancelError(reason) } as const;
      await end(tx, row, { ...ending, data: { reason } }, out);
      return await this.#effects(tx, out);
    });
  }

  /** Queue a failed, cancelled or expired task again. */
  retry(id: string): Promise<Effects | undefined> {
    return this.#s.step(async (tx) => {
      const row = await tx.row(id);
      if (!row || !isFinal(row.state) || row.state === "completed") return undefined;
      const now = Date.now();
      row.attempts = 0;
      delete row.error;
      delete row.completedAt;
      delete row.startedAt;
      delete row.progress;
      delete row.expiresAt;
      row.runAt = now;
      if (this.#attached.results) tx.deleteResult(id);
      release(row, now);
      const event = taskEvent("enqueued", row, now, { state: "queued", retry: true });
      return await this.#effects(tx, { events: [event], results: [] });
    });
  }

  /**
   * Recover stalled tasks, expire old ones, purge final records. A step that runs out of
   * room (see {@linkcode RecordTx.room}) leaves the rest to the next steps of this call.
   */
  async sweep(options: SweepOptions): Promise<Effects> {
    const all = noEffects();
    for (let more = true; more;) {
      const step = await this.#s.step(async (tx) => {
        const out = stepOut();
        await sweepStep(tx, options, out);
        return { effects: await this.#effects(tx, out), more: !tx.room() };
      });
      all.events.push(...step.effects.events);
      all.results.push(...step.effects.results);
      more = step.more;
    }
    return all;
  }

  /** The earliest due time of a scheduled task in these queues. */
  async nextDue(queues: string[]): Promise<number | undefined> {
    this.#s.check();
    let next: number | undefined;
    for (const queue of queues) {
      for (const name of await this.#s.entries(`sched/${encName(queue)}`, SLACK)) {
        const id = entryId(name);
        const row = id === undefined ? undefined : await this.#s.readRow(id);
        if (
          row && row.state === "scheduled" && pad(row.runAt) === name.slice(0, name.indexOf("-"))
        ) {
          if (next === undefined || row.runAt < next) next = row.runAt;
          break;
        }
      }
    }
    return next;
  }

  /** Nothing to release here; the engine closes its records. */
  close(): Promise<void> {
    return Promise.resolve();
  }
}
