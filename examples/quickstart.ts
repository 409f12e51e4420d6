/**
 * The quickstart: define tasks, enqueue a mixed workload on the embedded SQLite default
 * (./omniq.db) across three queues, run a worker with a live progress line, then print a
 * few results and a summary of the stored events.
 *
 * Run it with `deno task demo`.
 *
 * @module
 */
import { OmniQ, TaskFailedError } from "@omniq/omniq";
import { callService, charge, report, thumbnail } from "./tasks.ts";

await using q = await OmniQ.open(); // SQLite in ./omniq.db: queue, results and events
const started = new Date();

const ids = await q.enqueueMany([
  ...Array.from({ length: 60 }, (_, i) => ({
    task: thumbnail,
    args: [`photo-${i}.jpg`, [64, 128, 256]],
  })),
  ...Array.from({ length: 40 }, (_, i) => ({ task: callService, args: [`/api/items/${i}`] })),
  ...Array.from({ length: 30 }, (_, i) => ({ task: charge, args: [`cus_${i}`, 100 * (i + 1)] })),
  ...["2026-09", "2026-10", "2026-11", "2026-13"].map((m) => ({ task: report, args: [m] })),
]);
const mine = new Set<string>(ids);
console.log(`enqueued ${ids.length} tasks on queues high, default, low`);

// A live progress line, fed by lifecycle events.
let done = 0, failed = 0, retried = 0, running = 0;
const line = () => {
  const width = 30;
  const filled = Math.round((done / ids.length) * width);
  const bar = "#".repeat(filled) + ".".repeat(width - filled);
  return `\r[${bar}] ${done}/${ids.length} done · ${running} running · ${retried} retried · ${failed} failed `;
};
const encoder = new TextEncoder();
const draw = () => Deno.stdout.writeSync(encoder.encode(line()));
const off = q.on("*", (e) => {
  if (!e.taskId || !mine.has(e.taskId)) return;
  if (e.type === "started") running++;
  if (e.type === "retrying") (retried++, running--);
  if (e.type === "completed") (done++, running--);
  if (e.type === "failed") (done++, failed++, running--);
});
const ticker = setInterval(draw, 50);
const t0 = performance.now();
await q.run({ until: "idle", queues: ["high", "default", "low"], concurrency: 16 });
clearInterval(ticker);
draw();
off();
console.log(`\nall done in ${Math.round(performance.now() - t0)} ms\n`);

console.log("some results:");
console.log("  charge     ", await q.wait(ids[100]));
console.log("  thumbnail  ", await q.wait(ids[0]));
console.log("  callService", await q.wait(ids[60]));
try {
  await q.wait(ids[ids.length - 1]);
} catch (error) {
  if (!(error instanceof TaskFailedError)) throw error;
  console.log("  report     ", `failed: ${error.remote.name}: ${error.remote.message}`);
}

const counts = new Map<string, number>();
for await (const e of q.events({ since: started })) {
  if (e.taskId && mine.has(e.taskId)) counts.set(e.type, (counts.get(e.type) ?? 0) + 1);
}
console.log("\nevents of this run:");
for (const [type, n] of counts) console.log(`  ${type.padEnd(10)} ${n}`);
