/**
 * The module each pool thread runs (a Web Worker on Deno, a `worker_threads` thread on
 * Node): it imports the task modules it is given, then runs one task at a time for the
 * parent, which does every storage step. An exit call from a handler is reported before
 * the thread ends (on Deno a Worker that exits raises no event of its own).
 *
 * @module
 */

import { serializeError } from "../src/errors.ts";
import { runtime } from "../src/runtime/mod.ts";
import { type RunMessage, runTask } from "./runner.ts";

const port = runtime.threadPort();
const post = (message: unknown, transfer?: Transferable[]) => port.post(message, transfer);

runtime.trapThreadExit((code) => post({ type: "exit", code }));

// The parent's watchdog listens for these: a thread silent for a whole lease is dead.
const beat = setInterval(() => post({ type: "beat" }), 250);
// On Node a thread ends when nothing holds it open: the port does, the heartbeat need not.
runtime.unrefTimer(beat);

port.onMessage(async (data) => {
  const message = data as { type: "init"; modules: string[] } | {
    type: "run";
    run: RunMessage;
  };
  if (message.type === "init") {
    try {
      for (const url of message.modules) await import(url);
      post({ type: "ready" });
    } catch (error) {
      post({ type: "init-error", error: serializeError(error) });
    }
    return;
  }
  const never = new AbortController().signal;
  try {
    const value = await runTask(
      message.run,
      never,
      (fraction) => post({ type: "progress", fraction }),
    );
    post({ type: "done", value }, [value.buffer as ArrayBuffer]);
  } catch (error) {
    post({ type: "error", error: serializeError(error) });
  }
});
