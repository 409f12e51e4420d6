/**
 * The module each pool Web Worker runs: it imports the task modules it is given, then runs
 * one task at a time for the parent, which does every storage step. `Deno.exit()` from a
 * handler is reported before the thread ends (a Worker that exits raises no event).
 *
 * @module
 */

import { serializeError } from "../src/errors.ts";
import { type RunMessage, runTask } from "./runner.ts";

declare const self: {
  onmessage: ((event: MessageEvent) => void) | null;
  postMessage(message: unknown, transfer?: Transferable[]): void;
  close(): void;
};

const post = (message: unknown, transfer?: Transferable[]) => self.postMessage(message, transfer);

// deno-lint-ignore no-explicit-any
(Deno as any).exit = (code?: number) => {
  post({ type: "exit", code: code ?? 0 });
  self.close();
};

// The parent's watchdog listens for these: a thread silent for a whole lease is dead.
setInterval(() => post({ type: "beat" }), 250);

self.onmessage = async (event: MessageEvent) => {
  const message = event.data as { type: "init"; modules: string[] } | {
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
};
