/**
 * The store-level conformance suite: every engine's {@linkcode Backend} runs the same cases
 * called directly, with no `OmniQ` in between (claim order, dedupe, fencing, stalls,
 * expiry, dependencies, inline effects, detached stores, schedules and their tick
 * compare-and-set). Where the behaviour suite (`tests/conformance/`) shows what a user
 * sees, this one pins the contract of `src/backend.ts` step by step, so an engine's bug is
 * named by the step that has it.
 *
 * An engine's test file calls {@linkcode runStoreConformance} with a factory of fresh,
 * isolated stores, each opened as a `Backend`; the suite registers one test per case, with
 * `Deno.test` unless `test` says otherwise. Each case attaches the queue to its own results
 * and events (`TaskQueue.attach`) unless it checks a detached queue. A few cases play two
 * processes on one store, or reopen it: they call the fixture's `connect`. A case the
 * engine cannot pass is skipped by name, with the reason beside it: a documented limit of
 * the engine, never a missing server.
 *
 * @example An outside engine's test file
 * ```ts ignore
 * import { runStoreConformance } from "@omniq/omniq/engine";
 * import { openMyEngine } from "./mod.ts";
 *
 * runStoreConformance({
 *   name: "mine",
 *   open: async () => {
 *     const dir = await Deno.makeTempDir();
 *     const backend = await openMyEngine(dir);
 *     return {
 *       backend,
 *       connect: () => openMyEngine(dir),
 *       [Symbol.asyncDispose]: async () => {
 *         await backend.close();
 *         await Deno.remove(dir, { recursive: true });
 *       },
 *     };
 *   },
 * });
 * ```
 *
 * @module
 */

import type { Backend } from "../../src/backend.ts";
import { registerCases } from "../conformance/register.ts";
import { runStoreCase, type StoreCase, type StoreConformanceOptions } from "./harness.ts";
import { scheduleCases } from "./schedules.ts";
import { storeCases } from "./stores.ts";
import { taskCases } from "./tasks.ts";

export type {
  StoreCase,
  StoreCaseContext,
  StoreConformanceOptions,
  StoreFixture,
} from "./harness.ts";
export type { Backend };
export type { RegisterOptions, TestDefinition, TestRegistrar } from "../conformance/register.ts";

/** Every case of the store-level suite, by area. */
export const storeConformanceCases: readonly StoreCase[] = [
  ...taskCases,
  ...storeCases,
  ...scheduleCases,
];

/**
 * Register the store-level suite's cases as tests named `"<name>: <case>"` (with
 * `Deno.test` unless `options.test` says otherwise).
 *
 * @param options The engine's name, its factory of fresh stores, the cases it skips (with
 *   why), and optionally the test registrar and sanitizers.
 * @throws {Error} When a skip names no case, or gives no reason.
 *
 * @example A fresh memory store per case
 * ```ts ignore
 * import { openMemory } from "@omniq/omniq/memory";
 * runStoreConformance({
 *   name: "memory",
 *   open: async () => {
 *     const name = `store-${crypto.randomUUID()}`;
 *     const backend = await openMemory(name);
 *     return {
 *       backend,
 *       connect: () => openMemory(name),
 *       [Symbol.asyncDispose]: () => backend.close(),
 *     };
 *   },
 * });
 * ```
 */
export function runStoreConformance(options: StoreConformanceOptions): void {
  registerCases(
    "store conformance",
    options,
    storeConformanceCases,
    (c) => runStoreCase(options, c),
  );
}
