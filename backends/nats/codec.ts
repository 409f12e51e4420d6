// How the `nats:` engine's records are stored: task rows, schedules and results as JSON with
// base64 bytes (each with its record version), ids as subject and key tokens, and the
// small helpers of its writes (errors, bounded concurrency, sorted index names).

import type { StoredResult, StoredSchedule } from "../../src/backend.ts";
import { fromBase64, jsonBytes, parseJson, toBase64 } from "../../src/kit/encoding.ts";
import { checkRecordVersion, RECORD_VERSION } from "../../src/kit/policy.ts";
import type { Row } from "../records/queue.ts";
import { IN_FLIGHT } from "./limits.ts";

/** A JSON object. */
export type Obj = Record<string, unknown>;

/** A string as a subject or key token: `x` then base64url (no padding). */
export function tok(s: string): string {
  const b64 = toBase64(new TextEncoder().encode(s));
  return "x" + b64.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function untok(t: string): string {
  if (!t.startsWith("x")) throw new Error(`not an encoded name: ${t}`);
  const b64 = t.slice(1).replace(/-/g, "+").replace(/_/g, "/");
  return new TextDecoder("utf-8", { fatal: true }).decode(
    fromBase64(b64 + "=".repeat((4 - (b64.length % 4)) % 4)),
  );
}

export function decodeRow(bytes: Uint8Array): Row {
  const r = parseJson(bytes) as Obj;
  if (!r || typeof r !== "object") throw new Error("not a record");
  checkRecordVersion(r.v, "a task record", true);
  if (
    typeof r.id !== "string" || typeof r.state !== "string" || typeof r.seq !== "number" ||
    typeof r.payload !== "string" || typeof r.queue !== "string" || !Array.isArray(r.dependsOn)
  ) {
    throw new Error("not a task record");
  }
  const { v: _v, payload, ...rest } = r;
  return { ...rest, payload: fromBase64(payload as string) } as unknown as Row;
}

export function encodeRow(row: Row): Uint8Array {
  return jsonBytes({ v: RECORD_VERSION, ...row, payload: toBase64(row.payload) });
}

export function decodeSchedule(bytes: Uint8Array): StoredSchedule {
  const r = parseJson(bytes) as Obj;
  if (!r || typeof r !== "object") throw new Error("not a record");
  checkRecordVersion(r.v, "a schedule record", true);
  if (typeof r.id !== "string" || typeof r.payload !== "string") {
    throw new Error("not a schedule record");
  }
  const { v: _v, payload, ...rest } = r;
  return { ...rest, payload: fromBase64(payload as string) } as unknown as StoredSchedule;
}

export function encodeSchedule(s: StoredSchedule): Uint8Array {
  return jsonBytes({ v: RECORD_VERSION, ...s, payload: toBase64(s.payload) });
}

export function encodeResult(r: StoredResult): Uint8Array {
  const { value, ...rest } = r;
  return jsonBytes({
    v: RECORD_VERSION,
    ...rest,
    ...(value === undefined ? {} : { value: toBase64(value) }),
  });
}

export function decodeResult(bytes: Uint8Array): StoredResult {
  const r = parseJson(bytes) as Obj;
  if (!r || typeof r !== "object") throw new Error("not a record");
  checkRecordVersion(r.v, "a result record", true);
  if (typeof r.taskId !== "string" || typeof r.state !== "string") {
    throw new Error("not a result record");
  }
  const { v: _v, value, ...rest } = r;
  const out = { ...rest } as unknown as StoredResult;
  if (value !== undefined) out.value = fromBase64(value as string);
  return out;
}

/** Whether a step left a row as it read it (the logic only assigns top-level fields). */
export function sameRow(a: Row, b: Row): boolean {
  const ka = Object.keys(a);
  if (ka.length !== Object.keys(b).length) return false;
  for (const k of ka) {
    if ((a as unknown as Obj)[k] !== (b as unknown as Obj)[k]) return false;
  }
  return true;
}

export function isWrongSequence(error: unknown): boolean {
  return /wrong last sequence|key exists|10071/i.test(String((error as Error)?.message));
}

export function errorText(error: unknown): string {
  return String((error as Error)?.message ?? error);
}

/** Run promise-making jobs with a bounded number in flight; the first error is thrown last. */
export async function bounded(jobs: (() => Promise<unknown>)[]): Promise<void> {
  let first: unknown;
  let failed = false;
  for (let i = 0; i < jobs.length; i += IN_FLIGHT) {
    const settled = await Promise.allSettled(jobs.slice(i, i + IN_FLIGHT).map((j) => j()));
    for (const s of settled) {
      if (s.status === "rejected" && !failed) {
        failed = true;
        first = s.reason;
      }
    }
  }
  if (failed) throw first;
}

/** Sorted names with binary-search insert and delete. */
export class SortedNames {
  readonly names: string[] = [];
  #find(name: string): number {
    let lo = 0;
    let hi = this.names.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.names[mid] < name) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
  add(name: string): void {
    const i = this.#find(name);
    if (this.names[i] !== name) this.names.splice(i, 0, name);
  }
  delete(name: string): void {
    const i = this.#find(name);
    if (this.names[i] === name) this.names.splice(i, 1);
  }
}
