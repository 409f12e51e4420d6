/**
 * The behaviour conformance suite: every engine runs the same cases through the public
 * `OmniQ` API, so each is held to the contract of `docs/architecture.md` and
 * `src/backend.ts`, not to its own tests. Its companion, the store-level suite
 * (`tests/store/`), calls the `Backend` directly.
 *
 * An engine's test file calls {@linkcode runConformance} with a factory of fresh, isolated
 * stores (a fresh `memory:` store, a fresh SQLite file, a fresh schema …): the config keys
 * that point `OmniQ.open` at it. The suite registers one test per case, with `Deno.test`
 * unless `test` says otherwise (the way River's `riverdrivertest.Exercise` takes a
 * `*testing.T`). Every OmniQ a case opens is on that case's store, so a case can play two
 * processes sharing a database with two handles. A case the engine cannot pass is skipped
 * by name, with the reason beside it: a documented limit of the engine, never a missing
 * server.
 *
 * The suite needs nothing but the public API: an engine written outside this repository
 * registers its URL scheme (`registerEngine` of `@omniq/omniq/engine`) and runs it the same
 * way.
 *
 * @example An outside engine's test file
 * ```ts ignore
 * import { registerEngine, runConformance } from "@omniq/omniq/engine";
 * import { openMyEngine } from "./mod.ts";
 *
 * registerEngine({ name: "mine", schemes: ["mine"], openUrl: (url) => openMyEngine(url) });
 *
 * runConformance({
 *   name: "mine",
 *   store: async () => {
 *     const dir = await Deno.makeTempDir();
 *     return {
 *       stores: { backend: `mine:${dir}` },
 *       [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
 *     };
 *   },
 *   skip: { "a case it cannot pass": "why: a documented limit of the engine" },
 * });
 * ```
 *
 * @example Under another test runner
 * ```ts ignore
 * import { it } from "node:test";
 * runConformance({
 *   name: "memory",
 *   store: () =>
 *     Promise.resolve({
 *       stores: { backend: `memory:${crypto.randomUUID()}` },
 *       [Symbol.asyncDispose]: () => Promise.resolve(),
 *     }),
 *   test: (t) => it(t.name, { skip: t.ignore }, t.fn),
 * });
 * ```
 *
 * @module
 */

import { badInputCases } from "./bad_input.ts";
import { dependencyCases } from "./dependencies.ts";
import { enqueueCases } from "./enqueue.ts";
import { groupCases } from "./groups.ts";
import { eventCases } from "./events.ts";
import { type Case, type ConformanceOptions, runCase } from "./harness.ts";
import { registerCases } from "./register.ts";
import { leaseCases } from "./leases.ts";
import { lifecycleCases } from "./lifecycle.ts";
import { orderingCases } from "./ordering.ts";
import { queueCases } from "./queues.ts";
import { retryCases } from "./retries.ts";
import { scheduleCases } from "./schedules.ts";
import { sharingCases } from "./sharing.ts";
import { ttlCases } from "./ttl.ts";
import { workerCases } from "./workers.ts";
import { workflowCases } from "./workflows.ts";

export type {
  Case,
  CaseContext,
  ConformanceOptions,
  StoreConfig,
  StoreFixture,
} from "./harness.ts";
export type { RegisterOptions, TestDefinition, TestRegistrar } from "./register.ts";

/** Every case of the suite, by area. */
export const cases: readonly Case[] = [
  ...enqueueCases,
  ...orderingCases,
  ...retryCases,
  ...leaseCases,
  ...eventCases,
  ...workerCases,
  ...lifecycleCases,
  ...ttlCases,
  ...dependencyCases,
  ...workflowCases,
  ...scheduleCases,
  ...badInputCases,
  ...sharingCases,
  ...queueCases,
  ...groupCases,
];

/**
 * Register the suite's cases as tests named `"<name>: <case>"` (with `Deno.test` unless
 * `options.test` says otherwise).
 *
 * @param options The engine's name, its store factory, the cases it skips (with why), and
 *   optionally the test registrar and sanitizers.
 * @throws {Error} When a skip names no case, or gives no reason.
 *
 * @example A fresh named memory store per case
 * ```ts ignore
 * runConformance({
 *   name: "memory",
 *   store: () =>
 *     Promise.resolve({
 *       stores: { backend: `memory:conformance-${crypto.randomUUID()}` },
 *       [Symbol.asyncDispose]: () => Promise.resolve(),
 *     }),
 * });
 * ```
 */
export function runConformance(options: ConformanceOptions): void {
  registerCases("conformance", options, cases, (c) => runCase(options, c));
}
