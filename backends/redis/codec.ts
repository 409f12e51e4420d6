// How the Redis engine's records travel: a task hash, the 22 script arguments of a new task,
// results, events and schedules as JSON, and the shapes of script replies. The fields a
// claim returns are listed in lua/fragments.ts (`CLAIM_FIELDS`); a field read here must be
// listed there too.

import { Buffer } from "node:buffer";
import type {
  NewEvent,
  NewTask,
  StoredEvent,
  StoredResult,
  StoredSchedule,
  StoredTask,
} from "../../src/backend.ts";
import { checkRecordVersion, RECORD_VERSION } from "../../src/kit/policy.ts";
import { type EventType, TASK_STATES, type TaskState } from "../../src/types.ts";
import { CLAIM_FIELDS } from "./lua/mod.ts";

/** A JSON object. */
export type Json = Record<string, unknown>;

export function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

export function unb64(text: unknown, what: string): Uint8Array {
  if (typeof text !== "string") throw new Error(`${what}: expected base64 text`);
  return new Uint8Array(Buffer.from(text, "base64"));
}

/** A JSON array from a script (cjson encodes an empty table as `{}`). */
export function arr<T>(value: unknown): T[] {
  return Array.isArray(value) ? value as T[] : [];
}

/** `[k1, v1, k2, v2 …]` as an object. */
export function pairs(flat: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const list = arr<string>(flat);
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i]] = list[i + 1];
  return out;
}

/** A claimed record from the values of `CLAIM_FIELDS` (an absent field comes as `false`). */
export function record(values: unknown): Record<string, string> {
  const out: Record<string, string> = {};
  const list = arr<unknown>(values);
  for (let i = 0; i < CLAIM_FIELDS.length; i++) {
    const v = list[i];
    if (typeof v === "string") out[CLAIM_FIELDS[i]] = v;
  }
  return out;
}

export function num(value: string | undefined, what: string): number {
  const n = Number(value);
  if (value === undefined || value === "" || !Number.isFinite(n)) {
    throw new Error(`${what}: expected a number, got ${JSON.stringify(value)}`);
  }
  return n;
}

export function optNum(value: string | undefined, what: string): number | undefined {
  return value === undefined || value === "" ? undefined : num(value, what);
}

/**
 * A task from its hash; throws an Error saying what is wrong when it is damaged. (A claim
 * returns only the fields in `CLAIM_FIELDS`: a field read here must be listed there too.)
 */
export function toTask(id: string, h: Record<string, string>): StoredTask {
  checkRecordVersion(num(h.v, "v"), `task ${id}`);
  if (!TASK_STATES.includes(h.state as TaskState)) throw new Error(`state: ${h.state}`);
  if (typeof h.task !== "string" || h.task === "") throw new Error("task: no name");
  const d = JSON.parse(h.d ?? "") as Json;
  if (!d || typeof d !== "object") throw new Error("d: expected a JSON object");
  const deps = h.deps === undefined || h.deps === "[]" ? [] : JSON.parse(h.deps);
  const task: StoredTask = {
    id,
    task: h.task,
    queue: h.queue,
    priority: num(h.pri, "pri"),
    payload: unb64(d.payload, "payload"),
    createdAt: Number(d.createdAt),
    runAt: num(h.runAt, "runAt"),
    maxAttempts: num(h.max, "max"),
    backoff: d.backoff as StoredTask["backoff"],
    dependsOn: arr<string>(deps),
    onDependencyFailure: h.odf === "run" ? "run" : "cancel",
    state: h.state as TaskState,
    attempts: num(h.attempts, "attempts"),
  };
  if (!task.backoff || typeof task.backoff !== "object") throw new Error("backoff: missing");
  const expiresAt = optNum(h.exp, "exp");
  if (expiresAt !== undefined) task.expiresAt = expiresAt;
  if (typeof d.timeout === "number") task.timeout = d.timeout;
  const resultTtl = optNum(h.rttl, "rttl");
  if (resultTtl !== undefined) task.resultTtl = resultTtl;
  if (h.key !== undefined) task.key = h.key;
  if (h.worker !== undefined && task.state === "running") task.worker = h.worker;
  // A record written before dead-letter queues has no `dlq`: it has none.
  if (h.dlq !== undefined && h.dlq !== "") task.deadLetter = h.dlq;
  // Nor before priority aging an `age`: it does not age.
  const ageAfter = optNum(h.age, "age");
  if (ageAfter !== undefined) task.ageAfter = ageAfter;
  // Nor before throttle keys a `kuntil`: it holds its key while it is live, no longer.
  const keyUntil = optNum(h.kuntil, "kuntil");
  if (keyUntil !== undefined) task.keyUntil = keyUntil;
  // Nor before groups a `group` (nor a `glim`): it is in none.
  if (h.group !== undefined && h.group !== "") {
    task.group = h.group;
    const groupLimit = optNum(h.glim, "glim");
    if (groupLimit !== undefined) task.groupLimit = groupLimit;
  }
  // Nor before rate limits an `rkey` (nor its `rlim` and `rper`): it has none.
  if (h.rkey !== undefined && h.rkey !== "") {
    task.rate = { key: h.rkey, limit: num(h.rlim, "rlim"), per: num(h.rper, "rper") };
  }
  if (typeof d.scheduleId === "string") task.scheduleId = d.scheduleId;
  if (h.links !== undefined) {
    const links = JSON.parse(h.links) as { names?: unknown; pipe?: unknown; trace?: unknown };
    task.links = {};
    if (links.names && typeof links.names === "object" && !Array.isArray(links.names)) {
      task.links.names = links.names as Record<string, string>;
    } else if (Array.isArray(links.names)) task.links.names = {};
    if (typeof links.pipe === "string") task.links.pipe = links.pipe;
    if (typeof links.trace === "string") task.links.trace = links.trace;
  }
  const startedAt = optNum(h.startedAt, "startedAt");
  if (startedAt !== undefined) task.startedAt = startedAt;
  const completedAt = optNum(h.completedAt, "completedAt");
  if (completedAt !== undefined) task.completedAt = completedAt;
  const progress = optNum(h.progress, "progress");
  if (progress !== undefined) task.progress = progress;
  if (h.error !== undefined) task.error = JSON.parse(h.error);
  return task;
}

