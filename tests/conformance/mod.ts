/**
 * The behaviour conformance suite: every backend runs the same cases through the public
 * `OmniQ` API, so each engine is held to DESIGN.md's contract, not to its own tests.
 *
 * A backend's test file calls {@linkcode runConformance} with a factory of fresh, isolated
 * stores (a fresh `memory:` store, a fresh SQLite file …); the suite registers one
 * `Deno.test` per case. Every OmniQ a case opens is on that case's store, so a case can
 * play two processes sharing a database with two handles. A case the engine cannot pass is skipped by name, with the reason
 * beside it: a documented limit of the engine, never a missing server.
 *
 * @example A backend's test file
 * ```ts ignore
 * import { runConformance } from "./conformance/mod.ts";
 * runConformance({
 *   name: "memory",
 *   store: () =>
 *     Promise.resolve({
 *       stores: { backend: `memory:${crypto.randomUUID()}` },
 *       [Symbol.asyncDispose]: () => Promise.resolve(),
 *     }),
 * });
 * ```
 *
 * @module
 */

import { badInputCases } from "./bad_input.ts";
import { dependencyCases } from "./dependencies.ts";
import { enqueueCases } from "./enqueue.ts";
import { eventCases } from "./events.ts";
import { type Case, type ConformanceOptions, runCase } from "./harness.ts";
import { leaseCases } from "./leases.ts";
import { lifecycleCases } from "./lifecycle.ts";
import { orderingCases } from "./ordering.ts";
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
];

/**
 * Register the suite's cases as `Deno.test`s named `"<name>: <case>"`.
 *
 * @param options The backend's name, its store factory, and the cases it skips (with why).
 * @throws {Error} When a skip names no case, or gives no reason.
 */
export function runConformance(options: ConformanceOptions): void {
  const names = new Set<string>();
  for (const c of cases) {
    if (names.has(c.name)) throw new Error(`conformance: two cases are named "${c.name}"`);
    names.add(c.name);
  }
  for (const [name, reason] of Object.entries(options.skip ?? {})) {
    if (!names.has(name)) throw new Error(`conformance: skip names no case: "${name}"`);
    if (typeof reason !== "string" || reason.trim() === "") {
      throw new Error(`conformance: the skip of "${name}" must say why`);
    }
  }
  for (const c of cases) {
    const reason = options.skip?.[c.name];
    Deno.test({
      name: `${options.name}: ${c.name}${reason === undefined ? "" : ` (skipped: ${reason})`}`,
      ignore: reason !== undefined,
      fn: () => runCase(options, c),
    });
  }
}
