/**
 * The program each pool subprocess runs. It speaks frames over stdio: a 4-byte big-endian
 * length, then a codec-encoded message. stdout carries only frames; the console goes to
 * stderr. It imports the task modules it is given and runs one task at a time; it never
 * opens a store (the parent does every storage step), so it needs only read access to its
 * modules plus what `worker.permissions` grants the handlers.
 *
 * @module
 */

import { decode, encode } from "../src/codec.ts";
import { serializeError } from "../src/errors.ts";
import { type RunMessage, runTask } from "./runner.ts";

// Only frames on stdout: everything the handlers print goes to stderr.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

function send(message: unknown): void {
  const body = encode(message, "frame");
  const frame = new Uint8Array(body.length + 4);
  new DataView(frame.buffer).setUint32(0, body.length);
  frame.set(body, 4);
  for (let written = 0; written < frame.length;) {
    written += Deno.stdout.writeSync(frame.subarray(written));
  }
}

async function* frames(): AsyncGenerator<unknown> {
  let buffer = new Uint8Array(0);
  for await (const chunk of Deno.stdin.readable) {
    const joined = new Uint8Array(buffer.length + chunk.length);
    joined.set(buffer);
    joined.set(chunk, buffer.length);
    buffer = joined;
    while (buffer.length >= 4) {
      const length = new DataView(buffer.buffer, buffer.byteOffset).getUint32(0);
      if (buffer.length < 4 + length) break;
      yield decode(buffer.slice(4, 4 + length));
      buffer = buffer.slice(4 + length);
    }
  }
}

const never = new AbortController().signal;
for await (const frame of frames()) {
  const message = frame as { type: "init"; modules: string[] } | { type: "run"; run: RunMessage };
  if (message.type === "init") {
    try {
      for (const url of message.modules) await import(url);
      send({ type: "ready" });
    } catch (error) {
      send({ type: "init-error", error: serializeError(error) });
    }
    continue;
  }
  try {
    const value = await runTask(
      message.run,
      never,
      (fraction) => send({ type: "progress", fraction }),
    );
    send({ type: "done", value });
  } catch (error) {
    send({ type: "error", error: serializeError(error) });
  }
}
