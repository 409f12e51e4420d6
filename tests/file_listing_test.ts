// A `file:` handle keeps the listings of its index directories between turns of the lock
// (`FileSpace.listing`): a claim would otherwise list every queued task. These tests check
// that a kept listing never hides what another writer changed: two handles on one directory
// (each its own writer), a writer that keeps the generation it read (an OmniQ from before
// the kept listings), and a change the sequence file does not show.

import assert from "node:assert/strict";
import { openFile } from "../backends/file/mod.ts";
import { LISTING_MAX_AGE_MS } from "../backends/file/space.ts";
import type { ClaimRequest } from "../src/backend.ts";
import { newTask } from "./fixtures/tasks.ts";

const claim = (worker: string, limit = 10): ClaimRequest => ({
  queues: ["default"],
  limit,
  lease: 30_000,
  worker,
});

const done = (taskId: string) => ({
  taskId,
  state: "completed" as const,
  value: new Uint8Array([1]),
  completedAt: Date.now(),
});

type Handle = Awaited<ReturnType<typeof openFile>>;

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "omniq-file-listing-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Two handles on one fresh directory: two writers, as two processes would be. */
function withTwo(fn: (a: Handle, b: Handle, dir: string) => Promise<void>): Promise<void> {
  return withDir(async (dir) => {
    const a = await openFile(dir);
    const b = await openFile(dir);
    try {
      await fn(a, b, dir);
    } finally {
      await a.close();
      await b.close();
    }
  });
}

/** The ids a claim through `handle` takes. */
async function claimed(handle: Handle, worker: string, limit = 10): Promise<string[]> {
  return (await handle.queue.claim(claim(worker, limit))).tasks.map((t) => t.id);
}

Deno.test("file: a kept listing shows what another handle queued and claimed since", async () => {
  await withTwo(async (a, b) => {
    await a.queue.enqueue([newTask("t1"), newTask("t2"), newTask("t3")]);
    // Each handle lists `ready/default` once and keeps it.
    assert.deepEqual(await claimed(a, "a", 1), ["t1"]);
    assert.deepEqual(await claimed(b, "b", 1), ["t2"]);
    // Changes by the other handle: a queues one, b takes t3.
    await a.queue.enqueue([newTask("t4")]);
    assert.deepEqual(await claimed(b, "b"), ["t3", "t4"]);
    assert.deepEqual(await claimed(a, "a"), []);
    await b.queue.enqueue([newTask("t5", { priority: 5 }), newTask("t6")]);
    assert.deepEqual(await claimed(a, "a"), ["t5", "t6"]);
    for (const id of ["t1", "t2", "t3", "t4", "t5", "t6"]) {
      assert.equal((await a.queue.get(id))?.state, "running", id);
    }
  });
});

Deno.test("file: a kept listing follows the handle's own commits (claims, completions, sweeps)", async () => {
  await withDir(async (dir) => {
    const a = await openFile(dir);
    try {
      const ids = Array.from({ length: 30 }, (_, i) => `t${String(i).padStart(2, "0")}`);
      await a.queue.enqueue(ids.map((id) => newTask(id)));
      const seen: string[] = [];
      for (let round = 0; round < 10 && seen.length < ids.length; round++) {
        const { tasks } = await a.queue.claim(claim("a", 7));
        for (const t of tasks) {
          seen.push(t.id);
          await a.queue.complete(t.id, t.token, done(t.id));
        }
        // New work between claims joins the kept listing through this handle's commit.
        if (round === 1) {
          await a.queue.enqueue([newTask("late")]);
          ids.push("late");
        }
      }
      assert.deepEqual(seen, ids, "each task claimed once, in FIFO order");
      // The sweep reads the kept `final` listing: completed records purged past their age.
      await a.queue.sweep({ now: Date.now(), purgeBefore: Date.now() + 1 });
      for (const id of ids) assert.equal(await a.queue.get(id), undefined, id);
      assert.deepEqual(await Array.fromAsync(Deno.readDir(`${dir}/ready/default`)), []);
    } finally {
      await a.close();
    }
  });
});

Deno.test("file: a writer that keeps the generation it read still moves the sequences, and is seen", async () => {
  await withTwo(async (a, b, dir) => {
    const seqFile = `${dir}/meta/seq.json`;
    await a.queue.enqueue([newTask("t1")]);
    assert.deepEqual(await claimed(a, "a"), ["t1"]);
    const seen = JSON.parse(await Deno.readTextFile(seqFile));
    assert.equal(typeof seen.gen, "string", "a commit that moves index entries writes one");
    // An OmniQ from before the kept listings queues a task and writes back the generation
    // it read, with its sequences moved.
    await b.queue.enqueue([newTask("t2")]);
    const now = JSON.parse(await Deno.readTextFile(seqFile));
    await Deno.writeTextFile(seqFile, JSON.stringify({ ...now, gen: seen.gen }));
    assert.deepEqual(await claimed(a, "a"), ["t2"]);
  });
});

Deno.test("file: an entry added behind the sequence file's back is seen once the listing ages out", async () => {
  await withTwo(async (a, b, dir) => {
    const seqFile = `${dir}/meta/seq.json`;
    await a.queue.enqueue([newTask("t1")]);
    assert.deepEqual(await claimed(a, "a"), ["t1"]);
    const seen = await Deno.readTextFile(seqFile);
    // A change the sequence file does not show (as a hand edit would make).
    await b.queue.enqueue([newTask("t2")]);
    await Deno.writeTextFile(seqFile, seen);
    await new Promise((r) => setTimeout(r, LISTING_MAX_AGE_MS + 100));
    assert.deepEqual(await claimed(a, "a"), ["t2"]);
  });
});

Deno.test("file: a sequence file with no generation at all keeps no listing", async () => {
  await withTwo(async (a, b, dir) => {
    const seqFile = `${dir}/meta/seq.json`;
    // As an OmniQ from before the kept listings writes it: no generation.
    const strip = async () => {
      const { gen: _gen, ...seq } = JSON.parse(await Deno.readTextFile(seqFile));
      await Deno.writeTextFile(seqFile, JSON.stringify(seq));
    };
    await a.queue.enqueue([newTask("t1")]);
    assert.deepEqual(await claimed(a, "a"), ["t1"]);
    await strip();
    assert.deepEqual(await claimed(a, "a"), [], "a listing taken with no generation to check");
    await b.queue.enqueue([newTask("t2")]);
    await strip();
    assert.deepEqual(await claimed(a, "a"), ["t2"]);
  });
});
