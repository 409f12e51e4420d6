// The record engines' step queue (backends/records/steps.ts), which the file, kv and nats
// engines run their steps on: groups, rollback of a failed step alone, and no step left
// waiting when it was asked for while the drain before it was settling.

import assert from "node:assert/strict";
import type { RecordTx } from "../backends/records/space.ts";
import { runSteps, StepQueue } from "../backends/records/steps.ts";

const tx = { mark: () => () => {} } as unknown as RecordTx & { mark(): () => void };

/** A queue whose groups run at once, on a transaction that does nothing. */
function queue(groups: number[] = []): StepQueue {
  return new StepQueue(64, async (take) => {
    const group = take();
    groups.push(group.length);
    for (const [s, out] of await runSteps(tx, group)) s.resolve(out);
  });
}

/** Settle within a second, or fail naming what hung. */
async function within<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} still waits after 1 s`)), 1_000);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

Deno.test("records steps: steps asked for while a group runs share the next group", async () => {
  const groups: number[] = [];
  const q = queue(groups);
  const values = await Promise.all([1, 2, 3].map((n) => q.push(() => Promise.resolve(n))));
  assert.deepEqual(values, [1, 2, 3]);
  assert.deepEqual(groups, [1, 2]);
});

Deno.test("records steps: a step that throws fails alone", async () => {
  const q = queue();
  const [ok, bad] = await Promise.allSettled([
    q.push(() => Promise.resolve("ok")),
    q.push(() => Promise.reject(new Error("bad step"))),
  ]);
  assert.equal(ok.status === "fulfilled" && ok.value, "ok");
  assert.match(String(bad.status === "rejected" && bad.reason), /bad step/);
});

Deno.test("records steps: a group that fails to run fails every step it took", async () => {
  const q = new StepQueue(64, (take) => {
    take();
    return Promise.reject(new Error("no lock"));
  });
  await assert.rejects(() => q.push(() => Promise.resolve(1)), /no lock/);
  await q.idle();
});

Deno.test("records steps: a step asked for while the drain settles runs without another step", async () => {
  // The window is a few microtasks wide after the last group: ask for the next step at each
  // point of it in turn.
  for (let ticks = 0; ticks < 40; ticks++) {
    const q = queue();
    await q.push(() => Promise.resolve("first"));
    for (let i = 0; i < ticks; i++) await Promise.resolve();
    assert.equal(
      await within(q.push(() => Promise.resolve("next")), `a step asked for ${ticks} ticks after`),
      "next",
    );
  }
});
