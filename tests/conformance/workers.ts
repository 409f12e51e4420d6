// Workers: graceful stop, concurrency, and what a handler sees through taskContext().

import assert from "node:assert/strict";
import { OmniQError, taskContext } from "../../mod.ts";
import { type Case, collect, mostAtOnce, typesOf, until } from "./harness.ts";
import { context, echo, gated, openGate, probe, sleep, track } from "./tasks.ts";

export const workerCases: Case[] = [
  {
    name: "stop waits for running tasks to finish and claims nothing more",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(sleep, [300, key]);
      const w = q.worker({ concurrency: 1 });
      await w.start();
      await until("the task to start", () => probe(key).calls === 1);
      const next = await q.enqueue(echo, ["next"]);
      await w.stop();
      assert.equal(probe(key).finished, 1, "the handler ran to its end");
      assert.equal(probe(key).aborts.length, 0, "its signal did not abort");
      assert.equal((await q.get(id))?.state, "completed");
      assert.equal((await q.result(id))?.state, "completed");
      assert.equal(await q.wait(id), 300);
      const record = await q.get(next);
      assert.equal(record?.state, "queued", "a stopped worker claims nothing more");
      assert.equal(record.attempts, 0);
      assert.equal(w.active, 0);
    },
  },
  {
    name: "a worker runs at most `concurrency` tasks at once",
    async fn({ open, key }) {
      await using q = await open();
      const ids = await q.enqueueMany(
        Array.from({ length: 20 }, (_, i) => ({ task: track, args: [key, `t${i}`, 50] })),
      );
      await q.run({ until: "idle", concurrency: 5 });
      const p = probe(key);
      assert.equal(p.order.length, 20);
      assert.equal(p.maxActive, 5, "5 at once, never more");
      for (const id of ids) assert.equal((await q.get(id))?.state, "completed");
      // The event log agrees: a completion is dated when its handler returned, before a
      // task claimed into the freed slot started (its write may come after that claim).
      const { most, points } = mostAtOnce(await collect(q.events({})));
      assert.equal(points, 40);
      assert.equal(most, 5, `by the events, at most 5 at once; got ${most}`);
    },
  },
  {
    name: "taskContext gives the id, attempt, queue and signal of the running task",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(context, [key, true], {
        queue: "ctx",
        retries: 1,
        backoff: { type: "fixed", delay: 10 },
      });
      await q.run({ until: "idle", queues: ["ctx"] });
      const seen = probe(key).contexts;
      assert.equal(seen.length, 2);
      for (const [i, s] of seen.entries()) {
        assert.deepEqual(s, {
          id,
          task: context.name,
          queue: "ctx",
          attempt: i + 1,
          signalIsAbortSignal: true,
          aborted: false,
        });
      }
      assert.deepEqual(await q.wait(id), seen[1]);
    },
  },
  {
    name: "taskContext outside a handler throws",
    async fn({ open }) {
      await using q = await open();
      assert.throws(() => taskContext(), OmniQError);
      // Also after a task ran in this process: the context does not leak out of the handler.
      const id = await q.enqueue(echo, [1]);
      await q.run({ until: "idle" });
      await q.wait(id);
      assert.throws(() => taskContext(), OmniQError);
    },
  },
  {
    name: "a task still running when stop's grace ends is handed back and runs again",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(gated, [key]);
      const first = q.worker({ shutdownGrace: "50ms", lease: "200ms" });
      await first.start();
      const p = probe(key);
      await until("the handler to run", () => p.calls === 1);
      const start = Date.now();
      await first.stop();
      assert.ok(Date.now() - start < 3_000, "stop gave up after its grace");
      assert.equal(p.aborts.length, 1, "the handler's signal aborted");
      assert.notEqual((await q.get(id))?.state, "completed");
      assert.equal(await q.result(id), undefined);
      openGate(key); // attempt 1's late return must not count; attempt 2 returns at once
      const second = q.worker({ sweepInterval: "50ms" });
      await second.start();
      assert.equal(await q.wait(id, { timeout: "5s" }), "attempt-2");
      await second.stop();
      assert.equal((await q.get(id))?.attempts, 2);
      const types = await typesOf(q, id);
      assert.equal(types.filter((t) => t === "completed").length, 1);
    },
  },
];
