// The Deno Deploy driver runs: examples/deploy_cron.ts, whose one top-level per-minute
// `Deno.cron` calls `q.tick()`, fires the next minute's tick of a stored schedule. It runs
// in a subprocess with `--unstable-cron` and read/write on a temp directory only; this
// process made the schedule and watches the store. It waits for a minute boundary, so it
// takes up to about a minute.
import assert from "node:assert/strict";
import { OmniQ } from "../mod.ts";
import { charge } from "../examples/tasks.ts";
import { finish, kill, spawn } from "./fixtures/processes.ts";

const EXAMPLE = new URL("../examples/deploy_cron.ts", import.meta.url);

/** How long before a minute boundary the child must be running to see it for sure. */
const LEAD = 10_000;

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("examples: deploy_cron fires the next minute's tick through Deno.cron", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omniq-cron-" });
  const url = `sqlite:${dir}/omniq.db`;
  let child: ReturnType<typeof spawn> | undefined;
  try {
    await using q = await OmniQ.open(url);
    // Too close to a minute boundary, the child might start after it: take the next one.
    const toBoundary = 60_000 - (Date.now() % 60_000);
    if (toBoundary < LEAD) await pause(toBoundary + 50);
    const id = await q.schedule(charge, ["acme", 1_200], { cron: "* * * * *", id: "per-minute" });
    const next = (await q.schedules())[0].nextRunAt!.getTime();
    assert.equal(next % 60_000, 0, "the next tick is a whole minute");
    assert.ok(next - Date.now() >= LEAD - 1_000);

    child = spawn(EXAMPLE, dir, [url], ["--unstable-cron"]);
    const output = finish(child);
    const taskId = `${id}:${next}`;
    const deadline = next + 20_000;
    let record;
    while (!(record = await q.get(taskId))) {
      assert.ok(Date.now() < deadline, `no tick task ${taskId} by ${new Date(deadline)}`);
      await pause(250);
    }
    child.process.kill("SIGTERM");
    const { out } = await output;
    child = undefined;
    assert.match(out, /omniq: 1 schedule tick\(s\) fired/);

    assert.equal(record.scheduleId, id);
    assert.equal(record.task, charge.name);
    assert.equal(record.queue, "high", "the task definition's options apply");
    const fired = await Array.fromAsync(q.events({ type: "schedule_fired" }));
    assert.equal(fired.length, 1);
    assert.equal(fired[0].taskId, taskId);
    assert.deepEqual(fired[0].data, { scheduleId: id, tick: next });
    const s = (await q.schedules())[0];
    assert.equal(s.lastRunAt?.getTime(), next);
    assert.equal(s.nextRunAt?.getTime(), next + 60_000);
    // The fired task is an ordinary task: a worker anywhere runs it.
    await q.run({ until: "idle", queues: ["high"], scheduler: false });
    assert.deepEqual(await q.wait(taskId), {
      customer: "acme",
      cents: 1_200,
      receipt: "r-acme-1200",
    });
  } finally {
    if (child) await kill(child);
    await Deno.remove(dir, { recursive: true });
  }
});
