/**
 * Record encoding shared by the record engines (`file:`, `kv:`, `nats:`): JSON with base64
 * bytes, and index names that sort in order.
 *
 * @module
 */

/** Bytes as base64. */
export function toBase64(bytes: Uint8Array): string {
  let out = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    out += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(out);
}

/** Base64 as bytes; throws on bad input. */
export function fromBase64(text: string): Uint8Array {
  if (typeof text !== "string") throw new TypeError("expected base64 text");
  const bin = atob(text);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** A value as JSON bytes. */
export function jsonBytes(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** JSON bytes as a value; throws on bad UTF-8 or JSON. */
export function parseJson(bytes: Uint8Array): unknown {
  return JSON.parse(decoder.decode(bytes));
}

/** A name-safe form of an id, queue or key (reversible). */
export function encName(s: string): string {
  return encodeURIComponent(s).replace(/\./g, "%2E").replace(/\*/g, "%2A");
}

/** The id, queue or key a name-safe form stands for. */
export function decName(s: string): string {
  return s.includes("%") ? decodeURIComponent(s) : s;
}

/** A non-negative integer padded so names sort by it (times up to year 5138, seqs to 1e15). */
export function pad(n: number, width = 15): string {
  return Math.max(0, Math.floor(n)).toString().padStart(width, "0");
}
