// Groups and rate limits: at most groupConcurrency tasks of a group run at once across every
// handle on the store, groups are claimed round-robin so one backlog cannot starve another, a
// rate limit holds across handles without holding up other lanes, and bad options are
// refused.

import assert from "node:assert/strict";
import { ConfigError } from "../../mod.ts";
import {
  type Case,
  collect,
  ghostClaim,
  mostAtOnce,
  mostStartsWithin,
  totalTasks,
  until,
} from "./harness.ts";
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
    name: "a rate limit holds across two handles, and a limited key does not hold up another",
    async fn({ open, key }) {
      await using a = await open();
      await using b = await open();
      const limit = { limit: 2, per: "300ms", key: (k: string) => k };
      const slow = Array.from({ length: 6 }, (_, i) => ({
        task: track,
        args: [key, `slow${i}`, 0],
        rateLimit: { ...limit, key: () => "slow" },
      }));
      const fast = Array.from({ length: 3 }, (_, i) => ({
        task: track,
        args: [key, `fast${i}`, 0],
        rateLimit: { ...limit, limit: 10, key: () => "fast" },
      }));
      const ids = await a.enqueueMany([...slow, ...fast]);
      assert.deepEqual((await a.get(ids[0]))?.rateLimit, { key: "k:slow", limit: 2, per: 300 });
      const t0 = Date.now();
      const workers = [a.worker({ concurrency: 4 }), b.worker({ concurrency: 4 })];
      for (const w of workers) await w.start();
      await until("every task to run", () => probe(key).order.length === 9, 10_000);
      for (const w of workers) await w.stop();
      const order = probe(key).order;
      assert.ok(
        order.slice(0, 5).filter((l) => l.startsWith("fast")).length === 3,
        `the fast key ran first, not held up by the slow one: ${order}`,
      );
      const events = await collect(a.events({ type: "started", limit: 1_000 }));
      const slowIds = new Set(ids.slice(0, 6));
      const slowStarts = events.filter((e) => slowIds.has(e.taskId!));
      assert.equal(slowStarts.length, 6);
      const most = mostStartsWithin(slowStarts, 300);
      assert.ok(most <= 2, `${most} of the slow key started within 300 ms`);
      assert.ok(Date.now() - t0 >= 600, "six at two per 300 ms take at least two windows");
    },
  },
  {
    name: "a queue's rate limit without a key or group is the queue's; a group's is the group's",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(echo, [1], { rateLimit: { limit: 5, per: "1s" } });
      assert.deepEqual((await q.get(id))?.rateLimit, { key: "q:default", limit: 5, per: 1_000 });
      const g = await q.enqueue(echo, [2], {
        group: `${key}-g`,
        groupConcurrency: 3,
        rateLimit: { limit: 1, per: "1m" },
      });
      assert.deepEqual((await q.get(g))?.rateLimit, { key: `g:${key}-g`, limit: 1, per: 60_000 });
      const g2 = await q.enqueue(echo, [3], {
        group: `${key}-g`,
        groupConcurrency: 3,
        rateLimit: { limit: 1, per: "1m" },
      });
      await q.run({ until: "idle" });
      assert.equal((await q.get(id))?.state, "completed");
      assert.equal((await q.get(g))?.state, "completed");
      assert.equal((await q.get(g2))?.state, "queued", "one start a minute for the group");
      await q.cancel(g2);
    },
  },
  {
    name: "bad rate limits are refused at enqueue and store nothing",
    async fn({ open }) {
      await using q = await open();
      const bad: [Record<string, unknown>, RegExp][] = [
        [{ rateLimit: { limit: 0, per: "1s" } }, /rateLimit\.limit: expected an integer from 1/],
        [{ rateLimit: { limit: -3, per: "1s" } }, /rateLimit\.limit/],
        [{ rateLimit: { limit: 2, per: 0 } }, /rateLimit\.per: expected a duration over 0/],
        [{ rateLimit: { limit: 2 } }, /rateLimit\.per/],
        [{ rateLimit: { limit: 2, per: "1s", extra: 1 } }, /rateLimit\.extra: unknown option/],
        [{ rateLimit: 5 }, /rateLimit: expected \{ limit, per, key\? \}/],
        [
          {
            rateLimit: {
              limit: 2,
              per: "1s",
              key: () => {
                throw new Error("no key");
              },
            },
          },
          /rateLimit\.key: the key function threw: no key/,
        ],
        [{ rateLimit: { limit: 2, per: "1s", key: () => 7 } }, /rateLimit\.key: expected the key/],
        [{ rateLimit: { limit: 2, per: "1s", key: "k" } }, /rateLimit\.key: expected a function/],
        [
          { group: "g", rateLimit: { limit: 2, per: "1s", key: () => "k" } },
          /rateLimit\.key, group: give one of them/,
        ],
      ];
      for (const [options, message] of bad) {
        await assert.rejects(
          q.enqueue(echo, [1], options),
          (e: Error) => e instanceof ConfigError && message.test(e.message),
          String(message),
        );
      }
      assert.equal(await totalTasks(q), 0);
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
