/**
 * The thread pool: `size` Web Workers, each importing the task modules and running one
 * task at a time. The parent claims, renews leases and writes results and events. A task
 * whose signal aborts (timeout, cancel, lost lease, shutdown) has its Worker terminated and
 * replaced; a Worker that exits or falls silent for longer than the watchdog fails only its
 * own task.
 *
 * Deno's `Worker.terminate()` (as of 2.9) does not interrupt a thread stuck in synchronous
 * code: a timed-out busy loop is abandoned and replaced, so the pool keeps its size, but the
 * old thread keeps a core busy until the handler returns. Use the process pool when
 * CPU-bound handlers must be killed at their timeout.
 *
 * @module
 */

import { OmniQError } from "../src/errors.ts";
import type { SerializedError } from "../src/types.ts";
import type { Executor } from "./executor.ts";
import { runtime, siblingModule, type Thread } from "../src/runtime/mod.ts";
import { reviveError } from "./pool.ts";
import type { RunMessage } from "./runner.ts";

/** Options of {@linkcode ThreadPool}. */
export interface ThreadPoolOptions {
  /** How many Workers (= tasks at once). */
  size: number;
  /** Task module URLs each Worker imports. */
  modules: string[];
  /** How long a running Worker may stay silent before it counts as dead (ms). */
  watchdog: number;
}

type Reply =
  | { type: "ready" }
  | { type: "init-error"; error: SerializedError }
  | { type: "beat" }
  | { type: "exit"; code: number }
  | { type: "progress"; fraction: number }
  | { type: "done"; value: Uint8Array }
  | { type: "error"; error: SerializedError };

/** One Worker and what it is doing. */
class Slot {
  readonly thread: Thread;
  readonly ready: Promise<void>;
  lastHeard = Date.now();
  onReply: ((reply: Reply) => void) | undefined;
  dead = false;

  constructor(modules: string[]) {
    this.thread = runtime.startThread(siblingModule("./thread_entry", import.meta.url));
    this.ready = new Promise((resolve, reject) => {
      this.onReply = (reply) => {
        if (reply.type === "ready") resolve();
        else if (reply.type === "init-error") reject(reviveError(reply.error));
        else if (reply.type === "exit") {
          reject(new OmniQError(`a pool thread exited while loading task modules`));
        }
      };
    });
    this.ready.catch(() => {}); // observed by run()
    this.thread.onMessage((reply) => {
      this.lastHeard = Date.now();
      this.onReply?.(reply as Reply);
    });
    this.thread.onError((message) => {
      this.dead = true;
      this.onReply?.({
        type: "error",
        error: { name: "Error", message: `pool thread error: ${message}` },
      });
    });
    // On Node a thread's `process.exit` ends it; on Deno the entry reports `Deno.exit`.
    this.thread.onExit((code) => {
      this.dead = true;
      this.onReply?.({ type: "exit", code });
    });
    this.thread.post({ type: "init", modules });
  }

  kill(): void {
    this.dead = true;
    this.thread.terminate();
  }
}

/** A pool of Web Workers. */
export class ThreadPool implements Executor {
  #options: ThreadPoolOptions;
  #idle: Slot[] = [];
  #busy = new Set<Slot>();
  #closed = false;

  /** Make a pool; Workers start on first use and are kept for the next task. */
  constructor(options: ThreadPoolOptions) {
    this.#options = options;
  }

  /** Run one attempt in a Worker. */
  async run(
    message: RunMessage,
    signal: AbortSignal,
    progress: (fraction: number) => void,
  ): Promise<Uint8Array> {
    if (this.#closed) throw new OmniQError("the thread pool is closed");
    const slot = this.#idle.pop() ?? new Slot(this.#options.modules);
    this.#busy.add(slot);
    let healthy = false;
    try {
      await slot.ready;
      const value = await new Promise<Uint8Array>((resolve, reject) => {
        const finish = (fn: () => void) => {
          clearInterval(watchdog);
          signal.removeEventListener("abort", onAbort);
          slot.onReply = undefined;
          fn();
        };
        const onAbort = () => finish(() => reject(signal.reason));
        signal.addEventListener("abort", onAbort, { once: true });
        const watchdog = setInterval(() => {
          if (Date.now() - slot.lastHeard > this.#options.watchdog) {
            finish(() =>
              reject(
                new OmniQError(
                  `the pool thread running task ${message.id} fell silent for ${this.#options.watchdog}ms`,
                ),
              )
            );
          }
        }, Math.min(1_000, this.#options.watchdog));
        slot.lastHeard = Date.now();
        slot.onReply = (reply) => {
          switch (reply.type) {
            case "progress":
              try {
                progress(reply.fraction);
              } catch { /* a bad fraction is the handler's problem, not the pool's */ }
              break;
            case "done":
              healthy = true;
              finish(() => resolve(reply.value));
              break;
            case "error":
              healthy = !slot.dead;
              finish(() => reject(reviveError(reply.error)));
              break;
            case "exit":
              finish(() =>
                reject(new OmniQError(`the pool thread exited (exit code ${reply.code}) mid-task`))
              );
              break;
          }
        };
        if (signal.aborted) return onAbort();
        slot.thread.post({ type: "run", run: message });
      });
      return value;
    } finally {
      this.#busy.delete(slot);
      // A thread that timed out, was cancelled, exited or fell silent is replaced.
      if (healthy && !this.#closed) this.#idle.push(slot);
      else slot.kill();
    }
  }

  /** Terminate every Worker. */
  close(): Promise<void> {
    this.#closed = true;
    for (const slot of [...this.#idle, ...this.#busy]) slot.kill();
    this.#idle = [];
    this.#busy.clear();
    return Promise.resolve();
  }
}
