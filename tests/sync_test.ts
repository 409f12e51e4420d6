// The blocking API: one mechanism (a Worker running the async core, Atomics.wait on a
// SharedArrayBuffer) for every engine.
import assert from "node:assert/strict";
import { OmniQSync } from "../sync.ts";
import {
  ConfigError,
  OmniQError,
  SerializationError,
  TaskCancelledError,
  TaskFailedError,
  TimeoutError,
} from "../mod.ts";

const TASKS = [new URL("./fixtures/sync_tasks.ts", import.meta.url)];

/** A fresh store of an engine, and how to dispose of it. */
async function store(engine: "memory" | "sqlite"): Promise<[string, () => Promise<void>]> {
  if (engine === "memory") return ["memory:", () => Promise.resolve()];
  const dir = await Deno.makeTempDir({ prefix: "omniq-sync-" });
  return [`sqlite:${dir}/sync.db`, () => Deno.remove(dir, { recursive: true })];
}

for (const name of ["memory", "sqlite"] as const) {
  Deno.test(`sync (${name}): enqueue, run, wait, get, result, events, stats, list`, async () => {
    const [url, dispose] = await store(name);
    try {
      using q = OmniQSync.open({ backend: url, tasks: TASKS });
      const id = q.enqueue("sync-add", [1, 2]);
      const [a, b] = q.enqueueMany([
        { task: "sync-add", args: [2, 3] },
        { task: "sync-kinds", args: [new Date(5), new Set(["t"])] },
      ]);
      q.run({ until: "idle" });
      assert.equal(q.wait(id), 3);
      assert.equal(q.wait(a), 5);
      const kinds = q.wait(b) as {
        when: Date;
        tags: Set<string>;
        big: bigint;
        map: Map<number, string>;
      };
      assert.ok(kinds.when instanceof Date && kinds.when.getTime() === 5);
      assert.ok(kinds.tags instanceof Set && kinds.tags.has("t"));
      assert.equal(kinds.big, 2n ** 64n);
      assert.equal(kinds.map.get(1), "one");
      assert.equal(q.get(id)?.state, "completed");
      assert.ok(q.get(id)?.createdAt instanceof Date);
      assert.equal(q.result(id)?.value, 3);
      assert.deepEqual(q.events({ taskId: id }).map((e) => e.type), [
        "enqueued",
        "started",
        "completed",
      ]);
      assert.equal(q.stats().total.completed, 3);
      assert.equal(q.list({ state: "completed" }).length, 3);
      assert.equal(q.cancel(id), false);
      assert.equal(typeof q.cleanup().results, "number");
    } finally {
      await dispose();
    }
  });
}

Deno.test("sync: errors cross with their class and message", () => {
  using q = OmniQSync.open({ backend: "memory:", tasks: TASKS });
  const failing = q.enqueue("sync-fail", ["bad input"]);
  q.run({ until: "idle" });
  assert.throws(() => q.wait(failing), (e: unknown) => {
    assert.ok(e instanceof TaskFailedError);
    assert.equal(e.taskId, failing);
    assert.equal(e.remote.name, "TypeError");
    assert.equal(e.remote.message, "bad input");
    return true;
  });
  const idle = q.enqueue("sync-add", [1, 1], { queue: "nobody-serves-this" });
  assert.throws(() => q.wait(idle, { timeout: "30ms" }), (e: unknown) => {
    assert.ok(e instanceof TimeoutError);
    assert.match((e as Error).message, /not done after 30ms/);
    return true;
  });
  assert.equal(q.cancel(idle), true);
  assert.throws(() => q.wait(idle), TaskCancelledError);
  assert.throws(() => q.enqueue("sync-add", [1, 2], { priority: 10 }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match((e as Error).message, /^priority: expected an integer from 0 to 9, got 10/);
    return true;
  });
  // Refused before it crosses: nothing is stored.
  assert.throws(() => q.enqueue("sync-add", [() => 1] as never), SerializationError);
  assert.equal(q.stats().total.queued, 0);
});

Deno.test("sync: a reply larger than the buffer crosses in chunks", () => {
  using q = OmniQSync.open({ backend: "memory:", tasks: TASKS }, { bufferSize: 4096 });
  const id = q.enqueue("sync-big", [100_000]);
  q.run({ until: "idle" });
  const value = q.wait(id) as string;
  assert.equal(value.length, 100_000);
  assert.equal(q.events({}).length, 3);
});

Deno.test("sync: a call after close fails clearly; close is idempotent", () => {
  const q = OmniQSync.open("memory:");
  q.close();
  q.close();
  assert.throws(() => q.stats(), (e: unknown) => {
    assert.ok(e instanceof OmniQError);
    assert.equal((e as Error).message, "this OmniQSync is closed");
    return true;
  });
});

Deno.test("sync: a bad configuration fails at open with the Worker's ConfigError", () => {
  assert.throws(() => OmniQSync.open("nosuch:thing"), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.match((e as Error).message, /unknown URL scheme "nosuch:"/);
    return true;
  });
  assert.throws(
    // deno-lint-ignore no-explicit-any
    () => OmniQSync.open({ backend: "memory:", tasks: [{ name: "x" } as any] }),
    /tasks\[0\]: OmniQSync takes task module URLs/,
  );
});

Deno.test("sync: a Worker that dies is a clear error, not a hang", () => {
  const q = OmniQSync.open({ backend: "memory:", tasks: TASKS }, { heartbeatTimeout: "300ms" });
  q.enqueue("sync-exit", []);
  const t0 = Date.now();
  assert.throws(() => q.run({ until: "idle" }), (e: unknown) => {
    assert.ok(e instanceof OmniQError);
    assert.match((e as Error).message, /stopped responding/);
    return true;
  });
  assert.ok(Date.now() - t0 < 5_000);
  assert.throws(() => q.stats(), /closed/);
});
