/**
 * OmniQ: a task queue for Deno and TypeScript. Enqueue a named function and its arguments;
 * workers in this process, in Web Workers, subprocesses or on other machines run it; the
 * result and every lifecycle event are stored where you chose: an embedded SQLite file by
 * default, or memory.
 *
 * @example Define, enqueue, run, wait
 * ```ts
 * import { defineTask, OmniQ } from "@omniq/omniq";
 *
 * const greet = defineTask("mod-doc-greet", (name: string) => `hello, ${name}`);
 *
 * await using q = await OmniQ.open("memory:");
 * const id = await q.enqueue(greet, ["world"], { priority: 5 });
 * await q.run({ until: "idle" });
 * console.assert((await q.wait(id)) === "hello, world");
 * ```
 *
 * @module
 */

// The engines and worker types OmniQ ships, made known to the core.
import "./backends/builtin.ts";
import "./workers/builtin.ts";

export {
  type CleanupReport,
  DEFAULT_URL,
  type EngineOptions,
  type EnqueueItem,
  type EventsOptions,
  OmniQ,
  type OmniQConfig,
  type RunOptions,
  type StoreTarget,
  type WaitOptions,
} from "./src/omniq.ts";
export {
  defineTask,
  getTask,
  type TaskContext,
  taskContext,
  type TaskDefinition,
  type TaskHandler,
  type TaskId,
} from "./src/task.ts";
export type { Worker, WorkerCounts } from "./workers/async.ts";
export {
  collectGroup,
  type Flow,
  type LinkedItem,
  type Step,
  Workflow,
  type WorkflowNode,
} from "./src/workflow.ts";
export {
  ConfigError,
  DuplicateTaskError,
  OmniQError,
  SerializationError,
  TaskCancelledError,
  TaskExpiredError,
  TaskFailedError,
  TaskNotFoundError,
  TimeoutError,
  UnknownTaskError,
} from "./src/errors.ts";
export {
  configFromEnv,
  type ConfigSources,
  envNames,
  type EnvOptions,
  loadConfig,
  type LoadOptions,
  parseDotenv,
  resolveConfig,
} from "./src/config_sources.ts";
export { validateConfig } from "./src/config.ts";
export { parseDuration } from "./src/duration.ts";
export { type Clock, ManualClock, systemClock } from "./src/kit/clock.ts";
export { type CodecName, decode, encode } from "./src/codec.ts";
export { redactUrl } from "./src/url.ts";
export * from "./src/types.ts";
export type {
  Attachment,
  Backend,
  ClaimedTask,
  ClaimRequest,
  Effects,
  EnqueueOutcome,
  EventQuery,
  EventStore,
  Failure,
  NewEvent,
  NewTask,
  ResultStore,
  ScheduleStore,
  StoredBackoff,
  StoredEvent,
  StoredRate,
  StoredResult,
  StoredSchedule,
  StoredTask,
  SweepOptions,
  TaskLinks,
  TaskQueue,
  TickClaim,
} from "./src/backend.ts";
