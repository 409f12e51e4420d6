/**
 * What the three object stores' adapters share: byte helpers, the HTTP statuses worth a
 * retry, the segments of a key prefix, and the probe at open that a store really enforces
 * conditional writes.
 *
 * @module
 */

import { ConfigError } from "../../../src/errors.ts";
import type { ConditionalStorage } from "../storage.ts";

/** One REST call of an adapter (S3, Azure), before signing. */
export interface Call {
  /** The HTTP method. */
  method: "GET" | "HEAD" | "PUT" | "DELETE";
  /** The object's key under the prefix, for the URL and messages; absent for the bucket. */
  key?: string;
  /** The query parameters. */
  query?: Record<string, string>;
  /** The headers (preconditions among them). */
  headers?: Record<string, string>;
  /** The body of a PUT. */
  body?: Uint8Array;
}

/** A call's answer, read whole. */
export interface Reply {
  /** The HTTP status. */
  status: number;
  /** The answer's headers. */
  headers: Headers;
  /** The answer's body (empty for HEAD). */
  body: Uint8Array;
  /** Whether an earlier attempt may have taken effect (its answer was lost, or a 5xx). */
  retried: boolean;
}

/** Answers worth a retry: too many requests, and the server's transient failures. */
export const TRANSIENT: ReadonlySet<number> = new Set([429, 500, 502, 503, 504]);

/** Whether two byte strings are equal. */
export function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** `a` then `b`, as one new array. */
export function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/**
 * A key prefix without its outer slashes, or `undefined` when one of its segments is empty,
 * `.` or `..` (the caller says so in its own words).
 */
export function trimPrefix(prefix: string): string | undefined {
  const trimmed = prefix.replace(/^\/+|\/+$/g, "");
  if (trimmed === "") return "";
  for (const segment of trimmed.split("/")) {
    if (segment === "" || segment === "." || segment === "..") return undefined;
  }
  return trimmed;
}

/**
 * Check that a store enforces conditional writes, which several processes sharing it rely
 * on: create one probe object only-if-absent twice (the second must be refused), then delete
 * it. Three requests, made once when a store opens.
 *
 * @param storage The store.
 * @throws {ConfigError} When the second create went through: the server ignores
 *   preconditions, so the store is refused rather than silently unsafe.
 */
export async function checkPreconditions(storage: ConditionalStorage): Promise<void> {
  const probe = `.omniq-probe-${crypto.randomUUID()}`;
  const first = await storage.putIf(probe, new TextEncoder().encode("first"), null);
  let second: string | undefined;
  try {
    second = await storage.putIf(probe, new TextEncoder().encode("second"), null);
  } finally {
    await storage.delete(probe).catch(() => {});
  }
  if (first === undefined || second !== undefined) {
    throw new ConfigError(
      `${storage.location}: the server does not enforce conditional writes (a create-only ` +
        `write of an existing object went through), which the lock and every record change ` +
        `rely on; use a store that does (S3, Azure Blob and GCS all do), or, for an emulator ` +
        `used by one handle at a time, open it with checkPreconditions: false`,
    );
  }
}