/**
 * The 22 script arguments of a new task (see `insert` in lua/fragments.ts). Its `d` begins
 * with the payload: a debounced enqueue swaps that text into its key holder's `d` as it is
 * (`withPayload` in lua/enqueue.ts).
 */
export function taskArgs(t: NewTask): string[] {
  const d: Json = { payload: b64(t.payload), createdAt: t.createdAt, backoff: t.backoff };
  if (t.timeout !== undefined) d.timeout = t.timeout;
  if (t.scheduleId !== undefined) d.scheduleId = t.scheduleId;
  return [
    t.id,
    t.queue,
    String(t.priority),
    String(t.runAt),
    t.expiresAt === undefined ? "" : String(t.expiresAt),
    String(t.maxAttempts),
    t.resultTtl === undefined ? "" : String(t.resultTtl),
    t.key ?? "",
    t.onDependencyFailure,
    JSON.stringify(t.dependsOn),
    t.links === undefined ? "" : JSON.stringify(t.links),
    t.task,
    JSON.stringify(d),
    t.deadLetter ?? "",
    t.ageAfter === undefined ? "" : String(t.ageAfter),
    t.keyUntil === undefined ? "" : String(t.keyUntil),
    t.debounce ? "1" : "",
    t.group ?? "",
    t.group === undefined || t.groupLimit === undefined ? "" : String(t.groupLimit),
    t.rate?.key ?? "",
    t.rate === undefined ? "" : String(t.rate.limit),
    t.rate === undefined ? "" : String(t.rate.per),
  ];
}

export function resultJson(r: StoredResult): string {
  const out: Json = { v: RECORD_VERSION, taskId: r.taskId, state: r.state };
  if (r.value !== undefined) out.value = b64(r.value);
  if (r.error !== undefined) out.error = r.error;
  out.completedAt = r.completedAt;
  if (r.expiresAt !== undefined) out.expiresAt = r.expiresAt;
  return JSON.stringify(out);
}

export function toResult(raw: Json): StoredResult {
  checkRecordVersion(raw.v, `the result of task ${raw.taskId}`);
  const r: StoredResult = {
    taskId: String(raw.taskId),
    state: raw.state as StoredResult["state"],
    completedAt: Number(raw.completedAt),
  };
  if (typeof raw.value === "string") r.value = unb64(raw.value, "value");
  if (raw.error && typeof raw.error === "object") r.error = raw.error as StoredResult["error"];
  if (typeof raw.expiresAt === "number") r.expiresAt = raw.expiresAt;
  return r;
}

export function toEvent(raw: Json, id?: string): NewEvent | StoredEvent {
  const e: NewEvent = { type: raw.type as EventType, at: Number(raw.at) };
  if (typeof raw.taskId === "string") e.taskId = raw.taskId;
  if (typeof raw.queue === "string") e.queue = raw.queue;
  if (typeof raw.attempt === "number") e.attempt = raw.attempt;
  if (raw.data && typeof raw.data === "object" && !Array.isArray(raw.data)) {
    e.data = raw.data as Record<string, unknown>;
  }
  const eventId = id ?? (typeof raw.id === "string" ? raw.id : undefined);
  return eventId === undefined ? e : { ...e, id: eventId };
}

export function eventJson(e: NewEvent): string {
  const out: Json = { type: e.type };
  if (e.taskId !== undefined) out.taskId = e.taskId;
  if (e.queue !== undefined) out.queue = e.queue;
  out.at = e.at;
  if (e.attempt !== undefined) out.attempt = e.attempt;
  if (e.data !== undefined) out.data = e.data;
  return JSON.stringify(out);
}

export function scheduleJson(s: StoredSchedule): string {
  const { paused: _p, nextRunAt: _n, lastRunAt: _l, payload, ...rest } = s;
  return JSON.stringify({ ...rest, payload: b64(payload) });
}

export function toSchedule(h: Record<string, string>): StoredSchedule {
  const d = JSON.parse(h.d) as Json;
  const s = { ...d, payload: unb64(d.payload, "payload"), paused: h.paused === "1" } as
    & StoredSchedule
    & Json;
  if (h.next !== undefined) s.nextRunAt = Number(h.next);
  if (h.last !== undefined) s.lastRunAt = Number(h.last);
  return s;
}
