/**
 * The `file:` engine on a cloud store, end to end, through the registry's object form
 * (`{ s3: {…} }`, `{ azure: {…} }`, `{ gcs: {…} }`): the whole conformance suite with
 * everything in the bucket, again with the queue in SQLite and only results and events in
 * the bucket, foreign and corrupt objects under the prefix skipped and reported, and (where
 * the server enforces preconditions) two worker processes sharing one prefix, each task
 * completed exactly once, and a worker killed mid-run losing nothing.
 *
 * Each store's `*_engine_test.ts` starts its server and calls {@linkcode cloudEngineSuite}.
 *
 * @module
 */

import assert from "node:assert/strict";
import { defineTask, OmniQ } from "../../mod.ts";
import { runConformance } from "../conformance/mod.ts";
import { processesExactlyOnce } from "../fixtures/two_processes.ts";
import { killedWorkerLosesNothing } from "../fixtures/crash.ts";
import type { CloudServer } from "./azure_server.ts";

const double = defineTask("cloud-corrupt-double", (n: number) => n * 2);

/** Which of the suite's parts a store runs. */
export interface CloudSuiteOptions {
  /** The registry name of the store's engine: the key of its object form. */
  engine: "s3" | "azure" | "gcs";
  /**
   * Whether the server enforces conditional writes, which several processes sharing one
   * prefix rely on; without it only the single-process parts run (and the caller says why).
   */
  processes: boolean;
  /** Keys to add to every object form (e.g. `checkPreconditions: false` on an emulator). */
  extra?: Record<string, unknown>;
  /**
   * Conformance cases the server cannot pass with the queue in the bucket, each with the
   * reason (the run with the queue in SQLite runs them all).
   */
  skipInBucket?: Record<string, string>;
}

/**
 * Register the suite's tests for one store, on a server already started.
 *
 * @param server The store's server (its `options` reach a fresh bucket or container).
 * @param options The engine's name and which parts to run.
 */
export function cloudEngineSuite(server: CloudServer, options: CloudSuiteOptions): void {
  const { engine } = options;
  const form = (prefix: string) => ({ [engine]: { ...server.options, ...options.extra, prefix } });
  const fresh = () => `${engine}-${crypto.randomUUID().slice(0, 8)}`;

  runConformance({
    name: `${engine} (queue, results and events in the bucket)`,
    skip: options.skipInBucket,
    store: () =>
      Promise.resolve({
        stores: { backend: form(fresh()) },
        [Symbol.asyncDispose]: () => Promise.resolve(),
      }),
  });

  runConformance({
    name: `${engine} results and events, queue in sqlite`,
    store: async () => {
      const dir = await Deno.makeTempDir({ prefix: `omniq-${engine}-split-` });
      const side = form(fresh());
      return {
        stores: { queue: `sqlite:${dir}/queue.db`, results: side, events: side },
        [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
      };
    },
  });

  Deno.test(`${engine}: foreign and corrupt objects under the prefix are skipped, reported once, and lose nothing`, async () => {
    const prefix = fresh();
    const storage = server.storage(prefix);
    const enc = (text: string) => new TextEncoder().encode(text);
    const warnings: string[] = [];
    const warn = console.warn;
    console.warn = (...args: unknown[]) => warnings.push(args.map(String).join(" "));
    try {
      await using q = await OmniQ.open({ backend: form(prefix) });
      const before = await q.enqueueMany(
        Array.from({ length: 5 }, (_, i) => ({ task: double, args: [i] })),
      );
      await storage.writeAtomic("tasks/garbage.json", enc("\u0000 not json"));
      await storage.writeAtomic("tasks/notes.txt", enc("a foreign object"));
      await storage.writeAtomic("ready/default/README", enc("foreign"));
      await storage.writeAtomic("events/foreign.jsonl", enc('{"half": \n'));
      const after = await q.enqueueMany(
        Array.from({ length: 5 }, (_, i) => ({ task: double, args: [10 + i] })),
      );
      await q.run({ until: "idle" });
      for (const [i, id] of [...before, ...after].entries()) {
        assert.equal(await q.wait(id, { timeout: "5s" }), (i < 5 ? i : 5 + i) * 2);
      }
      assert.equal((await q.stats()).total.completed, 10);
      assert.equal((await q.list({ state: "completed", limit: 100 })).length, 10);
      assert.equal((await Array.fromAsync(q.events({ type: "completed" }))).length, 10);
      // Reports made while reading go out with the next change of state (a worker's claim).
      await q.run({ until: "idle" });
      const reports = await Array.fromAsync(q.events({ type: "corrupt" }));
      for (const name of ["garbage.json", "notes.txt", "README", "foreign.jsonl"]) {
        const named = reports.filter((e) => String(e.data?.file).includes(name));
        assert.equal(named.length, 1, `one event names ${name}: ${JSON.stringify(reports)}`);
      }
      // What the engine did not write stays where it was.
      assert.ok(await storage.read("tasks/notes.txt"));
    } finally {
      console.warn = warn;
    }
    for (const name of ["garbage.json", "notes.txt", "README", "foreign.jsonl"]) {
      assert.equal(warnings.filter((w) => w.includes(name)).length, 1, `one warning names ${name}`);
    }
  });

  if (!options.processes) return;

  Deno.test(`${engine}: two processes on one prefix complete each of 1,000 tasks exactly once`, () =>
    processesExactlyOnce(() => JSON.stringify(form(fresh())), {
      processes: 2,
      tasks: 1_000,
      extra: ["--allow-net=127.0.0.1"],
    }));

  Deno.test(
    `${engine}: a process killed mid-run (maybe holding the lock) loses no task`,
    () =>
      killedWorkerLosesNothing(() => form(fresh()), {
        tasks: 200,
        timeout: 120_000,
        extra: ["--allow-net=127.0.0.1"],
      }),
  );
}
