// Leases: a dead worker's task is recovered, a stale worker is fenced off, a long handler
// keeps its lease, and stalls count as attempts. A dead worker is played by claiming
// through the queue store and never renewing.

import assert from "node:assert/strict";
import { encode, TaskFailedError } from "../../mod.ts";
import { type Case, eventsOf, ghostClaim, sleep as pause, typesOf, until } from "./harness.ts";
import { echo, gated, openGate, probe, sleep } from "./tasks.ts";

export const leaseCases: Case[] = [
  {
    name: "a task whose worker died is recovered after its lease and runs again",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(echo, ["recovered"]);
      const ghost = await ghostClaim(q, 100);
      assert.equal(ghost.id, id);
      assert.equal(ghost.attempts, 1);
      assert.equal((await q.get(id))?.state, "running");
      const w = q.worker({ sweepInterval: "50ms" });
      await w.start();
      assert.equal(await q.wait(id, { timeout: "5s" }), "recovered");
      await w.stop();
      const record = await q.get(id);
      assert.equal(record?.state, "completed");
      assert.equal(record.attempts, 2, "the stall counted as an attempt");
      const events = await eventsOf(q, id);
      assert.deepEqual(events.map((e) => e.type), [
        "enqueued",
        "started",
        "stalled",
        "started",
        "completed",
      ]);
      assert.equal(events[2].attempt, 1, "the stalled event names the lost attempt");
      assert.equal(events[3].attempt, 2);
    },
  },
  {
    name: "a worker whose lease was lost cannot complete, fail or renew the re-claimed task",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(gated, [key]);
      const ghost = await ghostClaim(q, 100);
      const w = q.worker({ sweepInterval: "50ms" });
      await w.start();
      const p = probe(key);
      await until("attempt 2 to run", () => p.calls === 1, 5_000);
      assert.deepEqual(p.attempts, [2]);
      const now = Date.now();
      const stale = {
        taskId: id,
        state: "completed" as const,
        value: encode("ghost"),
        completedAt: now,
      };
      assert.equal(await q.stores.queue.complete(id, ghost.token, stale), undefined);
      assert.equal(
        await q.stores.queue.fail(id, ghost.token, {
          error: { name: "Error", message: "ghost" },
          retryAt: now,
        }),
        undefined,
      );
      assert.equal(await q.stores.queue.renew(id, ghost.token, 60_000), false);
      assert.equal(await q.stores.queue.progress(id, ghost.token, 0.9), undefined);
      const running = await q.get(id);
      assert.equal(running?.state, "running", "the stale calls changed nothing");
      assert.equal(running.attempts, 2);
      assert.equal(await q.result(id), undefined);
      openGate(key);
      assert.equal(await q.wait(id, { timeout: "5s" }), "attempt-2");
      await w.stop();
      assert.equal(await q.stores.queue.complete(id, ghost.token, stale), undefined);
      assert.equal((await q.result(id))?.value, "attempt-2", "only attempt 2's outcome counts");
      const types = await typesOf(q, id);
      assert.equal(types.filter((t) => t === "completed").length, 1);
      assert.ok(!types.includes("retrying") && !types.includes("failed"));
      assert.equal((await q.get(id))?.progress, undefined);
    },
  },
  {
    name: "a handler that runs longer than its lease keeps it by renewing",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(sleep, [1_000, key]);
      await q.run({ until: "idle", lease: "300ms", sweepInterval: "50ms" });
      assert.equal(await q.wait(id), 1_000);
      assert.deepEqual(probe(key).attempts, [1]);
      assert.equal(probe(key).aborts.length, 0);
      const record = await q.get(id);
      assert.equal(record?.attempts, 1);
      assert.deepEqual(await typesOf(q, id), ["enqueued", "started", "completed"]);
    },
  },
  {
    name: "a task that stalls on its last attempt ends failed",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(echo, [1], { retries: 1 });
      for (const attempt of [1, 2]) {
        const ghost = await ghostClaim(q, 30);
        assert.equal(ghost.attempts, attempt);
        await pause(40);
        await until(`stall ${attempt} to be noticed`, async () => {
          await q.cleanup();
          return (await q.get(id))?.state !== "running";
        });
      }
      const record = await q.get(id);
      assert.equal(record?.state, "failed");
      assert.equal(record.attempts, 2);
      assert.ok(record.error, "the record carries the stall as its error");
      const result = await q.result(id);
      assert.equal(result?.state, "failed");
      assert.ok(result.error?.message);
      await assert.rejects(q.wait(id), TaskFailedError);
      assert.deepEqual(await typesOf(q, id), [
        "enqueued",
        "started",
        "stalled",
        "started",
        "stalled",
        "failed",
      ]);
    },
  },
];
