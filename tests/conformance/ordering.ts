// Claim order (priority, FIFO, queue order), queue selection, and delayed tasks.

import assert from "node:assert/strict";
import { type Case, eventsOf, untilState } from "./harness.ts";
import { echo, probe, track } from "./tasks.ts";

export const orderingCases: Case[] = [
  {
    name: "higher priority runs first, FIFO within a priority",
    async fn({ open, key }) {
      await using q = await open();
      for (const [label, priority] of [["p0-a", 0], ["p9-a", 9], ["p5", 5], ["p0-b", 0]] as const) {
        await q.enqueue(track, [key, label, 0], { priority });
      }
      await q.enqueue(track, [key, "p9-b", 0], { priority: 9 });
      await q.enqueue(track, [key, "p0-c", 0]);
      await q.run({ until: "idle", concurrency: 1 });
      assert.deepEqual(probe(key).order, ["p9-a", "p9-b", "p5", "p0-a", "p0-b", "p0-c"]);
    },
  },
  {
    name: "a worker drains its queues in the order given",
    async fn({ open, key }) {
      await using q = await open();
      const plan = [
        ["low-1", "low", 9],
        ["default-1", "default", 0],
        ["high-1", "high", 0],
        ["low-2", "low", 0],
        ["high-2", "high", 0],
        ["default-2", "default", 5],
      ] as const;
      for (const [label, queue, priority] of plan) {
        await q.enqueue(track, [key, label, 0], { queue, priority });
      }
      await q.run({ until: "idle", concurrency: 1, queues: ["high", "default", "low"] });
      assert.deepEqual(probe(key).order, [
        "high-1",
        "high-2",
        "default-2",
        "default-1",
        "low-1",
        "low-2",
      ]);
    },
  },
  {
    name: "a worker takes tasks only from its queues",
    async fn({ open }) {
      await using q = await open();
      const mine = await q.enqueue(echo, ["mine"], { queue: "mine" });
      const other = await q.enqueue(echo, ["other"], { queue: "other" });
      const dflt = await q.enqueue(echo, ["default"]);
      await q.run({ until: "idle", queues: ["mine"] });
      assert.equal((await q.get(mine))?.state, "completed");
      for (const id of [other, dflt]) {
        const record = await q.get(id);
        assert.equal(record?.state, "queued");
        assert.equal(record.attempts, 0);
      }
      await q.run({ until: "idle" });
      assert.equal((await q.get(dflt))?.state, "completed", "the default queue is the default");
      assert.equal((await q.get(other))?.state, "queued");
    },
  },
  {
    name: "a delayed task is scheduled, and run until idle does not wait for it",
    async fn({ open }) {
      await using q = await open();
      const before = Date.now();
      const id = await q.enqueue(echo, ["later"], { delay: "3s" });
      const record = await q.get(id);
      assert.equal(record?.state, "scheduled");
      assert.ok(record.runAt.getTime() >= before + 3_000);
      const start = Date.now();
      await q.run({ until: "idle" });
      assert.ok(Date.now() - start < 2_000, "run returned without waiting for the delay");
      const after = await q.get(id);
      assert.equal(after?.state, "scheduled");
      assert.equal(after.attempts, 0);
      assert.equal(await q.result(id), undefined);
      assert.deepEqual((await eventsOf(q, id)).map((e) => e.type), ["scheduled"]);
    },
  },
  {
    name: "a worker runs a task with runAt or delay when it is due, not before",
    async fn({ open }) {
      await using q = await open();
      const runAt = new Date(Date.now() + 300);
      const atId = await q.enqueue(echo, ["at"], { runAt });
      const delayedId = await q.enqueue(echo, ["delayed"], { delay: 300 });
      const delayedAt = (await q.get(delayedId))!.runAt.getTime();
      assert.equal((await q.get(atId))?.state, "scheduled");
      assert.equal((await q.get(atId))?.runAt.getTime(), runAt.getTime());
      const past = await q.enqueue(echo, ["past"], { runAt: Date.now() - 1_000 });
      assert.equal((await q.get(past))?.state, "queued", "a runAt in the past is due now");
      const w = q.worker();
      await w.start();
      assert.equal(await q.wait(atId, { timeout: "5s" }), "at");
      assert.equal(await q.wait(delayedId, { timeout: "5s" }), "delayed");
      assert.equal(await q.wait(past, { timeout: "5s" }), "past");
      await w.stop();
      for (const [id, due] of [[atId, runAt.getTime()], [delayedId, delayedAt]] as const) {
        const started = (await eventsOf(q, id)).find((e) => e.type === "started");
        assert.ok(started, "it started");
        assert.ok(started.at.getTime() >= due, "it did not start before it was due");
        assert.ok((await q.get(id))!.startedAt!.getTime() >= due);
      }
    },
  },
  {
    name: "a queued task is claimed by a running worker soon after enqueue",
    async fn({ open }) {
      await using q = await open({ worker: { pollInterval: "10s" } });
      const w = q.worker();
      await w.start();
      // The worker polls every 10 s; an enqueue in this process wakes it at once.
      const id = await q.enqueue(echo, ["now"]);
      assert.equal(await q.wait(id, { timeout: "3s" }), "now");
      await w.stop();
      await untilState(q, id, "completed");
    },
  },
];
