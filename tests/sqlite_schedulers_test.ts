// Three OS processes fire the stored schedules of one SQLite file at once, for about five
// seconds: each tick is fired exactly once (one task, one `schedule_fired` event), none is
// missed, and the work of firing is shared. Three `every: "1s"` schedules a third of a
// second apart give each process a fair chance at about fifteen ticks, so "more than one
// process fired" does not rest on luck.
import assert from "node:assert/strict";
import { defineTask, OmniQ, type TaskRecord } from "../mod.ts";
import { type Child, finish, kill, readLine, spawn } from "./fixtures/processes.ts";

const CHILD = new URL("./fixtures/tick_worker.ts", import.meta.url);
const PROCESSES = 3;
const RUN_FOR = 5_000;

// The children run the tick tasks; this process runs the last few they left.
defineTask("tick-work", () => Deno.pid);

Deno.test("sqlite: three scheduler processes on one file fire each tick exactly once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omniq-sched-" });
  const path = `${dir}/queue.db`;
  const goFile = `${dir}/go`;
  const stopFile = `${dir}/stop`;
  const children: Child[] = [];
  try {
    await using q = await OmniQ.open(`sqlite:${path}`);
    // The first ticks a little ahead, so the children are usually ticking by then (if not,
    // the late ticks are within misfireGrace and fire on their own, which is checked too).
    const base = Date.now() + 2_000;
    const schedules: { id: string; startAt: number }[] = [];
    for (let i = 0; i < 3; i++) {
      const startAt = base + i * 333;
      const id = await q.schedule("tick-work", [], { every: "1s", startAt, id: `race-${i}` });
      schedules.push({ id, startAt });
    }
    for (let i = 0; i < PROCESSES; i++) {
      children.push(spawn(CHILD, dir, [path, goFile, stopFile]));
    }
    for (const child of children) assert.equal(await readLine(child), "ready");
    await Deno.writeTextFile(goFile, "go");
    await new Promise((r) => setTimeout(r, Math.max(0, base + RUN_FOR - Date.now())));
    const stoppedAt = Date.now();
    await Deno.writeTextFile(stopFile, "stop");

    const fired: number[] = [];
    for (const [i, child] of children.entries()) {
      const { out, code } = await finish(child);
      assert.equal(code, 0, `scheduler ${i} exited with ${code}`);
      const match = /fired (\d+)/.exec(out);
      assert.ok(match, `scheduler ${i} said: ${out}`);
      fired.push(Number(match[1]));
    }
    children.length = 0;

    const all = await q.list({ limit: 1_000 });
    let total = 0;
    for (const { id, startAt } of schedules) {
      const tasks: TaskRecord[] = all.filter((t) => t.scheduleId === id);
      const ticks = tasks.map((t) => Number(t.id.slice(id.length + 1))).sort((a, b) => a - b);
      assert.equal(new Set(tasks.map((t) => t.id)).size, tasks.length, "tick ids are unique");
      for (const t of tasks) assert.equal(t.id, `${id}:${Number(t.id.slice(id.length + 1))}`);
      assert.equal(ticks[0], startAt, `${id}: the first tick fired`);
      for (let i = 1; i < ticks.length; i++) {
        assert.equal(ticks[i] - ticks[i - 1], 1_000, `${id}: no gap or repeat in ${ticks}`);
      }
      // Every tick up to the stop is due; the ones in its last moments may not be fired.
      const due = Math.floor((stoppedAt - startAt) / 1_000) + 1;
      assert.ok(
        Math.abs(ticks.length - due) <= 1,
        `${id}: ${ticks.length} ticks, ${due} were due by the stop`,
      );
      const events = await Array.fromAsync(q.events({ type: "schedule_fired" }));
      const mine = events.filter((e) => e.data?.scheduleId === id);
      assert.deepEqual(
        mine.map((e) => e.taskId).sort(),
        tasks.map((t) => t.id).sort(),
        `${id}: one schedule_fired event per tick`,
      );
      assert.deepEqual(mine.map((e) => e.data?.tick).sort(), ticks);
      total += ticks.length;
    }
    assert.equal(fired.reduce((a, b) => a + b, 0), total, `the processes fired ${fired}`);
    assert.ok(
      fired.filter((n) => n > 0).length >= 2,
      `more than one process fired ticks: ${fired}`,
    );

    // The tick tasks run too, each exactly once.
    await q.run({ until: "idle", scheduler: false });
    const ids = new Set(
      all.filter((t) => schedules.some((s) => s.id === t.scheduleId)).map((t) => t.id),
    );
    const completed = new Map<string, number>();
    for await (const e of q.events({ type: ["completed", "stalled"] })) {
      assert.equal(e.type, "completed", `unexpected ${e.type} event for ${e.taskId}`);
      completed.set(e.taskId!, (completed.get(e.taskId!) ?? 0) + 1);
    }
    assert.deepEqual([...completed.keys()].sort(), [...ids].sort());
    for (const [id, n] of completed) assert.equal(n, 1, `task ${id} completed ${n} times`);
  } finally {
    for (const child of children) await kill(child);
    await Deno.remove(dir, { recursive: true });
  }
});
