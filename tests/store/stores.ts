// Store-level cases of the companion stores: the events a queue writes inline and the event
// store's queries over them, a detached queue that hands results and events back as
// effects, and the result and event stores on their own.

import assert from "node:assert/strict";
import type { StoredEvent, StoredResult } from "../../src/backend.ts";
import { newTask, type StoreCase, WORKER } from "./harness.ts";

/** The result- and event-store cases. */
export const storeCases: StoreCase[] = [
  {
    name: "inline events carry ids that the event store returns",
    async fn({ backend: b }) {
      const { effects } = await b.queue.enqueue([
        newTask("e1"),
        newTask("e2", { runAt: Date.now() + 60_000 }),
      ]);
      const claimed = await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER });
      const inline = [...effects.events, ...claimed.effects.events] as StoredEvent[];
      assert.ok(inline.every((e) => typeof e.id === "string"));
      assert.deepEqual(await b.events.query({}), inline);
      assert.deepEqual(inline.map((e) => e.type), ["enqueued", "scheduled", "started"]);
      assert.deepEqual(await b.events.query({ taskId: "e1", type: "started" }), [inline[2]]);
      assert.deepEqual(await b.events.query({ after: inline[0].id, limit: 1 }), [inline[1]]);
      assert.deepEqual(
        await b.events.query({ type: ["scheduled", "started"], queue: "default" }),
        [inline[1], inline[2]],
      );
      assert.deepEqual(await b.events.query({ since: inline[2].at + 1 }), []);
      assert.deepEqual(await b.events.query({ until: inline[0].at }), []);
    },
  },
  {
    name: "detached stores get results and events back as effects",
    attach: { results: false, events: false },
    async fn({ backend: b }) {
      const { effects } = await b.queue.enqueue([newTask("d1"), newTask("d2", { resultTtl: 10 })]);
      assert.ok(effects.events.every((e) => !("id" in e)));
      const [d1] = (await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER })).tasks;
      const done = await b.queue.complete("d1", d1.token, {
        taskId: "d1",
        state: "completed",
        completedAt: Date.now(),
      });
      assert.deepEqual(done?.results, []);
      assert.deepEqual(done?.events.map((e) => e.type), ["completed"]);
      const cancelled = await b.queue.cancel("d2", "bye");
      assert.equal(cancelled?.results.length, 1);
      assert.equal(cancelled?.results[0].state, "cancelled");
      assert.equal(cancelled?.results[0].expiresAt, cancelled!.results[0].completedAt + 10);
      assert.deepEqual(await b.events.query({}), []);
      assert.equal(await b.results.get("d1"), undefined);
      assert.equal(await b.results.get("d2"), undefined);
    },
  },
  {
    name: "result and event stores",
    async fn({ backend: b }) {
      const now = Date.now();
      const keep: StoredResult = {
        taskId: "k",
        state: "completed",
        value: new Uint8Array([4]),
        completedAt: now,
      };
      const gone: StoredResult = {
        taskId: "g",
        state: "failed",
        error: { name: "E", message: "m" },
        completedAt: now,
        expiresAt: now - 1,
      };
      await b.results.put([keep, gone]);
      assert.deepEqual(await b.results.get("k"), keep);
      assert.equal(await b.results.get("g"), undefined, "an expired result is not returned");
      await b.results.put([{ ...keep, value: new Uint8Array([5]) }]);
      assert.deepEqual((await b.results.get("k"))?.value, new Uint8Array([5]));
      assert.equal(await b.results.sweep(now), 1);
      await b.results.delete(["k"]);
      assert.equal(await b.results.get("k"), undefined);

      const stored = await b.events.append([
        { type: "schedule_fired", at: now - 10, data: { scheduleId: "s" } },
        { type: "enqueued", taskId: "t", queue: "q", at: now, attempt: 1 },
      ]);
      assert.equal(stored.length, 2);
      assert.notEqual(stored[0].id, stored[1].id, "each event gets its own id");
      assert.deepEqual(await b.events.query({}), stored);
      assert.deepEqual(await b.events.query({ after: stored[0].id }), [stored[1]]);
      assert.equal(await b.events.sweep(now), 1);
      assert.deepEqual(await b.events.query({}), [stored[1]]);
    },
  },
];
