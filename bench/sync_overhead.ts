/**
 * The blocking API's per-call overhead against the async API, on the same engine and the
 * same calls: `stats()` (a read) and `enqueue` (a write), each in a tight loop.
 *
 * Run with `deno task bench`.
 *
 * @module
 */
import { OmniQ } from "../mod.ts";
import { OmniQSync } from "../sync.ts";

const CALLS = 5_000;

async function timeAsync(fn: () => Promise<unknown>): Promise<number> {
  const t = performance.now();
  for (let i = 0; i < CALLS; i++) await fn();
  return ((performance.now() - t) / CALLS) * 1000;
}

function timeSync(fn: () => unknown): number {
  const t = performance.now();
  for (let i = 0; i < CALLS; i++) fn();
  return ((performance.now() - t) / CALLS) * 1000;
}

const rows: string[] = [];
for (const url of ["memory:", "sqlite"]) {
  const dir = await Deno.makeTempDir({ prefix: "omniq-bench-sync-" });
  const target = url === "memory:" ? url : `sqlite:${dir}/a.db`;
  const q = await OmniQ.open(target);
  const aStats = await timeAsync(() => q.stats());
  const aEnqueue = await timeAsync(() => q.enqueue("bench-sync", [1]));
  await q.close();
  const s = OmniQSync.open(url === "memory:" ? url : `sqlite:${dir}/b.db`);
  const sStats = timeSync(() => s.stats());
  const sEnqueue = timeSync(() => s.enqueue("bench-sync", [1]));
  s.close();
  await Deno.remove(dir, { recursive: true });
  const name = url === "memory:" ? "memory:" : "sqlite:";
  rows.push(
    `| ${name} | stats() | ${aStats.toFixed(1)} µs | ${sStats.toFixed(1)} µs | +${
      (sStats - aStats).toFixed(1)
    } µs |`,
  );
  rows.push(
    `| ${name} | enqueue() | ${aEnqueue.toFixed(1)} µs | ${sEnqueue.toFixed(1)} µs | +${
      (sEnqueue - aEnqueue).toFixed(1)
    } µs |`,
  );
}
console.log(`\nOmniQSync per-call overhead, ${CALLS} calls each\n`);
console.log("| engine | call | async | sync | overhead |");
console.log("|---|---|---:|---:|---:|");
for (const r of rows) console.log(r);
