/**
 * How the PostgreSQL engine stores new tasks, for `enqueue` and a fired schedule tick: a
 * batch of any size in at most three round trips, each task's state decided by the shared
 * `admit` from its dependencies' states.
 *
 * @module
 */

import type { NewTask } from "../../src/backend.ts";
import { DuplicateTaskError } from "../../src/errors.ts";
import {
  debouncedEvent,
  debounceReplaces,
  holdsKey,
  readyState,
  RECORD_VERSION,
  withStandIns,
} from "../../src/kit/policy.ts";
import type { SerializedError, TaskState } from "../../src/types.ts";
import { admit, type StepSink } from "../sql/steps.ts";
import { TASK_COLUMNS, taskValues } from "../sql/transitions.ts";
import {
  type Connection,
  errorCode,
  hex,
  type Param,
  run,
  type Tail,
  type Tx,
} from "./connection.ts";
import * as q from "./queries.ts";

/** What {@linkcode storeTasks} stores, and where its effects go. */
export interface StoreRequest {
  /** The step sink of the transaction: events, results, wake-ups. */
  step: StepSink;
  /** The transaction's tail: the inserts are sent there, with the `COMMIT`. */
  tail: Tail;
  /** The tasks, in order; one may depend on an earlier one. */
  tasks: NewTask[];
  /**
   * Whether a task whose key another task holds (`holdsKey`: live, or ended within its
   * throttle window) stands for that task instead.
   */
  dedupe: boolean;
}

/**
 * Store tasks, in order, in at most three round trips whatever their number: one to lock
 * their keys and find the tasks holding them (with `dedupe`), one to lock the
 * dependencies outside the batch and read their states, and a multi-row insert of the
 * tasks and their dependency links, sent in the transaction's tail with its events.
 * A task may depend on one earlier in the batch; its state is known here.
 *
 * @returns Each task's id (the key holder's for a deduplicated one) and whether it is new.
 * @throws {OmniQError} When a dependency does not exist.
 * @throws {DuplicateTaskError} When a task with one of the ids exists (at the commit).
 */
