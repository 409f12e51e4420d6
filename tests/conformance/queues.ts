// Queue controls: a paused queue keeps its tasks until it is resumed, in every handle on the
// store; a task that spends its attempts moves to its dead-letter queue with its history; a
// task that waits past its ageAfter is raised to the top priority; throttled and debounced
// keys.

import assert from "node:assert/strict";
import { ConfigError, defineTask } from "../../mod.ts";
import {
  type Case,
  eventsOf,
  ghostClaim,
  sleep as pause,
  totalTasks,
  typesOf,
  until,
} from "./harness.ts";
import { echo, fail, flaky, gated, openGate, probe, track } from "./tasks.ts";

/** A task whose definition names a dead-letter queue. */
const inherits = defineTask("conformance.dead-lettered", () => 1, { deadLetter: "dead" });

export const queueCases: Case[] = [
  {
    name: "a paused queue keeps its tasks queued until it is resumed; other queues run",
    async fn({ open }) {
      await using q = await open();
      const held = await q.enqueue(echo, ["held"], { queue: "held" });
      const later = await q.enqueue(echo, ["later"], { queue: "held", delay: "30ms" });
      const free = await q.enqueue(echo, ["free"], { queue: "free" });
      assert.equal(await q.pauseQueue("held"), true);
      assert.equal(await q.pauseQueue("held"), false, "a second pause changes nothing");
      assert.deepEqual((await q.stats()).paused, ["held"]);
      await pause(40);
      await q.run({ until: "idle", queues: ["held", "free"] });
      assert.equal((await q.get(free))?.state, "completed");
      assert.equal((await q.get(held))?.state, "queued", "the paused queue's task stays");
      assert.equal((await q.get(later))?.state, "queued", "a due delayed task stays too");
      assert.deepEqual(await typesOf(q, held), ["enqueued"]);
      const paused = await q.events({ type: ["queue_paused", "queue_resumed"] });
      const seen: { type: string; queue?: string; taskId?: string }[] = [];
      for await (const e of paused) seen.push({ type: e.type, queue: e.queue, taskId: e.taskId });
      assert.deepEqual(seen, [{ type: "queue_paused", queue: "held", taskId: undefined }]);

      assert.equal(await q.resumeQueue("held"), true);
      assert.equal(await q.resumeQueue("held"), false, "a second resume changes nothing");
      assert.deepEqual((await q.stats()).paused, []);
      await q.run({ until: "idle", queues: ["held", "free"] });
      assert.equal(await q.wait(held, { timeout: "5s" }), "held");
      assert.equal(await q.wait(later, { timeout: "5s" }), "later");
      const types = [];
      for await (const e of q.events({ type: ["queue_paused", "queue_resumed"] })) {
        types.push(e.type);
      }
      assert.deepEqual(types, ["queue_paused", "queue_resumed"]);
    },
  },
  {
    name: "a pause through one handle holds the workers of another; a resume releases them",
    async fn({ open }) {
      await using runner = await open();
      await using admin = await open();
      assert.equal(await admin.pauseQueue("default"), true);
      assert.deepEqual((await runner.stats()).paused, ["default"], "the pause is in the store");
      const w = runner.worker();
      await w.start();
      const id = await admin.enqueue(echo, ["x"]);
      // Several polls of the running worker go by without a claim.
      await pause(150);
      assert.equal((await admin.get(id))?.state, "queued");
      assert.equal(await admin.resumeQueue("default"), true);
      assert.equal(await admin.wait(id, { timeout: "5s" }), "x");
      await w.stop();
    },
  },
  {
    name: "a pause outlives the handle that made it",
    async fn({ open }) {
      // A memory store lives while a handle is open: this one keeps it.
      await using _keeper = await open();
      const first = await open();
      await first.pauseQueue("kept");
      await first.close();
      await using second = await open();
      assert.deepEqual((await second.stats()).paused, ["kept"]);
      assert.equal(await second.resumeQueue("kept"), true);
    },
  },
  {
    name: "a task that spends its attempts moves to its dead-letter queue with its history",
    async fn({ open, key }) {
      await using q = await open();
      const id = await q.enqueue(flaky, [key, 2, "ok"], {
        retries: 1,
        backoff: { type: "fixed", delay: 10 },
        deadLetter: "dead",
      });
      assert.equal((await q.get(id))?.deadLetter, "dead");
      await q.run({ until: "idle" });
      const moved = await q.get(id);
      assert.equal(moved?.state, "queued");
      assert.equal(moved.queue, "dead");
      assert.equal(moved.attempts, 0, "its attempts start again");
      assert.equal(moved.deadLetter, undefined, "a task is dead-lettered once");
      assert.equal(moved.error?.message, "flaky failure 2", "it keeps its last error");
      assert.equal(await q.result(id), undefined, "it has no result: it did not end");
      const events = await eventsOf(q, id);
      assert.deepEqual(events.map((e) => e.type), [
        "enqueued",
        "started",
        "retrying",
        "started",
        "dead_lettered",
      ]);
      const dead = events.at(-1)!;
      assert.equal(dead.queue, "default", "the event is in the queue it left");
      assert.equal(dead.attempt, 2);
      assert.equal(dead.data?.to, "dead");
      assert.equal((dead.data?.error as { message: string }).message, "flaky failure 2");
      assert.deepEqual((await q.stats()).queues.dead?.queued, 1);

      await q.run({ until: "idle", queues: ["dead"] });
      assert.equal(await q.wait(id, { timeout: "5s" }), "ok");
      const done = await q.get(id);
      assert.equal(done?.queue, "dead");
      assert.equal(done.attempts, 1);
      assert.deepEqual(probe(key).attempts, [1, 2, 1]);
      assert.deepEqual((await typesOf(q, id)).slice(-2), ["started", "completed"]);
    },
  },
  {
    name: "a dead-lettered task that fails again in its dead-letter queue ends failed",
    async fn({ open, key }) {
      await using q = await open();
      const message = `dead ${key}`;
      const id = await q.enqueue(fail, [message], { retries: 0, deadLetter: "dead" });
      await q.run({ until: "idle", queues: ["default", "dead"] });
      const record = await q.get(id);
      assert.equal(record?.state, "failed");
      assert.equal(record.queue, "dead");
      assert.equal((await q.result(id))?.state, "failed");
      assert.deepEqual(await typesOf(q, id), [
        "enqueued",
        "started",
        "dead_lettered",
        "started",
        "failed",
      ]);
    },
  },
  {
    name: "a task that stalls on its last attempt moves to its dead-letter queue",
    async fn({ open }) {
      await using q = await open();
      const id = await q.enqueue(echo, ["again"], { retries: 0, deadLetter: "dead" });
      await ghostClaim(q, 30);
      await pause(40);
      await until("the stall to be noticed", async () => {
        await q.cleanup();
        return (await q.get(id))?.state !== "running";
      });
      const record = await q.get(id);
      assert.equal(record?.state, "queued");
      assert.equal(record.queue, "dead");
      assert.equal(record.error?.name, "StalledError");
      assert.deepEqual(await typesOf(q, id), ["enqueued", "started", "stalled", "dead_lettered"]);
      await q.run({ until: "idle", queues: ["dead"] });
      assert.equal(await q.wait(id, { timeout: "5s" }), "again");
    },
  },
  {
    name: "a task that waits past its ageAfter runs ahead of newer higher-priority work",
    async fn({ open, key }) {
      await using q = await open();
      const old = await q.enqueue(track, [key, "old", 0], { priority: 1, ageAfter: "40ms" });
      const plain = await q.enqueue(track, [key, "plain", 0], { priority: 1 });
      assert.equal((await q.get(old))?.ageAfter, 40);
      await pause(60);
      for (let i = 0; i < 3; i++) {
        await q.enqueue(track, [key, `new${i}`, 0], { priority: 5, ageAfter: "1h" });
      }
      await q.cleanup(); // a sweep, as every worker runs one each sweepInterval
      const aged = await q.get(old);
      assert.equal(aged?.priority, 9);
      assert.equal((await q.get(plain))?.priority, 1, "without ageAfter it keeps its priority");
      const events = await eventsOf(q, old);
      assert.deepEqual(events.map((e) => e.type), ["enqueued", "aged"]);
      assert.deepEqual(events[1].data, { from: 1 });
      await q.run({ until: "idle", concurrency: 1 });
      assert.deepEqual(probe(key).order, ["old", "new0", "new1", "new2", "plain"]);
      assert.equal((await q.get(plain))?.priority, 1);
    },
  },
  {
    name: "a throttled key ignores duplicates for its window, even after the task ended",
    async fn({ open, key }) {
      await using q = await open();
      const first = await q.enqueue(echo, ["first"], { key, throttle: "1s" });
      const record = await q.get(first);
      assert.ok(record?.keyUntil instanceof Date);
      assert.ok(record.keyUntil.getTime() - record.createdAt.getTime() === 1_000);
      assert.equal(await q.enqueue(echo, ["again"], { key, throttle: "1s" }), first);
      await q.run({ until: "idle" });
      assert.equal(await q.wait(first, { timeout: "5s" }), "first");
      // Ended, but within its window: a duplicate (throttled or not) gets its id.
      assert.equal(await q.enqueue(echo, ["late"], { key, throttle: "1s" }), first);
      assert.equal(await q.enqueue(echo, ["plain"], { key }), first);
      const [a, b] = await q.enqueueMany([
        { task: echo, args: ["x"], key, throttle: "1s" },
        { task: echo, args: ["y"], key: `${key}-other`, throttle: "1s" },
      ]);
      assert.equal(a, first);
      assert.notEqual(b, first);
      assert.equal(await totalTasks(q), 2);
      await until("the window to pass", () => Date.now() > record.keyUntil!.getTime() + 5);
      const next = await q.enqueue(echo, ["next"], { key, throttle: "1s" });
      assert.notEqual(next, first, "after the window, a new task");
      assert.equal(await q.enqueue(echo, ["dup"], { key }), next);
      assert.equal(await totalTasks(q), 3);
    },
  },
  {
    name: "a debounced key runs the last enqueue of a burst once, after the window",
    async fn({ open, key }) {
      await using q = await open();
      const first = await q.enqueue(echo, ["one"], { key, debounce: "150ms" });
      const due = (await q.get(first))!.runAt.getTime();
      assert.equal((await q.get(first))?.state, "scheduled");
      await pause(20);
      assert.equal(await q.enqueue(echo, ["two"], { key, debounce: "150ms" }), first);
      assert.equal(await q.enqueue(echo, ["three"], { key, debounce: "150ms" }), first);
      const record = await q.get(first);
      assert.deepEqual(record?.args, ["three"], "the last enqueue's arguments win");
      assert.ok(record.runAt.getTime() >= due + 20, "the due time moved back");
      assert.equal(await totalTasks(q), 1);
      const types = await typesOf(q, first);
      assert.deepEqual(types, ["scheduled", "debounced", "debounced"]);
      const w = q.worker();
      await w.start();
      assert.equal(await q.wait(first, { timeout: "5s" }), "three");
      // A burst within one batch merges the same way.
      const [x, y] = await q.enqueueMany([
        { task: echo, args: ["x"], key: `${key}-batch`, debounce: "1h" },
        { task: echo, args: ["y"], key: `${key}-batch`, debounce: "1h" },
      ]);
      assert.equal(x, y);
      assert.deepEqual((await q.get(x))?.args, ["y"]);
      await q.cancel(x);
      // After it ran, the key is free: the next burst makes a new task.
      const next = await q.enqueue(echo, ["four"], { key, debounce: "30ms" });
      assert.notEqual(next, first);
      assert.equal(await q.wait(next, { timeout: "5s" }), "four");
      await w.stop();
    },
  },
  {
    name: "a debounced enqueue while its key's task runs makes a new task, which takes the key",
    async fn({ open, key }) {
      await using q = await open();
      const running = await q.enqueue(gated, [key], { key, debounce: "1ms" });
      const w = q.worker();
      await w.start();
      await until("the first to run", () => probe(key).calls === 1);
      // Windows long enough that the merge below comes before the new task is due.
      const next = await q.enqueue(echo, ["after"], { key, debounce: "500ms" });
      assert.notEqual(next, running);
      assert.equal((await q.get(running))?.key, undefined, "the running task gave up its key");
      assert.equal((await q.get(next))?.key, key);
      assert.equal(await q.enqueue(echo, ["merged"], { key, debounce: "500ms" }), next);
      openGate(key);
      assert.equal(await q.wait(next, { timeout: "5s" }), "merged");
      await q.wait(running, { timeout: "5s" });
      await w.stop();
    },
  },
  {
    name: "bad queue controls and dead-letter queues are refused and store nothing",
    async fn({ open }) {
      await using q = await open();
      await assert.rejects(q.pauseQueue(""), ConfigError);
      await assert.rejects(q.resumeQueue(3 as unknown as string), ConfigError);
      await assert.rejects(
        q.enqueue(echo, [1], { deadLetter: "default" }),
        (e: Error) => e instanceof ConfigError && /deadLetter: .*differ/.test(e.message),
      );
      await assert.rejects(
        q.enqueue(echo, [1], { queue: "a", deadLetter: "a" }),
        (e: Error) => e instanceof ConfigError && /"a"/.test(e.message),
      );
      await assert.rejects(q.enqueue(echo, [1], { deadLetter: "" }), ConfigError);
      await assert.rejects(
        q.enqueue(echo, [1], { throttle: "1m" }),
        (e: Error) => e instanceof ConfigError && /throttle: needs a key/.test(e.message),
      );
      await assert.rejects(q.enqueue(echo, [1], { key: "t", throttle: 0 }), ConfigError);
      await assert.rejects(
        q.enqueue(echo, [1], { debounce: "1s" }),
        (e: Error) => e instanceof ConfigError && /debounce: needs a key/.test(e.message),
      );
      await assert.rejects(
        q.enqueue(echo, [1], { key: "d", debounce: "1s", throttle: "1s" }),
        (e: Error) => e instanceof ConfigError && /give one of them/.test(e.message),
      );
      await assert.rejects(
        q.enqueue(echo, [1], { key: "d", debounce: "1s", delay: "1s" }),
        (e: Error) => e instanceof ConfigError && /debounce: sets when/.test(e.message),
      );
      await assert.rejects(q.enqueue(echo, [1], { key: "d", debounce: -1 }), ConfigError);
      await assert.rejects(
        q.enqueue(echo, [1], { ageAfter: 0 }),
        (e: Error) =>
          e instanceof ConfigError && /ageAfter: expected a duration over 0/.test(e.message),
      );
      await assert.rejects(q.enqueue(echo, [1], { ageAfter: "-5s" }), ConfigError);
      await assert.rejects(
        q.enqueue(echo, [1], { deadLetter: 5 as unknown as string }),
        ConfigError,
      );
      assert.throws(
        () => defineTask("conformance.self-dead-letter", () => 1, { deadLetter: "default" }),
        ConfigError,
      );
      // Inherited from the definition, it does not apply to a task enqueued into that queue.
      const direct = await q.enqueue(inherits, [], { queue: "dead" });
      assert.equal((await q.get(direct))?.deadLetter, undefined);
      await q.cancel(direct);
      const stats = await q.stats();
      assert.equal(Object.values(stats.total).reduce((a, b) => a + b, 0), 1, "only the last");
      assert.deepEqual(stats.paused, []);
    },
  },
];
