// Lifecycle events: their order, queries, listeners, tailing, and progress.

import assert from "node:assert/strict";
import type { EventRecord } from "../../mod.ts";
import { type Case, collect, eventsOf, sleep as pause, until } from "./harness.ts";
import { echo, progress } from "./tasks.ts";

export const eventCases: Case[] = [
  {
    name: "a task's events tell its lifecycle in order",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(echo, [1], { queue: "events" });
      const other = await q.enqueue(echo, [2], { queue: "events" });
      await q.run({ until: "idle", queues: ["events"] });
      const events = await eventsOf(q, id);
      assert.deepEqual(events.map((e) => e.type), ["enqueued", "started", "completed"]);
      let previous = 0;
      for (const e of events) {
        assert.equal(e.taskId, id);
        assert.equal(e.queue, "events");
        assert.equal(typeof e.id, "string");
        assert.ok(e.at instanceof Date);
        assert.ok(e.at.getTime() >= previous, "events are in time order");
        previous = e.at.getTime();
      }
      assert.equal(events[1].attempt, 1);
      assert.equal(events[2].attempt, 1);
      assert.ok((await eventsOf(q, other)).every((e) => e.taskId === other));
    },
  },
  {
    name: "events filter by type, queue, time range, limit and after",
    async fn({ open }) {
      await using q = await open();
      const a = await q.enqueue(echo, ["a"], { queue: "qa" });
      await q.run({ until: "idle", queues: ["qa"] });
      await pause(3);
      const middle = Date.now();
      await pause(3);
      const b = await q.enqueue(echo, ["b"], { queue: "qb" });
      await q.run({ until: "idle", queues: ["qb"] });
      const list = (filter: Parameters<typeof q.events>[0]) => collect(q.events(filter));
      const all = await list({});
      assert.deepEqual(all.map((e) => [e.taskId, e.type]), [
        [a, "enqueued"],
        [a, "started"],
        [a, "completed"],
        [b, "enqueued"],
        [b, "started"],
        [b, "completed"],
      ]);
      const completed = await list({ type: "completed" });
      assert.deepEqual(completed.map((e) => e.taskId), [a, b]);
      const two = await list({ type: ["enqueued", "completed"], queue: "qb" });
      assert.deepEqual(two.map((e) => e.type), ["enqueued", "completed"]);
      assert.ok((await list({ queue: "qa" })).every((e) => e.taskId === a));
      assert.equal((await list({ queue: "qa" })).length, 3);
      assert.deepEqual((await list({ since: middle })).map((e) => e.taskId), [b, b, b]);
      assert.deepEqual((await list({ until: new Date(middle) })).map((e) => e.taskId), [a, a, a]);
      assert.deepEqual(
        (await list({ since: new Date(middle), type: "started" })).map((e) => e.taskId),
        [b],
      );
      assert.deepEqual(await list({ limit: 2 }), all.slice(0, 2));
      assert.deepEqual(await list({ after: all[2].id }), all.slice(3));
      assert.deepEqual(await list({ after: all[1].id, limit: 2 }), all.slice(2, 4));
      assert.deepEqual(await list({ taskId: "no-such-task" }), []);
    },
  },
  {
    name: "on calls a listener for events in this process until it unsubscribes",
    async fn({ open }) {
      await using q = await open();
      const seen: EventRecord[] = [];
      const everything: EventRecord[] = [];
      const off = q.on("completed", (e) => seen.push(e));
      const offAll = q.on("*", (e) => everything.push(e));
      assert.equal(typeof off, "function");
      const first = await q.enqueue(echo, [1]);
      await q.run({ until: "idle" });
      await until("the completed event", () => seen.some((e) => e.taskId === first));
      assert.ok(seen.every((e) => e.type === "completed" && e.taskId === first));
      await until("every event", () => everything.filter((e) => e.taskId === first).length >= 3);
      assert.deepEqual(
        [...new Set(everything.filter((e) => e.taskId === first).map((e) => e.type))],
        ["enqueued", "started", "completed"],
      );
      off();
      offAll();
      const second = await q.enqueue(echo, [2]);
      await q.run({ until: "idle" });
      await pause(60); // a few poll intervals: nothing may arrive after unsubscribing
      assert.ok(!seen.some((e) => e.taskId === second));
      assert.ok(!everything.some((e) => e.taskId === second));
    },
  },
  {
    name: "events with follow yields events that arrive later and ends on abort",
    async fn({ open }) {
      await using q = await open();
      const before = await q.enqueue(echo, ["before"]);
      await q.run({ until: "idle" });
      const abort = new AbortController();
      const seen: EventRecord[] = [];
      const tail = (async () => {
        for await (const e of q.events({ type: "completed", follow: true, signal: abort.signal })) {
          seen.push(e);
        }
      })();
      await until("the stored event", () => seen.length === 1);
      assert.equal(seen[0].taskId, before);
      const later = await q.enqueue(echo, ["later"]);
      await q.run({ until: "idle" });
      await until("the later event", () => seen.some((e) => e.taskId === later));
      abort.abort();
      await tail;
      assert.deepEqual(seen.map((e) => e.taskId), [before, later]);
    },
  },
  {
    name: "progress reported by a handler is stored and sent as an event",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(progress, [[0.5]]);
      assert.equal((await q.get(id))?.progress, undefined);
      await q.run({ until: "idle" });
      assert.equal(await q.wait(id), 1);
      assert.equal((await q.get(id))?.progress, 0.5);
      const events = await eventsOf(q, id);
      assert.deepEqual(events.map((e) => e.type), ["enqueued", "started", "progress", "completed"]);
      assert.equal(events[2].data?.progress, 0.5);
      assert.equal(events[2].attempt, 1);
      // Reports in quick succession are throttled, but the latest one is always stored.
      const many = await q.enqueue(progress, [[0.1, 0.2, 0.3, 0.9]]);
      await q.run({ until: "idle" });
      assert.equal((await q.get(many))?.progress, 0.9);
      const reported = (await eventsOf(q, many)).filter((e) => e.type === "progress");
      assert.ok(reported.length >= 1 && reported.length <= 4);
      assert.equal(reported.at(-1)?.data?.progress, 0.9);
    },
  },
];
