// Two OS processes work one `file:` directory: 2,000 tasks, each completed exactly once.
import assert from "node:assert/strict";
import { defineTask, OmniQ } from "../mod.ts";
import { threeSchedulersExactlyOnce } from "./fixtures/schedulers.ts";
import { twoProcessesExactlyOnce } from "./fixtures/two_processes.ts";
import { type Child, kill, readLine, spawn } from "./fixtures/processes.ts";

Deno.test(
  "file: two processes on one directory complete each of 2,000 tasks exactly once",
  () => twoProcessesExactlyOnce((dir) => `file:${dir}/store`),
);

Deno.test(
  "file: three scheduler processes on one directory fire each tick exactly once",
  () => threeSchedulersExactlyOnce((dir) => `file:${dir}/store`),
);

Deno.test("file: a process killed mid-run (maybe holding the lock) loses no task", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "omniq-file-crash-" });
  const dir = `${tmp}/store`;
  const N = 300;
  let child: Child | undefined;
  try {
    defineTask("crash-work", (n: number) => n + 1);
    await using q = await OmniQ.open({ backend: `file:${dir}`, worker: { lease: "1s" } });
    const ids = await q.enqueueMany(
      Array.from({ length: N }, (_, i) => ({ task: "crash-work", args: [i] })),
    );
    child = spawn(new URL("./fixtures/crash_worker.ts", import.meta.url), tmp, [`file:${dir}`]);
    assert.equal(await readLine(child), "ready");
    // Let it work a little, then kill it without warning.
    await until(async () => (await q.stats()).total.completed >= 20);
    await kill(child);
    await q.run({ until: "idle" });
    // Tasks it held are recovered once their lease ends (a crash leaves no half-written file).
    await until(async () => (await q.stats()).total.completed === N, 30_000, async () => {
      await q.run({ until: "idle" });
    });
    for (const [i, id] of ids.entries()) assert.equal(await q.wait(id), i + 1);
  } finally {
    if (child) await kill(child);
    await Deno.remove(tmp, { recursive: true });
  }
});

async function until(
  probe: () => Promise<boolean>,
  timeout = 20_000,
  between?: () => Promise<void>,
): Promise<void> {
  const deadline = Date.now() + timeout;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error("timed out");
    await (between ? between() : new Promise((r) => setTimeout(r, 20)));
    await new Promise((r) => setTimeout(r, 50));
  }
}