export async function storeTasks(
  c: Connection,
  tx: Tx,
  request: StoreRequest,
): Promise<{ ids: string[]; created: boolean[] }> {
  const { step, tail, tasks, dedupe } = request;
  const s = c.s;
  const now = step.now;
  const owners = new Map<string, string>();
  // The holders found in the database: their state and what a `debounced` event names.
  const holders = new Map<
    string,
    { id: string; state: TaskState; queue: string; attempts: number }
  >();
  const keys = dedupe ? [...new Set(tasks.flatMap((t) => t.key === undefined ? [] : [t.key]))] : [];
  if (keys.length) {
    // Two processes enqueueing one key at once: the lock makes the second see the first.
    const locked = run(tx, q.LOCK_KEYS, [c.lockSpace, keys]);
    const held = run(tx, q.keyOwners(s), [keys, now]);
    const [, rows] = await Promise.all([locked, held]);
    for (const row of rows) {
      owners.set(row.key, row.id);
      holders.set(row.key, {
        id: row.id,
        state: row.state,
        queue: row.queue,
        attempts: Number(row.attempts),
      });
    }
  }
  // The states of the dependencies outside the batch. A dependency on a batch task that
  // a held key replaces is one on the key's holder.
  const batch = new Set(tasks.map((t) => t.id));
  const replaced = (id: string): string => {
    const t = dedupe ? tasks.find((t) => t.id === id && t.key !== undefined) : undefined;
    return (t && owners.get(t.key!)) ?? id;
  };
  const outside = new Set<string>();
  for (const t of tasks) {
    for (const d of t.dependsOn) {
      const to = batch.has(d) ? replaced(d) : d;
      if (!batch.has(to)) outside.add(to);
    }
  }
  const states = new Map<string, TaskState>();
  if (outside.size) {
    // Locked, and a live one marked as having dependents: a dependency ending at this
    // moment waits for this insert to commit, then sees the mark and releases the new
    // dependent (or this insert sees it ended). In id order, so two batches cannot
    // deadlock on each other.
    const rows = await run(tx, q.lockDependencies(s), [[...outside]]);
    for (const row of rows) states.set(row.id, row.state);
  }
  const ids: string[] = [];
  const created: boolean[] = [];
  const standIn = new Map<string, string>();
  const rows: { t: NewTask; state: TaskState; error?: SerializedError }[] = [];
  /**
   * Apply a debounced task to the holder of its key: an unstarted holder (stored, or earlier
   * in this batch) takes its payload and due time (`false`: the task stands for it); a
   * running one gives up its key (`true`: the task is stored and takes the key).
   */
  const debounceInto = (t: NewTask, owner: string): boolean => {
    const pending = rows.find((r) => r.t.id === owner);
    const stored = pending ? undefined : holders.get(t.key!);
    const state = pending?.state ?? stored?.state;
    if (state === "running") {
      tail.push(run(tx, q.dropKey(s), [owner]));
      return true;
    }
    if (state === undefined || !debounceReplaces({ state })) return false;
    if (pending) {
      pending.t = { ...pending.t, payload: t.payload, runAt: t.runAt };
      if (pending.state !== "waiting") pending.state = readyState(t.runAt, now);
      states.set(owner, pending.state);
    } else {
      tail.push(run(tx, q.debounce(s), [hex(t.payload), t.runAt, now, owner]));
    }
    const queue = pending ? pending.t.queue : stored!.queue;
    const attempts = pending ? 0 : stored!.attempts;
    step.emit(debouncedEvent({ id: owner, queue, attempts }, t.runAt, now));
    if (t.runAt <= now && state !== "waiting") step.wake(queue);
    return false;
  };
  for (const t of tasks) {
    if (dedupe && t.key !== undefined) {
      const owner = owners.get(t.key);
      // A debounced task replaces an unstarted holder, and takes a running one's key.
      const taken = owner !== undefined && t.debounce && debounceInto(t, owner);
      if (owner !== undefined && !taken) {
        ids.push(owner);
        created.push(false);
        standIn.set(t.id, owner);
        continue;
      }
    }
    // Dependencies and links follow the stand-ins, each dependency once.
    const linked = withStandIns(t, standIn);
    const { state, error } = admit(step, linked, (id) => states.get(id));
    rows.push({ t: linked, state, error });
    // Later tasks of the batch see this one as the database would: by id, and by key
    // while it holds it (live, or cancelled at once within a throttle window).
    if (!states.has(t.id)) states.set(t.id, state);
    if (dedupe && t.key !== undefined && holdsKey({ state, keyUntil: t.keyUntil }, now)) {
      owners.set(t.key, t.id);
    }
    ids.push(t.id);
    created.push(true);
  }
  if (!rows.length) return { ids, created };
  const dependedOn = new Set(rows.flatMap((r) => r.t.dependsOn));
  // The shared values of each task, as one array per column (the statement unnests them).
  const values = rows.map((r) => taskValues(r.t, r, now));
  const columns = TASK_COLUMNS.flatMap((name, i) =>
    name === "v" ? [] : [
      values.map((v) => name === "payload" ? hex(v[i] as Uint8Array) : v[i]) as Param,
    ]
  );
  const inserted = run(tx, q.insertTasks(s), [
    RECORD_VERSION,
    ...columns,
    // As text: postgres.js sends an array of booleans as one boolean.
    rows.map((r) => dependedOn.has(r.t.id) ? "t" : "f"),
  ]).catch((e) => {
    if (errorCode(e) !== "23505") throw e;
    const id = /\(id\)=\((.*)\) already exists/.exec(
      String((e as { detail?: unknown }).detail ?? ""),
    )?.[1];
    throw new DuplicateTaskError(
      `id: a task with id "${id ?? rows[0].t.id}" exists`,
      { cause: e },
    );
  });
  tail.push(inserted);
  const links = rows.flatMap((r) => r.t.dependsOn.map((d) => [r.t.id, d]));
  if (links.length) {
    tail.push(run(tx, q.insertDeps(s), [links.map((l) => l[0]), links.map((l) => l[1])]));
  }
  return { ids, created };
}
