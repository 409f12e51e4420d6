// How the `nats:` engine's records are stored: task rows, schedules and results are the
// record engines' JSON records (`backends/records/json.ts`, re-exported here); ids become
// subject and key tokens; and the small helpers of its writes (errors, bounded concurrency,
// sorted index names).

import { fromBase64, toBase64 } from "../../src/kit/encoding.ts";
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

/** Task rows, schedules and results are the record engines' JSON records. */
export {
  decodeResult,
  decodeRow,
  decodeSchedule,
  encodeResult,
  encodeRow,
  encodeSchedule,
} from "../records/json.ts";
/** Whether a step left a row as it read it. */
export { sameRow } from "../records/staging.ts";

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
