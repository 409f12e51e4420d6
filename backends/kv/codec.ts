/**
 * How the `kv:` engine stores its records: task records and schedules as KV values (bytes
 * stay `Uint8Array`, KV's own structured serialization), each with its record version; a
 * value that is not one throws a plain `Error` the engine reports as corrupt.
 *
 * @module
 */

import type { StoredSchedule } from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import { checkRecordVersion, RECORD_VERSION } from "../../src/kit/policy.ts";
import type { Row } from "../records/space.ts";

/** A KV value that is an object. */
export type Obj = Record<string, unknown>;

/** A task record from its KV value. */
export function decodeRow(raw: unknown): Row {
  const r = raw as Obj;
  if (!r || typeof r !== "object") throw new Error("not a record");
  checkRecordVersion(r.v, "a task record", true);
  if (
    typeof r.id !== "string" || typeof r.state !== "string" || typeof r.seq !== "number" ||
    !(r.payload instanceof Uint8Array)
  ) {
    throw new Error("not a task record");
  }
  const { v: _v, ...row } = r;
  return row as unknown as Row;
}

/** A task record's KV value. */
export function encodeRow(row: Row): Obj {
  return { v: RECORD_VERSION, ...row };
}

/** A schedule from its KV value. */
export function decodeSchedule(raw: unknown): StoredSchedule {
  const r = raw as Obj;
  if (!r || typeof r !== "object") throw new Error("not a record");
  checkRecordVersion(r.v, "a schedule record", true);
  if (typeof r.id !== "string" || !(r.payload instanceof Uint8Array)) {
    throw new Error("not a schedule record");
  }
  const { v: _v, ...s } = r;
  return s as unknown as StoredSchedule;
}

/** A schedule's KV value. */
export function encodeSchedule(s: StoredSchedule): Obj {
  return { v: RECORD_VERSION, ...s };
}

/** A step whose commit would be over one Deno KV commit's limits. */
export class StepTooLarge extends OmniQError {
  override name = "StepTooLarge";
}
