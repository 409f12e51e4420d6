// Workflows: chains pipe each result into the next step, groups collect their members'
// results in member order, the DAG builder names its nodes; each is enqueued in one atomic
// step. A dependency that fails, is cancelled or expires cancels its dependents, recursively
// and once, naming it; cycles and unknown dependencies are refused at enqueue.

import assert from "node:assert/strict";
import {
  ConfigError,
  DuplicateTaskError,
  type EventRecord,
  type OmniQ,
  OmniQError,
  TaskCancelledError,
} from "../../mod.ts";
import { type Case, eventsOf, sleep as pause, totalTasks, typesOf } from "./harness.ts";
import { append, dependencies, echo, fail, sleep, sumOf } from "./tasks.ts";

/** A generated task id: 26 characters of lower-case base 32. */
const GENERATED_ID = /[0-9a-v]{26}/;

/** The `cancelled` events of a task. */
async function cancelledEvents(q: OmniQ, id: string): Promise<EventRecord[]> {
  return (await eventsOf(q, id)).filter((e) => e.type === "cancelled");
}

/** Expect a task cancelled (never run) because of `dependency`, which ended `how`. */
async function cancelledBy(q: OmniQ, id: string, dependency: string, how: string) {
  const record = await q.get(id);
  assert.equal(record?.state, "cancelled", `task ${id} is cancelled`);
  assert.equal(record.attempts, 0, "it never ran");
  await assert.rejects(q.wait(id), TaskCancelledError);
  assert.equal((await q.result(id))?.state, "cancelled");
  const events = await cancelledEvents(q, id);
  assert.equal(events.length, 1, "one cancelled event");
  assert.equal(events[0].data?.dependency, dependency, "the event names the dependency");
  assert.match(String(events[0].data?.reason), new RegExp(`${dependency}.*${how}`));
}

/** Expect `attempt` to be refused with an `OmniQError` whose message passes `check`. */
async function refusedWith(
  q: OmniQ,
  attempt: () => Promise<unknown>,
  check: (message: string) => void,
): Promise<void> {
  const before = await totalTasks(q);
  await assert.rejects(attempt, (e: unknown) => {
    assert.ok(e instanceof OmniQError, `expected an OmniQError, got ${e}`);
    check(e.message);
    return true;
  });
  assert.equal(await totalTasks(q), before, "nothing was stored");
}

