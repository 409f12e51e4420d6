/**
 * Throughput and latency of the embedded engines, side by side in one run:
 * - enqueue, one task at a time and with `enqueueMany` (batches of 500);
 * - processing no-op tasks with one async worker at concurrency 10;
 * - enqueue→start latency (p50/p99) of single tasks sent to an idle worker.
 *
 * Run with `deno task bench` (`-- --tasks 5000` for a quicker run).
 *
 * @module
 */
import { defineTask, OmniQ } from "../mod.ts";

const TASKS = Number(flag("--tasks") ?? 20_000);
const LATENCY_SAMPLES = Number(flag("--samples") ?? 500);

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i === -1 ? undefined : Deno.args[i + 1];
}

const noop = defineTask("bench-noop", (_i: number) => undefined);
let onStart: ((at: number) => void) | undefined;
const probe = defineTask("bench-probe", () => {
  onStart?.(performance.now());
});

interface Row {
  engine: string;
  enqueueOne: number;
  enqueueMany: number;
  process: number;
  p50: number;
  p99: number;
}

async function measure(engine: string, url: () => Promise<[string, () => Promise<void>]>) {
  const row: Row = { engine, enqueueOne: 0, enqueueMany: 0, process: 0, p50: 0, p99: 0 };
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
    const samples: number[] = [];
    for (let i = 0; i < LATENCY_SAMPLES; i++) {
      const started = new Promise<number>((resolve) => (onStart = resolve));
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

async function tempSqlite(): Promise<[string, () => Promise<void>]> {
  const dir = await Deno.makeTempDir({ prefix: "omniq-bench-" });
  return [`sqlite:${dir}/bench.db`, () => Deno.remove(dir, { recursive: true })];
}

const rows = [
  await measure("memory:", () => Promise.resolve(["memory:", () => Promise.resolve()])),
  await measure("sqlite: (file, WAL)", tempSqlite),
];

const fmt = (n: number) => Math.round(n).toLocaleString("en-US");
console.log(
  `\nOmniQ ${TASKS.toLocaleString("en-US")} no-op tasks; latency over ${LATENCY_SAMPLES} samples`,
);
console.log(`Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores\n`);
console.log(
  "| engine | enqueue one (tasks/s) | enqueueMany (tasks/s) | process, concurrency 10 (tasks/s) | enqueue→start p50 | p99 |",
);
console.log("|---|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.engine} | ${fmt(r.enqueueOne)} | ${fmt(r.enqueueMany)} | ${fmt(r.process)} | ${
      r.p50.toFixed(2)
    } ms | ${r.p99.toFixed(2)} ms |`,
  );
}
