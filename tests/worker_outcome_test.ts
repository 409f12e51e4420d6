// A worker writes an attempt's outcome again after a passing fault (a lost connection, a busy
// lock): the handler's work is kept, it runs once, and the fault is reported.
import assert from "node:assert/strict";
import { defineTask, OmniQ } from "../mod.ts";
import { openMemory } from "../backends/memory/mod.ts";

let runs = 0;
defineTask("outcome-once", () => ++runs);
defineTask("outcome-fails", () => {
  runs++;
  throw new Error("handler failed");
});

/** A memory engine whose `method` fails `times` times, then works. */
async function flaky(method: "complete" | "fail", times: number) {
  const backend = await openMemory();
  const queue = backend.queue as unknown as Record<string, (...args: unknown[]) => unknown>;
  const real = queue[method].bind(backend.queue);
  let left = times;
  queue[method] = (...args: unknown[]) =>
    left-- > 0 ? Promise.reject(new Error("connection lost")) : real(...args);
  return backend;
}

Deno.test("worker: a completion that fails twice is written on the third try", async () => {
  runs = 0;
  await using q = await OmniQ.open({ backend: await flaky("complete", 2) });
  const errors: unknown[] = [];
  q.onError((error) => errors.push(error));
  const id = await q.enqueue("outcome-once", []);
  await q.run({ until: "idle" });
  assert.equal(await q.wait(id, { timeout: "2s" }), 1);
  assert.equal(runs, 1, "the handler ran once");
  assert.equal(errors.length, 2, "each fault was reported");
});

Deno.test("worker: a failure that cannot be written at first is written on a later try", async () => {
  runs = 0;
  await using q = await OmniQ.open({ backend: await flaky("fail", 3) });
  q.onError(() => {});
  const id = await q.enqueue("outcome-fails", [], { retries: 0 });
  await q.run({ until: "idle" });
  await assert.rejects(() => q.wait(id, { timeout: "2s" }), /handler failed/);
  assert.equal(runs, 1);
  assert.equal((await q.get(id))?.state, "failed");
});
