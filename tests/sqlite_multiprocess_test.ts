// Two OS processes work one SQLite file: 2,000 tasks, each completed exactly once.
import assert from "node:assert/strict";
import { OmniQ } from "../mod.ts";

const WORKER = new URL("./fixtures/mp_worker.ts", import.meta.url);
const CONFIG = new URL("../deno.json", import.meta.url);
const TASKS = 2_000;

async function readLine(reader: ReadableStreamDefaultReader<string>): Promise<string> {
  const { value, done } = await reader.read();
  if (done) throw new Error("worker process ended before saying ready");
  return value.trim();
}

Deno.test("sqlite: two processes on one file complete each of 2,000 tasks exactly once", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omniq-mp-" });
  const path = `${dir}/queue.db`;
  const goFile = `${dir}/go`;
  try {
    await using q = await OmniQ.open(`sqlite:${path}`);
    const children = [0, 1].map(() =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          `--config=${CONFIG.pathname}`,
          `--allow-read=${dir}`,
          `--allow-write=${dir}`,
          WORKER.pathname,
          path,
          goFile,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).spawn()
    );
    const readers = children.map((c) => c.stdout.pipeThrough(new TextDecoderStream()).getReader());
    for (const r of readers) assert.equal(await readLine(r), "ready");

    const ids = await q.enqueueMany(
      Array.from({ length: TASKS }, (_, i) => ({ task: "mp-work", args: [i] })),
    );
    await Deno.writeTextFile(goFile, "go");

    let ranTotal = 0;
    for (const [i, r] of readers.entries()) {
      let line = "";
      for (;;) {
        const { value, done } = await r.read();
        if (done) break;
        line += value;
      }
      const status = await children[i].status;
      assert.equal(status.code, 0, `worker ${i} exited with ${status.code}`);
      const ran = Number(/ran (\d+)/.exec(line)?.[1]);
      assert.ok(ran > 0, `worker ${i} ran no task: both processes must share the work`);
      ranTotal += ran;
    }
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
    await Deno.remove(dir, { recursive: true });
  }
});
