/**
 * The `file:` engine on the three object stores, each on its test server on loopback, beside
 * `file:` on local disk, in one run: enqueue one at a time, `enqueueMany`, processing at
 * concurrency 10 and enqueue→start latency, each with the HTTP requests it cost per task (on
 * a real cloud the requests, not the bytes, are what a task costs).
 *
 * - `s3://` on Ceph's RADOS Gateway (Debian's `radosgw`, `tests/cloud/s3_server.ts`);
 * - `az://` on Azurite (npm, `tests/cloud/azure_server.ts`);
 * - `gs://` on the firebase-tools storage emulator (npm, `tests/cloud/gcs_server.ts`).
 *
 * Run with `deno task bench:cloud` (`-- --tasks 500 --samples 50`, `--stores s3,file`).
 *
 * @module
 */

import { defineTask, OmniQ } from "../mod.ts";
import type { OmniQConfig } from "../src/api.ts";
import { flag } from "./throughput.ts";
import { startRadosGateway } from "../tests/cloud/s3_server.ts";
import { startAzurite } from "../tests/cloud/azure_server.ts";
import { startGcs } from "../tests/cloud/gcs_server.ts";

const noop = defineTask("cloud-bench-noop", (_n: number) => {});
let onStart: (t: number) => void = () => {};
const probe = defineTask("cloud-bench-probe", () => {
  onStart(performance.now());
});

// Every request the stores make goes through fetch: count them.
let requests = 0;
const realFetch = globalThis.fetch;
globalThis.fetch = ((...args: Parameters<typeof fetch>) => {
  requests++;
  return realFetch(...args);
}) as typeof fetch;

interface Phase {
  perSecond: number;
  requestsPerTask: number;
}

interface CloudRow {
  store: string;
  enqueueOne: Phase;
  enqueueMany: Phase;
  process: Phase;
  p50: number;
  requestsPerLatencySample: number;
}

type Backend = NonNullable<OmniQConfig["backend"]>;

async function timed(tasks: number, fn: () => Promise<void>): Promise<Phase> {
  const before = requests;
  const t = performance.now();
  await fn();
  return {
    perSecond: tasks / ((performance.now() - t) / 1000),
    requestsPerTask: (requests - before) / tasks,
  };
}

async function measureStore(
  store: string,
  backend: (phase: string) => Backend,
  tasks: number,
  samples: number,
): Promise<CloudRow> {
  const row = { store } as CloudRow;
  {
    await using q = await OmniQ.open({ backend: backend("one") });
    row.enqueueOne = await timed(tasks, async () => {
      for (let i = 0; i < tasks; i++) await q.enqueue(noop, [i]);
    });
  }
  {
    await using q = await OmniQ.open({ backend: backend("many") });
    row.enqueueMany = await timed(tasks, async () => {
      for (let i = 0; i < tasks; i += 100) {
        const n = Math.min(100, tasks - i);
        await q.enqueueMany(Array.from({ length: n }, (_, j) => ({ task: noop, args: [i + j] })));
      }
    });
    row.process = await timed(tasks, () => q.run({ until: "idle", concurrency: 10 }));
    const stats = await q.stats();
    if (stats.total.completed !== tasks) {
      throw new Error(`${store}: lost tasks: ${JSON.stringify(stats.total)}`);
    }
  }
  {
    await using q = await OmniQ.open({ backend: backend("latency") });
    const w = q.worker({ concurrency: 10, pollInterval: "1s" });
    await w.start();
    const latencies: number[] = [];
    const before = requests;
    for (let i = 0; i < samples; i++) {
      const started = new Promise<number>((resolve) => (onStart = resolve));
      const t0 = performance.now();
      await q.enqueue(probe, []);
      latencies.push((await started) - t0);
    }
    row.requestsPerLatencySample = (requests - before) / samples;
    await w.stop();
    latencies.sort((a, b) => a - b);
    row.p50 = latencies[Math.floor(latencies.length / 2)];
  }
  return row;
}

async function main(): Promise<void> {
  const tasks = Number(flag("--tasks") ?? 500);
  const samples = Number(flag("--samples") ?? 50);
  const stores = (flag("--stores") ?? "file,s3,azure,gcs").split(",");
  const rows: CloudRow[] = [];
  const run = crypto.randomUUID().slice(0, 8);
  for (const store of stores) {
    switch (store) {
      case "file": {
        const dir = await Deno.makeTempDir({ prefix: "omniq-cloud-bench-" });
        try {
          rows.push(
            await measureStore("file: (local disk)", (p) => `file:${dir}/${p}`, tasks, samples),
          );
        } finally {
          await Deno.remove(dir, { recursive: true });
        }
        break;
      }
      case "s3": {
        await using server = await startRadosGateway();
        const form = (p: string) => ({ s3: { ...server.options, prefix: `${run}/${p}` } });
        rows.push(await measureStore("s3: (Ceph RADOS Gateway 16.2)", form, tasks, samples));
        break;
      }
      case "azure": {
        await using server = await startAzurite();
        const form = (p: string) => ({ azure: { ...server.options, prefix: `${run}/${p}` } });
        rows.push(await measureStore("az: (Azurite 3.35)", form, tasks, samples));
        break;
      }
      case "gcs": {
        await using server = await startGcs();
        // The firebase emulator ignores preconditions: one handle at a time is all it can take
        // (the bench opens one per phase), and the probe at open would rightly refuse it.
        const checks = server.enforcesPreconditions ? {} : { checkPreconditions: false };
        const form = (p: string) => ({
          gcs: { ...server.options, ...checks, prefix: `${run}/${p}` },
        });
        rows.push(await measureStore(`gs: (${server.emulator})`, form, tasks, samples));
        break;
      }
      default:
        throw new Error(`--stores: unknown store "${store}" (file, s3, azure, gcs)`);
    }
    console.error(`bench/cloud.ts: ${JSON.stringify(rows.at(-1))}`);
  }
  const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
  const cell = (p: Phase) => `${fmt(p.perSecond)} (${p.requestsPerTask.toFixed(1)})`;
  console.log(
    `\nOmniQ file: engine on object stores: ${tasks} no-op tasks a phase, ${samples} latency ` +
      `samples; Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores`,
  );
  console.log("tasks/s, with (requests per task); every server on 127.0.0.1\n");
  console.log(
    "| store | enqueue one | enqueueMany (100 a call) | process, concurrency 10 | p50 enqueue→start (requests) |",
  );
  console.log("|---|---:|---:|---:|---:|");
  for (const r of rows) {
    console.log(
      `| ${r.store} | ${cell(r.enqueueOne)} | ${cell(r.enqueueMany)} | ${cell(r.process)} | ${
        r.p50.toFixed(1)
      } ms (${r.requestsPerLatencySample.toFixed(1)}) |`,
    );
  }
}

if (import.meta.main) await main();
