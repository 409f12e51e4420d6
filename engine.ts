/**
 * The engine author's kit: everything needed to write a storage engine for OmniQ outside
 * this repository and hold it to the same contract as the built-in ones.
 *
 * - The contract: {@linkcode Backend} (a {@linkcode TaskQueue}, a {@linkcode ResultStore}
 *   and an {@linkcode EventStore}) and the records it stores.
 * - The registry: {@linkcode registerEngine} makes a URL scheme (and an object form with
 *   its option schema) open your engine through `OmniQ.open`.
 * - The kit: the policy every engine applies as pure functions (the state a new task
 *   starts in, what a failed dependency does to its dependents, stand-ins for workflow
 *   nodes, the events and results of an end), abortable delays, a clock and byte encodings.
 * - The suites: {@linkcode runConformance} holds an engine to the behaviour every built-in
 *   engine passes, through the public `OmniQ` API; {@linkcode runStoreConformance} holds its
 *   `Backend` to the store-level contract directly. Each takes a factory of fresh, isolated
 *   stores and registers one test per case (with `Deno.test`, or the registrar you give).
 *
 * See `docs/architecture.md` ("Adding an engine") for the walk-through.
 *
 * @example Register an engine for a new scheme
 * ```ts
 * import { OmniQ } from "@omniq/omniq";
 * import { registerEngine } from "@omniq/omniq/engine";
 * import { openMemory } from "@omniq/omniq/memory";
 *
 * registerEngine({
 *   name: "scratch",
 *   schemes: ["scratch"],
 *   openUrl: (_url, rest) => Promise.resolve(openMemory(`scratch-${rest}`)),
 * });
 * await using q = await OmniQ.open("scratch:one");
 * console.assert((await q.stats()).total.queued === 0);
 * ```
 *
 * @module
 */

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
  Subscription,
  SweepOptions,
  TaskLinks,
  TaskQueue,
  TickClaim,
} from "./src/backend.ts";
// The whole public API too, so the suites' types and an engine's tests need one import.
export * from "./mod.ts";
export { matchesEvent, matchesList, noEffects } from "./src/backend.ts";
export {
  type EngineEntry,
  engineForScheme,
  type OptionKind,
  registeredEngines,
  registerEngine,
} from "./src/registry.ts";
export * from "./src/kit/policy.ts";
export { abortable, delay, type DelayOptions, within } from "./src/kit/async.ts";
export {
  decName,
  encName,
  fromBase64,
  jsonBytes,
  pad,
  parseJson,
  toBase64,
} from "./src/kit/encoding.ts";
export {
  type Case as ConformanceCase,
  type CaseContext,
  cases as conformanceCases,
  type ConformanceOptions,
  type RegisterOptions,
  runConformance,
  type StoreConfig,
  type StoreFixture,
  type TestDefinition,
  type TestRegistrar,
} from "./tests/conformance/mod.ts";
export {
  runStoreConformance,
  type StoreCase,
  type StoreCaseContext,
  storeConformanceCases,
  type StoreConformanceOptions,
  type StoreFixture as BackendFixture,
} from "./tests/store/mod.ts";
