// The `file:` engine's fenced path (backends/file/fence.ts), on an in-memory conditional
// store: the storage contract on the test store itself, the conformance suite on the
// engine over it (each OmniQ a separate "process": its own lock tokens, one set of blobs),
// and the protocol's hard cases: a holder that pauses past the stale time commits nothing
// and cannot overwrite the newer attempt, and a holder that dies after its commit point
// has its commit finished by the next holder.

import assert from "node:assert/strict";
import { defineTask, OmniQ } from "../mod.ts";
import { registerEngine } from "../engine.ts";
import { openFile } from "../backends/file/mod.ts";
import { LOCK_STALE_MS } from "../backends/file/options.ts";
import { FencedLock, LockLostError } from "../backends/file/fence.ts";
import { checkPreconditions } from "../backends/file/cloud/common.ts";
import { ConfigError } from "../src/errors.ts";
import { runConformance } from "./conformance/mod.ts";
import { storageContract } from "./cloud/storage_contract.ts";
import { MemoryBlobs, MemoryConditionalStorage } from "./cloud/memory_storage.ts";

const stores = new Map<string, MemoryBlobs>();
function blobs(name: string): MemoryBlobs {
  let b = stores.get(name);
  if (!b) stores.set(name, b = new MemoryBlobs());
  return b;
}

registerEngine({
  name: "memory-blobs",
  schemes: ["memory-blobs"],
  async openUrl(_url, rest) {
    return await openFile("unused", { storage: new MemoryConditionalStorage(blobs(rest)) });
  },
});

storageContract("memory-blobs", () => new MemoryConditionalStorage(new MemoryBlobs()));

runConformance({
  name: "file on a conditional store (memory blobs)",
  store: () => {
    const name = crypto.randomUUID();
    return Promise.resolve({
      stores: { backend: `memory-blobs:${name}` },
      [Symbol.asyncDispose]: () => {
        stores.delete(name);
        return Promise.resolve();
      },
    });
  },
});

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("fence: of two processes racing for the lock exactly one holds it at a time", async () => {
  const b = new MemoryBlobs();
  const a = new FencedLock(new MemoryConditionalStorage(b), "a");
  const c = new FencedLock(new MemoryConditionalStorage(b), "c");
  let inside = 0;
  let most = 0;
  const turn = async (lock: FencedLock) => {
    for (let i = 0; i < 20; i++) {
      const hold = await lock.acquire();
      inside++;
      most = Math.max(most, inside);
      await new Promise((r) => setTimeout(r, 1));
      inside--;
      await hold.release();
    }
  };
  await Promise.all([turn(a), turn(c)]);
  assert.equal(most, 1);
  assert.equal(b.blobs.has("lock"), false);
});

Deno.test({
  name: "fence: a holder paused past the stale time commits nothing; the newer attempt stays",
  // The stale time is the engine's own (10 s): the test waits it out once.
  sanitizeOps: false,
  fn: async () => {
    const b = new MemoryBlobs();
    const slow = new MemoryConditionalStorage(b);
    const fast = new MemoryConditionalStorage(b);
    await fast.writeAtomic("tasks/t.json", enc("attempt 1"));
    const held = await new FencedLock(slow, "slow").acquire();
    const v1 = (await slow.versionOf("tasks/t.json"))!;
    // The slow process pauses (no heartbeat, no requests) for longer than the stale time.
    let resume!: () => void;
    slow.paused = new Promise((r) => resume = r);
    const taker = new FencedLock(fast, "fast");
    const took = await taker.acquire();
    const v2 = await fast.putIf("tasks/t.json", enc("attempt 2"), v1);
    assert.ok(v2);
    await took.release();
    resume();
    slow.paused = undefined;
    // Its commit point fails: the lock is not its own any more.
    await assert.rejects(
      () => held.commit([{ w: "tasks/t.json", d: enc("stale"), v: v1 }]),
      LockLostError,
    );
    // And a change made on the version it read is refused by the store anyway.
    assert.equal(await slow.putIf("tasks/t.json", enc("stale"), v1), undefined);
    assert.equal(new TextDecoder().decode(await fast.read("tasks/t.json")), "attempt 2");
    assert.ok(LOCK_STALE_MS >= 1_000);
  },
});

