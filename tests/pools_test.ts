// The thread and process pools against SQLite: results, progress, queue order, concurrency,
// leases, retries, crashes, hard timeouts, graceful stop, permissions, where handlers run.
import assert from "node:assert/strict";
import { ConfigError, type EventRecord, OmniQ, type WorkerOptions } from "../mod.ts";
import { mostAtOnce } from "./conformance/harness.ts";

const FIXTURE = new URL("./fixtures/pool_tasks.ts", import.meta.url).href;
const TYPES = ["thread", "process"] as const;
type PoolType = typeof TYPES[number];

/** A queue on a fresh SQLite file in a temp dir, with the pool fixture as its task module. */
async function withQueue(fn: (q: OmniQ, dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "omniq-pools-" });
  try {
    const q = await OmniQ.open({ backend: `sqlite:${dir}/queue.db`, tasks: [FIXTURE] });
    try {
      await fn(q, dir);
    } finally {
      await q.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Run until idle with a pool, polling often (the machine may be loaded: bounds are loose). */
function run(q: OmniQ, type: PoolType, options: WorkerOptions = {}): Promise<void> {
  return q.run({ until: "idle", type, pollInterval: "20ms", ...options });
}

async function events(q: OmniQ, taskId?: string): Promise<EventRecord[]> {
  const out: EventRecord[] = [];
  for await (const e of q.events(taskId === undefined ? {} : { taskId })) out.push(e);
  return out;
}

async function waitUntil(what: string, check: () => Promise<boolean>, ms = 20_000) {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

for (const type of TYPES) {
  Deno.test(`${type} pool: results, progress and console output cross; leases are renewed`, async () => {
    await withQueue(async (q) => {
      const add = await q.enqueue("pool-add", [2, 3]);
      const slow = await q.enqueue("pool-slow", [1_200]);
      const chatty = await q.enqueue("pool-chatty", [7]);
      // A lease shorter than the task, swept often: only renewal from the parent keeps it.
      await run(q, type, { concurrency: 3, lease: "1s", sweepInterval: "100ms" });
      assert.equal(await q.wait(add), 5);
      assert.equal(await q.wait(slow), 1_200);
      assert.equal(await q.wait(chatty), 7);
      const record = await q.get(slow);
      assert.equal(record?.state, "completed");
      assert.equal(record?.progress, 1);
      const slowEvents = await events(q, slow);
      const progress = slowEvents.filter((e) => e.type === "progress");
      assert.ok(progress.length >= 2, `expected progress events, got ${progress.length}`);
      assert.deepEqual(progress.at(-1)?.data, { progress: 1 });
      for (const id of [add, slow, chatty]) {
        const types = (await events(q, id)).map((e) => e.type);
        assert.deepEqual(types.filter((t) => t !== "progress"), [
          "enqueued",
          "started",
          "completed",
        ]);
      }
    });
  });

  Deno.test(`${type} pool: queues are drained in the order given`, async () => {
    await withQueue(async (q) => {
      const low = await q.enqueueMany(
        Array.from({ length: 3 }, (_, i) => ({ task: "pool-add", args: [i, 0], queue: "low" })),
      );
      const high = await q.enqueueMany(
        Array.from({ length: 3 }, (_, i) => ({ task: "pool-add", args: [i, 1], queue: "high" })),
      );
      await run(q, type, { concurrency: 1, queues: ["high", "low"] });
      const started = (await events(q)).filter((e) => e.type === "started").map((e) => e.taskId);
      assert.deepEqual(started, [...high, ...low]);
      for (const [i, id] of low.entries()) assert.equal(await q.wait(id), i);
      for (const [i, id] of high.entries()) assert.equal(await q.wait(id), i + 1);
    });
  });

  Deno.test(`${type} pool: never more than concurrency tasks at once`, async () => {
    await withQueue(async (q) => {
      const ids = await q.enqueueMany(
        Array.from({ length: 8 }, () => ({ task: "pool-slow", args: [200] })),
      );
      await run(q, type, { concurrency: 2 });
      // Each attempt runs between its started and its completed event: count the overlap.
      const { most } = mostAtOnce(await events(q));
      assert.equal(most, 2, `at most 2 at once, and 2 at some point; got ${most}`);
      for (const id of ids) assert.equal(await q.wait(id), 200);
    });
  });

  Deno.test(`${type} pool: Deno.exit in a handler fails only its own task, which then retries`, async () => {
    await withQueue(async (q) => {
      const exit = await q.enqueue("pool-exit-once", []);
      const others = await q.enqueueMany([
        ...Array.from({ length: 4 }, (_, i) => ({ task: "pool-add", args: [i, i] })),
        { task: "pool-slow", args: [300] },
        { task: "pool-slow", args: [300] },
      ]);
      await run(q, type, { concurrency: 2 });
      assert.equal(await q.wait(exit), "survived");
      const exitEvents = await events(q, exit);
      const retrying = exitEvents.filter((e) => e.type === "retrying");
      assert.equal(retrying.length, 1);
      const error = (retrying[0].data as { error: { message: string } }).error;
      assert.match(error.message, /exit/i);
      assert.equal((await q.get(exit))?.attempts, 2);
      for (const id of others) {
        await q.wait(id);
        const record = await q.get(id);
        assert.equal(record?.state, "completed");
        assert.equal(record?.attempts, 1, `task ${id} was not hit by the other task's exit`);
      }
    });
  });

  Deno.test(`${type} pool: an uncaught error outside a handler fails only its task`, async () => {
    await withQueue(async (q) => {
      const crash = await q.enqueue("pool-crash-once", []);
      const others = await q.enqueueMany(
        Array.from({ length: 4 }, (_, i) => ({ task: "pool-slow", args: [100 * (i + 1)] })),
      );
      const started = Date.now();
      await run(q, type, { concurrency: 2 });
      assert.ok(Date.now() - started < 8_000, "the crash was noticed, not waited out");
      assert.equal(await q.wait(crash), "recovered");
      const retrying = (await events(q, crash)).filter((e) => e.type === "retrying");
      assert.equal(retrying.length, 1);
      for (const id of others) {
        await q.wait(id);
        assert.equal((await q.get(id))?.attempts, 1, `task ${id} was not hit by the crash`);
      }
    });
  });

  Deno.test(`${type} pool: cancelling a running task stops it; the pool goes on`, async () => {
    await withQueue(async (q) => {
      const w = q.worker({ type, concurrency: 1, pollInterval: "20ms" });
      await w.start();
      try {
        const slow = await q.enqueue("pool-slow", [10_000]);
        await waitUntil("the task to start", async () => (await q.get(slow))?.state === "running");
        const cancelled = Date.now();
        assert.equal(await q.cancel(slow), true);
        const next = await q.enqueue("pool-add", [2, 2]);
        assert.equal(await q.wait(next, { timeout: "20s" }), 4);
        assert.ok(Date.now() - cancelled < 8_000, "the next task waited for the cancelled one");
        assert.equal((await q.get(slow))?.state, "cancelled");
        assert.equal((await q.result(slow))?.state, "cancelled");
      } finally {
        await w.stop();
      }
    });
  });

  Deno.test(`${type} pool: a busy loop past its timeout fails with TimeoutError; the pool goes on`, async () => {
    await withQueue(async (q, dir) => {
      // Only a child's heartbeat is watched: an abandoned thread spins on after the test (see
      // below), and a heartbeat it kept writing would race the removal of the directory.
      const beat = type === "process" ? `${dir}/beat` : undefined;
      const args: [number, string?] = beat === undefined ? [4_000] : [4_000, beat];
      const hang = await q.enqueue("pool-hang", args, { timeout: "300ms" });
      const add = await q.enqueue("pool-add", [20, 22]);
      const started = Date.now();
      await run(q, type, { concurrency: 1, permissions: { write: [dir] } });
      const result = await q.result(hang);
      assert.equal(result?.state, "failed");
      assert.equal(result?.error?.name, "TimeoutError");
      assert.equal(await q.wait(add), 42, "the pool keeps working after a timeout");
      // The next task ran in a fresh thread or child, without waiting for the loop to end.
      assert.ok(Date.now() - started < 3_500, "the timeout waited for the busy loop");
      if (type === "process") {
        // The child that ran the loop was killed: its heartbeat file stops changing.
        const before = await Deno.readTextFile(beat!);
        await sleep(500);
        assert.equal(await Deno.readTextFile(beat!), before, "the busy loop still runs");
      }
      // A thread is terminated too, but Deno 2.9's Worker.terminate() does not interrupt a
      // busy loop: the abandoned thread spins until the handler returns (4 s here).
    });
  });

  Deno.test(`${type} pool: retries follow the policy, and the error crosses intact`, async () => {
    await withQueue(async (q) => {
      const id = await q.enqueue("pool-fail", ["boom"], { retries: 2 });
      await run(q, type, { concurrency: 2 });
      const result = await q.result(id);
      assert.equal(result?.state, "failed");
      assert.equal(result?.error?.name, "BoomError");
      assert.equal(result?.error?.message, "boom");
      const types = (await events(q, id)).map((e) => e.type);
      assert.equal(types.filter((t) => t === "started").length, 3);
      assert.equal(types.filter((t) => t === "retrying").length, 2);
      assert.equal(types.at(-1), "failed");
      assert.equal((await q.get(id))?.attempts, 3);
    });
  });

  Deno.test(`${type} pool: stop() lets a running task finish and claims nothing more`, async () => {
    await withQueue(async (q) => {
      const w = q.worker({ type, concurrency: 1, pollInterval: "20ms" });
      await w.start();
      const slow = await q.enqueue("pool-slow", [800]);
      await waitUntil("the task to start", async () => (await q.get(slow))?.state === "running");
      const later = await q.enqueue("pool-add", [1, 1]);
      await w.stop();
      assert.equal((await q.get(slow))?.state, "completed");
      assert.equal(await q.wait(slow), 800);
      assert.equal((await q.get(later))?.state, "queued", "a stopping worker claims nothing");
    });
  });

  Deno.test(`${type} pool: a stop past shutdownGrace hands the task back, not lost`, async () => {
    await withQueue(async (q) => {
      const w = q.worker({ type, concurrency: 1, pollInterval: "20ms", shutdownGrace: "50ms" });
      await w.start();
      const slow = await q.enqueue("pool-slow", [1_500]);
      await waitUntil("the task to start", async () => (await q.get(slow))?.state === "running");
      const stopped = Date.now();
      await w.stop();
      assert.ok(Date.now() - stopped < 1_400, "stop did not wait for the task");
      const record = await q.get(slow);
      assert.ok(
        record?.state === "queued" || record?.state === "scheduled",
        `handed back, got ${record?.state}`,
      );
      assert.equal(await q.result(slow), undefined);
      const retrying = (await events(q, slow)).filter((e) => e.type === "retrying");
      assert.equal(retrying.length, 1);
      assert.equal((retrying[0].data as { error: { name: string } }).error.name, "WorkerStopped");
      await run(q, type, { concurrency: 1 });
      assert.equal(await q.wait(slow), 1_500);
      const completed = (await events(q, slow)).filter((e) => e.type === "completed");
      assert.equal(completed.length, 1);
    });
  });

  Deno.test(`${type} pool: an unknown task name fails with UnknownTaskError, once`, async () => {
    await withQueue(async (q) => {
      const id = await q.enqueue("pool-no-such-task", [1]);
      const ok = await q.enqueue("pool-add", [1, 2]);
      await run(q, type);
      const result = await q.result(id);
      assert.equal(result?.state, "failed");
      assert.equal(result?.error?.name, "UnknownTaskError");
      assert.equal((await q.get(id))?.attempts, 1, "no retry can fix an unknown task");
      assert.equal(await q.wait(ok), 3);
    });
  });
}

Deno.test("thread pool: the handler runs in a Web Worker of this process", async () => {
  await withQueue(async (q) => {
    const id = await q.enqueue("pool-where", []);
    await run(q, "thread");
    assert.deepEqual(await q.wait(id), { pid: Deno.pid, thread: true });
  });
});

Deno.test("process pool: the handler runs in another process", async () => {
  await withQueue(async (q) => {
    const id = await q.enqueue("pool-where", []);
    await run(q, "process");
    const where = await q.wait<{ pid: number; thread: boolean }>(id);
    assert.notEqual(where.pid, Deno.pid);
    assert.equal(where.thread, false);
  });
});

Deno.test("thread pool: a thread that falls silent is caught by the watchdog (the lease)", async () => {
  await withQueue(async (q) => {
    // A busy loop without a timeout: the thread sends no heartbeat for longer than the lease.
    const id = await q.enqueue("pool-hang", [3_000]);
    const ok = await q.enqueue("pool-add", [3, 4]);
    await run(q, "thread", { concurrency: 1, lease: "1s" });
    const result = await q.result(id);
    assert.equal(result?.state, "failed");
    assert.match(result?.error?.message ?? "", /silent/);
    assert.equal(await q.wait(ok), 7);
  });
});

Deno.test("process pool: a child writes only where worker.permissions lets it", async () => {
  await withQueue(async (q, dir) => {
    await Deno.mkdir(`${dir}/granted`);
    // No permissions: no write anywhere.
    const denied = await q.enqueue("pool-write", [`${dir}/out.txt`]);
    await run(q, "process");
    const result = await q.result(denied);
    assert.equal(result?.state, "failed");
    assert.match(
      `${result?.error?.name}: ${result?.error?.message}`,
      /PermissionDenied|NotCapable|Requires write access/,
    );
    await assert.rejects(Deno.stat(`${dir}/out.txt`), Deno.errors.NotFound);

    // Granted one directory, through the worker: writes there, not beside it.
    const inside = await q.enqueue("pool-write", [`${dir}/granted/out.txt`]);
    const outside = await q.enqueue("pool-write", [`${dir}/out.txt`]);
    const w = q.worker({
      type: "process",
      pollInterval: "20ms",
      permissions: { write: [`${dir}/granted`] },
    });
    await w.start();
    assert.equal(await q.wait(inside, { timeout: "20s" }), "wrote");
    await q.wait(outside, { timeout: "20s" }).catch(() => {});
    await w.stop();
    assert.equal(await Deno.readTextFile(`${dir}/granted/out.txt`), "written");
    assert.equal((await q.result(outside))?.state, "failed");
    assert.match((await q.result(outside))?.error?.message ?? "", /write access/);
    await assert.rejects(Deno.stat(`${dir}/out.txt`), Deno.errors.NotFound);
  });
});

Deno.test("process pool: permissions given at open apply to its workers", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omniq-pools-" });
  try {
    await using q = await OmniQ.open({
      backend: `sqlite:${dir}/queue.db`,
      tasks: [FIXTURE],
      worker: { permissions: { write: [dir] } },
    });
    const id = await q.enqueue("pool-write", [`${dir}/out.txt`]);
    await run(q, "process");
    assert.equal(await q.wait(id), "wrote");
    assert.equal(await Deno.readTextFile(`${dir}/out.txt`), "written");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("pools need task modules given at open: ConfigError otherwise", async () => {
  await using q = await OmniQ.open("memory:");
  assert.throws(() => q.worker({ type: "thread" }), ConfigError);
  assert.throws(() => q.worker({ type: "process" }), ConfigError);
  await assert.rejects(q.run({ until: "idle", type: "thread" }), ConfigError);
  // The async worker needs none.
  await q.worker({ type: "async" }).stop();
});
