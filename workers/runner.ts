/**
 * Running one task where its handler lives: in this thread (the async worker), in a Web
 * Worker, or in a subprocess. The parent sends a {@linkcode RunMessage} (bytes from the
 * codec, so it crosses any boundary) and gets the encoded result back.
 *
 * @module
 */

import { type CodecName, decode, encode } from "../src/codec.ts";
import { UnknownTaskError } from "../src/errors.ts";
import { getTask, runWithContext, type TaskContext } from "../src/task.ts";

/** Everything a runner needs to run one attempt. */
export interface RunMessage {
  /** The task id. */
  id: string;
  /** The task's name. */
  task: string;
  /** Its queue. */
  queue: string;
  /** This attempt (from 1). */
  attempt: number;
  /** The encoded argument list. */
  payload: Uint8Array;
  /** Encoded results of the dependencies, by dependency id (and node name). */
  dependencies: [string, Uint8Array][];
  /** The dependency whose result is prepended to the arguments. */
  pipe?: string;
  /** The codec to write the result with. */
  codec: CodecName;
}

/**
 * Run a task's handler with its context and encode what it returns.
 *
 * @throws {UnknownTaskError} When no task of that name is registered here.
 */
export async function runTask(
  message: RunMessage,
  signal: AbortSignal,
  progress: (fraction: number) => void,
): Promise<Uint8Array> {
  const definition = getTask(message.task);
  if (!definition) {
    throw new UnknownTaskError(
      `no task named "${message.task}" is registered in this worker; define it with defineTask ` +
        "in a module the worker imports",
    );
  }
  let args = decode(message.payload) as unknown[];
  const dependencies = new Map<string, unknown>();
  for (const [key, bytes] of message.dependencies) dependencies.set(key, decode(bytes));
  if (message.pipe !== undefined) args = [dependencies.get(message.pipe), ...args];
  const context: TaskContext = {
    id: message.id,
    task: message.task,
    queue: message.queue,
    attempt: message.attempt,
    signal,
    progress,
    dependencies,
  };
  signal.throwIfAborted();
  const returned = runWithContext(context, () => definition.handler(...args));
  // Race a promise against the signal, so a handler that ignores the signal cannot hold a
  // slot past its timeout. A handler that returned a plain value is done: no race to set up.
  const value = isThenable(returned) ? await raceSignal(returned, signal) : returned;
  return encode(value, "result", message.codec);
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return typeof (value as PromiseLike<unknown> | null)?.then === "function";
}

/** The promise's value, or the signal's reason if it aborts first. */
function raceSignal(promise: PromiseLike<unknown>, signal: AbortSignal): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    Promise.resolve(promise).then(resolve, reject)
      .finally(() => signal.removeEventListener("abort", onAbort));
  });
}

/** Check a progress fraction. */
export function checkProgress(fraction: number): number {
  if (typeof fraction !== "number" || !(fraction >= 0 && fraction <= 1)) {
    throw new RangeError(`progress: expected a fraction from 0 to 1, got ${fraction}`);
  }
  return fraction;
}
