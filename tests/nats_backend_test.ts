// The `nats:` engine's own behaviour beyond the conformance suite: URL parsing, clear errors
// for a server without JetStream, wrong credentials and an unreachable host, a malformed
// record skipped with an event, a dead holder's lock broken, and a worker that carries on
// through a server restart without losing or repeating a task. The restart and error tests
// start their own nats-server (tests/servers.ts); the rest use OMNIQ_TEST_NATS_URL.
import assert from "node:assert/strict";
import { defineTask, OmniQ } from "../mod.ts";
import { LOCK_STALE_MS, openNats, parseNatsUrl } from "../backends/nats/mod.ts";
import { ConfigError } from "../src/errors.ts";
import { newTask } from "./fixtures/tasks.ts";
import { freePort, startNats, testServerUrl } from "./servers.ts";

function fresh(server = testServerUrl("nats")): string {
  return `${server}?prefix=bt_${crypto.randomUUID().replaceAll("-", "")}`;
}

const restartDone = new Map<number, number>();
defineTask("nats-restart-work", async (n: number) => {
  await new Promise((r) => setTimeout(r, 10));
  restartDone.set(n, (restartDone.get(n) ?? 0) + 1);
  return n;
});
defineTask("nats-plain", (n: number) => n + 1);

async function until(what: string, fn: () => Promise<boolean>, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    try {
      if (await fn()) return;
    } catch {
      // The server may be restarting.
    }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("nats: URLs name servers, credentials, prefix and names", () => {
  assert.deepEqual(parseNatsUrl("nats://127.0.0.1:4222"), { servers: ["127.0.0.1:4222"] });
  assert.deepEqual(
    parseNatsUrl(
      "nats://app:s%40cret@a:1,b:2/?prefix=p1&stream=EV&bucket=TS&results=RS&timeout=900",
    ),
    {
      user: "app",
      pass: "s@cret",
      servers: ["a:1", "b:2"],
      prefix: "p1",
      stream: "EV",
      bucket: "TS",
      resultsBucket: "RS",
      timeout: 900,
    },
  );
  assert.deepEqual(parseNatsUrl("nats://tok@h:1"), { token: "tok", servers: ["h:1"] });
  assert.throws(() => parseNatsUrl("nats://h:1?colour=red"), ConfigError);
  assert.throws(() => parseNatsUrl("http://h"), ConfigError);
});

Deno.test("nats: a bad stream name is refused at open", async () => {
  await assert.rejects(
    () => openNats(`${testServerUrl("nats")}?stream=a.b`),
    (e: Error) => e instanceof ConfigError && /stream/.test(e.message),
  );
});

Deno.test("nats: an unreachable host fails fast, naming it", async () => {
  const port = freePort();
  const started = Date.now();
  await assert.rejects(
    () => OmniQ.open(`nats://127.0.0.1:${port}?timeout=2000`),
    (e: Error) => e instanceof ConfigError && e.message.includes(`127.0.0.1:${port}`),
  );
  assert.ok(Date.now() - started < 5_000, "within a few seconds");
});

Deno.test("nats: a server without JetStream is refused, naming it and the cause", async () => {
  await using server = await startNats({ jetstream: false });
  const started = Date.now();
  await assert.rejects(
    () => openNats(`${server.url}?timeout=2000`),
    (e: Error) =>
      e instanceof ConfigError && e.message.includes(server.url.slice(7)) &&
      /JetStream/.test(e.message),
  );
  assert.ok(Date.now() - started < 5_000, "within a few seconds");
});

Deno.test("nats: wrong credentials are refused, naming the server and the cause", async () => {
  await using server = await startNats({ args: ["--user", "omniq", "--pass", "right"] });
  const host = server.url.slice("nats://".length);
  const started = Date.now();
  await assert.rejects(
    () => openNats(`nats://omniq:wrong@${host}?timeout=2000`),
    (e: Error) =>
      e instanceof ConfigError && e.message.includes(host) &&
      /author/i.test(e.message) && !e.message.includes("wrong"),
  );
  assert.ok(Date.now() - started < 5_000, "within a few seconds");
  const good = await openNats({ servers: host, user: "omniq", pass: "right", prefix: "ok" });
  await good.destroy();
});

Deno.test("nats: a malformed task record is skipped with an event; the worker carries on", async () => {
  const url = fresh();
  const backend = await openNats(url);
  try {
    await using q = await OmniQ.open({ backend: url });
    // A foreign writer puts garbage where a task record would be.
    const { Kvm } = await import("@nats-io/kv");
    const { connect } = await import("@nats-io/transport-node");
    const nc = await connect({ servers: testServerUrl("nats").slice(7) });
    try {
      const kv = await new Kvm(nc).open(backend.names.bucket);
      await kv.put("t.xZ2FyYmFnZQ", new TextEncoder().encode("{not json"));
      await kv.put("junk.key", new TextEncoder().encode("?"));
    } finally {
      await nc.close();
    }
    const id = await q.enqueue("nats-plain", [41]);
    await q.run({ until: "idle" });
    assert.equal(await q.wait(id), 42);
    const corrupt = [];
    for await (const e of q.events({ type: "corrupt" as never })) corrupt.push(e);
    assert.ok(corrupt.length >= 1, "a corrupt event names the record");
    assert.match(JSON.stringify(corrupt[0].data), /t\.xZ2FyYmFnZQ|junk/);
  } finally {
    await backend.destroy();
  }
});

Deno.test("nats: wait() wakes through a KV watch when another process stores the result", async () => {
  const url = fresh();
  const backend = await openNats(url);
  try {
    // Two handles with their own connections stand for two processes; the waiting one polls
    // rarely, so only the watch can wake it soon after the other completes the task.
    await using waiter = await OmniQ.open({ backend: url, worker: { pollInterval: "30s" } });
    await using other = await OmniQ.open(url);
    const id = await waiter.enqueue("nats-plain", [1]);
    let doneAt = 0;
    const waited = waiter.wait(id).then((value) => ({ value, at: Date.now() }));
    // By now the wait's backoff has grown past a second between reads.
    await new Promise((r) => setTimeout(r, 3_000));
    await other.run({ until: "idle" });
    doneAt = Date.now();
    const { value, at } = await waited;
    assert.equal(value, 2);
    assert.ok(at - doneAt < 500, `the wait returned ${at - doneAt} ms after the result was stored`);
  } finally {
    await backend.destroy();
  }
});

Deno.test("nats: a subscription is ready once the watch delivers; another process's enqueue wakes it", async () => {
  const url = fresh();
  const listener = await openNats(url);
  try {
    const producer = await openNats(url);
    let wake: (() => void) | undefined;
    const sub = listener.queue.subscribe!(["default"], () => wake?.());
    try {
      assert.ok(sub.ready, "the engine says when its wake-ups are live");
      await sub.ready;
      // Nothing polls here: only the bucket watch can carry the other process's write.
      const woken = new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), 5_000);
        wake = () => {
          clearTimeout(timer);
          resolve(true);
        };
      });
      await producer.queue.enqueue([newTask(`w-${crypto.randomUUID()}`)]);
      assert.ok(await woken, "the enqueue of another connection woke the subscriber");
    } finally {
      sub();
      await producer.close();
    }
  } finally {
    await listener.destroy();
  }
});

