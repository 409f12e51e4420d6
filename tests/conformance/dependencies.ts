// Dependencies: a dependent waits, reads its dependencies' results, and is cancelled (or
// run anyway) when one fails; unknown dependencies and cycles are refused.

import assert from "node:assert/strict";
import { OmniQError, TaskCancelledError } from "../../mod.ts";
import { type Case, eventsOf, totalTasks } from "./harness.ts";
import { dependencies, echo, fail } from "./tasks.ts";

export const dependencyCases: Case[] = [
  {
    name: "a dependent waits for its dependency, then runs and reads its result",
    async fn({ open }) {
      await using q = await open();
      const a = await q.enqueue(echo, [{ n: 42 }], { queue: "deps-a" });
      const b = await q.enqueue(dependencies, [], { dependsOn: [a] });
      assert.equal((await q.get(b))?.state, "waiting");
      assert.deepEqual((await q.get(b))?.dependsOn, [a]);
      await q.run({ until: "idle" });
      assert.equal((await q.get(b))?.state, "waiting", "not run while its dependency is queued");
      await q.run({ until: "idle", queues: ["deps-a", "default"] });
      assert.equal((await q.get(a))?.state, "completed");
      assert.deepEqual(await q.wait(b), [[a, { n: 42 }]]);
      const types = (await eventsOf(q, b)).map((e) => e.type);
      assert.deepEqual(types, ["enqueued", "enqueued", "started", "completed"]);
    },
  },
  {
    name: "a failed dependency cancels its dependents, naming the dependency",
    async fn({ open, key }) {
      await using q = await open();
      const a = await q.enqueue(fail, [`dep ${key}`], { retries: 0 });
      const b = await q.enqueue(echo, ["b"], { dependsOn: [a] });
      const c = await q.enqueue(echo, ["c"], { dependsOn: [b] });
      await q.run({ until: "idle" });
      assert.equal((await q.get(a))?.state, "failed");
      for (const [id, cause] of [[b, a], [c, b]]) {
        const record = await q.get(id);
        assert.equal(record?.state, "cancelled");
        assert.equal(record.attempts, 0, "it never ran");
        await assert.rejects(q.wait(id), TaskCancelledError);
        const cancelled = (await eventsOf(q, id)).find((e) => e.type === "cancelled");
        assert.ok(cancelled, "a cancelled event");
        assert.equal(cancelled.data?.dependency, cause);
        assert.match(String(cancelled.data?.reason), new RegExp(cause));
      }
      // A dependent enqueued after its dependency failed is cancelled at once.
      const late = await q.enqueue(echo, ["late"], { dependsOn: [a] });
      assert.equal((await q.get(late))?.state, "cancelled");
    },
  },
  {
    name: 'onDependencyFailure: "run" runs the dependent anyway',
    async fn({ open, key }) {
      await using q = await open();
      const a = await q.enqueue(fail, [`dep-run ${key}`], { retries: 0 });
      const ok = await q.enqueue(echo, ["ok"]);
      const b = await q.enqueue(dependencies, [], {
        dependsOn: [a, ok],
        onDependencyFailure: "run",
      });
      assert.equal((await q.get(b))?.state, "waiting");
      await q.run({ until: "idle" });
      assert.equal((await q.get(a))?.state, "failed");
      assert.deepEqual(await q.wait(b), [[ok, "ok"]], "only completed dependencies have results");
    },
  },
  {
    name: "an unknown dependency or a cycle is refused at enqueue and nothing is stored",
    async fn({ open, key }) {
      await using q = await open();
      await assert.rejects(
        q.enqueue(echo, [1], { dependsOn: [`missing-${key}`] }),
        (e: Error) =>
          e instanceof OmniQError && /dependsOn/.test(e.message) && e.message.includes(key),
      );
      assert.equal(await totalTasks(q), 0);
      await assert.rejects(
        q.enqueueMany([
          { task: echo, args: [1], id: `x-${key}`, dependsOn: [`y-${key}`] },
          { task: echo, args: [2], id: `y-${key}`, dependsOn: [`x-${key}`] },
        ]),
        OmniQError,
      );
      await assert.rejects(
        q.enqueue(echo, [1], { id: `self-${key}`, dependsOn: [`self-${key}`] }),
        OmniQError,
      );
      assert.equal(await totalTasks(q), 0, "a refused batch stores nothing");
      // A dependency earlier in the same batch is fine.
      const [first, second] = await q.enqueueMany([
        { task: echo, args: ["first"], id: `first-${key}` },
        { task: dependencies, args: [], dependsOn: [`first-${key}`] },
      ]);
      assert.equal((await q.get(second))?.state, "waiting");
      await q.run({ until: "idle" });
      assert.deepEqual(await q.wait(second), [[first, "first"]]);
    },
  },
  {
    name: "a dependency already completed does not hold its dependent",
    async fn({ open }) {
      await using q = await open();
      const a = await q.enqueue(echo, ["a"]);
      await q.run({ until: "idle" });
      const b = await q.enqueue(dependencies, [], { dependsOn: [a] });
      assert.equal((await q.get(b))?.state, "queued");
      await q.run({ until: "idle" });
      assert.deepEqual(await q.wait(b), [[a, "a"]]);
    },
  },
  {
    name: "cancelling a waiting task cancels its dependents",
    async fn({ open }) {
      await using q = await open();
      const a = await q.enqueue(echo, ["a"], { queue: "nobody-serves-this" });
      const b = await q.enqueue(echo, ["b"], { dependsOn: [a] });
      const c = await q.enqueue(echo, ["c"], { dependsOn: [b] });
      assert.equal(await q.cancel(b), true);
      assert.equal((await q.get(b))?.state, "cancelled");
      assert.equal((await q.get(c))?.state, "cancelled");
      await assert.rejects(q.wait(c), TaskCancelledError);
      assert.equal((await q.get(a))?.state, "queued", "a dependency is not touched");
    },
  },
];
