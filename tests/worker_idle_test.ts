// `run({ until: "idle" })` stops only when nothing is left: a dependent released by an
// attempt that ended while a claim was out is claimed, not left queued; and a task claimed
// again while its previous attempt still writes its outcome is waited for.
import assert from "node:assert/strict";
import { defineTask, OmniQ } from "../mod.ts";
import { openMemory } from "../backends/memory/mod.ts";

const first = defineTask("idle-race.first", async () => {
  await new Promise((r) => setTimeout(r, 100));
  return 1;
});
const second = defineTask("idle-race.second", () => 2);

Deno.test("worker: run until idle claims what an attempt released while a claim was out", async () => {
  const backend = await openMemory();
  const queue = backend.queue;
  const claim = queue.claim.bind(queue);
  const complete = queue.complete.bind(queue);
  let completed: () => void;
  const firstCompleted = new Promise<void>((resolve) => (completed = resolve));
  let slowed = 0;
  // A claim that finds nothing while `first` runs answers only after `first` has completed:
  // the order a slow server (or a loaded machine) can give.
  queue.claim = async (request) => {
    const out = await claim(request);
    if (out.tasks.length === 0 && slowed++ === 0) {
      await firstCompleted;
      await new Promise((r) => setTimeout(r, 20));
    }
    return out;
  };
  queue.complete = async (...args) => {
    const out = await complete(...args);
    completed();
    return out;
  };
  await using q = await OmniQ.open({ backend });
  const a = await q.enqueue(first, []);
  const b = await q.enqueue(second, [], { dependsOn: [a] });
  await q.run({ until: "idle", concurrency: 2, pollInterval: "10ms" });
  assert.equal(slowed > 0, true, "a claim was out while the first task ended");
  assert.equal((await q.get(b))?.state, "completed", "the released dependent was run");
  assert.equal(await q.wait(b, { timeout: "1s" }), 2);
});

let attempts = 0;
let inHandler = 0;
let mostInHandler = 0;
const retriedAtOnce = defineTask("idle-race.retried", async () => {
  attempts++;
  mostInHandler = Math.max(mostInHandler, ++inHandler);
  try {
    if (attempts === 1) throw new Error("first attempt fails");
    await new Promise((r) => setTimeout(r, 300));
    return "second";
  } finally {
    inHandler--;
  }
}, { retries: 1, backoff: { type: "fixed", delay: 0 } });

Deno.test("worker: a task retried at once while its failure is still being written is tracked as a new attempt", async () => {
  const backend = await openMemory();
  const queue = backend.queue;
  const fail = queue.fail.bind(queue);
  // The failure is stored at once, but its reply comes late (a slow network): the task is
  // queued again, and claimed again, before the first attempt's write returns.
  queue.fail = async (...args) => {
    const out = await fail(...args);
    await new Promise((r) => setTimeout(r, 100));
    return out;
  };
  await using q = await OmniQ.open({ backend });
  const id = await q.enqueue(retriedAtOnce, []);
  await q.run({ until: "idle", concurrency: 1, pollInterval: "10ms" });
  assert.equal(attempts, 2);
  assert.equal(mostInHandler, 1, "one handler at a time");
  assert.equal((await q.get(id))?.state, "completed", "run waited for the second attempt");
  assert.equal(await q.wait(id, { timeout: "1s" }), "second");
});
