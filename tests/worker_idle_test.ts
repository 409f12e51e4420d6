// `run({ until: "idle" })` stops only when nothing is left: a dependent released by an
// attempt that ended while a claim was out is claimed, not left queued.
import assert from "node:assert/strict";
import { defineTask, OmniQ } from "../mod.ts";
import { openMemory } from "../backends/memory.ts";

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
