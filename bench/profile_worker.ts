/**
 * The process `bench/profile.ts` profiles: enqueues no-op tasks on the store at the URL
 * given as its first argument (as many as its second), then processes them with one async
 * worker at concurrency 10. The enqueue is in the profile too, but small beside the run.
 *
 * @module
 */
import { defineTask, OmniQ } from "../mod.ts";

const noop = defineTask("bench-profile-noop", (_i: number) => undefined);

const [url, count] = Deno.args;
const tasks = Number(count);
const q = await OmniQ.open(url);
for (let i = 0; i < tasks; i += 1_000) {
  await q.enqueueMany(
    Array.from({ length: Math.min(1_000, tasks - i) }, (_, j) => ({ task: noop, args: [i + j] })),
  );
}
const t = performance.now();
await q.run({ until: "idle", concurrency: 10 });
const rate = tasks / ((performance.now() - t) / 1000);
console.error(`${url.split(":")[0]}: ${Math.round(rate).toLocaleString("en-US")} tasks/s`);
await q.close();
