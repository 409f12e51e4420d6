// Under Node, against the built npm package: the thread pool on worker_threads, the process
// pool on child_process (a child that exits is replaced, a busy loop past its timeout is
// killed), the blocking API on worker_threads + Atomics.wait, the CLI's bin with SIGTERM,
// and the clear error for what Node cannot do (child permissions). The errors for a missing
// optional driver are in missing.mjs.

import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import process from "node:process";
import { test } from "node:test";
import { ConfigError, OmniQ } from "omniq";
import { OmniQSync } from "omniq/sync";

const TASKS = new URL("./fixtures/tasks.mjs", import.meta.url).href;

async function withQueue(fn) {
  const dir = await mkdtemp(join(tmpdir(), "omniq_node_pools_"));
  const q = await OmniQ.open({ backend: `sqlite:${dir}/queue.db`, tasks: [TASKS] });
  try {
    await fn(q, dir);
  } finally {
    await q.close();
    await rm(dir, { recursive: true });
  }
}

for (const type of ["thread", "process"]) {
  test(`${type} pool: runs tasks off the main thread and returns their results`, async () => {
    await withQueue(async (q) => {
      const w = q.worker({ type, concurrency: 2, pollInterval: "20ms" });
      await w.start();
      try {
        const ids = await Promise.all([1, 2, 3].map((n) => q.enqueue("node-add", [n, n])));
        assert.deepEqual(await Promise.all(ids.map((id) => q.wait(id))), [2, 4, 6]);
        const where = await q.wait(await q.enqueue("node-where", []));
        if (type === "thread") {
          assert.equal(where.pid, process.pid);
          assert.equal(where.thread, true);
        } else {
          assert.notEqual(where.pid, process.pid);
          assert.equal(where.thread, false);
        }
      } finally {
        await w.stop();
      }
    });
  });

  test(`${type} pool: a handler that exits fails its attempt only, and is retried`, async () => {
    await withQueue(async (q) => {
      const w = q.worker({ type, concurrency: 1, pollInterval: "20ms" });
      await w.start();
      try {
        const id = await q.enqueue("node-exit-once", [], { retries: 1 });
        assert.equal(await q.wait(id, { timeout: "20s" }), "survived");
        assert.equal((await q.get(id)).attempts, 2);
      } finally {
        await w.stop();
      }
    });
  });
}

test("process pool: a busy loop past its timeout is killed and the pool goes on", async () => {
  await withQueue(async (q) => {
    const w = q.worker({ type: "process", concurrency: 1, pollInterval: "20ms" });
    await w.start();
    try {
      const stuck = await q.enqueue("node-hang", [60_000], { timeout: "300ms", retries: 0 });
      const started = Date.now();
      await assert.rejects(() => q.wait(stuck, { timeout: "20s" }));
      const result = await q.result(stuck);
      assert.equal(result.state, "failed");
      assert.equal(result.error.name, "TimeoutError");
      assert.ok(Date.now() - started < 10_000, "the timeout was enforced, not waited out");
      assert.equal(await q.wait(await q.enqueue("node-add", [20, 22]), { timeout: "20s" }), 42);
    } finally {
      await w.stop();
    }
  });
});

test("process pool: worker permissions are refused on Node, naming the key", async () => {
  await withQueue((q) => {
    assert.throws(
      () => q.worker({ type: "process", permissions: { net: true } }),
      (e) =>
        e instanceof ConfigError && /permissions\.net/.test(e.message) && /Node/.test(e.message),
    );
  });
});

test("sync: the blocking API runs on worker_threads and Atomics.wait", () => {
  const q = OmniQSync.open({ backend: "memory:", tasks: [TASKS] });
  try {
    const id = q.enqueue("node-add", [40, 2]);
    q.run({ until: "idle" });
    assert.equal(q.wait(id), 42);
    assert.equal(q.result(id).state, "completed");
  } finally {
    q.close();
  }
});

test("cli: `omniq worker` runs tasks and stops on SIGTERM", async () => {
  const dir = await mkdtemp(join(tmpdir(), "omniq_node_cli_"));
  try {
    const config = join(dir, "omniq.yaml");
    await writeFile(config, `backend: sqlite:${dir}/q.db\ntasks:\n  - ${TASKS}\n`);
    const q = await OmniQ.open({ backend: `sqlite:${dir}/q.db`, tasks: [TASKS] });
    const id = await q.enqueue("node-add", [1, 1]);
    const bin = new URL("./node_modules/.bin/omniq", import.meta.url).pathname;
    // The CLI refuses OMNIQ_* variables it does not know, such as the test servers' URLs.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([name]) => !name.startsWith("OMNIQ_")),
    );
    const child = spawn(bin, ["worker", "--config", config], {
      stdio: ["ignore", "ignore", "pipe"],
      env,
    });
    let stderr = "";
    child.stderr.on("data", (chunk) => stderr += chunk);
    const exited = new Promise((resolve) => child.on("exit", (code) => resolve(code)));
    try {
      // The worker exiting early (a crash at open, say) fails at once, with what it printed.
      const early = exited.then((code) => {
        throw new Error(`omniq worker exited with ${code} before the task ran:\n${stderr}`);
      });
      const done = q.wait(id, { timeout: "30s" }).catch((e) => {
        throw new Error(`${e.message}; the worker printed:\n${stderr}`);
      });
      assert.equal(await Promise.race([done, early]), 2);
    } finally {
      child.kill("SIGTERM");
    }
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /worker stopped/);
    await q.close();
  } finally {
    await rm(dir, { recursive: true });
  }
});
