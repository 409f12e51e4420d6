// Groups: at most groupConcurrency tasks of a group run at once across every handle on the
// store, groups are claimed round-robin so one backlog cannot starve another, and bad group
// options are refused.

import assert from "node:assert/strict";
import { ConfigError } from "../../mod.ts";
import { type Case, collect, ghostClaim, mostAtOnce, totalTasks } from "./harness.ts";
import { echo, probe, track } from "./tasks.ts";

export const groupCases: Case[] = [
  {
    name: "at most groupConcurrency tasks of a group run at once, across two handles",
    async fn({ open, key }) {
      await using a = await open();
      await using b = await open();
      const group = `${key}-tenant`;
      const ids = await a.enqueueMany(
        Array.from({ length: 8 }, (_, i) => ({
          task: track,
          args: [key, `t${i}`, 25],
          group,
          groupConcurrency: 2,
        })),
      );
      assert.equal((await a.get(ids[0]))?.group, group);
      assert.equal((await a.get(ids[0]))?.groupConcurrency, 2);
      await Promise.all([
        a.run({ until: "idle", concurrency: 4 }),
        b.run({ until: "idle", concurrency: 4 }),
      ]);
      assert.equal(probe(key).order.length, 8);
      assert.ok(probe(key).maxActive <= 2, `${probe(key).maxActive} ran at once`);
      const events = await collect(a.events({ type: ["started", "completed"], limit: 1_000 }));
      const { most, points } = mostAtOnce(events);
      assert.equal(points, 16);
      assert.ok(most <= 2, `the event log shows ${most} at once`);
    },
  },
  {
    name: "groups are claimed round-robin: a large backlog does not starve a small group",
    async fn({ open, key }) {
      await using q = await open();
      await q.enqueueMany(
        Array.from({ length: 20 }, (_, i) => ({
          task: track,
          args: [key, `big${i}`, 0],
          group: `${key}-big`,
          groupConcurrency: 5,
        })),
      );
      await q.enqueueMany(
        Array.from({ length: 3 }, (_, i) => ({
          task: track,
          args: [key, `small${i}`, 0],
          group: `${key}-small`,
          groupConcurrency: 5,
        })),
      );
      await q.run({ until: "idle", concurrency: 1 });
      const order = probe(key).order;
      assert.equal(order.length, 23);
      const lastSmall = order.lastIndexOf("small2");
      assert.ok(lastSmall <= 6, `the small group's last task ran at ${lastSmall}: ${order}`);
      assert.deepEqual(
        order.filter((l) => l.startsWith("big")),
        Array.from({ length: 20 }, (_, i) => `big${i}`),
        "FIFO within a group",
      );
    },
  },
  {
    name: "a group at its limit is skipped while its task runs; other groups and ungrouped run",
    async fn({ open, key }) {
      await using q = await open();
      const held = await q.enqueue(echo, ["held"], { group: "solo" });
      const ghost = await ghostClaim(q, 60_000);
      assert.equal(ghost.id, held);
      const waiting = await q.enqueue(echo, ["next"], { group: "solo" });
      const other = await q.enqueue(echo, ["other"], { group: `${key}-other` });
      const plain = await q.enqueue(echo, ["plain"]);
      await q.run({ until: "idle" });
      assert.equal((await q.get(other))?.state, "completed");
      assert.equal((await q.get(plain))?.state, "completed");
      assert.equal((await q.get(waiting))?.state, "queued", "its group is at its limit");
      await q.stores.queue.complete(held, ghost.token, {
        taskId: held,
        state: "completed",
        completedAt: Date.now(),
      });
      await q.run({ until: "idle" });
      assert.equal(await q.wait(waiting, { timeout: "5s" }), "next");
    },
  },
  {
    name: "bad group options are refused and store nothing",
    async fn({ open }) {
      await using q = await open();
      const bad: [Record<string, unknown>, RegExp][] = [
        [{ group: "" }, /group: expected a non-empty string/],
        [{ group: "a\nb" }, /group: control characters are not allowed/],
        [{ group: "x".repeat(257) }, /group: expected at most 256 characters/],
        [{ group: 7 }, /group: expected a non-empty string/],
        [{ group: "g", groupConcurrency: 0 }, /groupConcurrency: expected an integer from 1/],
        [{ group: "g", groupConcurrency: 1.5 }, /groupConcurrency/],
        [{ groupConcurrency: 2 }, /groupConcurrency: needs a group/],
      ];
      for (const [options, message] of bad) {
        await assert.rejects(
          q.enqueue(echo, [1], options),
          (e: Error) => e instanceof ConfigError && message.test(e.message),
          JSON.stringify(options),
        );
      }
      assert.equal(await totalTasks(q), 0);
    },
  },
];
