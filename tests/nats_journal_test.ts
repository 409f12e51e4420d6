// A `nats:` step writes several keys and events (task records, results, events, the
// sequence record). A holder that dies part way must leave nothing half done: the next
// holder of the lock finishes the step from its journal. Each test cuts a step after every
// possible number of writes (JetStream publishes: KV writes and events alike), frees the dead
// holder's lock as the stale-lock breaker would, and checks with a healthy handle that every
// task completes, each with exactly one `completed` event.

import assert from "node:assert/strict";
import { Kvm } from "@nats-io/kv";
import { type NatsBackend, openNats } from "../backends/nats/mod.ts";
import type { NewTask, StoredResult } from "../src/backend.ts";
import { newTask as baseTask } from "./fixtures/tasks.ts";
import { testServerUrl } from "./servers.ts";

function newTask(id: string, dependsOn: string[] = []): NewTask {
  return baseTask(id, {
    payload: new Uint8Array([1]),
    maxAttempts: 5,
    backoff: { type: "fixed", delay: 0, max: 0, jitter: 0 },
    dependsOn,
  });
}

function done(taskId: string): StoredResult {
  return { taskId, state: "completed", value: new Uint8Array([2]), completedAt: Date.now() };
}

type Publish = (...args: unknown[]) => Promise<unknown>;

/** Open a handle whose JetStream publishes fail for ever after `budget` more, once armed. */
async function dyingHandle(url: string): Promise<{ backend: NatsBackend; arm(n: number): void }> {
  const clients = new Set<{ publish: Publish }>();
  const create = Kvm.prototype.create;
  Kvm.prototype.create = function (this: Kvm, ...args: Parameters<Kvm["create"]>) {
    clients.add((this as unknown as { js: { publish: Publish } }).js);
    return create.apply(this, args);
  };
  let backend: NatsBackend;
  try {
    backend = await openNats(url);
  } finally {
    Kvm.prototype.create = create;
  }
  let budget = Infinity;
  let dead = false;
  for (const js of clients) {
    const publish = js.publish.bind(js);
    js.publish = (...args: unknown[]) => {
      if (!dead && budget-- <= 0) dead = true;
      if (dead) return Promise.reject(new Error("simulated crash"));
      return publish(...args);
    };
  }
  return { backend, arm: (n) => budget = n };
}

/** Free the lock a dead holder left, as a holder breaking a stale lock does. */
async function breakLock(backend: NatsBackend): Promise<void> {
  const { connect } = await import("@nats-io/transport-node");
  const nc = await connect({ servers: testServerUrl("nats").slice(7) });
  try {
    const kv = await new Kvm(nc).open(backend.names.bucket);
    const lock = await kv.get("m.lock");
    if (lock && lock.operation === "PUT") {
      await kv.update("m.lock", new TextEncoder().encode('{"owner":null}'), lock.revision);
    }
  } finally {
    await nc.close();
  }
}

/** With a healthy handle: recover, then run everything; every task must complete once. */
async function drain(url: string, ids: string[]): Promise<void> {
  const b = await openNats(url);
  try {
    for (let round = 0; round < 50; round++) {
      await b.queue.sweep({ now: Date.now() + 60_000 });
      const { tasks } = await b.queue.claim({
        queues: ["default"],
        limit: 10,
        lease: 30_000,
        worker: "healthy",
      });
      for (const t of tasks) await b.queue.complete(t.id, t.token, done(t.id));
      const states = await Promise.all(ids.map(async (id) => (await b.queue.get(id))?.state));
      if (!states.every((s) => s === "completed")) continue;
      const events = await b.events.query({ type: "completed" });
      for (const id of ids) {
        const n = events.filter((e) => e.taskId === id).length;
        assert.equal(n, 1, `task ${id} has ${n} completed events`);
      }
      // Each claim that took effect (an attempt) has its one `started` event.
      const started = await b.events.query({ type: "started" });
      for (const id of ids) {
        const attempts = (await b.queue.get(id))!.attempts;
        const n = started.filter((e) => e.taskId === id).length;
        assert.equal(n, attempts, `task ${id}: ${attempts} attempts, ${n} started events`);
      }
      const all = await b.events.query({});
      assert.equal(new Set(all.map((e) => e.id)).size, all.length, "no event is stored twice");
      return;
    }
    const states = await Promise.all(ids.map(async (id) => (await b.queue.get(id))?.state));
    assert.fail(`tasks never completed after a crash: ${JSON.stringify(states)}`);
  } finally {
    await b.destroy();
  }
}

/** Run `step` on a handle that dies after `cut` publishes, for every `cut` until one passes. */
async function everyCut(
  prepare: (b: NatsBackend) => Promise<string[]>,
  step: (b: NatsBackend) => Promise<unknown>,
): Promise<number> {
  for (let cut = 0;; cut++) {
    const url = `${testServerUrl("nats")}?prefix=j_${crypto.randomUUID().replaceAll("-", "")}`;
    const { backend, arm } = await dyingHandle(url);
    let crashed = false;
    let ids: string[] = [];
    try {
      ids = await prepare(backend);
      arm(cut);
      try {
        await step(backend);
      } catch (error) {
        assert.match(String(error), /simulated crash/);
        crashed = true;
      }
    } finally {
      await backend.close();
    }
    if (crashed) await breakLock(backend);
    await drain(url, ids);
    if (!crashed) return cut;
  }
}

Deno.test("nats: a claim cut short at any point loses no task", async () => {
  const cuts = await everyCut(async (b) => {
    await b.queue.enqueue([newTask("a"), newTask("b"), newTask("c")]);
    return ["a", "b", "c"];
  }, (b) => b.queue.claim({ queues: ["default"], limit: 3, lease: 1, worker: "dying" }));
  assert.ok(cuts > 4, `a claim of three tasks makes several writes (${cuts})`);
});

Deno.test("nats: a completion that releases dependents, cut short at any point, loses none", async () => {
  let token = "";
  const cuts = await everyCut(async (b) => {
    await b.queue.enqueue([newTask("parent"), newTask("x", ["parent"]), newTask("y", ["parent"])]);
    const { tasks } = await b.queue.claim({
      queues: ["default"],
      limit: 1,
      lease: 1,
      worker: "dying",
    });
    assert.equal(tasks[0]?.id, "parent");
    token = tasks[0].token;
    return ["parent", "x", "y"];
  }, (b) => b.queue.complete("parent", token, done("parent")));
  assert.ok(cuts > 4, `a completion that releases two tasks makes several writes (${cuts})`);
});
