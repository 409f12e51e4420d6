// A `file:` commit writes several files (the record, its indexes, events, the sequences).
// A process that dies part way must leave nothing half done: the next holder of the lock
// finishes the commit from its journal. Each test cuts a commit after every possible number
// of storage changes, then checks with a healthy process that every task still completes.

import assert from "node:assert/strict";
import { LocalStorage, openFile, type Storage } from "../backends/file/mod.ts";
import type { NewTask, StoredResult } from "../src/backend.ts";
import { newTask as baseTask } from "./fixtures/tasks.ts";

/** A storage that dies (throws on every call) after `budget` changes, once armed. */
class DyingStorage implements Storage {
  readonly location: string;
  #inner: Storage;
  budget = Infinity;
  dead = false;

  constructor(inner: Storage) {
    this.#inner = inner;
    this.location = inner.location;
  }

  #change(): void {
    if (this.dead || this.budget-- <= 0) {
      this.dead = true;
      throw new Error("simulated crash");
    }
  }

  #live(): void {
    if (this.dead) throw new Error("simulated crash");
  }

  list(prefix: string) {
    this.#live();
    return this.#inner.list(prefix);
  }
  read(key: string) {
    this.#live();
    return this.#inner.read(key);
  }
  modified(key: string) {
    this.#live();
    return this.#inner.modified(key);
  }
  touch(key: string) {
    this.#live();
    return this.#inner.touch(key);
  }
  writeAtomic(key: string, data: Uint8Array) {
    this.#change();
    return this.#inner.writeAtomic(key, data);
  }
  createIfAbsent(key: string, data: Uint8Array) {
    // The lock is taken before the budget counts.
    if (key !== "lock") this.#change();
    return this.#inner.createIfAbsent(key, data);
  }
  renameIfAbsent(from: string, to: string) {
    this.#change();
    return this.#inner.renameIfAbsent(from, to);
  }
  append(key: string, data: Uint8Array) {
    this.#change();
    return this.#inner.append(key, data);
  }
  delete(key: string) {
    // A dead process releases nothing: its lock stays behind.
    if (key === "lock") this.#live();
    else this.#change();
    return this.#inner.delete(key);
  }
  close() {
    return Promise.resolve();
  }
}

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

/** With a healthy process: recover, then run everything; every task must complete. */
async function drain(dir: string, ids: string[]): Promise<void> {
  const lock = `${dir}/lock`;
  // The dead process's lock is broken as stale; age it instead of waiting.
  await Deno.utime(lock, 0, 0).catch(() => {});
  const b = await openFile(dir);
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
      if (states.every((s) => s === "completed")) {
        const events = await b.events.query({});
        const idsSeen = events.map((e) => e.id);
        assert.equal(new Set(idsSeen).size, idsSeen.length, "no event is stored twice");
        return;
      }
    }
    const states = await Promise.all(ids.map(async (id) => (await b.queue.get(id))?.state));
    assert.fail(`tasks never completed after a crash: ${JSON.stringify(states)}`);
  } finally {
    await b.close();
  }
}

/** Run `step` on a process that dies after `cut` changes, for every `cut` until one passes. */
async function everyCut(
  prepare: (dir: string) => Promise<string[]>,
  step: (b: Awaited<ReturnType<typeof openFile>>, ids: string[]) => Promise<unknown>,
): Promise<number> {
  for (let cut = 0;; cut++) {
    const dir = await Deno.makeTempDir({ prefix: "omniq-file-journal-" });
    try {
      const ids = await prepare(dir);
      const storage = new DyingStorage(new LocalStorage(dir));
      const dying = await openFile(dir, { storage });
      storage.budget = cut;
      let crashed = false;
      try {
        await step(dying, ids);
      } catch (error) {
        assert.match(String(error), /simulated crash/);
        crashed = true;
      }
      await drain(dir, ids);
      if (!crashed) return cut;
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
}

Deno.test("file: a claim cut short at any point loses no task", async () => {
  const cuts = await everyCut(async (dir) => {
    const b = await openFile(dir);
    await b.queue.enqueue([newTask("a"), newTask("b"), newTask("c")]);
    await b.close();
    return ["a", "b", "c"];
  }, (b) => b.queue.claim({ queues: ["default"], limit: 3, lease: 30_000, worker: "dying" }));
  assert.ok(cuts > 6, `a claim of three tasks makes several changes (${cuts})`);
});

Deno.test("file: a completion that releases dependents, cut short at any point, loses none", async () => {
  const cuts = await everyCut(async (dir) => {
    const b = await openFile(dir);
    await b.queue.enqueue([newTask("parent"), newTask("x", ["parent"]), newTask("y", ["parent"])]);
    await b.close();
    return ["parent", "x", "y"];
  }, async (b) => {
    const { tasks } = await b.queue.claim({
      queues: ["default"],
      limit: 1,
      lease: 30_000,
      worker: "dying",
    });
    assert.equal(tasks[0]?.id, "parent");
    await b.queue.complete("parent", tasks[0].token, done("parent"));
  });
  assert.ok(cuts > 6, `a claim and a completion make several changes (${cuts})`);
});

Deno.test("file: an enqueue cut short at any point leaves all of the batch or none", async () => {
  for (let cut = 0;; cut++) {
    const dir = await Deno.makeTempDir({ prefix: "omniq-file-journal-" });
    try {
      const storage = new DyingStorage(new LocalStorage(dir));
      const dying = await openFile(dir, { storage });
      storage.budget = cut;
      const ids = ["e1", "e2", "e3"];
      let crashed = false;
      try {
        await dying.queue.enqueue(ids.map((id) => newTask(id)));
      } catch (error) {
        assert.match(String(error), /simulated crash/);
        crashed = true;
      }
      await Deno.utime(`${dir}/lock`, 0, 0).catch(() => {});
      const b = await openFile(dir);
      try {
        await b.queue.sweep({ now: Date.now() }); // a step under the lock finishes a journal
        const found = await Promise.all(ids.map((id) => b.queue.get(id)));
        const stored = found.filter((t) => t !== undefined).length;
        assert.ok(stored === 0 || stored === 3, `cut ${cut}: ${stored} of 3 stored`);
      } finally {
        await b.close();
      }
      if (!crashed) break;
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});
