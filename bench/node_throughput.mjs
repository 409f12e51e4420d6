// The throughput workload of bench/throughput.ts, under Node against the npm build (`omniq`):
// enqueue one task at a time, enqueueMany in batches of 500, processing no-op tasks with one
// async worker at concurrency 10, and enqueue→start latency (p50/p99) of single tasks sent to
// an idle worker. Kept step for step with throughput.ts's `measure`, so the two runtimes do
// the same work; bench/node.ts copies it beside the installed package and runs it.
//
//   node node_throughput.mjs '{"engine":"sqlite","tasks":10000,"samples":300,
//     "postgres":"postgres://…","redis":"redis://…"}'
//
// Prints one JSON line: the row, in throughput.ts's shape.

import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
// Only Node resolves the installed package; a computed specifier keeps `deno check bench/`
// from looking it up.
const { defineTask, OmniQ } = await import(["omniq"][0]);

const config = JSON.parse(process.argv[2] ?? "{}");
const TASKS = config.tasks ?? 10_000;
const LATENCY_SAMPLES = config.samples ?? 300;

const noop = defineTask("bench-noop", (_i) => undefined);
let onStart;
const probe = defineTask("bench-probe", () => {
  onStart?.(performance.now());
});

const id = () => crypto.randomUUID().slice(0, 8);

function temp(make) {
  return async () => {
    const dir = await mkdtemp(join(tmpdir(), "omniq-bench-"));
    return [make(dir), () => rm(dir, { recursive: true })];
  };
}

function withParam(base, name, value) {
  return () => {
    const url = new URL(base);
    url.searchParams.set(name, value());
    return Promise.resolve([url.href, () => Promise.resolve()]);
  };
}

function need(name) {
  if (!config[name]) throw new Error(`node_throughput.mjs: no ${name} server URL given`);
  return config[name];
}

/** Each engine's fresh store per phase, as throughput.ts makes them. */
const STORES = {
  memory: () => () => Promise.resolve(["memory:", () => Promise.resolve()]),
  sqlite: () => temp((dir) => `sqlite:${dir}/bench.db`),
  file: () => temp((dir) => `file:${dir}/store`),
  postgres: () => withParam(need("postgres"), "schema", () => `omniq_bench_${id()}`),
  redis: () => withParam(need("redis"), "prefix", () => `b${id()}:`),
  nats: () => withParam(need("nats"), "prefix", () => `b${id()}`),
};

async function measure(engine, url) {
  const row = { engine, enqueueOne: 0, enqueueMany: 0, process: 0, p50: 0, p99: 0 };
  {
    const [u, dispose] = await url();
    const q = await OmniQ.open(u);
    const t = performance.now();
    for (let i = 0; i < TASKS; i++) await q.enqueue(noop, [i]);
    row.enqueueOne = TASKS / ((performance.now() - t) / 1000);
    await q.close();
    await dispose();
  }
  {
    const [u, dispose] = await url();
    const q = await OmniQ.open(u);
    let t = performance.now();
    for (let i = 0; i < TASKS; i += 500) {
      await q.enqueueMany(
        Array.from({ length: Math.min(500, TASKS - i) }, (_, j) => ({ task: noop, args: [i + j] })),
      );
    }
    row.enqueueMany = TASKS / ((performance.now() - t) / 1000);
    t = performance.now();
    await q.run({ until: "idle", concurrency: 10 });
    row.process = TASKS / ((performance.now() - t) / 1000);
    const stats = await q.stats();
    if (stats.total.completed !== TASKS) {
      throw new Error(`${engine}: lost tasks: ${JSON.stringify(stats.total)}`);
    }
    await q.close();
    await dispose();
  }
  {
    const [u, dispose] = await url();
    const q = await OmniQ.open(u);
    const w = q.worker({ concurrency: 10, pollInterval: "1s" });
    await w.start();
    const samples = [];
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const started = new Promise((resolve) => (onStart = resolve));
      const t0 = performance.now();
      await q.enqueue(probe, []);
      samples.push((await started) - t0);
    }
    samples.sort((a, b) => a - b);
    row.p50 = samples[Math.floor(samples.length * 0.5)];
    row.p99 = samples[Math.floor(samples.length * 0.99)];
    await w.stop();
    await q.close();
    await dispose();
  }
  return row;
}

const store = STORES[config.engine];
if (!store) {
  throw new Error(`node_throughput.mjs: engine one of ${Object.keys(STORES).join(", ")}`);
}
const row = await measure(config.engine, store());
console.log(JSON.stringify({ ...row, runtime: `Node ${process.version}` }));