Deno.test({
  name: "fence: a holder that dies after its commit point has its commit finished by the next",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const name = `die-${crypto.randomUUID()}`;
    const b = blobs(name);
    const double = defineTask("fence-double", (n: number) => n * 2);
    {
      await using q = await OmniQ.open({ backend: `memory-blobs:${name}`, tasks: [double] });
      await q.enqueue(double, [1]);
    }
    // A process that committed a claim's journal into the lock and died before making any
    // of its changes: play it by stopping every request of its storage after the commit.
    const dying = new MemoryConditionalStorage(b);
    const backend = await openFile("unused", { storage: dying });
    const origPutIf = dying.putIf.bind(dying);
    let committed = false;
    dying.putIf = async (key, data, expected) => {
      if (committed) return await new Promise<never>(() => {});
      const v = await origPutIf(key, data, expected);
      if (key === "lock" && new TextDecoder().decode(data).includes("\n[")) committed = true;
      return v;
    };
    const claim = backend.queue.claim({
      queues: ["default"],
      worker: "dying",
      lease: 60_000,
      limit: 1,
    });
    claim.catch(() => {});
    while (!committed) await new Promise((r) => setTimeout(r, 5));
    // The next process waits out the stale lock, finishes the claim, then runs the task
    // once its lease ends; nothing is lost.
    await using q2 = await OmniQ.open({ backend: `memory-blobs:${name}`, tasks: [double] });
    const started = Date.now();
    const first = (await q2.list({ limit: 10 })).map((t) => t.id);
    assert.equal(first.length, 1);
    // Reads take no lock; a change does, and finishes the dead holder's commit first.
    await q2.enqueue(double, [2]);
    const task = await q2.get(first[0]);
    assert.equal(task?.state, "running", "the dead holder's claim was finished from its journal");
    assert.ok(Date.now() - started >= LOCK_STALE_MS - 1_000, "the lock was waited out");
  },
});

Deno.test("fence: a writer's event log is cut into segments, read back whole and in order", async () => {
  const b = new MemoryBlobs();
  const backend = await openFile("unused", { storage: new MemoryConditionalStorage(b) });
  await using q = await OmniQ.open({ backend });
  defineTask("segment-echo", (n: number) => n);
  for (const size of [600, 600, 1]) {
    await q.enqueueMany(
      Array.from({ length: size }, (_, i) => ({ task: "segment-echo", args: [i] })),
    );
  }
  const logs = [...b.blobs.keys()].filter((k) => k.startsWith("events/")).sort();
  // 600, 600 and 1 events a commit, at most 1,000 a segment: the second commit starts a new
  // segment, the third fits in it.
  assert.equal(logs.length, 2, logs.join(", "));
  const lines = (k: string) => new TextDecoder().decode(b.blobs.get(k)!.data).trim().split("\n");
  assert.deepEqual(logs.map((k) => lines(k).length), [600, 601]);
  assert.ok(logs.every((k) => /^events\/\d+-[0-9a-f]{8}-\d+\.jsonl$/.test(k)), logs.join(", "));
  const events = [];
  for await (const e of q.events({ type: "enqueued" })) events.push(e);
  assert.equal(events.length, 1_201);
  const ids = events.map((e) => BigInt(e.id));
  assert.ok(ids.every((id, i) => i === 0 || id > ids[i - 1]), "in append order");
});

Deno.test("fence: a store that ignores conditional writes is refused by the probe at open", async () => {
  /** A store whose create-only writes always go through, as some S3 emulators do. */
  class Ignoring extends MemoryConditionalStorage {
    override putIf(key: string, data: Uint8Array, _expected: string | null) {
      return super.putIf(key, data, null).then(async (v) => {
        if (v !== undefined) return v;
        await this.writeAtomic(key, data);
        return (await this.versionOf(key))!;
      });
    }
  }
  const b = new MemoryBlobs();
  await assert.rejects(
    () => checkPreconditions(new Ignoring(b)),
    (e: unknown) =>
      e instanceof ConfigError && /does not enforce conditional writes/.test(e.message) &&
      e.message.includes("checkPreconditions: false"),
  );
  assert.deepEqual([...b.blobs.keys()], [], "the probe leaves nothing behind");
  await checkPreconditions(new MemoryConditionalStorage(b));
  assert.deepEqual([...b.blobs.keys()], []);
});
