/**
 * The record queue's transitions that several calls share: a task inserted (its initial
 * state from its dependencies), ended (with its result and event), the cascade to its
 * dependents, the promotion of due scheduled tasks and one step of the sweep. They act on one
 * step's {@linkcode RecordTx}; the decisions are the kit's pure policy (`src/kit/policy.ts`),
 * the same rules the SQL and Redis engines apply.
 *
 * @module
 */

import type { NewEvent, NewTask, StoredResult, SweepOptions } from "../../src/backend.ts";
import { pad } from "../../src/kit/encoding.ts";
import {
  AGED_PRIORITY,
  agedEvent,
  deadLetterEvent,
  debouncedEvent,
  debounceReplaces,
  dependencyCancel,
  dependencyVerdict,
  endResult,
  EXPIRED_ERROR,
  hasAged,
  isFinal,
  readyState,
  stallVerdict,
  taskEvent,
} from "../../src/kit/policy.ts";
import type { FinalState, SerializedError } from "../../src/types.ts";
import {
  encName,
  entryId,
  entryTime,
  LIVE_WAIT,
  nameId,
  type RecordSpace,
  type RecordTx,
  type Row,
} from "./space.ts";

/** Index entries read beyond what a step needs, in case some are stale. */
export const SLACK = 16;
/** Entries of the expiry and purge indexes one sweep step reads. */
const SWEEP_BATCH = 200;

/** The events and results a step gathers; they go out with its effects. */
export interface StepOut {
  /** Events to append. */
  events: NewEvent[];
  /** End results to store. */
  results: StoredResult[];
}

/** A step's empty output. */
export function stepOut(): StepOut {
  return { events: [], results: [] };
}

/** How a task ends, other than by completing. */
export interface Ending {
  /** The final state. */
  state: Exclude<FinalState, "completed">;
  /** When. */
  now: number;
  /** The error it ends with. */
  error: SerializedError;
  /** The event's data, if any. */
  data?: Record<string, unknown>;
}

/** Queue a task that nothing holds any more, or schedule it until its `runAt`. */
export function release(row: Row, now: number): void {
  row.state = readyState(row.runAt, now);
}

/** Forget a task's claim. */
export function leave(row: Row): void {
  row.token = undefined;
  row.leaseUntil = undefined;
  row.worker = undefined;
}

/**
 * Move a task that has spent its attempts to its dead-letter queue: queued there now, its
 * attempts reset, its last error kept, its ttl and `deadLetter` cleared (see
 * `Failure.deadLetter`).
 * Its dependents keep waiting: it has not ended.
 */
export function deadLetter(
  row: Row,
  move: { to: string; now: number; error: SerializedError },
  out: StepOut,
): void {
  const { to, now, error } = move;
  out.events.push(deadLetterEvent(row, to, now, error));
  leave(row);
  row.queue = to;
  row.attempts = 0;
  row.error = error;
  row.runAt = now;
  delete row.deadLetter;
  delete row.progress;
  // The move is a new start in another queue: the ttl counted from the first enqueue is over.
  delete row.expiresAt;
  release(row, now);
}

/** End a task without completing it, then release or cancel its dependents. */
export async function end(tx: RecordTx, row: Row, ending: Ending, out: StepOut): Promise<void> {
  const { state, now, error } = ending;
  leave(row);
  row.state = state;
  row.completedAt = now;
  row.error = error;
  out.results.push(endResult(row, state, error, now));
  out.events.push(taskEvent(state === "failed" ? "failed" : state, row, now, ending.data));
  await cascade(tx, row, now, out);
}

/** The dependents of a task that just ended: cancelled with it, or released when it was the last. */
export async function cascade(tx: RecordTx, row: Row, now: number, out: StepOut): Promise<void> {
  for (const name of await tx.entries(`deps/${encName(row.id)}`)) {
    const depId = nameId(name);
    if (depId === undefined) continue;
    const dependent = await tx.row(depId);
    if (!dependent || dependent.state !== "waiting") continue;
    if (row.state !== "completed" && dependent.onDependencyFailure === "cancel") {
      const { error, data } = dependencyCancel(row.id, row.state);
      await end(tx, dependent, { state: "cancelled", now, error, data }, out);
    } else if (await depsDone(tx, dependent)) {
      release(dependent, now);
      out.events.push(
        taskEvent(stateOf(dependent) === "scheduled" ? "scheduled" : "enqueued", dependent, now, {
          state: dependent.state,
          released: true,
        }),
      );
    }
  }
}

/** Whether every dependency found is done; reads stop at the first that is not. */
async function depsDone(tx: RecordTx, row: Row): Promise<boolean> {
  for (const d of row.dependsOn) {
    const dep = await tx.row(d);
    if (dep && dependencyVerdict(row.onDependencyFailure, [dep]).kind !== "ready") return false;
  }
  return true;
}

/**
 * A debounced enqueue (`NewTask.debounce`) against the task holding its key: an unstarted one
 * takes the new payload and due time (`true`: nothing else to store); a running one gives up
 * its key to the new task (`false`: store it). A final one (holding by its throttle window) is
 * left as it is (`false`).
 */
export async function debounce(
  tx: RecordTx,
  ownerId: string,
  t: NewTask,
  now: number,
  out: StepOut,
): Promise<boolean> {
  const owner = await tx.row(ownerId);
  if (!owner) return false;
  if (owner.state === "running") {
    delete owner.key;
    return false;
  }
  if (!debounceReplaces(owner)) return false;
  owner.payload = t.payload;
  owner.runAt = t.runAt;
  if (owner.state !== "waiting") release(owner, now);
  out.events.push(debouncedEvent(owner, t.runAt, now));
  return true;
}

