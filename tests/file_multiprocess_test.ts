// Two OS processes work one `file:` directory: 2,000 tasks, each completed exactly once.
import assert from "node:assert/strict";
import { defineTask, OmniQ } from "../mod.ts";

const WORKER = new URL("./fixtures/file_mp_worker.ts", import.meta.url);
const CONFIG = new URL("../deno.json", import.meta.url);
const TASKS = 2_000;

async function readLine(reader: ReadableStreamDefaultReader<string>): Promise<string> {
  const { value, done } = await reader.read();
  if (done) throw new Error("worker process ended before saying ready");
  return value.trim();
}

Deno.test("file: two processes on one directory complete each of 2,000 tasks exactly once", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "omniq-file-mp-" });
  const dir = `${tmp}/store`;
  const goFile = `${tmp}/go`;
  try {
    await using q = await OmniQ.open(`file:${dir}`);
    const children = [0, 1].map(() =>
      new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--quiet",
          `--config=${CONFIG.pathname}`,
          `--allow-read=${tmp}`,
          `--allow-write=${tmp}`,
          WORKER.pathname,
          dir,
          goFile,
        ],
        stdout: "piped",
        stderr: "inherit",
      }).spawn()
    );
    const readers = children.map((c) => c.stdout.pipeThrough(new TextDecoderStream()).getReader());
    for (const r of readers) assert.equal(await readLine(r), "ready");

    const ids = await q.enqueueMany(
      Array.from({ length: TASKS }, (_, i) => ({ task: "file-mp-work", args: [i] })),
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
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("file: a process killed mid-run (maybe holding the lock) loses no task", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "omniq-file-crash-" });
  const dir = `${tmp}/store`;
  const N = 300;
  try {
    defineTask("file-crash-work", (n: number) => n + 1);
    await using q = await OmniQ.open({ backend: `file:${dir}`, worker: { lease: "1s" } });
    const ids = await q.enqueueMany(
      Array.from({ length: N }, (_, i) => ({ task: "file-crash-work", args: [i] })),
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--quiet",
        `--config=${CONFIG.pathname}`,
        `--allow-read=${tmp}`,
        `--allow-write=${tmp}`,
        new URL("./fixtures/file_crash_worker.ts", import.meta.url).pathname,
        dir,
      ],
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    assert.equal(await readLine(reader), "ready");
    // Let it work a little, then kill it without warning.
    await until(async () => (await q.stats()).total.completed >= 20);
    child.kill("SIGKILL");
    await child.status;
    await reader.cancel();
    await q.run({ until: "idle" });
    // Tasks it held are recovered once their lease ends (a crash leaves no half-written file).
    await until(async () => (await q.stats()).total.completed === N, 30_000, async () => {
      await q.run({ until: "idle" });
    });
    for (const [i, id] of ids.entries()) assert.equal(await q.wait(id), i + 1);
  } finally {
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
