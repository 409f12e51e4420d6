/**
 * OmniQ's errors. Each class is one a caller may want to catch by class; messages say what
 * was wrong and what was expected.
 *
 * @module
 */

import type { SerializedError } from "./types.ts";

/**
 * The base class of every error OmniQ throws.
 *
 * @example Catching any OmniQ error
 * ```ts
 * import { OmniQError, parseDuration } from "@omniq/omniq";
 * try {
 *   parseDuration("soon", "delay");
 * } catch (e) {
 *   console.assert(e instanceof OmniQError);
 * }
 * ```
 */
export class OmniQError extends Error {
  /** Make an error with a message and, optionally, its cause. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** A bad option or configuration value; the message names the key and what was expected. */
export class ConfigError extends OmniQError {}

/** A value the codec cannot carry (a function, a symbol, a class instance). */
export class SerializationError extends OmniQError {}

/** A task failed; `remote` carries the handler's error as stored. */
export class TaskFailedError extends OmniQError {
  /** The id of the task that failed. */
  readonly taskId: string;
  /** The error the handler threw (name, message, stack). */
  readonly remote: SerializedError;
  /** Make the error from the task id and the stored error. */
  constructor(taskId: string, remote: SerializedError) {
    super(`task ${taskId} failed: ${remote.name}: ${remote.message}`);
    this.taskId = taskId;
    this.remote = remote;
  }
}

/** A task was cancelled. */
export class TaskCancelledError extends OmniQError {
  /** The id of the cancelled task. */
  readonly taskId: string;
  /** Make the error from the task id and an optional reason. */
  constructor(taskId: string, reason?: string) {
    super(`task ${taskId} was cancelled${reason ? `: ${reason}` : ""}`);
    this.taskId = taskId;
  }
}

/** A task expired (its `ttl` passed before it started). */
export class TaskExpiredError extends OmniQError {
  /** The id of the expired task. */
  readonly taskId: string;
  /** Make the error from the task id. */
  constructor(taskId: string) {
    super(`task ${taskId} expired before it started`);
    this.taskId = taskId;
  }
}

/** A wait or an attempt took longer than allowed. */
export class TimeoutError extends OmniQError {}

/** No task of this name is registered where it was needed. */
export class UnknownTaskError extends OmniQError {}

/** No task has this id. */
export class TaskNotFoundError extends OmniQError {}

/** A caller-chosen task id is already taken. */
export class DuplicateTaskError extends OmniQError {}

/** Turn anything thrown into a storable error. */
export function serializeError(error: unknown): SerializedError {
  if (error instanceof Error) {
    const out: SerializedError = { name: error.name, message: error.message };
    if (error.stack) out.stack = error.stack;
    return out;
  }
  return { name: "Error", message: typeof error === "string" ? error : String(error) };
}
