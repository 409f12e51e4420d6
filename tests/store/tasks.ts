// Store-level cases of the task queue: claim order, dedupe, all-or-nothing batches, field
// round trips, fencing by token, stalls, expiry, dependencies, cancel and retry, listing,
// purging, workflow links, concurrent batches, two handles, and close.

import assert from "node:assert/strict";
import { DuplicateTaskError, OmniQError } from "../../mod.ts";
import type { StoredResult } from "../../src/backend.ts";
import type { ListOptions } from "../../src/types.ts";
import { newTask, sleep, type StoreCase, WORKER } from "./harness.ts";

/** A completed result of `taskId`, now. */
function completed(taskId: string): StoredResult {
  return { taskId, state: "completed", completedAt: Date.now() };
}

/** The task-queue cases. */
export const taskCases: StoreCase[] = [
  {
    name: "claims by queue order, then priority, then FIFO",
    async fn({ backend: b }) {
      await b.queue.enqueue([
        newTask("low-1", { queue: "low", priority: 9 }),
        newTask("high-1", { queue: "high" }),
        newTask("high-2", { queue: "high", priority: 5 }),
        newTask("high-3", { queue: "high" }),
        newTask("low-2", { queue: "low" }),
      ]);
      const first = await b.queue.claim({ queues: ["high", "low"], limit: 4, ...WORKER });
      assert.deepEqual(first.tasks.map((t) => t.id), ["high-2", "high-1", "high-3", "low-1"]);
      for (const t of first.tasks) {
        assert.equal(t.state, "running");
        assert.equal(t.attempts, 1);
        assert.equal(typeof t.token, "string");
        assert.ok(t.leaseUntil > Date.now());
      }
      const second = await b.queue.claim({ queues: ["high", "low"], limit: 4, ...WORKER });
      assert.deepEqual(second.tasks.map((t) => t.id), ["low-2"]);
      const stats = await b.queue.stats();
      assert.equal(stats.total.running, 5);
      assert.equal(stats.queues.high.running, 3);
      assert.equal(stats.queues.low.completed, 0);
    },
  },
  {
    name: "a key matching a live task returns that task instead",
    async fn({ backend: b }) {
      const one = await b.queue.enqueue([newTask("a", { key: "k" }), newTask("b", { key: "k" })]);
      assert.deepEqual(one.ids, ["a", "a"]);
      assert.deepEqual(one.created, [true, false]);
      const two = await b.queue.enqueue([newTask("c", { key: "k" })]);
      assert.deepEqual(two.ids, ["a"]);
      await b.queue.cancel("a", "stop");
      const three = await b.queue.enqueue([newTask("d", { key: "k" })]);
      assert.deepEqual(three, {
        ids: ["d"],
        created: [true],
        effects: { events: three.effects.events, results: [] },
      });
      assert.equal(await b.queue.get("b"), undefined);
    },
  },
  {
    name: "a duplicate id or an unknown dependency throws and stores nothing of the batch",
    async fn({ backend: b }) {
      await b.queue.enqueue([newTask("x")]);
      await assert.rejects(
        () => b.queue.enqueue([newTask("fresh"), newTask("x")]),
        (e: Error) => e instanceof DuplicateTaskError && e.message.includes('"x"'),
      );
      await assert.rejects(() => b.queue.enqueue([newTask("y"), newTask("y")]), DuplicateTaskError);
      await assert.rejects(
        () => b.queue.enqueue([newTask("z", { dependsOn: ["nope"] })]),
        (e: Error) => e instanceof OmniQError && e.message === 'dependsOn: no task with id "nope"',
      );
      assert.deepEqual((await b.queue.list({})).map((t) => t.id), ["x"]);
      assert.equal((await b.events.query({})).length, 1);
    },
  },
  {
    name: "stored tasks round-trip their fields",
    async fn({ backend: b }) {
      const task = newTask("full", {
        expiresAt: Date.now() + 60_000,
        timeout: 5000,
        resultTtl: 1000,
        key: "key",
        scheduleId: "s1",
        payload: new Uint8Array([9, 8, 7]),
      });
      await b.queue.enqueue([task]);
      assert.deepEqual(await b.queue.get("full"), { ...task, state: "queued", attempts: 0 });
    },
  },
  {
    name: "a stale token changes nothing (fencing)",
    async fn({ backend: b }) {
      await b.queue.enqueue([newTask("t")]);
      const [first] = (await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER })).tasks;
      const retrying = await b.queue.fail("t", first.token, {
        error: { name: "Error", message: "boom", stack: "at somewhere" },
        retryAt: Date.now(),
      });
      assert.equal(retrying?.events[0].type, "retrying");
      assert.deepEqual(retrying?.events[0].data, {
        error: { name: "Error", message: "boom" },
        retryAt: retrying?.events[0].data?.retryAt,
      });
      const [second] = (await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER })).tasks;
      assert.equal(second.attempts, 2);
      assert.deepEqual(second.error, { name: "Error", message: "boom", stack: "at somewhere" });
      const result: StoredResult = { ...completed("t"), value: new Uint8Array([1]) };
      assert.equal(await b.queue.complete("t", first.token, result), undefined);
      assert.equal(await b.queue.renew("t", first.token, 1000), false);
      assert.equal(await b.queue.progress("t", first.token, 0.5), undefined);
      assert.equal(await b.queue.fail("t", first.token, { error: second.error! }), undefined);
      assert.equal(await b.queue.renew("t", second.token, 1000), true);
      const progress = await b.queue.progress("t", second.token, 0.5);
      assert.deepEqual(progress?.events[0].data, { progress: 0.5 });
      const done = await b.queue.complete("t", second.token, result);
      assert.equal(done?.events[0].type, "completed");
      const stored = await b.queue.get("t");
      assert.equal(stored?.state, "completed");
      assert.equal(stored?.progress, 0.5);
      assert.equal(stored?.completedAt, result.completedAt);
      assert.deepEqual(await b.results.get("t"), result);
      assert.equal(await b.queue.complete("t", second.token, result), undefined);
    },
  },
  {
    name: "sweep requeues a stalled task, then fails it when out of attempts",
    async fn({ backend: b }) {
      await b.queue.enqueue([newTask("s", { maxAttempts: 2 })]);
      const lease = { queues: ["default"], limit: 1, lease: 1, worker: "w" };
      await b.queue.claim(lease);
      // An engine that sweeps by its server's clock needs the 1 ms lease to be over there too.
      await sleep(5);
      const first = await b.queue.sweep({ now: Date.now() + 50 });
      assert.deepEqual(first.events.map((e) => [e.type, e.data]), [["stalled", { attempt: 1 }]]);
      assert.equal((await b.queue.get("s"))?.state, "queued");
      const [again] = (await b.queue.claim(lease)).tasks;
      assert.equal(again.attempts, 2);
      await sleep(5);
      const second = await b.queue.sweep({ now: Date.now() + 50 });
      assert.deepEqual(second.events.map((e) => e.type), ["stalled", "failed"]);
      const message = "the worker's lease expired on attempt 2";
      assert.deepEqual(second.events[1].data, { error: { name: "StalledError", message } });
      const stored = await b.queue.get("s");
      assert.equal(stored?.state, "failed");
      assert.deepEqual(stored?.error, { name: "StalledError", message });
      assert.equal((await b.results.get("s"))?.state, "failed");
      assert.equal(await b.queue.complete("s", again.token, completed("s")), undefined);
    },
  },
  {
    name: "a task past its expiry is not claimed and is expired by sweep",
    async fn({ backend: b }) {
      const now = Date.now();
      await b.queue.enqueue([
        newTask("old", { expiresAt: now - 1, resultTtl: 60_000 }),
        newTask("new", { expiresAt: now + 60_000 }),
      ]);
      const claimed = await b.queue.claim({ queues: ["default"], limit: 5, ...WORKER });
      assert.deepEqual(claimed.tasks.map((t) => t.id), ["new"]);
      const swept = await b.queue.sweep({ now: Date.now() });
      // The contract leaves open whether the claim that passes it over or the sweep expires
      // it: one of them does, once.
      const expired = [...claimed.effects.events, ...swept.events].filter((e) =>
        e.type === "expired"
      );
      assert.deepEqual(expired.map((e) => e.taskId), ["old"]);
      const stored = await b.queue.get("old");
      assert.equal(stored?.state, "expired");
      assert.deepEqual(stored?.error, {
        name: "TaskExpiredError",
        message: "expired before it started",
      });
      const result = await b.results.get("old");
      assert.equal(result?.state, "expired");
      assert.equal(result?.expiresAt, (stored?.completedAt ?? 0) + 60_000);
    },
  },
  {
    name: "dependents wait, are released in turn, or cancelled in cascade",
    async fn({ backend: b }) {
      const future = Date.now() + 60_000;
      await b.queue.enqueue([
        newTask("a"),
        newTask("b", { dependsOn: ["a"] }),
        newTask("c", { dependsOn: ["a", "b"], runAt: future }),
      ]);
      assert.equal((await b.queue.get("b"))?.state, "waiting");
      const [a] = (await b.queue.claim({ queues: ["default"], limit: 5, ...WORKER })).tasks;
      assert.equal(a.id, "a");
      const done = await b.queue.complete("a", a.token, completed("a"));
      assert.deepEqual(done?.events.map((e) => [e.type, e.taskId, e.data]), [
        ["completed", "a", undefined],
        ["enqueued", "b", { state: "queued", released: true }],
      ]);
      assert.equal((await b.queue.get("c"))?.state, "waiting");
      const [bTask] = (await b.queue.claim({ queues: ["default"], limit: 5, ...WORKER })).tasks;
      await b.queue.complete("b", bTask.token, completed("b"));
      assert.equal((await b.queue.get("c"))?.state, "scheduled");

      await b.queue.enqueue([
        newTask("x"),
        newTask("y", { dependsOn: ["x"] }),
        newTask("z", { dependsOn: ["y"] }),
        newTask("w", { dependsOn: ["x"], onDependencyFailure: "run" }),
      ]);
      const [x] = (await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER })).tasks;
      assert.equal(x.id, "x");
      const failed = await b.queue.fail("x", x.token, { error: { name: "Error", message: "no" } });
      const [end, ...cascade] = failed?.events.map((e) => [e.type, e.taskId, e.data]) ?? [];
      assert.deepEqual(end, ["failed", "x", { error: { name: "Error", message: "no" } }]);
      // The end comes first; the contract leaves the order among dependents open, but a
      // dependent is cancelled only after the dependency whose cancel caused it.
      const position = (id: string) => cascade.findIndex((e) => e[1] === id);
      assert.ok(position("y") < position("z"), "y is cancelled before its dependent z");
      assert.deepEqual(cascade.sort((p, q) => String(p[1]).localeCompare(String(q[1]))), [
        ["enqueued", "w", { state: "queued", released: true }],
        ["cancelled", "y", { reason: "dependency x failed", dependency: "x" }],
        ["cancelled", "z", { reason: "dependency y cancelled", dependency: "y" }],
      ]);
      assert.deepEqual((await b.queue.get("z"))?.error, {
        name: "TaskCancelledError",
        message: "dependency y cancelled",
      });
      assert.equal((await b.results.get("y"))?.state, "cancelled");

      const late = await b.queue.enqueue([
        newTask("v", { dependsOn: ["x"] }),
        newTask("u", { dependsOn: ["x"], onDependencyFailure: "run" }),
      ]);
      assert.deepEqual(late.effects.events.map((e) => [e.type, e.taskId, e.data]), [
        ["cancelled", "v", { reason: "dependency x failed", dependency: "x" }],
        ["enqueued", "u", { state: "queued" }],
      ]);
      assert.equal((await b.results.get("v"))?.state, "cancelled");
    },
  },
  {
    name: "nextDue sees a dependent released to a future run time",
    async fn({ backend: b }) {
      const future = Date.now() + 60_000;
      await b.queue.enqueue([newTask("a"), newTask("later", { dependsOn: ["a"], runAt: future })]);
      assert.equal(await b.queue.nextDue(["default"]), undefined, "a waiting task is not due");
      const [a] = (await b.queue.claim({ queues: ["default"], limit: 5, ...WORKER })).tasks;
      await b.queue.complete("a", a.token, completed("a"));
      assert.equal((await b.queue.get("later"))?.state, "scheduled");
      assert.equal(await b.queue.nextDue(["default"]), future);
    },
  },
  {
    name: "cancel and retry",
    async fn({ backend: b }) {
      await b.queue.enqueue([newTask("r")]);
      const [r] = (await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER })).tasks;
      const cancelled = await b.queue.cancel("r", "changed my mind");
      assert.deepEqual(cancelled?.events.map((e) => [e.type, e.attempt, e.data]), [
        ["cancelled", 1, { reason: "changed my mind" }],
      ]);
      assert.equal(await b.queue.cancel("r", "again"), undefined);
      assert.equal(await b.queue.cancel("missing", "why"), undefined);
      assert.equal(await b.queue.renew("r", r.token, 1000), false);
      assert.equal((await b.results.get("r"))?.state, "cancelled");
      const retried = await b.queue.retry("r");
      assert.deepEqual(retried?.events.map((e) => [e.type, e.attempt, e.data]), [
        ["enqueued", undefined, { state: "queued", retry: true }],
      ]);
      const stored = await b.queue.get("r");
      assert.equal(stored?.state, "queued");
      assert.equal(stored?.attempts, 0);
      assert.equal(stored?.error, undefined);
      assert.equal(stored?.completedAt, undefined);
      assert.equal(await b.results.get("r"), undefined);
      assert.equal(await b.queue.retry("r"), undefined);
    },
  },
  {
    name: "list, stats, nextDue and scheduled promotion",
    async fn({ backend: b }) {
      const soon = Date.now() + 40;
      await b.queue.enqueue([
        newTask("l1", { task: "a" }),
        newTask("l2", { task: "b", queue: "other" }),
        newTask("l3", { task: "a", runAt: soon }),
      ]);
      assert.deepEqual((await b.queue.list({ task: "a" })).map((t) => t.id), ["l1", "l3"]);
      assert.deepEqual((await b.queue.list({ state: ["scheduled"] })).map((t) => t.id), ["l3"]);
      assert.deepEqual((await b.queue.list({ limit: 1, offset: 1 })).map((t) => t.id), ["l2"]);
      assert.deepEqual((await b.queue.list({ queue: "other" })).map((t) => t.id), ["l2"]);
      const stats = await b.queue.stats();
      assert.deepEqual(stats.total, {
        waiting: 0,
        scheduled: 1,
        queued: 2,
        running: 0,
        completed: 0,
        failed: 0,
        cancelled: 0,
        expired: 0,
      });
      assert.deepEqual(Object.keys(stats.queues).sort(), ["default", "other"]);
      assert.equal(stats.queues.other.queued, 1);
      assert.equal(await b.queue.nextDue(["default", "other"]), soon);
      assert.equal(await b.queue.nextDue(["other"]), undefined);
      await sleep(60);
      const { tasks } = await b.queue.claim({ queues: ["default"], limit: 5, ...WORKER });
      assert.deepEqual(tasks.map((t) => t.id), ["l1", "l3"]);
    },
  },
  {
    name: "an empty state filter lists nothing",
    async fn({ backend: b }) {
      await b.queue.enqueue([newTask("one"), newTask("two", { runAt: Date.now() + 60_000 })]);
      assert.deepEqual(await b.queue.list({ state: [] }), []);
      assert.equal((await b.queue.list({})).length, 2);
    },
  },
  {
    name: "sweep purges final tasks ended before a time",
    async fn({ backend: b }) {
      await b.queue.enqueue([newTask("p1"), newTask("p2")]);
      await b.queue.cancel("p1", "x");
      await b.queue.sweep({ now: Date.now(), purgeBefore: Date.now() + 1 });
      assert.deepEqual((await b.queue.list({})).map((t) => t.id), ["p2"]);
    },
  },
  {
    name: "list filters by enqueue time: since (inclusive) and until (exclusive)",
    async fn({ backend: b }) {
      const at = (id: string, createdAt: number) => ({ ...newTask(id), createdAt });
      await b.queue.enqueue([at("t-100", 100_000), at("t-200", 200_000), at("t-300", 300_000)]);
      const ids = async (filter: ListOptions) => (await b.queue.list(filter)).map((t) => t.id);
      assert.deepEqual(await ids({ since: 200_000 }), ["t-200", "t-300"]);
      assert.deepEqual(await ids({ until: 200_000 }), ["t-100"]);
      assert.deepEqual(await ids({ since: 150_000, until: 300_001 }), ["t-200", "t-300"]);
      assert.deepEqual(await ids({ since: 150_000, until: 300_000, state: "queued" }), ["t-200"]);
      assert.deepEqual(await ids({ since: 400_000 }), []);
      assert.deepEqual(await ids({ since: 100_000, limit: 1, offset: 1 }), ["t-200"]);
    },
  },
  {
    name: "a running task names its worker; a task that ran no longer does",
    async fn({ backend: b }) {
      await b.queue.enqueue([newTask("w-1", { queue: "w" }), newTask("w-2", { queue: "w" })]);
      const { tasks } = await b.queue.claim({ queues: ["w"], limit: 2, ...WORKER });
      assert.equal(tasks.length, 2);
      for (const t of tasks) assert.equal(t.worker, WORKER.worker);
      assert.equal((await b.queue.get("w-1"))?.worker, WORKER.worker);
      const running = await b.queue.list({ state: "running" });
      assert.deepEqual(running.map((t) => t.worker), [WORKER.worker, WORKER.worker]);
      const [one, two] = tasks;
      await b.queue.complete(one.id, one.token, completed(one.id));
      await b.queue.fail(two.id, two.token, {
        error: { name: "Error", message: "again" },
        retryAt: Date.now(),
      });
      for (const id of [one.id, two.id]) {
        assert.equal("worker" in (await b.queue.get(id))!, false, id);
      }
    },
  },
  {
    name: "a trace context in the links round-trips, beside workflow links and alone",
    async fn({ backend: b }) {
      const trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
      await b.queue.enqueue([newTask("t-a")]);
      await b.queue.enqueue([
        newTask("t-alone", { links: { trace }, queue: "traced" }),
        newTask("t-both", { dependsOn: ["t-a"], links: { trace, pipe: "t-a" } }),
      ]);
      assert.deepEqual((await b.queue.get("t-alone"))?.links, { trace });
      assert.deepEqual((await b.queue.get("t-both"))?.links, { trace, pipe: "t-a" });
      const { tasks } = await b.queue.claim({ queues: ["traced"], limit: 1, ...WORKER });
      assert.deepEqual(tasks[0].links, { trace });
    },
  },
  {
    name: "workflow links round-trip through get, list and claim",
    async fn({ backend: b }) {
      const links = { names: { a: "first", b: "second" }, pipe: "a" };
      await b.queue.enqueue([newTask("a"), newTask("b"), newTask("plain")]);
      await b.queue.enqueue([newTask("c", { dependsOn: ["a", "b"], links })]);
      assert.deepEqual((await b.queue.get("c"))?.links, links);
      assert.equal("links" in (await b.queue.get("plain"))!, false);
      const listed = await b.queue.list({});
      assert.deepEqual(listed.find((t) => t.id === "c")?.links, links);
      assert.equal(listed.filter((t) => "links" in t).length, 1);
      const only = newTask("only-pipe", { links: { pipe: "x" }, queue: "solo" });
      await b.queue.enqueue([only]);
      const { tasks } = await b.queue.claim({ queues: ["solo"], limit: 1, ...WORKER });
      assert.deepEqual(tasks[0].links, { pipe: "x" });
      assert.deepEqual(await b.queue.get("only-pipe"), {
        ...only,
        state: "running",
        attempts: 1,
        startedAt: tasks[0].startedAt,
        worker: WORKER.worker,
      });
    },
  },
  {
    name: "enqueues started together: a failing batch stores nothing and spares the others",
    async fn({ backend: b }) {
      await b.queue.enqueue([newTask("taken")]);
      const outcomes = await Promise.allSettled([
        b.queue.enqueue([newTask("a1"), newTask("a2")]),
        b.queue.enqueue([newTask("b1"), newTask("taken")]),
        b.queue.enqueue([newTask("c1")]),
      ]);
      assert.equal(outcomes[0].status, "fulfilled");
      assert.equal(outcomes[1].status, "rejected");
      assert.ok((outcomes[1] as PromiseRejectedResult).reason instanceof DuplicateTaskError);
      assert.equal(outcomes[2].status, "fulfilled");
      for (const id of ["a1", "a2", "c1"]) assert.ok(await b.queue.get(id), `${id} stored`);
      assert.equal(await b.queue.get("b1"), undefined, "the failed batch stored nothing");
      assert.equal((await b.queue.stats()).total.queued, 4);
    },
  },
  {
    name: "two handles on one store share its tasks and never claim one twice",
    async fn({ backend: one, connect }) {
      const two = await connect();
      const ids = Array.from({ length: 8 }, (_, i) => `m${i}`);
      await Promise.all(ids.map((id, i) => (i % 2 ? two : one).queue.enqueue([newTask(id)])));
      assert.equal((await one.queue.stats()).total.queued, 8);
      const claims = await Promise.all(
        [one, two, one, two].map((b) =>
          b.queue.claim({ queues: ["default"], limit: 3, ...WORKER })
        ),
      );
      const claimed = claims.flatMap((c) => c.tasks.map((t) => t.id)).sort();
      assert.deepEqual(claimed, ids);
      assert.equal((await two.queue.stats()).total.running, 8);
    },
  },
  {
    name: "a paused queue is skipped by claims in every handle; its due tasks stay claimable",
    async fn({ backend: one, connect }) {
      const two = await connect();
      await one.queue.enqueue([
        newTask("p1", { queue: "p" }),
        newTask("p2", { queue: "p", runAt: Date.now() + 20 }),
        newTask("o1", { queue: "o" }),
      ]);
      const paused = await one.queue.setQueuePaused("p", true);
      assert.deepEqual(
        paused?.events.map((e) => [e.type, e.queue, e.taskId]),
        [["queue_paused", "p", undefined]],
      );
      assert.equal(await two.queue.setQueuePaused("p", true), undefined, "already paused");
      assert.equal(await one.queue.setQueuePaused("o", false), undefined, "never paused");
      assert.deepEqual(await two.queue.pausedQueues(), ["p"]);
      await sleep(30);
      const claim = { queues: ["p", "o"], limit: 5, ...WORKER };
      assert.deepEqual((await two.queue.claim(claim)).tasks.map((t) => t.id), ["o1"]);
      assert.deepEqual((await one.queue.claim(claim)).tasks, []);
      assert.equal((await one.queue.get("p1"))?.state, "queued");
      // A paused queue's due task does not keep a worker polling at once.
      const due = await one.queue.nextDue(["p"]);
      assert.ok(due === undefined || due > Date.now() - 1_000, `nextDue ${due}`);
      await one.queue.setQueuePaused("z", true);
      assert.deepEqual(await one.queue.pausedQueues(), ["p", "z"]);
      const resumed = await two.queue.setQueuePaused("p", false);
      assert.deepEqual(resumed?.events.map((e) => [e.type, e.queue]), [["queue_resumed", "p"]]);
      assert.deepEqual(await one.queue.pausedQueues(), ["z"]);
      const again = await one.queue.claim(claim);
      assert.deepEqual(again.tasks.map((t) => t.id), ["p1", "p2"]);
    },
  },
  {
    name: "a failure with a dead-letter queue moves the task there, fenced, with its history",
    async fn({ backend: b }) {
      const expiresAt = Date.now() + 60_000;
      await b.queue.enqueue([newTask("d", { deadLetter: "dlq", maxAttempts: 1, expiresAt })]);
      assert.equal((await b.queue.get("d"))?.deadLetter, "dlq");
      const [t] = (await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER })).tasks;
      assert.equal(t.deadLetter, "dlq");
      const error = { name: "Error", message: "poison" };
      const moved = await b.queue.fail("d", t.token, { error, deadLetter: "dlq" });
      assert.deepEqual(moved?.events.map((e) => [e.type, e.queue, e.attempt, e.data]), [
        ["dead_lettered", "default", 1, { to: "dlq", error }],
      ]);
      assert.deepEqual(moved?.results, []);
      assert.equal(await b.queue.fail("d", t.token, { error, deadLetter: "dlq" }), undefined);
      const stored = await b.queue.get("d");
      assert.equal(stored?.state, "queued");
      assert.equal(stored.queue, "dlq");
      assert.equal(stored.attempts, 0);
      assert.equal(stored.deadLetter, undefined);
      assert.equal(stored.expiresAt, undefined, "the move ends the ttl of the first enqueue");
      assert.deepEqual(stored.error, error);
      assert.equal(await b.results.get("d"), undefined);
      assert.equal((await b.queue.stats()).queues.dlq?.queued, 1);
      const types = (await b.events.query({ taskId: "d" })).map((e) => e.type);
      assert.deepEqual(types, ["enqueued", "started", "dead_lettered"]);
      assert.deepEqual(
        (await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER })).tasks,
        [],
      );
      const [again] = (await b.queue.claim({ queues: ["dlq"], limit: 1, ...WORKER })).tasks;
      assert.equal(again.id, "d");
      assert.equal(again.attempts, 1);
    },
  },
  {
    name: "a stall on the last attempt moves a task with a dead-letter queue there",
    async fn({ backend: b }) {
      await b.queue.enqueue([newTask("s", { deadLetter: "dlq", maxAttempts: 1 })]);
      await b.queue.claim({ queues: ["default"], limit: 1, lease: 1, worker: "w" });
      await sleep(5);
      const swept = await b.queue.sweep({ now: Date.now() + 50 });
      assert.deepEqual(swept.events.map((e) => [e.type, e.queue]), [
        ["stalled", "default"],
        ["dead_lettered", "default"],
      ]);
      const message = "the worker's lease expired on attempt 1";
      assert.deepEqual(swept.events[1].data, {
        to: "dlq",
        error: { name: "StalledError", message },
      });
      const stored = await b.queue.get("s");
      assert.equal(stored?.state, "queued");
      assert.equal(stored.queue, "dlq");
      assert.equal(stored.attempts, 0);
      assert.equal(await b.results.get("s"), undefined);
    },
  },
  {
    name: "a sweep raises the priority of queued tasks past their ageAfter, and only those",
    async fn({ backend: b }) {
      const now = Date.now();
      await b.queue.enqueue([
        newTask("aged", { priority: 2, ageAfter: 10, runAt: now - 20 }),
        newTask("young", { priority: 2, ageAfter: 60_000 }),
        newTask("top", { priority: 9, ageAfter: 10, runAt: now - 20 }),
        newTask("taken", { priority: 2, ageAfter: 10, runAt: now - 20, queue: "other" }),
        newTask("later", { priority: 2, ageAfter: 10, runAt: now + 60_000 }),
      ]);
      assert.equal((await b.queue.get("aged"))?.ageAfter, 10);
      await b.queue.claim({ queues: ["other"], limit: 1, ...WORKER });
      const swept = await b.queue.sweep({ now: Date.now() });
      assert.deepEqual(swept.events.map((e) => [e.type, e.taskId, e.queue, e.data]), [
        ["aged", "aged", "default", { from: 2 }],
      ]);
      assert.equal((await b.queue.get("aged"))?.priority, 9);
      for (const id of ["young", "taken", "later"]) {
        assert.equal((await b.queue.get(id))?.priority, 2, id);
      }
      assert.deepEqual((await b.queue.sweep({ now: Date.now() })).events, [], "once only");
      await b.queue.enqueue([newTask("newer", { priority: 8 })]);
      const order = await b.queue.claim({ queues: ["default"], limit: 4, ...WORKER });
      assert.deepEqual(order.tasks.map((t) => t.id), ["aged", "top", "newer", "young"]);
    },
  },
  {
    name: "a key with keyUntil is held after its task ended, until then (throttle)",
    async fn({ backend: b }) {
      const until = Date.now() + 60_000;
      await b.queue.enqueue([
        newTask("t1", { key: "held", keyUntil: until }),
        newTask("s1", { key: "short", keyUntil: Date.now() + 30 }),
      ]);
      assert.equal((await b.queue.get("t1"))?.keyUntil, until);
      await b.queue.cancel("t1", "done");
      await b.queue.cancel("s1", "done");
      const dup = await b.queue.enqueue([newTask("t2", { key: "held" })]);
      assert.deepEqual([dup.ids, dup.created], [["t1"], [false]]);
      await sleep(40);
      const after = await b.queue.enqueue([newTask("s2", { key: "short" })]);
      assert.deepEqual([after.ids, after.created], [["s2"], [true]]);
      const live = await b.queue.enqueue([newTask("s3", { key: "short" })]);
      assert.deepEqual(live.ids, ["s2"], "the new task holds the key now");
    },
  },
  {
    name: "a debounced enqueue replaces an unstarted key holder, and takes a running one's key",
    async fn({ backend: b }) {
      const later = Date.now() + 60_000;
      await b.queue.enqueue([newTask("d1", { key: "k", runAt: later, debounce: true })]);
      const first = await b.queue.get("d1");
      assert.equal(first?.state, "scheduled");
      assert.equal((first as { debounce?: unknown }).debounce, undefined, "not stored");
      const payload = new Uint8Array([9, 9]);
      const merged = await b.queue.enqueue([
        newTask("d2", { key: "k", runAt: later + 5, payload, debounce: true }),
      ]);
      assert.deepEqual([merged.ids, merged.created], [["d1"], [false]]);
      assert.deepEqual(
        merged.effects.events.map((e) => [e.type, e.taskId, e.data]),
        [["debounced", "d1", { runAt: later + 5 }]],
      );
      const replaced = await b.queue.get("d1");
      assert.deepEqual(replaced?.payload, payload);
      assert.equal(replaced.runAt, later + 5);
      assert.equal(await b.queue.get("d2"), undefined);
      // Due now, claimed: a debounced enqueue then makes a new task, which takes the key.
      await b.queue.enqueue([newTask("r1", { key: "r", debounce: true })]);
      await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER });
      const next = await b.queue.enqueue([newTask("r2", { key: "r", debounce: true })]);
      assert.deepEqual([next.ids, next.created], [["r2"], [true]]);
      assert.equal((await b.queue.get("r1"))?.key, undefined);
      assert.equal((await b.queue.get("r2"))?.key, "r");
      const again = await b.queue.enqueue([newTask("r3", { key: "r" })]);
      assert.deepEqual(again.ids, ["r2"]);
    },
  },
  {
    name: "grouped claims: ungrouped first, then round-robin by group, capped by groupLimit",
    async fn({ backend: one, connect }) {
      const two = await connect();
      const g = (id: string, group: string, groupLimit = 1, priority = 0) =>
        newTask(id, { group, groupLimit, priority });
      await one.queue.enqueue([
        g("a1", "a", 2),
        g("a2", "a", 2),
        g("a3", "a", 2, 5),
        g("b1", "b"),
        g("b2", "b"),
        g("c1", "c-x"),
        newTask("u1"),
      ]);
      const stored = await one.queue.get("a1");
      assert.deepEqual([stored?.group, stored?.groupLimit], ["a", 2]);
      const claim = { queues: ["default"], limit: 1, ...WORKER };
      const tokens = new Map<string, string>();
      for (let i = 0; i < 7; i++) {
        const { tasks } = await (i % 2 ? two : one).queue.claim(claim);
        for (const t of tasks) tokens.set(t.id, t.token);
      }
      // u1 first; then a's head (a3, priority 5), b1, c-x's c1, a1 (a runs 2 at most); then
      // every group is at its limit, and the last claims take nothing.
      assert.deepEqual([...tokens.keys()], ["u1", "a3", "b1", "c1", "a1"]);
      const done = { taskId: "b1", state: "completed" as const, completedAt: Date.now() };
      await one.queue.complete("b1", tokens.get("b1")!, done);
      const next = await two.queue.claim({ ...claim, limit: 5 });
      assert.deepEqual(next.tasks.map((t) => t.id), ["b2"], "b's slot is free again");
    },
  },
  {
    name: "close is idempotent and later queue calls are refused",
    async fn({ backend: b }) {
      await b.close();
      await b.close();
      // Awaited inside, so an engine that throws at once is held to the refusal, not to
      // how it is delivered.
      await assert.rejects(
        async () => await b.queue.get("x"),
        (e: Error) => e instanceof OmniQError && /closed/.test(e.message),
      );
      await assert.rejects(async () => await b.queue.enqueue([newTask("late")]), OmniQError);
    },
  },
];
