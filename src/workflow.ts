/**
 * Task dependency graphs: ordering a batch so every dependency is stored before its
 * dependents (refusing cycles, with the cycle in the message), and the workflow helpers
 * behind `q.chain`, `q.group` and `q.workflow()`. Each helper builds one batch of tasks
 * with ids chosen up front, so the whole graph is enqueued in one atomic step.
 *
 * @module
 */

import type { NewTask } from "./backend.ts";
import { ConfigError } from "./errors.ts";
import { newId } from "./id.ts";
import { defineTask, taskContext, type TaskDefinition, type TaskId } from "./task.ts";
import type { EnqueueOptions } from "./types.ts";

/**
 * Order tasks so that each comes after the tasks of the same batch it depends on.
 *
 * @returns The tasks in a dependency-respecting order (stable otherwise).
 * @throws {ConfigError} When the batch's dependencies form a cycle; the message names it.
 */
export function orderBatch(tasks: NewTask[]): NewTask[] {
  // Most batches have no dependencies at all: nothing to order, and no map to build.
  if (!tasks.some((t) => t.dependsOn.length > 0)) return tasks;
  const byId = new Map(tasks.map((t) => [t.id, t]));
  if (!tasks.some((t) => t.dependsOn.some((d) => byId.has(d)))) return tasks;
  const out: NewTask[] = [];
  const state = new Map<string, "visiting" | "done">();
  const path: string[] = [];
  const visit = (task: NewTask) => {
    const s = state.get(task.id);
    if (s === "done") return;
    if (s === "visiting") {
      const cycle = [...path.slice(path.indexOf(task.id)), task.id];
      throw new ConfigError(`dependsOn: a cycle: ${cycle.join(" → ")}`);
    }
    state.set(task.id, "visiting");
    path.push(task.id);
    for (const dep of task.dependsOn) {
      const t = byId.get(dep);
      if (t) visit(t);
    }
    path.pop();
    state.set(task.id, "done");
    out.push(task);
  };
  for (const t of tasks) visit(t);
  return out;
}

/** A step of a chain or a member of a group: a task, its arguments and options. */
// deno-lint-ignore no-explicit-any
export interface Step<A extends any[] = any[]> extends Omit<EnqueueOptions, "dependsOn"> {
  /** The task, by definition or name. */
  task: TaskDefinition<A> | string;
  /** Its arguments (for chain steps after the first: the arguments after the piped one). */
  args: A;
}

/** An item as `enqueueMany` takes it, plus the workflow's links. */
export interface LinkedItem extends EnqueueOptions {
  /** The task. */
  // deno-lint-ignore no-explicit-any
  task: TaskDefinition<any[]> | string;
  /** Its arguments. */
  args: unknown[];
  /** Dependency names, and the dependency whose result comes first in the arguments. */
  links?: { names?: Record<string, string>; pipe?: string };
}

/** What `q.chain` and `q.group` return. */
export interface Flow<R = unknown> {
  /** The id to wait on: the last step's (chain) or the collector's (group). */
  id: TaskId<R>;
  /** Every task id of the flow, in the order given. */
  ids: TaskId[];
}

/** The built-in task that collects a group's results into a list. */
export const collectGroup: TaskDefinition<[string[]], unknown[]> = defineTask(
  "omniq.group",
  (members: string[]) => {
    const results = taskContext().dependencies;
    return members.map((id) => results.get(id));
  },
  { retries: 0 },
);

/** Items of a chain: each step depends on, and receives the result of, the one before. */
export function chainItems(steps: Step[]): LinkedItem[] {
  if (!Array.isArray(steps) || steps.length === 0) {
    throw new ConfigError("chain: expected a non-empty array of { task, args, ...options }");
  }
  const items: LinkedItem[] = [];
  let previous: string | undefined;
  for (const step of steps) {
    const id = step.id ?? newId();
    const item: LinkedItem = { ...step, id };
    if (previous !== undefined) {
      item.dependsOn = [previous];
      item.links = { pipe: previous };
    }
    items.push(item);
    previous = id;
  }
  return items;
}