export const workflowCases: Case[] = [
  {
    name: "a chain pipes each step's result into the next as its first argument",
    async fn({ open }) {
      await using q = await open();
      const flow = await q.chain<string[]>([
        { task: append, args: [[], "a"] },
        { task: append, args: ["b"] },
        { task: append, args: ["c"], queue: "chain-last" },
      ]);
      assert.equal(flow.ids.length, 3);
      assert.equal(flow.id, flow.ids[2], "the id to wait on is the last step's");
      const [first, second, third] = flow.ids;
      assert.equal((await q.get(first))?.state, "queued");
      for (const [id, before] of [[second, first], [third, second]]) {
        const record = await q.get(id);
        assert.equal(record?.state, "waiting");
        assert.deepEqual(record.dependsOn, [before]);
      }
      assert.equal((await q.get(third))?.queue, "chain-last", "a step keeps its options");
      await q.run({ until: "idle", queues: ["default", "chain-last"] });
      assert.deepEqual(await q.wait(first), ["a"]);
      assert.deepEqual(await q.wait(second), ["a", "b"]);
      const last: string[] = await q.wait(flow.id);
      assert.deepEqual(last, ["a", "b", "c"]);
      // Released once: held, released, run.
      assert.deepEqual(await typesOf(q, third), ["enqueued", "enqueued", "started", "completed"]);
    },
  },
  {
    name: "a group's collector returns the members' results in member order",
    async fn({ open }) {
      await using q = await open();
      const flow = await q.group([
        { task: sleep, args: [120] },
        { task: sleep, args: [0] },
        { task: sleep, args: [60] },
      ]);
      assert.equal(flow.ids.length, 3, "ids are the members'");
      assert.ok(!flow.ids.includes(flow.id), "the collector is not a member");
      assert.equal((await q.get(flow.id))?.state, "waiting");
      assert.deepEqual((await q.get(flow.id))?.dependsOn, flow.ids);
      await q.run({ until: "idle", concurrency: 4 });
      assert.deepEqual(await q.wait(flow.id), [120, 0, 60]);
      const done = await Promise.all(flow.ids.map(async (id) => (await q.get(id))?.completedAt));
      assert.ok(done[1]! <= done[0]!, "members finished out of member order");
    },
  },
  {
    name: "a group with a failing member cancels its collector, naming the member",
    async fn({ open, key }) {
      await using q = await open();
      const flow = await q.group([
        { task: echo, args: ["one"] },
        { task: fail, args: [`group member ${key}`], retries: 0 },
        { task: echo, args: ["three"] },
      ], { id: `collector-${key}` });
      assert.equal(flow.id, `collector-${key}`, "the collector takes the options given");
      await q.run({ until: "idle" });
      assert.equal(await q.wait(flow.ids[0]), "one");
      assert.equal(await q.wait(flow.ids[2]), "three");
      assert.equal((await q.get(flow.ids[1]))?.state, "failed");
      await cancelledBy(q, flow.id, flow.ids[1], "failed");
    },
  },
  {
    name: "a workflow diamond reads its dependencies' results by node name and by id",
    async fn({ open, key }) {
      await using q = await open();
      const rightId = `right-${key}`;
      const ids = await q.workflow()
        .add("root", { task: echo, args: [1] })
        .add("left", { task: sumOf, args: [["root"], 10], after: ["root"] })
        .add("right", { task: sumOf, args: [["root"], 100], after: ["root"], id: rightId })
        .add("join", { task: sumOf, args: [["left", rightId], 1000], after: ["left", "right"] })
        .add("seen", { task: dependencies, args: [], after: ["left", "right"] })
        .enqueue();
      assert.deepEqual(Object.keys(ids), ["root", "left", "right", "join", "seen"]);
      assert.equal(ids.right, rightId, "a node keeps a caller-chosen id");
      assert.equal((await q.get(ids.root))?.state, "queued");
      for (const name of ["left", "right", "join", "seen"]) {
        assert.equal((await q.get(ids[name]))?.state, "waiting", `${name} waits`);
      }
      assert.deepEqual((await q.get(ids.join))?.dependsOn, [ids.left, rightId]);
      await q.run({ until: "idle" });
      assert.equal(await q.wait(ids.left), 11);
      assert.equal(await q.wait(ids.right), 101);
      assert.equal(await q.wait(ids.join), 1112);
      // Direct dependencies only, under their ids and their node names.
      const seen = new Map(await q.wait<[string, unknown][]>(ids.seen));
      assert.deepEqual(
        seen,
        new Map<string, unknown>([[ids.left, 11], ["left", 11], [rightId, 101], ["right", 101]]),
      );
      for (const name of Object.keys(ids)) {
        assert.equal((await q.get(ids[name]))?.attempts, 1, `${name} ran once`);
      }
    },
  },
  {
    name: "the steps of a chain run under different handles sharing the store",
    async fn({ open }) {
      await using left = await open();
      await using right = await open();
      const flow = await left.chain<string[]>([
        { task: append, args: [[], 1], queue: "wf-left" },
        { task: append, args: [2], queue: "wf-right" },
        { task: append, args: [3], queue: "wf-left" },
        { task: append, args: [4], queue: "wf-right" },
      ]);
      const a = left.worker({ queues: ["wf-left"] });
      const b = right.worker({ queues: ["wf-right"] });
      await a.start();
      await b.start();
      assert.deepEqual(await right.wait(flow.id, { timeout: "10s" }), [1, 2, 3, 4]);
      await a.stop();
      await b.stop();
      for (const id of flow.ids) assert.equal((await left.get(id))?.attempts, 1);
    },
  },
  {
    name: "a self-dependency or a cycle is refused at enqueue with the cycle in the message",
    async fn({ open, key }) {
      await using q = await open();
      const self = `self-${key}`;
      await refusedWith(
        q,
        () => q.enqueue(echo, [1], { id: self, dependsOn: [self] }),
        (message) => {
          assert.match(message, /cycle/);
          assert.ok(message.includes(self), message);
        },
      );
      const [x, y] = [`x-${key}`, `y-${key}`];
      await refusedWith(
        q,
        () =>
          q.enqueueMany([
            { task: echo, args: [0], id: `before-${key}` },
            { task: echo, args: [1], id: x, dependsOn: [y] },
            { task: echo, args: [2], id: y, dependsOn: [x] },
          ]),
        (message) => {
          assert.match(message, /cycle/);
          assert.ok(message.includes(x) && message.includes(y), message);
        },
      );
      // In a workflow the message speaks of node names, not generated ids.
      await refusedWith(
        q,
        () =>
          q.workflow()
            .add("head", { task: echo, args: [0] })
            .add("fetch", { task: echo, args: [1], after: ["head", "store"] })
            .add("parse", { task: echo, args: [2], after: ["fetch"] })
            .add("store", { task: echo, args: [3], after: ["parse"] })
            .enqueue(),
        (message) => {
          assert.match(message, /cycle/);
          for (const name of ["fetch", "parse", "store"]) {
            assert.ok(message.includes(name), `the message names ${name}: ${message}`);
          }
          assert.ok(!message.includes("head"), `only the cycle is named: ${message}`);
          assert.doesNotMatch(message, GENERATED_ID);
        },
      );
      await refusedWith(
        q,
        () => q.workflow().add("loop", { task: echo, args: [1], after: ["loop"] }).enqueue(),
        (message) => {
          assert.match(message, /cycle/);
          assert.ok(message.includes("loop"), message);
          assert.doesNotMatch(message, GENERATED_ID);
        },
      );
      assert.equal(await totalTasks(q), 0);
    },
  },
  {
    name: "an unknown dependency id or node name is refused at enqueue, storing nothing",
    async fn({ open, key }) {
      await using q = await open();
      const missing = `missing-${key}`;
      await refusedWith(
        q,
        () =>
          q.enqueueMany([
            { task: echo, args: [1], id: `fine-${key}` },
            { task: echo, args: [2], dependsOn: [`fine-${key}`, missing] },
          ]),
        (message) => {
          assert.match(message, /dependsOn/);
          assert.ok(message.includes(missing), message);
        },
      );
      await assert.rejects(
        q.workflow()
          .add("first", { task: echo, args: [1] })
          .add("second", { task: echo, args: [2], after: ["frist"] })
          .enqueue(),
        (e: unknown) =>
          e instanceof ConfigError && /second/.test(e.message) && /frist/.test(e.message),
      );
      assert.equal(await totalTasks(q), 0);
    },
  },
  {
    name: "a workflow is enqueued whole or not at all",
    async fn({ open, key }) {
      await using q = await open();
      const taken = await q.enqueue(echo, ["taken"], { id: `taken-${key}` });
      await refusedWith(
        q,
        () =>
          q.workflow()
            .add("a", { task: echo, args: [1] })
            .add("b", { task: echo, args: [2], after: ["a"], id: taken })
            .enqueue(),
        () => {},
      );
      await assert.rejects(
        q.chain([{ task: echo, args: [1] }, { task: echo, args: [], id: taken }]),
        DuplicateTaskError,
      );
      await refusedWith(
        q,
        () => q.group([{ task: echo, args: [1] }, { task: echo, args: [2], priority: 10 }]),
        (message) => assert.match(message, /priority/),
      );
      for (const empty of [() => q.chain([]), () => q.group([]), () => q.workflow().enqueue()]) {
        await assert.rejects(empty, ConfigError);
      }
      assert.equal(await totalTasks(q), 1);
    },
  },
  {
    name: "a failure cascades down a workflow: every dependent cancelled once, never run",
    async fn({ open, key }) {
      await using q = await open();
      const ids = await q.workflow()
        .add("a", { task: fail, args: [`cascade ${key}`], retries: 0 })
        .add("b", { task: echo, args: ["b"], after: ["a"] })
        .add("c", { task: echo, args: ["c"], after: ["a"] })
        .add("d", { task: echo, args: ["d"], after: ["b", "c"] })
        .add("e", { task: echo, args: ["e"], after: ["d"] })
        .add("other", { task: echo, args: ["other"] })
        .enqueue();
      await q.run({ until: "idle" });
      assert.equal((await q.get(ids.a))?.state, "failed");
      await cancelledBy(q, ids.b, ids.a, "failed");
      await cancelledBy(q, ids.c, ids.a, "failed");
      const d = (await cancelledEvents(q, ids.d))[0];
      assert.ok([ids.b, ids.c].includes(d?.data?.dependency as string), "d names b or c");
      await cancelledBy(q, ids.d, d.data!.dependency as string, "cancelled");
      await cancelledBy(q, ids.e, ids.d, "cancelled");
      assert.equal(await q.wait(ids.other), "other", "an unrelated node runs");
      // A chain is a workflow too: the first step fails, the rest never run.
      const chain = await q.chain([
        { task: fail, args: [`chain ${key}`], retries: 0 },
        { task: append, args: ["x"] },
        { task: append, args: ["y"] },
      ]);
      await q.run({ until: "idle" });
      await cancelledBy(q, chain.ids[1], chain.ids[0], "failed");
      await cancelledBy(q, chain.ids[2], chain.ids[1], "cancelled");
    },
  },
  {
    name: "a cancelled or expired dependency cancels its dependents, naming it and why",
    async fn({ open }) {
      await using q = await open();
      const cancelled = await q.enqueue(echo, ["a"], { queue: "nobody-serves-this" });
      const afterCancelled = await q.enqueue(echo, ["b"], { dependsOn: [cancelled] });
      const expiring = await q.enqueue(echo, ["c"], { queue: "nobody-serves-this", ttl: "40ms" });
      const afterExpired = await q.enqueue(echo, ["d"], { dependsOn: [expiring] });
      const next = await q.enqueue(echo, ["e"], { dependsOn: [afterExpired] });
      assert.equal(await q.cancel(cancelled), true);
      await cancelledBy(q, afterCancelled, cancelled, "cancelled");
      await pause(60);
      await q.cleanup();
      assert.equal((await q.get(expiring))?.state, "expired");
      await cancelledBy(q, afterExpired, expiring, "expired");
      await cancelledBy(q, next, afterExpired, "cancelled");
    },
  },
  {
    name: 'onDependencyFailure: "run" runs a workflow node after a failed one',
    async fn({ open, key }) {
      await using q = await open();
      const ids = await q.workflow()
        .add("broken", { task: fail, args: [`wf-run ${key}`], retries: 0 })
        .add("fine", { task: echo, args: ["fine"] })
        .add("report", {
          task: dependencies,
          args: [],
          after: ["broken", "fine"],
          onDependencyFailure: "run",
        })
        .add("after", { task: sumOf, args: [[], 7], after: ["report"] })
        .enqueue();
      assert.equal((await q.get(ids.report))?.state, "waiting");
      await q.run({ until: "idle" });
      assert.equal((await q.get(ids.broken))?.state, "failed");
      const seen = new Map(await q.wait<[string, unknown][]>(ids.report));
      assert.deepEqual(
        seen,
        new Map([[ids.fine, "fine"], ["fine", "fine"]]),
        "only completed dependencies have results",
      );
      assert.equal(await q.wait(ids.after), 7, "its own dependents run after it");
    },
  },
  {
    name: "a dependent of a task deduplicated by key depends on the live task and reads it",
    async fn({ open, key }) {
      await using q = await open();
      const live = await q.enqueue(echo, ["live"], { key, queue: "dedupe-live" });
      const [same, reader] = await q.enqueueMany([
        { task: echo, args: ["dup"], key, id: `dup-${key}` },
        { task: dependencies, args: [], dependsOn: [`dup-${key}`] },
      ]);
      assert.equal(same, live, "deduplicated");
      const chain = await q.chain([
        { task: echo, args: ["again"], key },
        { task: echo, args: [] },
      ]);
      assert.equal(chain.ids[0], live);
      const ids = await q.workflow()
        .add("source", { task: echo, args: ["once more"], key })
        .add("reads", { task: dependencies, args: [], after: ["source"] })
        .enqueue();
      assert.equal(ids.source, live);
      for (const id of [reader, chain.id, ids.reads]) {
        const record = await q.get(id);
        assert.equal(record?.state, "waiting", "held until the live task completes");
        assert.deepEqual(record.dependsOn, [live]);
      }
      await q.run({ until: "idle", queues: ["default", "dedupe-live"] });
      assert.deepEqual(await q.wait(reader), [[live, "live"]]);
      assert.deepEqual(
        new Map(await q.wait<[string, unknown][]>(ids.reads)),
        new Map([[live, "live"], ["source", "live"]]),
        "by id and by node name",
      );
      assert.equal(await q.wait(chain.id), "live", "the live task's result is piped");
    },
  },
  {
    name: "a released dependent keeps its delay",
    async fn({ open }) {
      await using q = await open();
      const a = await q.enqueue(echo, ["a"]);
      const b = await q.enqueue(echo, ["b"], { dependsOn: [a], delay: "300ms" });
      const runAt = (await q.get(b))!.runAt.getTime();
      await q.run({ until: "idle" });
      assert.equal((await q.get(a))?.state, "completed");
      if (Date.now() < runAt - 50) {
        assert.equal((await q.get(b))?.state, "scheduled", "released, but not yet due");
      }
      const released = (await eventsOf(q, b)).filter((e) => e.data?.released);
      assert.equal(released.length, 1, "released once");
      await pause(Math.max(0, runAt - Date.now()) + 10);
      await q.run({ until: "idle" });
      assert.equal(await q.wait(b), "b");
      const started = (await eventsOf(q, b)).find((e) => e.type === "started")!;
      assert.ok(started.at.getTime() >= runAt, "not run before its delay");
    },
  },
  {
    name: "a dependent of an already failed task is cancelled at enqueue, or queued with run",
    async fn({ open, key }) {
      await using q = await open();
      const failed = await q.enqueue(fail, [`failed-first ${key}`], { retries: 0 });
      await q.run({ until: "idle" });
      assert.equal((await q.get(failed))?.state, "failed");
      const late = await q.enqueue(echo, ["late"], { dependsOn: [failed] });
      await cancelledBy(q, late, failed, "failed");
      const later = await q.enqueue(echo, ["later"], { dependsOn: [late] });
      await cancelledBy(q, later, late, "cancelled");
      const anyway = await q.enqueue(dependencies, [], {
        dependsOn: [failed],
        onDependencyFailure: "run",
      });
      assert.equal((await q.get(anyway))?.state, "queued", "nothing left to wait for");
      await q.run({ until: "idle" });
      assert.deepEqual(await q.wait(anyway), []);
    },
  },
];
