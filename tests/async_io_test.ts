// The async worker in the seed's gevent-pool role: thousands of cheap I/O-bound tasks at
// once in one worker. 10,000 tasks of 100 ms (timers) at concurrency 1,000 finish in about
// ten waves (~1 s plus overhead), not 10,000 × 100 ms. A behaviour test, not a benchmark:
// the bound is loose for a loaded 2-core machine (and --trace-leaks, which records a stack
// for each of the ~30,000 timers and doubles the time: ~1.2 s without it, ~2.4 s with it).
import assert from "node:assert/strict";
import { defineTask, OmniQ } from "../mod.ts";

const TASKS = 10_000;
const CONCURRENCY = 1_000;
const SLEEP_MS = 100;

let inFlight = 0;
let most = 0;
let ran = 0;
const sleeper = defineTask("async-io-sleep", async (ms: number) => {
  inFlight++;
  most = Math.max(most, inFlight);
  try {
    await new Promise((resolve) => setTimeout(resolve, ms));
    ran++;
  } finally {
    inFlight--;
  }
});

Deno.test("async worker: 10,000 tasks of 100 ms at concurrency 1,000 run in waves", async () => {
  await using q = await OmniQ.open("memory:");
  for (let i = 0; i < TASKS; i += 1_000) {
    await q.enqueueMany(
      Array.from({ length: 1_000 }, () => ({ task: sleeper, args: [SLEEP_MS] })),
    );
  }
  const started = performance.now();
  await q.run({ until: "idle", concurrency: CONCURRENCY });
  const elapsed = performance.now() - started;
  console.log(
    `10,000 × ${SLEEP_MS} ms at concurrency ${CONCURRENCY}: ${Math.round(elapsed)} ms ` +
      `(serial: ${TASKS * SLEEP_MS / 1000} s; at most ${most} at once)`,
  );
  assert.equal(ran, TASKS);
  const stats = await q.stats();
  assert.equal(stats.total.completed, TASKS);
  assert.equal(most, CONCURRENCY, "the worker filled its 1,000 slots, and never more");
  // No slot runs two tasks at once, so ten waves of 100 ms is the floor.
  assert.ok(elapsed >= TASKS / CONCURRENCY * SLEEP_MS - 10, `too fast: ${elapsed} ms`);
  assert.ok(elapsed < 10_000, `expected about 10 waves (~1 s), took ${Math.round(elapsed)} ms`);
});
