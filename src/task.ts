/**
 * Task definitions and the registry workers resolve task names against, plus
 * {@linkcode taskContext}, which lets a plain handler function reach its task's id, attempt,
 * abort signal, progress reporter and dependency results.
 *
 * @module
 */

import { AsyncLocalStorage } from "node:async_hooks";
import { ConfigError, OmniQError } from "./errors.ts";
import { checkDeadLetter, DEFAULTS } from "./options.ts";
import type { TaskOptions } from "./types.ts";

/**
 * A task id that remembers the task's result type, so `wait(id)` is typed. At run time it is
 * a plain string.
 */
export type TaskId<R = unknown> = string & { readonly "~omniq.result"?: R };

/** A task handler: a plain function of the task's arguments. */
// deno-lint-ignore no-explicit-any
export type TaskHandler<A extends any[] = any[], R = unknown> = (...args: A) => R | Promise<R>;

/** A registered task: its name, handler and default options. */
// deno-lint-ignore no-explicit-any
export interface TaskDefinition<A extends any[] = any[], R = unknown> {
  /** The name tasks are stored and looked up by. */
  readonly name: string;
  /** The function a worker runs. */
  readonly handler: TaskHandler<A, R>;
  /** Defaults for tasks of this kind; `enqueue` options override them. */
  readonly options: Readonly<TaskOptions>;
}

const registry = new Map<string, TaskDefinition>();

/**
 * Define a task and register it under a name, so workers of this process (and every Web
 * Worker or subprocess that imports the same module) can run it.
 *
 * @param name The task's name: what is stored, so keep it stable across deploys.
 * @param handler The function to run; it may be async.
 * @param options Defaults for tasks of this kind (queue, priority, retries, timeout …).
 * @returns The definition, to pass to `enqueue`: its argument and result types carry over.
 * @throws {ConfigError} When the name is empty or already defined with another handler.
 *
 * @example A typed task
 * ```ts
 * import { defineTask } from "@omniq/omniq";
 * export const add = defineTask("task-doc-add", (a: number, b: number) => a + b, {
 *   retries: 1,
 * });
 * console.assert(add.name === "task-doc-add");
 * ```
 */
// deno-lint-ignore no-explicit-any
export function defineTask<A extends any[], R>(
  name: string,
  handler: TaskHandler<A, R>,
  options: TaskOptions = {},
): TaskDefinition<A, Awaited<R>> {
  if (typeof name !== "string" || name.trim() === "") {
    throw new ConfigError(
      `defineTask: expected a non-empty task name, got ${JSON.stringify(name)}`,
    );
  }
  if (typeof handler !== "function") {
    throw new ConfigError(`defineTask("${name}"): expected a handler function`);
  }
  if (options !== null && typeof options === "object" && options.deadLetter !== undefined) {
    checkDeadLetter(
      options.deadLetter,
      options.queue ?? DEFAULTS.queue,
      `defineTask("${name}").deadLetter`,
    );
  }
  const existing = registry.get(name);
  if (existing && existing.handler !== handler) {
    throw new ConfigError(
      `defineTask("${name}"): a different task is already defined under this name`,
    );
  }
  const definition: TaskDefinition<A, Awaited<R>> = Object.freeze({
    name,
    handler: handler as TaskHandler<A, Awaited<R>>,
    options: Object.freeze({ ...options }),
  });
  if (!existing) registry.set(name, definition as TaskDefinition);
  return existing as TaskDefinition<A, Awaited<R>> ?? definition;
}

/**
 * The task registered under a name, if any.
 *
 * @param name A task name.
 * @returns Its definition, or `undefined`.
 *
 * @example Looking a task up
 * ```ts
 * import { defineTask, getTask } from "@omniq/omniq";
 * defineTask("task-doc-lookup", () => 1);
 * console.assert(getTask("task-doc-lookup") !== undefined);
 * ```
 */
export function getTask(name: string): TaskDefinition | undefined {
  return registry.get(name);
}

/** What a running handler can learn and do; see {@linkcode taskContext}. */
export interface TaskContext {
  /** The task's id. */
  readonly id: string;
  /** The task's name. */
  readonly task: string;
  /** The task's queue. */
  readonly queue: string;
  /** This attempt, counting from 1. */
  readonly attempt: number;
  /** Aborts on timeout, cancellation, a lost lease or worker shutdown. */
  readonly signal: AbortSignal;
  /** Report progress as a fraction from 0 to 1; stored (throttled) with a `progress` event. */
  progress(fraction: number): void;
  /** The results of the task's dependencies, by dependency id (and node name, in workflows). */
  readonly dependencies: ReadonlyMap<string, unknown>;
}

const storage = new AsyncLocalStorage<TaskContext>();

/**
 * The context of the task whose handler is running: call it from inside a handler (also
 * after `await`s, in timers and in functions the handler calls).
 *
 * @returns The running task's context.
 * @throws {OmniQError} When called outside a task handler.
 *
 * @example Reporting progress
 * ```ts
 * import { defineTask, taskContext } from "@omniq/omniq";
 * defineTask("task-doc-progress", async (items: string[]) => {
 *   const ctx = taskContext();
 *   for (let i = 0; i < items.length; i++) {
 *     if (ctx.signal.aborted) break;
 *     ctx.progress((i + 1) / items.length);
 *   }
 *   return items.length;
 * });
 * ```
 */
export function taskContext(): TaskContext {
  const context = storage.getStore();
  if (!context) throw new OmniQError("taskContext() was called outside a task handler");
  return context;
}

/** Run a function with a task context (for workers). */
export function runWithContext<T>(context: TaskContext, fn: () => T): T {
  return storage.run(context, fn);
}