Deno.test("nats: a subscription made after close is ready at once (workers would poll)", async () => {
  const url = fresh();
  const backend = await openNats(url);
  await backend.destroy();
  const sub = backend.queue.subscribe!(["default"], () => {});
  await sub.ready;
  sub();
});

Deno.test("nats: a lock left by a dead holder is broken after it goes stale", async () => {
  const url = fresh();
  const backend = await openNats(url);
  try {
    const { Kvm } = await import("@nats-io/kv");
    const { connect } = await import("@nats-io/transport-node");
    const nc = await connect({ servers: testServerUrl("nats").slice(7) });
    try {
      const kv = await new Kvm(nc).open(backend.names.bucket);
      const e = await kv.get("m.lock");
      const held = new TextEncoder().encode(JSON.stringify({ owner: "dead", at: 0 }));
      if (e && e.operation === "PUT") await kv.update("m.lock", held, e.revision);
      else await kv.create("m.lock", held);
    } finally {
      await nc.close();
    }
    await using q = await OmniQ.open({ backend: url });
    const started = Date.now();
    const id = await q.enqueue("nats-plain", [1]);
    const waited = Date.now() - started;
    assert.ok(waited >= LOCK_STALE_MS - 500, `waited ${waited} ms for the stale lock`);
    await q.run({ until: "idle" });
    assert.equal(await q.wait(id), 2);
  } finally {
    await backend.destroy();
  }
});

Deno.test({
  name: "nats: a worker carries on through a server restart; no task is lost or repeated",
  fn: async () => {
    await using server = await startNats();
    const url = `${server.url}?prefix=restart`;
    const TASKS = 300;
    restartDone.clear();
    await using q = await OmniQ.open({ backend: url });
    q.onError(() => {}); // claims and completions fail while the server is down
    const ids = await q.enqueueMany(
      Array.from({ length: TASKS }, (_, i) => ({ task: "nats-restart-work", args: [i] })),
    );
    const w = q.worker({ concurrency: 8, lease: "2s", pollInterval: "50ms" });
    await w.start();
    try {
      await until("a third of the tasks", () => Promise.resolve(restartDone.size >= TASKS / 3));
      const before = restartDone.size;
      await server.restart();
      assert.ok(before < TASKS, "the restart came mid-run");
      await until("every task", async () => (await q.stats()).total.completed === TASKS, 60_000);
    } finally {
      await w.stop();
    }
    const completed = new Map<string, number>();
    for await (const e of q.events({ type: "completed" })) {
      completed.set(e.taskId!, (completed.get(e.taskId!) ?? 0) + 1);
    }
    assert.equal(completed.size, TASKS);
    for (const [id, n] of completed) assert.equal(n, 1, `task ${id} completed ${n} times`);
    for (const [i, id] of ids.entries()) {
      if (i % 37 === 0) assert.equal(await q.wait(id), i);
    }
  },
});
