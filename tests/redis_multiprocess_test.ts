// Several OS processes on one Redis server: four worker processes race for 10,000 tasks,
// each completed exactly once; and three scheduler processes fire each tick of the stored
// schedules exactly once (tests/fixtures/schedulers.ts, shared with the other engines).
// Each test works under a fresh key prefix, deleted when it ends.

import assert from "node:assert/strict";
import { OmniQ } from "../mod.ts";
import { dropPrefix, freshPrefix, prefixUrl } from "./fixtures/redis.ts";
import { type Child, finish, kill, readLine, spawn } from "./fixtures/processes.ts";
import { threeSchedulersExactlyOnce } from "./fixtures/schedulers.ts";

const WORKER = new URL("./fixtures/mp_worker.ts", import.meta.url);
/** What a child needs to reach the server. */
const NET = ["--allow-net=127.0.0.1", "--allow-env"];
const PROCESSES = 4;
const TASKS = 10_000;

Deno.test(`redis: ${PROCESSES} processes complete each of ${TASKS} tasks exactly once`, async () => {
  const prefix = freshPrefix("omniq-mp");
  const url = prefixUrl(prefix);
  const dir = await Deno.makeTempDir({ prefix: "omniq-redis-mp-" });
  const goFile = `${dir}/go`;
  const children: Child[] = [];
  try {
    await using q = await OmniQ.open(url);
    for (let i = 0; i < PROCESSES; i++) children.push(spawn(WORKER, dir, [url, goFile], NET));
    for (const child of children) assert.equal(await readLine(child), "ready");

    const ids = await q.enqueueMany(
      Array.from({ length: TASKS }, (_, i) => ({ task: "mp-work", args: [i] })),
    );
    await Deno.writeTextFile(goFile, "go");

    let ranTotal = 0;
    for (const [i, child] of children.entries()) {
      const { out, code } = await finish(child);
      assert.equal(code, 0, `worker ${i} exited with ${code}`);
      const ran = Number(/ran (\d+)/.exec(out)?.[1]);
      assert.ok(ran > 0, `worker ${i} ran no task: every process must share the work`);
      ranTotal += ran;
    }
    children.length = 0;
    assert.equal(ranTotal, TASKS, "handlers ran once per task in total");

    const stats = await q.stats();
    assert.equal(stats.total.completed, TASKS);
    const completed = new Map<string, number>();
    for await (const e of q.events({ type: ["completed", "stalled"] })) {
      assert.equal(e.type, "completed", `unexpected ${e.type} event for ${e.taskId}`);
      completed.set(e.taskId!, (completed.get(e.taskId!) ?? 0) + 1);
    }
    assert.equal(completed.size, TASKS);
    for (const [id, n] of completed) assert.equal(n, 1, `task ${id} completed ${n} times`);
    for (const [i, id] of ids.entries()) {
      if (i % 97 === 0) assert.equal(await q.wait(id), i * 2);
    }
  } finally {
    for (const child of children) await kill(child);
    await Deno.remove(dir, { recursive: true });
    await dropPrefix(prefix);
  }
});

Deno.test("redis: three scheduler processes on one prefix fire each tick exactly once", async () => {
  const prefix = freshPrefix("omniq-sched");
  try {
    await threeSchedulersExactlyOnce(() => prefixUrl(prefix), NET);
  } finally {
    await dropPrefix(prefix);
  }
});