/** Items of a group: the members, then a collector that depends on them all. */
export function groupItems(members: Step[], options: EnqueueOptions = {}): LinkedItem[] {
  if (!Array.isArray(members) || members.length === 0) {
    throw new ConfigError("group: expected a non-empty array of { task, args, ...options }");
  }
  const items: LinkedItem[] = members.map((m) => ({ ...m, id: m.id ?? newId() }));
  const ids = items.map((i) => i.id!);
  items.push({
    queue: items[0].queue,
    ...options,
    task: collectGroup,
    args: [ids],
    id: options.id ?? newId(),
    dependsOn: ids,
  });
  return items;
}

/** A node of a workflow. */
// deno-lint-ignore no-explicit-any
export interface WorkflowNode<A extends any[] = any[]> extends Step<A> {
  /** Names of the nodes that must complete first. */
  after?: string[];
}

/**
 * A small DAG builder: named nodes and edges, enqueued as one atomic batch. A node reads
 * its dependencies' results through `taskContext().dependencies`, by node name or task id.
 *
 * @example A diamond
 * ```ts
 * import { defineTask, OmniQ, taskContext } from "@omniq/omniq";
 * const num = defineTask("wf-doc-num", (n: number) => n);
 * const sum = defineTask("wf-doc-sum", () => {
 *   const deps = taskContext().dependencies;
 *   return (deps.get("left") as number) + (deps.get("right") as number);
 * });
 * await using q = await OmniQ.open("memory:");
 * const ids = await q.workflow()
 *   .add("left", { task: num, args: [1] })
 *   .add("right", { task: num, args: [2] })
 *   .add("total", { task: sum, args: [], after: ["left", "right"] })
 *   .enqueue();
 * await q.run({ until: "idle" });
 * console.assert((await q.wait(ids.total)) === 3);
 * ```
 */
export class Workflow {
  #nodes = new Map<string, WorkflowNode>();
  #submit: (items: LinkedItem[]) => Promise<TaskId[]>;

  /** Make a builder that submits through `submit` (use `q.workflow()`). */
  constructor(submit: (items: LinkedItem[]) => Promise<TaskId[]>) {
    this.#submit = submit;
  }

  /**
   * Add a named node.
   *
   * @param name The node's name, unique in the workflow.
   * @param node Its task, arguments, options and `after` (names of nodes it waits for).
   * @returns This builder.
   */
  add(name: string, node: WorkflowNode): this {
    if (typeof name !== "string" || name === "") {
      throw new ConfigError("workflow: expected a non-empty node name");
    }
    if (this.#nodes.has(name)) throw new ConfigError(`workflow: node "${name}" is added twice`);
    this.#nodes.set(name, node);
    return this;
  }

  /**
   * Enqueue every node in one atomic step.
   *
   * @returns The task id of each node, by name.
   * @throws {ConfigError} For an edge to an unknown node or a cycle.
   */
  async enqueue(): Promise<Record<string, TaskId>> {
    if (this.#nodes.size === 0) throw new ConfigError("workflow: no nodes were added");
    const ids = new Map<string, string>();
    for (const [name, node] of this.#nodes) ids.set(name, node.id ?? newId());
    const items: LinkedItem[] = [];
    for (const [name, node] of this.#nodes) {
      const { after = [], ...rest } = node;
      if (!Array.isArray(after)) {
        throw new ConfigError(`workflow: node "${name}": after: expected an array of node names`);
      }
      const names: Record<string, string> = {};
      const dependsOn = after.map((dep) => {
        const id = ids.get(dep);
        if (id === undefined) {
          throw new ConfigError(`workflow: node "${name}" comes after an unknown node "${dep}"`);
        }
        names[id] = dep;
        return id;
      });
      const item: LinkedItem = { ...rest, id: ids.get(name)! };
      if (dependsOn.length > 0) {
        item.dependsOn = dependsOn;
        item.links = { names };
      }
      items.push(item);
    }
    let submitted: TaskId[];
    try {
      submitted = await this.#submit(items);
    } catch (error) {
      // Speak of node names, not generated ids, in a cycle.
      if (error instanceof ConfigError) {
        for (const [name, id] of ids) error.message = error.message.replaceAll(id, name);
      }
      throw error;
    }
    return Object.fromEntries([...this.#nodes.keys()].map((name, i) => [name, submitted[i]]));
  }
}
