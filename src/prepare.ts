/**
 * Turning what a caller enqueues into the tasks an engine stores: each item's task named
 * (by definition or name), its options resolved over the task's and the queue's defaults,
 * its arguments encoded and held to the engine's size limit. A bad item names its place in
 * the batch, and nothing of the batch is stored.
 *
 * @module
 */

import type { NewTask } from "./backend.ts";
import type { CodecName } from "./codec.ts";
import type { Clock } from "./kit/clock.ts";
import { ConfigError } from "./errors.ts";
import { resolveTask } from "./options.ts";
import { getTask, type TaskDefinition } from "./task.ts";
import type { TaskDefaults } from "./types.ts";
import type { LinkedItem } from "./workflow.ts";

/** What {@linkcode prepareBatch} resolves items against. */
export interface BatchContext {
  /** The queue's task defaults. */
  defaults: TaskDefaults;
  /** How arguments are written. */
  codec: CodecName;
  /** The engine's limit on encoded arguments, if it has one. */
  maxPayloadBytes: number | undefined;
  /** The time tasks are stamped with. */
  clock: Clock;
}

/**
 * The stored form of each item, in item order.
 *
 * @throws {ConfigError} For a bad item, its message prefixed with `items[i].` in a batch.
 */
export function prepareBatch(items: LinkedItem[], context: BatchContext): NewTask[] {
  const now = context.clock.now();
  return items.map((item, i) => {
    try {
      if (!item || typeof item !== "object") {
        throw new ConfigError(`expected { task, args, ...options }`);
      }
      const { task, args, links, ...options } = item;
      const [name, definition] = resolveName(task);
      const stored = resolveTask(
        name,
        args,
        options,
        definition?.options ?? {},
        context.defaults,
        now,
        context.codec,
      );
      if (links) stored.links = links;
      checkPayload(stored.payload, context.maxPayloadBytes);
      return stored;
    } catch (error) {
      if (items.length > 1 && error instanceof Error) {
        error.message = `items[${i}].${error.message}`;
      }
      throw error;
    }
  });
}

/** Refuse encoded arguments larger than the engine stores. */
export function checkPayload(payload: Uint8Array, limit: number | undefined): void {
  if (limit !== undefined && payload.length > limit) {
    throw new ConfigError(
      `args: the encoded arguments take ${payload.length} bytes; this engine stores at most ${limit}`,
    );
  }
}

/** A task's name, and its definition where this process has one. */
export function resolveName(task: TaskDefinition | string): [string, TaskDefinition | undefined] {
  const name = typeof task === "string" ? task : task?.name;
  if (typeof name !== "string" || name === "") {
    throw new ConfigError(`task: expected a task definition or a task name`);
  }
  return [name, typeof task === "string" ? getTask(task) : task];
}
