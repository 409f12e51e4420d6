/**
 * The program each pool subprocess runs. It speaks frames over stdio: a 4-byte big-endian
 * length, then a codec-encoded message. stdout carries only frames; the console goes to
 * stderr. It imports the task modules it is given and runs one task at a time; it never
 * opens a store (the parent does every storage step), so it needs only read access to its
 * modules plus what `worker.permissions` grants the handlers.
 *
 * @module
 */

import { encodeFrame, readFrames } from "./frames.ts";
import { serializeError } from "../src/errors.ts";
import { runtime } from "../src/runtime/mod.ts";
import { type RunMessage, runTask } from "./runner.ts";

// Only frames on stdout: everything the handlers print goes to stderr.
console.log = console.error;
console.info = console.error;
console.debug = console.error;

function send(message: unknown): void {
  runtime.writeStdoutSync(encodeFrame(message));
}

const never = new AbortController().signal;
for await (const frame of readFrames(runtime.stdin())) {
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
