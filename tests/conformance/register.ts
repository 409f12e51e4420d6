// How a suite's cases become tests: the test framework is injected (Deno.test by default),
// the way River's riverdrivertest.Exercise takes a *testing.T, so an engine author outside
// this repository can run the suites under any runner. Both suites (this folder's and
// tests/store/) register through here, so their skip rules are the same.

/** One test for the runner to register: a case of a suite, named and ready to run. */
export interface TestDefinition {
  /** `"<engine name>: <case>"`, plus `" (skipped: <reason>)"` for a skipped case. */
  name: string;
  /** Whether the case is skipped (its reason is in the name). */
  ignore: boolean;
  /** Run the case; it rejects when the case fails. */
  fn: () => Promise<void>;
  /** Deno's async-op sanitizer, when the suite's options set it. */
  sanitizeOps?: boolean;
  /** Deno's resource sanitizer, when the suite's options set it. */
  sanitizeResources?: boolean;
}

/**
 * Registers one test: `Deno.test` fits as it is; another runner takes a small adapter,
 * e.g. `(t) => it(t.name, { skip: t.ignore }, t.fn)` for `node:test`.
 */
export type TestRegistrar = (definition: TestDefinition) => void;

/** How a suite registers its cases: options every suite's runner takes. */
export interface RegisterOptions {
  /** The name test cases are prefixed with, e.g. `"sqlite"`. */
  name: string;
  /**
   * Cases this engine cannot pass, by case name, each with the reason (a documented limit
   * of the engine; never a missing server).
   */
  skip?: Record<string, string>;
  /**
   * Registers each case as a test.
   *
   * @default {Deno.test}
   */
  test?: TestRegistrar;
  /** Deno's async-op sanitizer for every case (unset: the runner's default). */
  sanitizeOps?: boolean;
  /** Deno's resource sanitizer for every case (unset: the runner's default). */
  sanitizeResources?: boolean;
}

/**
 * Register `cases` as tests named `"<name>: <case>"`, after checking that case names are
 * unique and that every skip names a case and says why.
 *
 * @param suite The suite's name for error messages, e.g. `"conformance"`.
 * @param options The engine's name, skips, test registrar and sanitizers.
 * @param cases The suite's cases.
 * @param run Runs one case.
 * @throws {Error} When two cases share a name, a skip names no case, or gives no reason.
 */
export function registerCases<C extends { name: string }>(
  suite: string,
  options: RegisterOptions,
  cases: readonly C[],
  run: (c: C) => Promise<void>,
): void {
  const names = new Set<string>();
  for (const c of cases) {
    if (names.has(c.name)) throw new Error(`${suite}: two cases are named "${c.name}"`);
    names.add(c.name);
  }
  for (const [name, reason] of Object.entries(options.skip ?? {})) {
    if (!names.has(name)) throw new Error(`${suite}: skip names no case: "${name}"`);
    if (typeof reason !== "string" || reason.trim() === "") {
      throw new Error(`${suite}: the skip of "${name}" must say why`);
    }
  }
  const test: TestRegistrar = options.test ?? ((definition) => Deno.test(definition));
  for (const c of cases) {
    const reason = options.skip?.[c.name];
    const definition: TestDefinition = {
      name: `${options.name}: ${c.name}${reason === undefined ? "" : ` (skipped: ${reason})`}`,
      ignore: reason !== undefined,
      fn: () => run(c),
    };
    if (options.sanitizeOps !== undefined) definition.sanitizeOps = options.sanitizeOps;
    if (options.sanitizeResources !== undefined) {
      definition.sanitizeResources = options.sanitizeResources;
    }
    test(definition);
  }
}
