/**
 * The API tour of the README, as a program that runs (a test runs it too).
 *
 * @module
 */
import { defineTask, OmniQ, taskContext, TaskFailedError, TimeoutError } from "@omniq/omniq";

// --- define tasks: plain functions, registered by name ---
export const add = defineTask("tour-add", (a: number, b: number) => a + b);
export const crawl = defineTask("tour-crawl", async (pages: number) => {
  const ctx = taskContext(); // id, attempt, signal, progress(), dependencies
  for (let i = 1; i <= pages; i++) {
    await new Promise((r) => setTimeout(r, 5));
    ctx.progress(i / pages);
  }
  return { pages, attempt: ctx.attempt };
}, { retries: 2, timeout: "30s", queue: "io" });
export const broken = defineTask("tour-broken", () => {
  throw new Error("disk full");
}, { retries: 0 });

// --- open: one URL for queue, results and events (SQLite ./omniq.db with no argument) ---
await using q = await OmniQ.open("memory:");

// --- enqueue: typed arguments; options per task ---
const id = await q.enqueue(add, [1, 2], { queue: "high", priority: 5, resultTtl: "1d" });
await q.enqueue("tour-add", [3, 4], { queue: "high" }); // by name
const [c1] = await q.enqueueMany([
  { task: crawl, args: [3] },
  { task: crawl, args: [5], delay: "10ms" },
]);
const once = await q.enqueue(add, [5, 5], { key: "nightly-sum" });
const again = await q.enqueue(add, [5, 5], { key: "nightly-sum" }); // same live key
console.assert(once === again);
const bad = await q.enqueue(broken, []);

// --- run: a worker until nothing is due (or q.worker(...).start() for a long-lived one) ---
await q.run({ until: "idle", queues: ["high", "io", "default"], concurrency: 4 });

// --- results ---
const sum: number = await q.wait(id); // typed from the task's handler
console.log("sum", sum);
console.log("crawl", await q.wait(c1, { timeout: "5s" }));
console.log("record", (await q.get(c1))?.state, "progress", (await q.get(c1))?.progress);
try {
  await q.wait(bad);
} catch (error) {
  if (error instanceof TaskFailedError) console.log("failed:", error.remote.message);
}
const pending = await q.enqueue(add, [0, 0], { queue: "nobody-serves-this" });
await q.wait(pending, { timeout: "20ms" }).catch((e) => {
  if (e instanceof TimeoutError) console.log("still queued after 20ms");
});
console.log("cancelled", await q.cancel(pending));

// --- events, stats, lists ---
for await (const e of q.events({ taskId: id })) console.log(" ", e.type, e.at.toISOString());
const off = q.on("completed", (e) => console.log("completed live:", e.taskId));
await q.enqueue(add, [2, 2], { id: "custom-id-1" });
await q.run({ until: "idle" });
off();
console.log("stats", (await q.stats()).total);
console.log("failed tasks", (await q.list({ state: "failed" })).map((t) => t.task));
const hour = new Date(Date.now() - 3_600_000); // enqueued in the last hour, a page of 50:
console.log("recent", (await q.list({ since: hour, limit: 50, offset: 0 })).length);
console.log("retry", await q.retry(bad));
await q.cleanup(); // workers also sweep TTLs on their own
