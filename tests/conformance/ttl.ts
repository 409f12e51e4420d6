// Time limits: task ttl, result ttl, retention of final records and of events, and the
// sweep a running worker does on its own.

import assert from "node:assert/strict";
import { TaskExpiredError } from "../../mod.ts";
import { type Case, sleep as pause, typesOf, until, untilState } from "./harness.ts";
import { echo, gated, openGate, probe } from "./tasks.ts";

export const ttlCases: Case[] = [
  {
    name: "a task not started within its ttl expires at cleanup",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(echo, [1], { ttl: "50ms", queue: "nobody-serves-this" });
      const keeps = await q.enqueue(echo, [2], { ttl: "1h", queue: "nobody-serves-this" });
      assert.ok((await q.get(id))?.expiresAt instanceof Date);
      await pause(60);
      const report = await q.cleanup();
      assert.ok(report.events >= 1);
      const record = await q.get(id);
      assert.equal(record?.state, "expired");
      assert.equal(record.attempts, 0);
      const result = await q.result(id);
      assert.equal(result?.state, "expired");
      await assert.rejects(q.wait(id), TaskExpiredError);
      assert.deepEqual(await typesOf(q, id), ["enqueued", "expired"]);
      assert.equal((await q.get(keeps))?.state, "queued", "a task within its ttl stays");
    },
  },
  {
    name: "a task past its ttl is never run",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(echo, [1], { ttl: "30ms" });
      await pause(40);
      await q.run({ until: "idle" });
      await q.cleanup();
      assert.equal((await q.get(id))?.state, "expired");
      assert.equal((await q.get(id))?.attempts, 0);
      assert.ok(!(await typesOf(q, id)).includes("started"));
      await assert.rejects(q.wait(id), TaskExpiredError);
    },
  },
  {
    name: "a result is deleted after its resultTtl",
    async fn({ open }) {
      await using q = await open();
      // Long enough to read it back on a loaded machine; then wait until it has expired.
      const id = await q.enqueue(echo, ["short"], { resultTtl: "600ms" });
      const kept = await q.enqueue(echo, ["kept"]);
      await q.run({ until: "idle" });
      const result = await q.result(id);
      assert.equal(result?.value, "short");
      assert.ok(result.expiresAt instanceof Date);
      await pause(Math.max(0, result.expiresAt.getTime() - Date.now()) + 20);
      const report = await q.cleanup();
      assert.equal(report.results, 1);
      assert.equal(await q.result(id), undefined);
      assert.equal((await q.get(id))?.state, "completed", "the task record stays");
      assert.equal((await q.result(kept))?.value, "kept");
    },
  },
  {
    name: "final task records are purged after keepCompleted",
    async fn({ open }) {
      await using q = await open({ defaults: { keepCompleted: "50ms" } });
      const done = await q.enqueue(echo, [1]);
      await q.run({ until: "idle" });
      const live = await q.enqueue(echo, [2], { queue: "nobody-serves-this" });
      assert.equal((await q.get(done))?.state, "completed");
      await pause(60);
      await q.cleanup();
      assert.equal(await q.get(done), undefined, "the final record is gone");
      assert.equal((await q.get(live))?.state, "queued", "a live task is never purged");
      const stats = await q.stats();
      assert.equal(stats.total.completed, 0);
      assert.equal(stats.total.queued, 1);
    },
  },
  {
    name: "events are deleted after eventTtl",
    async fn({ open }) {
      // An event is dated when its step starts: the TTL leaves room for a slow commit of
      // the fresh enqueue below (50 ms was too little under load: it was swept too).
      await using q = await open({ defaults: { eventTtl: "400ms" } });
      const old = await q.enqueue(echo, [1]);
      await q.run({ until: "idle" });
      assert.equal((await typesOf(q, old)).length, 3);
      await pause(450);
      const fresh = await q.enqueue(echo, [2], { queue: "nobody-serves-this" });
      const report = await q.cleanup();
      assert.equal(report.eventsDeleted, 3);
      assert.deepEqual(await typesOf(q, old), []);
      assert.deepEqual(await typesOf(q, fresh), ["enqueued"]);
    },
  },
  {
    name: "a task started within its ttl is not expired while it runs",
    async fn({ open, key }) {
      await using q = await open();
      // The worker must claim it within its ttl: 400 ms leaves room for an object store,
      // whose every step is a dozen requests.
      const id = await q.enqueue(gated, [key], { ttl: "400ms" });
      const w = q.worker();
      await w.start();
      await until("the handler to run", () => probe(key).calls === 1);
      await pause(420);
      await q.cleanup();
      assert.equal((await q.get(id))?.state, "running");
      openGate(key);
      assert.equal(await q.wait(id, { timeout: "5s" }), "attempt-1");
      await w.stop();
      assert.ok(!(await typesOf(q, id)).includes("expired"));
    },
  },
  {
    name: "retry runs an expired task, without its past ttl",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(echo, ["again"], { ttl: "30ms" });
      await pause(40);
      await q.cleanup();
      assert.equal((await q.get(id))?.state, "expired");
      assert.equal(await q.retry(id), true);
      await q.run({ until: "idle" });
      await q.cleanup();
      assert.equal((await q.get(id))?.state, "completed");
      assert.equal(await q.wait(id), "again");
    },
  },
  {
    name: "a running worker sweeps expired tasks without anyone calling cleanup",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(echo, [1], { ttl: "50ms", queue: "nobody-serves-this" });
      const w = q.worker({ sweepInterval: "30ms" });
      await w.start();
      await untilState(q, id, "expired", 5_000);
      await w.stop();
      assert.equal((await q.result(id))?.state, "expired");
      await assert.rejects(q.wait(id), TaskExpiredError);
    },
  },
];