/** Add a new task in the state its dependencies give it (the caller checked its id). */
export async function insert(tx: RecordTx, t: NewTask, now: number, out: StepOut): Promise<Row> {
  const row: Row = { ...t, state: "queued", attempts: 0, seq: await tx.nextSeq() };
  if (row.debounce) delete row.debounce; // an instruction to the enqueue, not stored
  tx.add(row);
  const found: Row[] = [];
  for (const d of row.dependsOn) {
    const dep = await tx.row(d);
    if (dep) found.push(dep);
  }
  const verdict = dependencyVerdict(row.onDependencyFailure, found);
  if (verdict.kind === "cancel") {
    const { error, data } = verdict;
    await end(tx, row, { state: "cancelled", now, error, data }, out);
    return row;
  }
  for (const d of row.dependsOn) tx.addDependent(d, row.id);
  if (verdict.kind === "wait") {
    row.state = "waiting";
    out.events.push(taskEvent("enqueued", row, now, { state: "waiting" }));
    return row;
  }
  release(row, now);
  out.events.push(
    row.state === "scheduled"
      ? taskEvent("scheduled", row, now, { runAt: row.runAt })
      : taskEvent("enqueued", row, now, { state: "queued" }),
  );
  return row;
}

/** Queue the scheduled tasks of a queue that are due, at most `room`; the rows promoted. */
export async function promote(
  space: RecordSpace,
  tx: RecordTx,
  at: { queue: string; now: number; room: number },
): Promise<Row[]> {
  const { queue, now, room } = at;
  const promoted: Row[] = [];
  const dir = `sched/${encName(queue)}`;
  for (const name of await tx.entries(dir, room + SLACK)) {
    const due = entryTime(name);
    if (Number.isNaN(due)) continue;
    if (due > now || promoted.length >= room || !tx.room()) break;
    const id = entryId(name);
    if (id === undefined) {
      space.corrupt(`${dir}/${name}`, "not an index entry");
      continue;
    }
    const row = await tx.row(id);
    if (row && row.state === "scheduled" && row.runAt <= now) {
      row.state = "queued";
      promoted.push(row);
    } else if (!row || row.state !== "scheduled") {
      tx.dropEntry(`${dir}/${name}`);
    }
  }
  return promoted;
}

/** The ready index name of a queued row. */
export function readyName(row: Row): string {
  return `${9 - row.priority}${pad(row.seq)}-${encName(row.id)}`;
}

/**
 * One step of a sweep: stalled tasks back to their queue or failed, unstarted tasks past
 * their `ttl` expired, aged tasks raised to the top priority, final records purged; as much
 * as the step has room for.
 */
export async function sweepStep(tx: RecordTx, options: SweepOptions, out: StepOut): Promise<void> {
  const { now } = options;
  for (const name of await tx.entries("running")) {
    if (!tx.room()) break;
    const id = nameId(name);
    if (id === undefined) continue;
    const row = await tx.row(id);
    if (!row || row.state !== "running") {
      tx.dropEntry(`running/${name}`);
      continue;
    }
    if (row.leaseUntil === undefined || row.leaseUntil >= now) continue;
    out.events.push(taskEvent("stalled", row, now, { attempt: row.attempts }));
    const verdict = stallVerdict(row.attempts, row.maxAttempts, row.deadLetter);
    if (verdict.kind === "retry") {
      leave(row);
      row.runAt = now;
      release(row, now);
    } else if (verdict.kind === "deadLetter") {
      deadLetter(row, { to: verdict.to, now, error: verdict.error }, out);
    } else {
      const { error } = verdict;
      await end(tx, row, { state: "failed", now, error, data: { error: { ...error } } }, out);
    }
  }
  for (const name of await tx.entries("expires", SWEEP_BATCH)) {
    if (!tx.room()) break;
    if (Number.isNaN(entryTime(name))) continue;
    if (entryTime(name) > now) break;
    const id = entryId(name);
    const row = id === undefined ? undefined : await tx.row(id);
    if (!row || !LIVE_WAIT.has(row.state) || row.expiresAt === undefined) {
      tx.dropEntry(`expires/${name}`);
      continue;
    }
    if (row.expiresAt <= now) {
      await end(tx, row, { state: "expired", now, error: { ...EXPIRED_ERROR } }, out);
    }
  }
  for (const name of await tx.entries("aging", SWEEP_BATCH)) {
    if (!tx.room()) break;
    if (Number.isNaN(entryTime(name))) continue;
    if (entryTime(name) > now) break;
    const id = entryId(name);
    const row = id === undefined ? undefined : await tx.row(id);
    // An entry whose task was claimed, raised or moved since is stale.
    if (!row || !hasAged(row, now) || row.runAt + row.ageAfter! !== entryTime(name)) {
      tx.dropEntry(`aging/${name}`);
      continue;
    }
    out.events.push(agedEvent(row, row.priority, now));
    row.priority = AGED_PRIORITY;
  }
  if (options.purgeBefore === undefined) return;
  for (const name of await tx.entries("final", SWEEP_BATCH)) {
    if (!tx.room()) break;
    if (Number.isNaN(entryTime(name))) continue;
    if (entryTime(name) >= options.purgeBefore) break;
    const id = entryId(name);
    const row = id === undefined ? undefined : await tx.row(id);
    if (!row || !isFinal(row.state)) {
      tx.dropEntry(`final/${name}`);
      continue;
    }
    if (row.completedAt! < options.purgeBefore) tx.remove(id!);
  }
}

/** A row's state, read afresh (TypeScript narrows `row.state` across calls that change it). */
function stateOf(row: Row): Row["state"] {
  return row.state;
}
