/**
 * The Worker behind `OmniQSync`: it runs the async core (and the task modules named in
 * `tasks`) and answers each call by writing the reply into the shared buffer, because the
 * caller's thread is blocked in `Atomics.wait` and cannot receive messages.
 *
 * Buffer layout (Int32 words, then bytes from offset 16):
 * [0] state: 0 waiting, 1 reply, 2 error reply, 3 chunk (more follows)
 * [1] heartbeat: incremented while this Worker's event loop runs
 * [2] bytes in this chunk; [3] total bytes of the reply
 *
 * @module
 */

import "./backends/builtin.ts";
import "./workers/builtin.ts";
import { decode, encode } from "./src/codec.ts";
import { OmniQ, type OmniQConfig } from "./src/omniq.ts";
import { serializeError } from "./src/errors.ts";
import { runtime } from "./src/runtime/mod.ts";

/** The calls the blocking API may make. */
export const SYNC_METHODS: ReadonlySet<string> = new Set([
  "enqueue",
  "enqueueMany",
  "get",
  "result",
  "wait",
  "cancel",
  "retry",
  "stats",
  "list",
  "events",
  "run",
  "cleanup",
  "schedule",
  "schedules",
  "pauseSchedule",
  "resumeSchedule",
  "unschedule",
  "tick",
  "close",
]);

/** The first message: the buffer and the configuration. */
export interface InitMessage {
  /** The shared reply buffer. */
  buffer: SharedArrayBuffer;
  /** The configuration for `OmniQ.open`. */
  config: OmniQConfig | string | undefined;
}

/** A call: the method and its codec-encoded argument list. */
export interface CallMessage {
  /** The method's name. */
  method: string;
  /** The encoded arguments. */
  args: Uint8Array;
}

const port = runtime.threadPort();
let buffer: SharedArrayBuffer | undefined;
let q: OmniQ | undefined;
let pending: Uint8Array | undefined;
let heartbeat: ReturnType<typeof setInterval> | undefined;

function header(): Int32Array {
  return new Int32Array(buffer!, 0, 4);
}

/** Write the next chunk of the pending reply and wake the caller. */
function writeChunk(error: boolean): void {
  const capacity = buffer!.byteLength - 16;
  const bytes = pending!;
  const chunk = bytes.subarray(0, capacity);
  new Uint8Array(buffer!, 16, chunk.length).set(chunk);
  pending = bytes.length > capacity ? bytes.subarray(capacity) : undefined;
  const h = header();
  Atomics.store(h, 2, chunk.length);
  Atomics.store(h, 0, pending ? 3 : error ? 2 : 1);
  Atomics.notify(h, 0);
}

let replyIsError = false;

function reply(value: unknown, error: boolean): void {
  let bytes: Uint8Array;
  try {
    bytes = encode(error ? errorRecord(value) : value, "reply");
  } catch (e) {
    bytes = encode(errorRecord(e), "reply");
    error = true;
  }
  pending = bytes;
  replyIsError = error;
  Atomics.store(header(), 3, bytes.length);
  writeChunk(error);
}

function errorRecord(error: unknown): Record<string, unknown> {
  const out: Record<string, unknown> = { ...serializeError(error) };
  if (error && typeof error === "object") {
    const e = error as { taskId?: unknown; remote?: unknown };
    if (typeof e.taskId === "string") out.taskId = e.taskId;
    if (e.remote && typeof e.remote === "object") out.remote = e.remote;
  }
  return out;
}

async function call(method: string, args: unknown[]): Promise<unknown> {
  if (!q) throw new Error("the queue is not open");
  if (!SYNC_METHODS.has(method)) throw new Error(`no blocking counterpart for "${method}"`);
  if (method === "events") {
    const out = [];
    for await (const e of q.events(...(args as [object]))) out.push(e);
    return out;
  }
  if (method === "close") {
    await q.close();
    return undefined;
  }
  // deno-lint-ignore no-explicit-any
  return await (q as any)[method](...args);
}

port.onMessage(async (data) => {
  const message = data as InitMessage | CallMessage | { more: true };
  if ("more" in message) return writeChunk(replyIsError);
  if ("buffer" in message) {
    buffer = message.buffer;
    heartbeat = setInterval(() => Atomics.add(header(), 1, 1), 25);
    try {
      q = await OmniQ.open(message.config);
      reply(undefined, false);
    } catch (error) {
      reply(error, true);
    }
    return;
  }
  try {
    const args = decode(message.args) as unknown[];
    const value = await call(message.method, args);
    reply(value, false);
  } catch (error) {
    reply(error, true);
  }
  if (message.method === "close") {
    clearInterval(heartbeat);
    port.close();
  }
});
