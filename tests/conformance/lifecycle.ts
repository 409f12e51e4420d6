// Cancel, retry, stats and list, and closing.

import assert from "node:assert/strict";
import { ConfigError, OmniQError, TaskCancelledError } from "../../mod.ts";
import { type Case, eventsOf, typesOf, until } from "./harness.ts";
import { echo, fail, flaky, gated, openGate, probe } from "./tasks.ts";

export const lifecycleCases: Case[] = [
  {
    name: "list filters by enqueue time (since, until) and refuses a time that is not one",
    async fn({ open }) {
      await using q = await open();
      const first = await q.enqueue(echo, [1], { queue: "timed" });
      await new Promise((resolve) => setTimeout(resolve, 5));
      const between = new Date();
      await new Promise((resolve) => setTimeout(resolve, 5));
      const second = await q.enqueue(echo, [2], { queue: "timed" });
      const ids = async (filter: Parameters<typeof q.list>[0]) =>
        (await q.list({ queue: "timed", ...filter })).map((t) => t.id);
      assert.deepEqual(await ids({ since: between }), [second]);
      assert.deepEqual(await ids({ until: between.getTime() }), [first]);
      assert.deepEqual(await ids({ since: 0, until: Date.now() + 1_000 }), [first, second]);
      await assert.rejects(
        q.list({ since: "yesterday" as unknown as Date }),
        (e: unknown) => e instanceof ConfigError && /since: expected a Date/.test(e.message),
      );
      await assert.rejects(
        q.list({ until: new Date("not a date") }),
        (e: unknown) => e instanceof ConfigError && /until: expected a Date/.test(e.message),
      );
    },
  },
  {
    name: "cancel ends a queued task cancelled, and wait throws TaskCancelledError",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(echo, [1], { queue: "nobody-serves-this" });
      const scheduled = await q.enqueue(echo, [2], { delay: "1h" });
      assert.equal(await q.cancel(id), true);
      assert.equal(await q.cancel(scheduled), true);
      for (const taskId of [id, scheduled]) {
        const record = await q.get(taskId);
        assert.equal(record?.state, "cancelled");
        assert.ok(record.completedAt instanceof Date);
        assert.equal((await q.result(taskId))?.state, "cancelled");
        await assert.rejects(q.wait(taskId), TaskCancelledError);
        assert.equal((await typesOf(q, taskId)).at(-1), "cancelled");
      }
      assert.equal(await q.cancel(id), false, "a second cancel changes nothing");
      assert.equal(await q.cancel("no-such-task"), false);
    },
  },
  {
    name: "cancel of a final task returns false and changes nothing",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(echo, ["done"]);
      await q.run({ until: "idle" });
      assert.equal(await q.cancel(id), false);
      assert.equal((await q.get(id))?.state, "completed");
      assert.equal((await q.result(id))?.state, "completed");
      assert.equal(await q.wait(id), "done");
    },
  },
  {
    name: "cancel of a running task aborts its signal and discards its late outcome",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(gated, [key]);
      const w = q.worker();
      await w.start();
      const p = probe(key);
      await until("the handler to run", () => p.calls === 1);
      assert.equal((await q.get(id))?.state, "running");
      assert.equal(await q.cancel(id), true);
      await until("the signal to abort", () => p.aborts.length === 1);
      assert.equal((p.aborts[0] as Error).name, "TaskCancelledError");
      assert.equal((await q.get(id))?.state, "cancelled");
      // The handler ignores its signal and returns later: that outcome must not count.
      openGate(key);
      await until("the handler to return", () => p.finished === 1);
      await w.stop();
      const record = await q.get(id);
      assert.equal(record?.state, "cancelled");
      assert.equal(record.attempts, 1);
      assert.equal((await q.result(id))?.state, "cancelled");
      await assert.rejects(q.wait(id), TaskCancelledError);
      const types = await typesOf(q, id);
      assert.deepEqual(types, ["enqueued", "started", "cancelled"]);
    },
  },
  {
    name: "retry runs a failed task again, and refuses a completed one",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(flaky, [key, 1, "second time"], { retries: 0 });
      await q.run({ until: "idle" });
      assert.equal((await q.get(id))?.state, "failed");
      assert.equal(await q.retry(id), true);
      const record = await q.get(id);
      assert.equal(record?.state, "queued");
      assert.equal(record.attempts, 0, "attempts start over");
      assert.equal(await q.result(id), undefined, "the old result is gone");
      await q.run({ until: "idle" });
      assert.equal(await q.wait(id), "second time");
      assert.equal((await q.get(id))?.attempts, 1);
      assert.equal(await q.retry(id), false, "a completed task is not retried");
      assert.equal((await q.get(id))?.state, "completed");
      assert.equal(await q.retry("no-such-task"), false);
      const queued = await q.enqueue(echo, ["was cancelled"], { queue: "nobody-serves-this" });
      assert.equal(await q.retry(queued), false, "a live task is not retried");
      await q.cancel(queued);
      assert.equal(await q.retry(queued), true, "a cancelled task can be retried");
      await q.run({ until: "idle", queues: ["nobody-serves-this"] });
      assert.equal(await q.wait(queued), "was cancelled");
      const events = await eventsOf(q, id);
      assert.deepEqual(events.map((e) => e.type), [
        "enqueued",
        "started",
        "failed",
        "enqueued",
        "started",
        "completed",
      ]);
    },
  },
  {
    name: "stats count tasks per state and queue",
    async fn({ open, key }) {
      await using q = await open();
      const empty = await q.stats();
      assert.equal(empty.total.queued, 0);
      assert.equal(empty.total.completed, 0);
      const a = [
        await q.enqueue(echo, [1], { queue: "a" }),
        await q.enqueue(echo, [2], { queue: "a" }),
        await q.enqueue(echo, [3], { queue: "a" }),
      ];
      await q.enqueue(echo, [4], { queue: "b" });
      await q.enqueue(fail, [`stats ${key}`], { queue: "b", retries: 0 });
      await q.enqueue(echo, [5], { queue: "b", delay: "1h" });
      await q.cancel(a[2]);
      await q.run({ until: "idle", queues: ["b"] });
      const stats = await q.stats();
      assert.deepEqual(
        { ...stats.total },
        {
          waiting: 0,
          scheduled: 1,
          queued: 2,
          running: 0,
          completed: 1,
          failed: 1,
          cancelled: 1,
          expired: 0,
        },
      );
      assert.equal(stats.queues.a.queued, 2);
      assert.equal(stats.queues.a.cancelled, 1);
      assert.equal(stats.queues.a.completed, 0);
      assert.equal(stats.queues.b.completed, 1);
      assert.equal(stats.queues.b.failed, 1);
      assert.equal(stats.queues.b.scheduled, 1);
      assert.equal(stats.queues.b.queued, 0);
    },
  },
  {
    name: "list filters by state, queue and task, with limit and offset, oldest first",
    async fn({ open, key }) {
      await using q = await open();
      const a = [];
      for (let i = 0; i < 4; i++) a.push(await q.enqueue(echo, [i], { queue: "a" }));
      const b = await q.enqueue(fail, [`list ${key}`], { queue: "b", retries: 0 });
      await q.run({ until: "idle", queues: ["b"] });
      const ids = (records: { id: string }[]) => records.map((r) => r.id);
      assert.deepEqual(ids(await q.list()), [...a, b]);
      assert.deepEqual(ids(await q.list({ queue: "a" })), a);
      assert.deepEqual(ids(await q.list({ state: "failed" })), [b]);
      assert.deepEqual(ids(await q.list({ state: ["failed", "queued"] })), [...a, b]);
      assert.deepEqual(ids(await q.list({ task: fail.name })), [b]);
      assert.deepEqual(ids(await q.list({ task: echo.name, state: "failed" })), []);
      assert.deepEqual(ids(await q.list({ queue: "a", limit: 2 })), a.slice(0, 2));
      assert.deepEqual(ids(await q.list({ queue: "a", limit: 2, offset: 1 })), a.slice(1, 3));
      assert.deepEqual(ids(await q.list({ queue: "a", offset: 3 })), a.slice(3));
      const [record] = await q.list({ state: "failed" });
      assert.equal(record.task, fail.name);
      assert.equal(record.error?.name, "CustomError");
      assert.deepEqual(record.args, [`list ${key}`]);
    },
  },
  {
    name: "calls after close throw OmniQError, and close is idempotent",
    async fn({ open }) {
      const q = await open();
      const id = await q.enqueue(echo, [1]);
      const w = q.worker();
      await w.start();
      await q.wait(id, { timeout: "5s" });
      await q.close(); // stops the running worker too
      await q.close();
      await assert.rejects(q.enqueue(echo, [2]), OmniQError);
      await assert.rejects(q.get(id), OmniQError);
      await assert.rejects(q.result(id), OmniQError);
      await assert.rejects(q.wait(id), OmniQError);
      await assert.rejects(q.stats(), OmniQError);
      await assert.rejects(q.cancel(id), OmniQError);
      await assert.rejects(q.run({ until: "idle" }), OmniQError);
      assert.throws(() => q.worker(), OmniQError);
      assert.throws(() => q.on("completed", () => {}), OmniQError);
    },
  },
  {
    name: "await using closes the queue",
    async fn({ open }) {
      let escaped;
      {
        await using q = await open();
        escaped = q;
        await q.enqueue(echo, [1]);
      }
      await assert.rejects(escaped.stats(), OmniQError);
    },
  },
];
