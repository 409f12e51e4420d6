/**
 * The three worker types side by side:
 * - pool start: one no-op task through a fresh worker (Workers or children spawned);
 * - CPU-bound: tasks of ~200 ms of hashing at concurrency 2 (async runs them one after
 *   another on its event loop; the pools should scale with the cores);
 * - dispatch: no-op tasks, to measure the cost per task of crossing to a thread or process.
 *
 * The store is `memory:`, so the numbers are the executors', not a database's.
 * Run with `deno task bench`, or `deno run -A bench/pools.ts -- --noop 500` for a quicker run.
 *
 * @module
 */
import { OmniQ } from "../mod.ts";

const CPU_TASKS = Number(flag("--cpu") ?? 20);
const CPU_MS = Number(flag("--cpu-ms") ?? 200);
const CONCURRENCY = Number(flag("--concurrency") ?? 2);
const NOOP_TASKS = Number(flag("--noop") ?? 2_000);
const NOOP_CONCURRENCY = Number(flag("--noop-concurrency") ?? CONCURRENCY);
const TYPES = ["async", "thread", "process"] as const;
const TASKS = new URL("../tests/fixtures/pool_tasks.ts", import.meta.url);

function flag(name: string): string | undefined {
  const i = Deno.args.indexOf(name);
  return i === -1 ? undefined : Deno.args[i + 1];
}

interface Row {
  type: string;
  start: number;
  cpu: number;
  noop: number;
}

/** Enqueue, run until idle with a fresh worker of the type, check, and time the run. */
async function timeRun(
  type: typeof TYPES[number],
  task: string,
  args: unknown[],
  count: number,
  concurrency: number,
): Promise<number> {
  await using q = await OmniQ.open({ backend: "memory:", tasks: [TASKS] });
  for (let i = 0; i < count; i += 500) {
    await q.enqueueMany(
      Array.from({ length: Math.min(500, count - i) }, () => ({ task, args })),
    );
  }
  const t = performance.now();
  await q.run({ until: "idle", type, concurrency, pollInterval: "10ms" });
  const elapsed = performance.now() - t;
  const stats = await q.stats();
  if (stats.total.completed !== count) {
    throw new Error(`${type}: ${task}: ${JSON.stringify(stats.total)}`);
  }
  return elapsed;
}

const rows: Row[] = [];
for (const type of TYPES) {
  // A first run warms up module loading in this process, so every type starts even.
  await timeRun(type, "pool-add", [1, 2], 1, 1);
  const start = await timeRun(type, "pool-add", [1, 2], 1, 1);
  const cpu = await timeRun(type, "pool-hash", [CPU_MS], CPU_TASKS, CONCURRENCY);
  const noop = await timeRun(type, "pool-add", [1, 2], NOOP_TASKS, NOOP_CONCURRENCY);
  rows.push({ type, start, cpu, noop });
  console.error(`${type}: done`);
}

const serial = CPU_TASKS * CPU_MS;
const ms = (n: number) => `${n < 10 ? n.toFixed(1) : Math.round(n).toLocaleString("en-US")} ms`;
console.log(
  `\nOmniQ worker types; Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores`,
);
console.log(
  `CPU-bound: ${CPU_TASKS} tasks of ${CPU_MS} ms of hashing at concurrency ${CONCURRENCY} ` +
    `(serial: ${ms(serial)}); dispatch: ${NOOP_TASKS.toLocaleString("en-US")} no-op tasks ` +
    `at concurrency ${NOOP_CONCURRENCY}; store: memory:\n`,
);
console.log(
  "| type | pool start (1 task) | CPU-bound wall time | vs serial | no-op tasks/s | per task |",
);
console.log("|---|---:|---:|---:|---:|---:|");
for (const r of rows) {
  console.log(
    `| ${r.type} | ${ms(r.start)} | ${ms(r.cpu)} | ${(r.cpu / serial).toFixed(2)}× | ${
      Math.round(NOOP_TASKS / (r.noop / 1000)).toLocaleString("en-US")
    } | ${(r.noop * 1000 / NOOP_TASKS).toFixed(0)} µs |`,
  );
}
