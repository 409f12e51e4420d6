// Processes sharing one NATS JetStream store: 4 worker processes complete each of 10,000
// tasks exactly once, three scheduler processes fire each tick exactly once, and worker
// processes killed mid-step (holding the lock, part way through a commit) lose nothing. Each
// test uses a fresh name prefix (its own buckets and stream), deleted at the end.
import assert from "node:assert/strict";
import { defineTask, OmniQ } from "../mod.ts";
import { openNats } from "../backends/nats/mod.ts";
import { type Child, kill, readLine, spawn } from "./fixtures/processes.ts";
import { threeSchedulersExactlyOnce } from "./fixtures/schedulers.ts";
import {
  processesExactlyOnce,
  twoProcessesOneGroup,
  twoProcessesRateLimited,
} from "./fixtures/two_processes.ts";
import { testServerUrl } from "./servers.ts";

const NET = ["--allow-net=127.0.0.1", "--allow-env"];

function freshUrl(): string {
  return `${testServerUrl("nats")}?prefix=mp_${crypto.randomUUID().replaceAll("-", "")}`;
}

async function drop(url: string): Promise<void> {
  await (await openNats(url)).destroy();
}

Deno.test("nats: four processes complete each of 10,000 tasks exactly once", async () => {
  const url = freshUrl();
  try {
    await processesExactlyOnce(() => url, { processes: 4, tasks: 10_000, extra: NET });
  } finally {
    await drop(url);
  }
});

Deno.test("nats: three scheduler processes fire each tick exactly once", async () => {
  const url = freshUrl();
  try {
    await threeSchedulersExactlyOnce(() => url, NET);
  } finally {
    await drop(url);
  }
});

Deno.test("nats: workers killed mid-step, three times over, lose and repeat nothing", async () => {
  const url = freshUrl();
  const dir = await Deno.makeTempDir({ prefix: "omniq-nats-crash-" });
  const N = 400;
  let child: Child | undefined;
  try {
    defineTask("crash-work", (n: number) => n + 1);
    await using q = await OmniQ.open({ backend: url, worker: { lease: "1s" } });
    const ids = await q.enqueueMany(
      Array.from({ length: N }, (_, i) => ({ task: "crash-work", args: [i] })),
    );
    const completed = async () => (await q.stats()).total.completed;
    for (let round = 0; round < 3; round++) {
      child = spawn(new URL("./fixtures/crash_worker.ts", import.meta.url), dir, [url], NET);
      assert.equal(await readLine(child), "ready");
      // Let it work a little, then kill it without warning: it is nearly always inside a
      // step (holding the lock, part way through writing a commit).
      const before = await completed();
      await until(async () => (await completed()) >= before + 25);
      await kill(child);
      child = undefined;
    }
    // This process takes over once the dead holder's lock goes stale, finishes what it left
    // half written, and recovers the tasks it held once their leases end.
    await until(async () => {
      await q.run({ until: "idle" });
      return (await completed()) === N;
    }, 60_000);
    const ended = new Map<string, number>();
    for await (const e of q.events({ type: "completed" })) {
      ended.set(e.taskId!, (ended.get(e.taskId!) ?? 0) + 1);
    }
    assert.equal(ended.size, N, "every task has its completed event");
    for (const [id, n] of ended) assert.equal(n, 1, `task ${id} completed ${n} times`);
    for (const [i, id] of ids.entries()) assert.equal(await q.wait(id), i + 1);
  } finally {
    if (child) await kill(child);
    await Deno.remove(dir, { recursive: true });
    await drop(url);
  }
});

async function until(probe: () => Promise<boolean>, timeout = 30_000): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("nats: two processes never run two tasks of a group at groupConcurrency 1", async () => {
  const url = freshUrl();
  try {
    await twoProcessesOneGroup(() => url, NET);
  } finally {
    await drop(url);
  }
});

Deno.test("nats: two processes hold a rate limit of 30 starts per 500 ms", async () => {
  const url = freshUrl();
  try {
    await twoProcessesRateLimited(() => url, NET);
  } finally {
    await drop(url);
  }
});
