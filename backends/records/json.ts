/**
 * Records as JSON with base64 bytes, each with its record version: how the `file:` and
 * `nats:` engines store task records, schedules and results. A record that is not one (a
 * foreign or torn file or value) throws a plain `Error` the engine reports as corrupt; a
 * record of a newer OmniQ throws an `OmniQError` (`checkRecordVersion`).
 *
 * @module
 */

import type { StoredResult, StoredSchedule } from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import { fromBase64, jsonBytes, parseJson, toBase64 } from "../../src/kit/encoding.ts";
import { checkRecordVersion, RECORD_VERSION } from "../../src/kit/policy.ts";
import type { Row } from "./space.ts";

type Obj = Record<string, unknown>;

/**
 * Decode a stored record, or report it as corrupt and skip it (`undefined`). A record of a
 * newer OmniQ is not corrupt: its `OmniQError` is thrown, asking for an upgrade.
 *
 * @param decode The decoding, which throws a plain `Error` for a record that is not one.
 * @param report Report the record as corrupt (the engine warns once per record).
 */
export function readable<T>(decode: () => T, report: (why: unknown) => void): T | undefined {
  try {
    return decode();
  } catch (error) {
    if (error instanceof OmniQError) throw error;
    report(error);
    return undefined;
  }
}

/** A task record from its JSON bytes. */
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

/** A task record's JSON bytes. */
export function encodeRow(row: Row): Uint8Array {
  return jsonBytes({ v: RECORD_VERSION, ...row, payload: toBase64(row.payload) });
}

/** A schedule from its JSON bytes. */
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

/** A schedule's JSON bytes. */
export function encodeSchedule(s: StoredSchedule): Uint8Array {
  return jsonBytes({ v: RECORD_VERSION, ...s, payload: toBase64(s.payload) });
}

/** A result's JSON bytes. */
export function encodeResult(r: StoredResult): Uint8Array {
  const { value, ...rest } = r;
  return jsonBytes({
    v: RECORD_VERSION,
    ...rest,
    ...(value === undefined ? {} : { value: toBase64(value) }),
  });
}

/** A result from its JSON bytes. */
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
