// Several OmniQ handles on one store, the way several processes share a database: work
// and events cross handles through the store alone (no in-process wake-ups), claims are
// exclusive, and a cancel reaches a handler running under another handle through its lease.

import assert from "node:assert/strict";
import type { EventRecord } from "../../mod.ts";
import { type Case, collect, typesOf, until } from "./harness.ts";
import { echo, gated, openGate, probe, track } from "./tasks.ts";

export const sharingCases: Case[] = [
  {
    name: "a worker runs tasks enqueued through another handle on the same store",
    async fn({ open }) {
      await using runner = await open();
      await using client = await open();
      const w = runner.worker();
      await w.start();
      const id = await client.enqueue(echo, ["across"]);
      assert.equal(await client.wait(id, { timeout: "5s" }), "across");
      await w.stop();
      assert.equal((await runner.get(id))?.state, "completed");
    },
  },
  {
    name: "on delivers events that another handle caused",
    async fn({ open }) {
      await using watcher = await open();
      await using other = await open();
      const seen: EventRecord[] = [];
      const off = watcher.on("completed", (e) => seen.push(e));
      const id = await other.enqueue(echo, [1]);
      await other.run({ until: "idle" });
      await until("the other handle's event", () => seen.some((e) => e.taskId === id), 5_000);
      off();
      assert.equal(seen[0].type, "completed");
    },
  },
  {
    name: "a cancel through another handle aborts the running handler through its lease",
    async fn({ open, key }) {
      await using runner = await open();
      await using client = await open();
      const id = await client.enqueue(gated, [key]);
      const w = runner.worker({ lease: "150ms" });
      await w.start();
      const p = probe(key);
      await until("the handler to run", () => p.calls === 1);
      assert.equal(await client.cancel(id), true);
      // The runner learns of it when its lease renewal is refused.
      await until("the signal to abort", () => p.aborts.length === 1, 5_000);
      openGate(key);
      await until("the handler to return", () => p.finished === 1);
      await w.stop();
      assert.equal((await client.get(id))?.state, "cancelled");
      assert.equal((await client.result(id))?.state, "cancelled");
      assert.deepEqual(await typesOf(client, id), ["enqueued", "started", "cancelled"]);
    },
  },
  {
    name: "two workers on one store run each task exactly once",
    async fn({ open, key }) {
      await using a = await open();
      await using b = await open();
      const ids = await a.enqueueMany(
        Array.from({ length: 40 }, (_, i) => ({ task: track, args: [key, `t${i}`, 5] })),
      );
      await Promise.all([
        a.run({ until: "idle", concurrency: 4 }),
        b.run({ until: "idle", concurrency: 4 }),
      ]);
      const order = probe(key).order;
      assert.equal(order.length, 40, "every task ran once");
      assert.equal(new Set(order).size, 40, "no task ran twice");
      for (const id of ids) {
        const record = await b.get(id);
        assert.equal(record?.state, "completed");
        assert.equal(record.attempts, 1);
      }
      const completed = await collect(a.events({ type: "completed" }));
      assert.equal(completed.length, 40);
    },
  },
];
