// Foreign, truncated and corrupt files in a `file:` directory are skipped and reported once
// (a warning and a `corrupt` event naming the file); they never stop the worker or lose other tasks.
import assert from "node:assert/strict";
import { defineTask, OmniQ } from "../mod.ts";
import { openFile } from "../backends/file/mod.ts";

const double = defineTask("file-corrupt-double", (n: number) => n * 2);

async function withWarnings<T>(fn: () => Promise<T>): Promise<[T, string[]]> {
  const warnings: string[] = [];
  const original = console.warn;
  console.warn = (...args: unknown[]) => warnings.push(args.map(String).join(" "));
  try {
    return [await fn(), warnings];
  } finally {
    console.warn = original;
  }
}

Deno.test("file: corrupt, truncated and foreign files are skipped, reported once, and lose nothing", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "omniq-file-corrupt-" });
  const dir = `${tmp}/store`;
  try {
    const [, warnings] = await withWarnings(async () => {
      await using q = await OmniQ.open(`file:${dir}`);
      const before = await q.enqueueMany(
        Array.from({ length: 10 }, (_, i) => ({ task: double, args: [i] })),
      );
      // A task record cut short by a crash of something that did not write atomically, one
      // that is not JSON, a foreign file, and garbage in the indexes and the event logs.
      const victim = before[3];
      const victimFile = `${dir}/tasks/${encodeURIComponent(victim)}.json`;
      const full = await Deno.readTextFile(victimFile);
      await Deno.writeTextFile(victimFile, full.slice(0, full.length >> 1));
      await Deno.writeTextFile(`${dir}/tasks/garbage.json`, "\u0000\u0001 not json");
      await Deno.writeTextFile(`${dir}/tasks/notes.txt`, "a foreign file");
      await Deno.writeTextFile(`${dir}/ready/default/README`, "foreign");
      await Deno.writeTextFile(`${dir}/events/foreign.jsonl`, '{"half": \n');
      await Deno.mkdir(`${dir}/results`, { recursive: true });
      await Deno.writeTextFile(`${dir}/results/broken.json`, "{");

      const after = await q.enqueueMany(
        Array.from({ length: 10 }, (_, i) => ({ task: double, args: [100 + i] })),
      );
      await q.run({ until: "idle" });
      for (const [i, id] of before.entries()) {
        if (id === victim) continue;
        assert.equal(await q.wait(id, { timeout: "2s" }), i * 2);
      }
      for (const [i, id] of after.entries()) {
        assert.equal(await q.wait(id, { timeout: "2s" }), (100 + i) * 2);
      }
      // Listing, stats and events skip what they cannot read, again and again.
      for (let i = 0; i < 3; i++) {
        assert.equal((await q.stats()).total.completed, 19);
        assert.equal((await q.list({ state: "completed", limit: 100 })).length, 19);
        const completed = await Array.fromAsync(q.events({ type: "completed" }));
        assert.equal(completed.length, 19);
      }
      assert.equal(await q.get(victim), undefined);
      // Each unreadable file is also a `corrupt` event, once, naming it; reports made while
      // reading go out with the next change of state (here a worker's claim).
      await q.run({ until: "idle" });
      const reports = await Array.fromAsync(q.events({ type: "corrupt" }));
      for (const file of ["garbage.json", "notes.txt", "README", "foreign.jsonl"]) {
        const named = reports.filter((e) => String(e.data?.file).includes(file));
        assert.equal(named.length, 1, `one event names ${file}: ${JSON.stringify(reports)}`);
        assert.ok(String(named[0].data?.file).startsWith(dir), "the event gives the full path");
      }
      // The foreign files are still there: the engine does not delete what it did not write.
      await Deno.stat(`${dir}/tasks/notes.txt`);
      await Deno.stat(`${dir}/ready/default/README`);
    });
    for (const file of ["garbage.json", "notes.txt", "README", "foreign.jsonl"]) {
      const hits = warnings.filter((w) => w.includes(file));
      assert.equal(hits.length, 1, `one warning names ${file}: ${JSON.stringify(warnings)}`);
    }
    assert.ok(warnings.some((w) => w.includes("tasks/")), "the truncated record is named");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("file: a lost sequence file is rebuilt from the records", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "omniq-file-seq-" });
  try {
    await withWarnings(async () => {
      await using q = await OmniQ.open(`file:${tmp}`);
      const a = await q.enqueue(double, [1]);
      await Deno.writeTextFile(`${tmp}/meta/seq.json`, "{");
      const b = await q.enqueue(double, [2]);
      const listed = (await q.list({})).map((t) => t.id);
      assert.deepEqual(listed, [a, b], "order kept after the sequence is rebuilt");
    });
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("file: a stale lock of a crashed process is broken", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "omniq-file-lock-" });
  try {
    await Deno.writeTextFile(`${tmp}/lock`, "crashed");
    const old = new Date(Date.now() - 120_000);
    await Deno.utime(`${tmp}/lock`, old, old);
    await using q = await OmniQ.open(`file:${tmp}`);
    const id = await q.enqueue(double, [4]);
    await q.run({ until: "idle" });
    assert.equal(await q.wait(id), 8);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("file: openFile takes file:./dir, file:///abs/dir and URL objects", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "omniq-file-url-" });
  const cwd = Deno.cwd();
  try {
    Deno.chdir(tmp);
    for (const target of ["file:./rel", `file://${tmp}/abs`, new URL(`file://${tmp}/obj`)]) {
      const b = await openFile(target);
      assert.equal(b.name, "file");
      await b.queue.putSchedule({
        id: "s",
        task: "t",
        payload: new Uint8Array([1, 2]),
        every: 1000,
        misfire: "skip",
        misfireGrace: 0,
        paused: true,
        createdAt: 0,
        queue: "default",
        priority: 5,
        maxAttempts: 1,
        backoff: { type: "fixed", delay: 0, max: 0, jitter: 0 },
      });
      await b.close();
    }
    for (const d of ["rel", "abs", "obj"]) await Deno.stat(`${tmp}/${d}/schedules/s.json`);
    await using q = await OmniQ.open("file:./rel");
    assert.equal((await q.schedules()).length, 1);
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(tmp, { recursive: true });
  }
});
