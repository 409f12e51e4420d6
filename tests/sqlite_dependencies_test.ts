// Two OS processes work one SQLite file through 100 chains of three steps and 20 groups of
// three: every chain pipes its values through, every group collects in member order, every
// task completes exactly once, and a dependent is released by a dependency that completed
// in the other process (each handler returns the id of the process that ran it). Steps
// alternate between two queues that the processes drain in opposite orders, the way
// workers are often specialised, so a chain usually crosses between them; both serve both.
import assert from "node:assert/strict";
import { OmniQ } from "../mod.ts";
import { type Child, finish, kill, readLine, spawn } from "./fixtures/processes.ts";

const CHILD = new URL("./fixtures/dep_worker.ts", import.meta.url);
const CHAINS = 100;
const GROUPS = 20;
const TASKS = CHAINS * 3 + GROUPS * 4; // a group's collector is a task too

Deno.test("sqlite: two processes on one file run 100 chains and 20 groups, each task once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omniq-deps-" });
  const path = `${dir}/queue.db`;
  const goFile = `${dir}/go`;
  const stopFile = `${dir}/stop`;
  const children: Child[] = [];
  try {
    await using q = await OmniQ.open(`sqlite:${path}`);
    for (const queues of ["left,right", "right,left"]) {
      children.push(spawn(CHILD, dir, [path, goFile, stopFile, queues]));
    }
    for (const child of children) assert.equal(await readLine(child), "ready");

    const chains = [];
    for (let i = 0; i < CHAINS; i++) {
      const start = i * 10;
      const flow = await q.chain<{ n: number; pid: number }>([
        { task: "dep-step", args: [start], queue: "left" },
        { task: "dep-step", args: [], queue: "right" },
        { task: "dep-step", args: [], queue: "left" },
      ]);
      chains.push({ start, flow });
    }
    const groups = [];
    for (let i = 0; i < GROUPS; i++) {
      const xs = [i, i + 1, i + 2];
      const members = xs.map((x, k) => ({
        task: "dep-member",
        args: [x],
        queue: k % 2 === 0 ? "right" : "left",
      }));
      groups.push({ xs, flow: await q.group(members) });
    }
    await Deno.writeTextFile(goFile, "go");

    const deadline = Date.now() + 60_000;
    for (;;) {
      const { total } = await q.stats();
      if ((total.completed ?? 0) === TASKS) break;
      const stuck = (total.failed ?? 0) + (total.cancelled ?? 0) + (total.expired ?? 0);
      assert.equal(stuck, 0, `no task ends otherwise: ${JSON.stringify(total)}`);
      assert.ok(Date.now() < deadline, `not done within 60 s: ${JSON.stringify(total)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await Deno.writeTextFile(stopFile, "stop");

    const pids: number[] = [];
    let ran = 0;
    for (const [i, child] of children.entries()) {
      const { out, code } = await finish(child);
      assert.equal(code, 0, `worker ${i} exited with ${code}`);
      const match = /ran (\d+) pid (\d+)/.exec(out);
      assert.ok(match, `worker ${i} said: ${out}`);
      ran += Number(match[1]);
      pids.push(Number(match[2]));
    }
    children.length = 0;
    assert.equal(ran, CHAINS * 3 + GROUPS * 3, "handlers ran once per step and member");

    let crossed = 0;
    const ranIn = new Set<number>();
    for (const { start, flow } of chains) {
      const steps = [];
      for (const id of flow.ids) steps.push(await q.wait<{ n: number; pid: number }>(id));
      assert.deepEqual(steps.map((s) => s.n), [start + 1, start + 2, start + 3]);
      for (const [k, s] of steps.entries()) {
        assert.ok(pids.includes(s.pid), `step ran in one of the workers: ${s.pid}`);
        ranIn.add(s.pid);
        if (k > 0 && s.pid !== steps[k - 1].pid) crossed++;
      }
    }
    for (const { xs, flow } of groups) {
      const list = await q.wait(flow.id) as { v: number; pid: number }[];
      assert.deepEqual(list.map((m) => m.v), xs.map((x) => x * x), "in member order");
      for (const m of list) ranIn.add(m.pid);
    }
    assert.equal(ranIn.size, 2, "both processes ran steps");
    assert.ok(crossed > 0, "a step ran in another process than the step it depends on");

    const completed = new Map<string, number>();
    for await (const e of q.events({ type: ["completed", "stalled", "cancelled"] })) {
      assert.equal(e.type, "completed", `unexpected ${e.type} event for ${e.taskId}`);
      completed.set(e.taskId!, (completed.get(e.taskId!) ?? 0) + 1);
    }
    assert.equal(completed.size, TASKS);
    for (const [id, n] of completed) assert.equal(n, 1, `task ${id} completed ${n} times`);
    for (const record of await q.list({ limit: 1_000 })) {
      assert.equal(record.state, "completed");
      assert.equal(record.attempts, 1, `task ${record.id} ran once`);
    }
    // Released exactly once: a dependent has one `enqueued` event for its release.
    for (const { flow } of chains) {
      for (const id of flow.ids.slice(1)) {
        const released = (await Array.fromAsync(q.events({ taskId: id, type: "enqueued" })))
          .filter((e) => e.data?.released);
        assert.equal(released.length, 1, `step ${id} released once`);
      }
    }
  } finally {
    for (const child of children) await kill(child);
    await Deno.remove(dir, { recursive: true });
  }
});
