// The `kv:` engine's own behaviour beyond the conformance suite: Deno KV's limits (payload,
// result size, commit size), a `Deno.Kv` passed in, prefixes, URLs, event queries and
// unreadable records.
import assert from "node:assert/strict";
import { ConfigError, defineTask, DuplicateTaskError, OmniQ, TaskFailedError } from "../mod.ts";
import { KV_MAX_PAYLOAD, KV_MAX_RESULT, kvPath, openKv } from "../backends/kv/mod.ts";
import { newTask } from "./fixtures/tasks.ts";

const echo = defineTask("kv-echo", (value: unknown) => value);
const bytes = defineTask("kv-bytes", (n: number) => new Uint8Array(n).fill(7));

async function withKv<T>(fn: (url: string, dir: string) => Promise<T>): Promise<T> {
  const dir = await Deno.makeTempDir({ prefix: "omniq-kv-" });
  try {
    return await fn(`kv:${dir}/omniq.kv`, dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("kv: arguments over the payload limit are refused, naming the limit", async () => {
  await withKv(async (url) => {
    await using q = await OmniQ.open(url);
    await assert.rejects(
      () => q.enqueue(echo, ["x".repeat(KV_MAX_PAYLOAD + 10)]),
      (error: Error) => error instanceof ConfigError && error.message.includes(`${KV_MAX_PAYLOAD}`),
    );
    assert.equal((await q.stats()).total.queued, 0, "nothing was stored");
    // Just under the limit is fine.
    const id = await q.enqueue(echo, ["y".repeat(KV_MAX_PAYLOAD - 100)]);
    await q.run({ until: "idle" });
    assert.equal(((await q.wait(id)) as string).length, KV_MAX_PAYLOAD - 100);
  });
});

Deno.test("kv: a large result is split over several values; one over the limit fails the task", async () => {
  await withKv(async (url) => {
    await using q = await OmniQ.open(url);
    const big = await q.enqueue(bytes, [200_000]);
    const huge = await q.enqueue(bytes, [KV_MAX_RESULT + 1_000], { retries: 3 });
    await q.run({ until: "idle" });
    const value = (await q.wait(big)) as Uint8Array;
    assert.equal(value.length, 200_000);
    assert.ok(value.every((b) => b === 7));
    await assert.rejects(
      () => q.wait(huge),
      (error: Error) =>
        error instanceof TaskFailedError && error.message.includes(`${KV_MAX_RESULT}`),
    );
    // Failed for good at once: retrying would give the same result.
    assert.equal((await q.get(huge))?.attempts, 1);
  });
});

Deno.test("kv: a batch larger than one commit is stored whole, or not at all", async () => {
  await withKv(async (url) => {
    await using q = await OmniQ.open(url);
    const ids = await q.enqueueMany(
      Array.from({ length: 500 }, (_, i) => ({ task: echo, args: [i] })),
    );
    assert.equal(new Set(ids).size, 500);
    assert.equal((await q.stats()).total.queued, 500);
    // A duplicate id late in a large batch: nothing of the batch is stored.
    const batch = Array.from(
      { length: 300 },
      (_, i) => ({ task: echo, args: [i], id: `dup-${i}` }),
    );
    batch.push({ task: echo, args: [0], id: ids[0] });
    await assert.rejects(() => q.enqueueMany(batch), DuplicateTaskError);
    assert.equal((await q.stats()).total.queued, 500);
    await q.run({ until: "idle", concurrency: 50 });
    assert.equal((await q.stats()).total.completed, 500);
    assert.equal(await q.wait(ids[499]), 499);
  });
});

Deno.test("kv: a task with more dependencies than one commit can check is refused clearly", async () => {
  await withKv(async (url) => {
    await using q = await OmniQ.open(url);
    const deps = await q.enqueueMany(
      Array.from({ length: 120 }, (_, i) => ({ task: echo, args: [i] })),
    );
    await assert.rejects(
      () => q.enqueue(echo, ["last"], { dependsOn: deps }),
      (error: Error) => /Deno KV commit allows 100/.test(error.message),
    );
    assert.equal((await q.stats()).total.queued, 120);
    // Sixty is within the limit, and is released when they complete.
    const id = await q.enqueue(echo, ["after"], { dependsOn: deps.slice(0, 60) });
    await q.run({ until: "idle", concurrency: 20 });
    assert.equal(await q.wait(id), "after");
  });
});

Deno.test("kv: a Deno.Kv passed in is used under its prefix and stays open", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const a = await OmniQ.open({ backend: await openKv(kv, { prefix: ["app", "a"] }) });
    const b = await OmniQ.open({ backend: await openKv(kv, { prefix: ["app", "b"] }) });
    const id = await a.enqueue(echo, ["in a"]);
    assert.equal((await b.stats()).total.queued, 0, "prefixes keep queues apart");
    await a.run({ until: "idle" });
    assert.equal(await a.wait(id), "in a");
    await a.close();
    await b.close();
    // Still open: the caller owns it.
    await kv.set(["still", "open"], true);
    const keys = (await Array.fromAsync(kv.list({ prefix: ["app", "a"] }))).length;
    assert.ok(keys > 0, "the records live under the prefix");
  } finally {
    kv.close();
  }
});

Deno.test("kv: URLs name a file, the default database or memory; bad ones are refused", async () => {
  assert.equal(kvPath("kv:"), undefined);
  assert.equal(kvPath("kv::memory:"), ":memory:");
  assert.equal(kvPath("kv:./x.kv"), "./x.kv");
  assert.equal(kvPath("kv:///tmp/x.kv"), "/tmp/x.kv");
  assert.throws(() => kvPath("kv://host/x"), ConfigError);
  await assert.rejects(() => OmniQ.open("kv://host/x"), (e: Error) => e.message.includes("kv"));
  await using q = await OmniQ.open("kv::memory:");
  const id = await q.enqueue(echo, [1]);
  await q.run({ until: "idle" });
  assert.equal(await q.wait(id), 1);
});

Deno.test("kv: events are queryable by task, type and time", async () => {
  await withKv(async (url) => {
    await using q = await OmniQ.open(url);
    const t0 = Date.now();
    const a = await q.enqueue(echo, ["a"]);
    const b = await q.enqueue(echo, ["b"]);
    await q.run({ until: "idle" });
    const ofA = await Array.fromAsync(q.events({ taskId: a }));
    assert.deepEqual(ofA.map((e) => e.type), ["enqueued", "started", "completed"]);
    const completed = await Array.fromAsync(q.events({ type: "completed" }));
    assert.deepEqual(completed.map((e) => e.taskId).sort(), [a, b].sort());
    const later = await Array.fromAsync(q.events({ since: Date.now() + 60_000 }));
    assert.equal(later.length, 0);
    const all = await Array.fromAsync(q.events({ since: t0 }));
    assert.equal(all.length, 6);
    const ids = all.map((e) => e.id);
    assert.deepEqual([...ids].sort(), ids, "ids grow in append order");
  });
});

Deno.test("kv: an unreadable record is skipped, reported once, and loses nothing", async () => {
  await withKv(async (url, dir) => {
    const warnings: string[] = [];
    const original = console.warn;
    console.warn = (...args: unknown[]) => warnings.push(args.map(String).join(" "));
    try {
      await using q = await OmniQ.open(url);
      const ids = await q.enqueueMany(
        Array.from({ length: 5 }, (_, i) => ({ task: echo, args: [i] })),
      );
      const kv = await Deno.openKv(`${dir}/omniq.kv`);
      try {
        await kv.set(["omniq", "t", "foreign"], { hello: "world" });
        await kv.set(["omniq", "t", ids[2]], "garbage");
      } finally {
        kv.close();
      }
      await q.run({ until: "idle" });
      for (const [i, id] of ids.entries()) {
        if (i !== 2) assert.equal(await q.wait(id), i);
      }
      for (let i = 0; i < 2; i++) assert.equal((await q.stats()).total.completed, 4);
      await q.enqueue(echo, ["more"]); // a step carries the reports out as events
      const reports = await Array.fromAsync(q.events({ type: "corrupt" }));
      for (const name of ["foreign", ids[2]]) {
        assert.equal(warnings.filter((w) => w.includes(name)).length, 1, `one warning: ${name}`);
        assert.equal(reports.filter((e) => String(e.data?.key).includes(name)).length, 1);
      }
    } finally {
      console.warn = original;
    }
  });
});

Deno.test("kv: a result with a TTL is gone after it", async () => {
  await withKv(async (url) => {
    await using q = await OmniQ.open(url);
    const id = await q.enqueue(echo, ["short"], { resultTtl: "300ms" });
    await q.run({ until: "idle" });
    assert.equal(await q.wait(id), "short");
    await new Promise((r) => setTimeout(r, 400));
    assert.equal(await q.stores.results.get(id), undefined);
  });
});

Deno.test("kv: an idle worker of another handle in this process wakes at once for new work", async () => {
  await withKv(async (url) => {
    await using producer = await OmniQ.open(url);
    await using consumer = await OmniQ.open(url);
    const started: number[] = [];
    const probe = defineTask("kv-wake-probe", () => {
      started.push(Date.now());
    });
    const worker = consumer.worker({ pollInterval: "30s" });
    await worker.start(); // resolves once the watch is live (its subscription's ready)
    try {
      const at = Date.now();
      const id = await producer.enqueue(probe, []);
      await producer.wait(id, { timeout: "5s" });
      assert.ok(started[0] - at < 1_000, `started ${started[0] - at} ms after the enqueue`);
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("kv: a subscription is ready once its watch is live: the next change wakes it", async () => {
  const kv = await Deno.openKv(":memory:");
  const backend = await openKv(kv);
  try {
    const woke = Promise.withResolvers<void>();
    const unsubscribe = backend.queue.subscribe([], () => woke.resolve());
    assert.ok(unsubscribe.ready, "the subscription says when it is ready");
    await unsubscribe.ready;
    await backend.queue.enqueue([newTask("kv-ready-probe")]);
    const timeout = Promise.withResolvers<void>();
    const timer = setTimeout(() => timeout.reject(new Error("no wake-up in 5 s")), 5_000);
    try {
      await Promise.race([woke.promise, timeout.promise]);
    } finally {
      clearTimeout(timer);
      unsubscribe();
    }
  } finally {
    await backend.close();
    kv.close();
  }
});

Deno.test("kv: two handles that enqueue in turn keep one FIFO order and one event sequence", async () => {
  // Each handle keeps the sequences as its last commit left them and reads them no more;
  // the other handle's commit moves them, so the next step's check fails and it reads again.
  await withKv(async (url) => {
    await using a = await OmniQ.open(url);
    await using b = await OmniQ.open(url);
    const ids: string[] = [];
    for (let i = 0; i < 12; i++) ids.push(await (i % 3 === 0 ? b : a).enqueue(echo, [i]));
    await Promise.all([
      a.enqueueMany([{ task: echo, args: ["x"] }, { task: echo, args: ["y"] }]),
      b.enqueue(echo, ["z"]),
    ]).then(([many, one]) => ids.push(...many, one));
    const order: string[] = [];
    const t = await a.list({ state: "queued", limit: 100 });
    assert.equal(t.length, 15);
    await a.run({ until: "idle", concurrency: 1 });
    for await (const e of a.events({ type: "started" })) order.push(e.taskId!);
    assert.deepEqual(order.slice(0, 12), ids.slice(0, 12), "claimed in enqueue order");
    assert.deepEqual([...order].sort(), [...ids].sort());
    const all = await Array.fromAsync(a.events({}));
    const eventIds = all.map((e) => e.id);
    assert.equal(new Set(eventIds).size, eventIds.length, "no event id given twice");
    assert.deepEqual([...eventIds].sort(), eventIds, "ids grow in append order");
  });
});
