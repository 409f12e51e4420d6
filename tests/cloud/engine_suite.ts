/**
 * The `file:` engine on a cloud store, end to end, through the registry's object form
 * (`{ s3: {…} }`, `{ azure: {…} }`, `{ gcs: {…} }`): the whole conformance suite with
 * everything in the bucket, again with the queue in SQLite and only results and events in
 * the bucket, and (where the server enforces preconditions) two worker processes sharing one
 * prefix, each task completed exactly once, and a worker killed mid-run losing nothing.
 *
 * Each store's `*_engine_test.ts` starts its server and calls {@linkcode cloudEngineSuite}.
 *
 * @module
 */

import assert from "node:assert/strict";
import { defineTask, OmniQ } from "../../mod.ts";
import { runConformance } from "../conformance/mod.ts";
import { processesExactlyOnce } from "../fixtures/two_processes.ts";
import { type Child, kill, readLine, spawn } from "../fixtures/processes.ts";
import type { CloudServer } from "./azure_server.ts";

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

  if (!options.processes) return;

  Deno.test(`${engine}: two processes on one prefix complete each of 1,000 tasks exactly once`, () =>
    processesExactlyOnce(() => JSON.stringify(form(fresh())), {
      processes: 2,
      tasks: 1_000,
      extra: ["--allow-net=127.0.0.1"],
    }));

  Deno.test(`${engine}: a process killed mid-run (maybe holding the lock) loses no task`, async () => {
    const tmp = await Deno.makeTempDir({ prefix: `omniq-${engine}-crash-` });
    const store = form(fresh());
    const N = 200;
    let child: Child | undefined;
    try {
      defineTask("crash-work", (n: number) => n + 1);
      await using q = await OmniQ.open({ backend: store, worker: { lease: "1s" } });
      const ids = await q.enqueueMany(
        Array.from({ length: N }, (_, i) => ({ task: "crash-work", args: [i] })),
      );
      child = spawn(new URL("../fixtures/crash_worker.ts", import.meta.url), tmp, [
        JSON.stringify(store),
      ], ["--allow-net=127.0.0.1"]);
      assert.equal(await readLine(child), "ready");
      await until(async () => (await q.stats()).total.completed >= 20);
      await kill(child);
      // Tasks it held come back once their lease ends; a lock it held is taken over once
      // stale, and a commit it left half done is finished by the next holder.
      await until(async () => (await q.stats()).total.completed === N, 120_000, async () => {
        await q.run({ until: "idle" });
      });
      for (const [i, id] of ids.entries()) assert.equal(await q.wait(id), i + 1);
      const completed = new Map<string, number>();
      for await (const e of q.events({ type: "completed" })) {
        completed.set(e.taskId!, (completed.get(e.taskId!) ?? 0) + 1);
      }
      assert.equal(completed.size, N);
    } finally {
      if (child) await kill(child);
      await Deno.remove(tmp, { recursive: true });
    }
  });
}

async function until(
  probe: () => Promise<boolean>,
  timeout = 60_000,
  between?: () => Promise<void>,
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await (between ? between() : new Promise((r) => setTimeout(r, 20)));
    await new Promise((r) => setTimeout(r, 50));
  }
}
