// The Redis engine beyond the conformance suite: connection failures at open (fast, naming
// the host and the cause, never the password), the options object, damaged or foreign
// records under the prefix, wake-ups by pub/sub, the capped events stream, a server
// restart in the middle of a run (through tests/run.ts's restart endpoint), completions
// sent together (one script call, each fenced on its own), a claim's record and the events
// of names that JSON escapes, the engine's code (loaded again when the server lost it, and
// run as scripts where functions are not allowed), the keys a dead-letter move rewrites, a
// record without a dead-letter queue, paused queues (due tasks promoted but not reported
// due, a resume waking another process's worker by pub/sub), priority aging (the `aging`
// index on every path into a ready set, the sweep's raise and its stale members), and
// throttle keys (the `keys` entry kept past a task's end, taken over after its window,
// dropped by its purge only while it still names it), debounce keys (an unstarted holder
// moved between its queue's due and ready sets, its payload swapped), and groups (per-group
// ready sets and each queue's set of groups kept and emptied on every path, the running
// count freed on every way out of `running`, and counted across queues), and rate limits (a
// bucket's set of starts: each task once at its latest start, trimmed to the bucket's
// longest window, forgotten by a manual retry or a purge; a rate-only lane with no running
// cap; a grouped task's bucket and cap together).

import assert from "node:assert/strict";
import { ConfigError, defineTask, OmniQ, OmniQError, TaskFailedError } from "../mod.ts";
import { openRedis, RedisBackend } from "../backends/redis/mod.ts";
import type { ClaimedTask, NewTask, StoredResult } from "../src/backend.ts";
import { dropPrefix, freshPrefix, prefixUrl, redisUrl, withClient } from "./fixtures/redis.ts";
import { freePort, restartRedisFromEnv } from "./servers.ts";
import { newTask as baseTask } from "./fixtures/tasks.ts";

const double = defineTask("redis-double", (n: number) => n * 2);
const slowDouble = defineTask("redis-slow-double", async (n: number) => {
  await new Promise((r) => setTimeout(r, 5));
  return n * 2;
});

/** A fresh prefix that is deleted when the test ends. */
async function withPrefix(fn: (prefix: string, url: string) => Promise<void>): Promise<void> {
  const prefix = freshPrefix("omniq-rb");
  try {
    await fn(prefix, prefixUrl(prefix));
  } finally {
    await dropPrefix(prefix);
  }
}

async function rejectsWithin(
  attempt: Promise<unknown>,
  ms: number,
  check: (e: Error) => void,
): Promise<void> {
  const start = Date.now();
  await assert.rejects(attempt, (e: unknown) => {
    assert.ok(e instanceof Error);
    check(e);
    return true;
  });
  assert.ok(Date.now() - start < ms, `failed within ${ms} ms (took ${Date.now() - start})`);
}

Deno.test("redis: bad connection settings fail at open, naming the host and the cause", async () => {
  const server = new URL(redisUrl());
  const port = freePort();
  await rejectsWithin(OmniQ.open(`redis://:s3cret@127.0.0.1:${port}/0`), 5_000, (e) => {
    assert.ok(e instanceof OmniQError);
    assert.match(e.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
    assert.match(e.message, /refused/);
    assert.doesNotMatch(e.message, /s3cret/);
  });
  await rejectsWithin(
    OmniQ.open(`redis://:wr0ng-pass@${server.host}/0`),
    5_000,
    (e) => {
      assert.ok(e instanceof ConfigError, `${e}`);
      assert.match(e.message, /AUTH|password/i);
      assert.match(e.message, new RegExp(server.port));
      assert.doesNotMatch(e.message, /wr0ng-pass/);
    },
  );
  await rejectsWithin(OmniQ.open(`redis://${server.host}/999`), 5_000, (e) => {
    assert.ok(e instanceof ConfigError, `${e}`);
    assert.match(e.message, /DB index/);
  });
  await assert.rejects(
    openRedis(`redis://${server.host}/0?prefx=x`),
    (e: unknown) => e instanceof ConfigError && /prefx.*prefix/.test(e.message),
  );
  await assert.rejects(
    openRedis({ url: redisUrl(), prefix: "" }),
    (e: unknown) => e instanceof ConfigError && /prefix/.test(e.message),
  );
  await assert.rejects(
    openRedis(`redis://${server.host}/zero`),
    (e: unknown) => e instanceof ConfigError && /database index/.test(e.message),
  );
});

Deno.test("redis: an options object opens the engine, every key under its prefix", async () => {
  const server = new URL(redisUrl());
  const prefix = freshPrefix("omniq-opt");
  try {
    await using backend = await RedisBackend.open({
      host: server.hostname,
      port: Number(server.port),
      db: 0,
      prefix,
    });
    await using q = await OmniQ.open({ backend });
    const id = await q.enqueue(double, [21]);
    await q.run({ until: "idle" });
    assert.equal(await q.wait(id), 42);
    const keys = await withClient((c) => c.sendCommand(["KEYS", `${prefix}*`])) as string[];
    assert.ok(keys.includes(`${prefix}task:${id}`), `${keys}`);
    assert.ok(keys.includes(`${prefix}{default}:ready`) || keys.includes(`${prefix}events`));
  } finally {
    await dropPrefix(prefix);
  }
});

Deno.test("redis: a damaged task or another program's key fails alone; the rest run", async () => {
  await withPrefix(async (prefix, url) => {
    await using q = await OmniQ.open(url);
    const errors: string[] = [];
    q.onError((e, what) => errors.push(`${what}: ${e}`));
    const ids = await q.enqueueMany([0, 1, 2, 3].map((n) => ({ task: double, args: [n] })));
    await withClient(async (c) => {
      // A task whose record was overwritten by someone else …
      await c.sendCommand(["HSET", `${prefix}task:${ids[1]}`, "d", "{not json"]);
      // … and a key of another program in the ready set, where a task would be.
      await c.sendCommand(["SET", `${prefix}task:alien`, "hello"]);
      await c.sendCommand(["ZADD", `${prefix}{default}:ready`, "1", "alien"]);
    });
    await q.run({ until: "idle" });
    for (const i of [0, 2, 3]) assert.equal(await q.wait(ids[i]), i * 2);
    await assert.rejects(
      q.wait(ids[1]),
      (e: unknown) => e instanceof TaskFailedError && /CorruptTaskError/.test(e.message),
    );
    const events = await Array.fromAsync(q.events({ taskId: ids[1], type: "failed" }));
    assert.equal(events.length, 1);
    const error = events[0].data?.error as { name: string; message: string };
    assert.equal(error.name, "CorruptTaskError");
    assert.match(error.message, new RegExp(`task:${ids[1]}`));
    const alien = await Array.fromAsync(q.events({ taskId: "alien" }));
    assert.equal(alien.length, 1);
    assert.match(String((alien[0].data?.error as { message: string }).message), /string/);
    const kept = await withClient((c) => c.sendCommand(["GET", `${prefix}task:alien`]));
    assert.equal(kept, "hello", "another program's key is left as it was");
    assert.deepEqual(errors, []);
  });
});

Deno.test("redis: an idle worker is woken by pub/sub, not by its poll", async () => {
  await withPrefix(async (_prefix, url) => {
    await using q = await OmniQ.open(url);
    await using producer = await OmniQ.open(url);
    const worker = q.worker({ pollInterval: "20s" });
    // Resolves once the SUBSCRIBE is acknowledged and the queue was looked at: no pause.
    await worker.start();
    try {
      for (let i = 0; i < 3; i++) {
        const start = Date.now();
        const id = await producer.enqueue(double, [i]);
        assert.equal(await producer.wait(id, { timeout: "5s" }), i * 2);
        const took = Date.now() - start;
        assert.ok(took < 1_000, `started within milliseconds, not at the next poll (${took} ms)`);
      }
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("redis: a subscription is ready once the server acknowledged it, and then wakes", async () => {
  await withPrefix(async (prefix) => {
    await using listener = await RedisBackend.open({ url: redisUrl(), prefix });
    await using producer = await RedisBackend.open({ url: redisUrl(), prefix });
    // Opened before subscribing, so that asking the server right after `ready` takes one
    // round trip: fewer than a subscriber still connecting needs to get its SUBSCRIBE in.
    await withClient(async (admin) => {
      let wake: (() => void) | undefined;
      const sub = listener.queue.subscribe!(["wake-q"], () => wake?.());
      try {
        assert.ok(sub.ready, "the engine says when its wake-ups are live");
        await sub.ready;
        const subscribers: unknown = await admin.sendCommand(["PUBSUB", "NUMSUB", `${prefix}wake`]);
        assert.equal(
          Number((subscribers as unknown[])[1]),
          1,
          "the SUBSCRIBE was acknowledged before ready",
        );
        // Nothing polls here: a wake-up can only come from the enqueue's PUBLISH.
        const woken = new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), 5_000);
          wake = () => {
            clearTimeout(timer);
            resolve(true);
          };
        });
        const task = { ...newTask(`w-${crypto.randomUUID()}`), queue: "wake-q" };
        await producer.queue.enqueue([task]);
        assert.ok(await woken, "the enqueue of another connection woke the subscriber");
      } finally {
        sub();
      }
    });
  });
});

Deno.test("redis: a subscription made after close is ready at once (workers would poll)", async () => {
  await withPrefix(async (prefix) => {
    const backend = await RedisBackend.open({ url: redisUrl(), prefix });
    await backend.close();
    const sub = backend.queue.subscribe!(["default"], () => {});
    await sub.ready;
    sub();
  });
});

Deno.test("redis: the events stream is capped at eventsMaxLen (approximately)", async () => {
  await withPrefix(async (prefix, url) => {
    await using q = await OmniQ.open(`${url}&events_max_len=100`);
    await q.enqueueMany(Array.from({ length: 1_000 }, (_, i) => ({ task: double, args: [i] })));
    const length = Number(
      await withClient((c) => c.sendCommand(["XLEN", `${prefix}events`])),
    );
    assert.ok(length >= 100 && length < 300, `stream length ${length}`);
    const latest = await Array.fromAsync(q.events({ type: "enqueued" }));
    assert.equal(latest.length, length);
  });
});

Deno.test("redis: a server restart mid-run loses no task", async () => {
  await withPrefix(async (_prefix, url) => {
    await using q = await OmniQ.open(url);
    const reported: string[] = [];
    q.onError((e, what) => reported.push(`${what}: ${e}`));
    const n = 600;
    const ids = await q.enqueueMany(
      Array.from({ length: n }, (_, i) => ({ task: slowDouble, args: [i], retries: 5 })),
    );
    const worker = q.worker({ concurrency: 8, lease: "2s", sweepInterval: "200ms" });
    await worker.start();
    try {
      for (;;) {
        const { total } = await q.stats();
        if (total.completed >= n / 4) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      await restartRedisFromEnv();
      const deadline = Date.now() + 30_000;
      for (;;) {
        const { total } = await q.stats().catch(() => ({ total: { completed: -1 } }));
        if (total.completed === n) break;
        assert.ok(Date.now() < deadline, `only ${total.completed} of ${n} completed`);
        await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await worker.stop();
    }
    for (const [i, id] of ids.entries()) {
      if (i % 25 === 0) assert.equal(await q.wait(id), i * 2);
    }
    console.log(`errors reported while the server was away: ${reported.length}`);
  });
});

function newTask(id: string, dependsOn: string[] = []): NewTask {
  return baseTask(id, {
    task: "redis-double",
    payload: new Uint8Array([0x91, 0x01]),
    maxAttempts: 1,
    backoff: { type: "fixed", delay: 10, max: 10, jitter: 0 },
    dependsOn,
  });
}

function resultOf(task: ClaimedTask): StoredResult {
  return {
    taskId: task.id,
    state: "completed",
    value: new Uint8Array([2]),
    completedAt: Date.now(),
  };
}

Deno.test("redis: completions sent together go in one call, each fenced on its own", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    backend.queue.attach({ results: true, events: true });
    const ids = ["a", "b", "c"].map((n) => `${n}-${crypto.randomUUID()}`);
    const dependent = `d-${crypto.randomUUID()}`;
    await backend.queue.enqueue([...ids.map((id) => newTask(id)), newTask(dependent, [ids[2]])]);
    const { tasks } = await backend.queue.claim({
      queues: ["default"],
      limit: 3,
      lease: 30_000,
      worker: "w",
    });
    assert.deepEqual(tasks.map((t) => t.id), ids);
    const before = await fcalls();
    const [a, stale, c] = await Promise.all([
      backend.queue.complete(tasks[0].id, tasks[0].token, resultOf(tasks[0])),
      backend.queue.complete(tasks[1].id, "not-its-token", resultOf(tasks[1])),
      backend.queue.complete(tasks[2].id, tasks[2].token, resultOf(tasks[2])),
    ]);
    assert.equal(await fcalls() - before, 1, "one script call for the three completions");
    // Each gets its own effects: the release of the dependent belongs to the third.
    assert.deepEqual(a?.events.map((e) => [e.type, e.taskId]), [["completed", ids[0]]]);
    assert.equal(stale, undefined);
    assert.deepEqual(c?.events.map((e) => [e.type, e.taskId]), [
      ["completed", ids[2]],
      ["enqueued", dependent],
    ]);
    assert.ok(c?.events.every((e) => "id" in e), "the events carry their stream ids");
    assert.equal((await backend.queue.get(ids[0]))?.state, "completed");
    assert.equal((await backend.queue.get(ids[1]))?.state, "running");
    assert.equal((await backend.queue.get(dependent))?.state, "queued");
    assert.deepEqual((await backend.results.get(ids[2]))?.value, new Uint8Array([2]));
    assert.equal(await backend.results.get(ids[1]), undefined);
    // A second completion of the same attempt changes nothing.
    assert.equal(
      await backend.queue.complete(tasks[0].id, tasks[0].token, resultOf(tasks[0])),
      undefined,
    );
    const { total } = await backend.queue.stats();
    assert.equal(total.completed, 2);
    assert.equal(total.running, 1);
    assert.equal(total.queued, 1);
  });
});

Deno.test("redis: a claim returns the whole record, and events keep names JSON escapes", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    backend.queue.attach({ results: true, events: true });
    // The scripts write the common events as text by hand: quotes, backslashes, slashes and
    // control characters in an id or a queue name must come back as they went in.
    const id = `q"u\\o/te\t${crypto.randomUUID()}`;
    const queue = `odd "queue"\\/\n`;
    const task = {
      ...newTask(id),
      queue,
      key: "k",
      expiresAt: Date.now() + 60_000,
      ageAfter: 60_000,
    };
    task.links = { names: {}, pipe: "p" };
    await backend.queue.enqueue([task]);
    const claimed = await backend.queue.claim({
      queues: [queue],
      limit: 2,
      lease: 30_000,
      worker: "w",
    });
    assert.equal(claimed.tasks.length, 1);
    const [t] = claimed.tasks;
    // What the claim returns is what a read of the record gives, with the claim's own fields.
    const { token, leaseUntil, ...record } = t;
    assert.deepEqual(record, await backend.queue.get(id));
    assert.equal(t.state, "running");
    assert.equal(t.attempts, 1);
    assert.equal(t.queue, queue);
    assert.equal(t.key, "k");
    assert.deepEqual(t.payload, task.payload);
    assert.ok(typeof token === "string" && token !== "");
    assert.ok(leaseUntil > Date.now());
    assert.deepEqual(claimed.effects.events.map((e) => [e.type, e.taskId, e.queue, e.attempt]), [
      ["started", id, queue, 1],
    ]);
    const done = await backend.queue.complete(id, token, resultOf(t));
    assert.deepEqual(done?.events.map((e) => [e.type, e.taskId, e.queue, e.attempt]), [
      ["completed", id, queue, 1],
    ]);
    const stored = await backend.events.query({});
    assert.deepEqual(stored.map((e) => [e.type, e.taskId, e.queue]), [
      ["enqueued", id, queue],
      ["started", id, queue],
      ["completed", id, queue],
    ]);
    for (const e of stored) assert.ok(typeof e.at === "number" && typeof e.id === "string");
    assert.deepEqual(done?.events[0], stored[2]);
  });
});

/** How many calls of a command (FCALL and EVALSHA by default) the server has run. */
async function fcalls(commands = ["fcall", "evalsha"]): Promise<number> {
  const info = String(await withClient((c) => c.sendCommand(["INFO", "commandstats"])));
  let n = 0;
  for (const m of info.matchAll(/cmdstat_(\w+):calls=(\d+)/g)) {
    if (commands.includes(m[1])) n += Number(m[2]);
  }
  return n;
}

Deno.test("redis: the engine loads its code again when the server lost it", async () => {
  await withPrefix(async (_prefix, url) => {
    await using q = await OmniQ.open(url);
    await q.enqueue(double, [1]);
    // What a restart without persistence, or an operator, does.
    await withClient(async (c) => {
      await c.sendCommand(["FUNCTION", "FLUSH"]);
      await c.sendCommand(["SCRIPT", "FLUSH"]);
    });
    const id = await q.enqueue(double, [2]);
    await q.run({ until: "idle" });
    assert.equal(await q.wait(id), 4);
  });
});

Deno.test("redis: where functions are not allowed, the engine runs its code as scripts", async () => {
  // An ACL user without FUNCTION stands for a server older than Redis 7.
  const user = `omniq-nofn-${crypto.randomUUID().slice(0, 8)}`;
  await withClient((c) =>
    c.sendCommand(["ACL", "SETUSER", user, "on", ">pw", "~*", "&*", "+@all", "-function"])
  );
  try {
    await withPrefix(async (_prefix, url) => {
      const u = new URL(url);
      u.username = user;
      u.password = "pw";
      await using q = await OmniQ.open(u.href);
      const before = await fcalls(["evalsha"]);
      const ids = await q.enqueueMany([1, 2, 3].map((n) => ({ task: double, args: [n] })));
      await q.run({ until: "idle" });
      for (const [i, id] of ids.entries()) assert.equal(await q.wait(id), (i + 1) * 2);
      assert.ok(await fcalls(["evalsha"]) >= before + 5, "the operations ran as scripts");
    });
  } finally {
    await withClient((c) => c.sendCommand(["ACL", "DELUSER", user]));
  }
});

Deno.test("redis: a dead-letter move carries the task's keys to its new queue, counts included", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    backend.queue.attach({ results: true, events: true });
    const q = backend.queue;
    await q.enqueue([{ ...newTask("dl"), key: "dl-key", deadLetter: "dead" }]);
    const [t] = (await q.claim({ queues: ["default"], limit: 1, lease: 30_000, worker: "w" }))
      .tasks;
    assert.equal(t.deadLetter, "dead", "the claim returns the dead-letter queue");
    await q.progress("dl", t.token, 0.5);
    const error = { name: "Error", message: "boom" };
    const moved = await q.fail("dl", t.token, { error, deadLetter: "dead" });
    assert.deepEqual(moved?.events.map((e) => [e.type, e.taskId, e.queue, e.attempt, e.data]), [
      ["dead_lettered", "dl", "default", 1, { to: "dead", error }],
    ]);
    assert.deepEqual(moved?.results, []);
    assert.equal(await q.fail("dl", t.token, { error, deadLetter: "dead" }), undefined, "fenced");
    await withClient(async (c) => {
      const score = (key: string) => c.sendCommand(["ZSCORE", `${prefix}${key}`, "dl"]);
      assert.notEqual(await score("{dead}:ready"), null, "ready in its new queue's hash tag");
      assert.equal(await score("{default}:ready"), null);
      assert.equal(await score("running"), null);
      assert.equal(await score("ended"), null, "it has not ended");
      assert.deepEqual(
        await c.sendCommand([
          "HMGET",
          `${prefix}task:dl`,
          "queue",
          "state",
          "attempts",
          "token",
          "lease",
          "worker",
          "progress",
          "dlq",
        ]),
        ["dead", "queued", "0", null, null, null, null, null],
      );
      const counts = pairsOf(await c.sendCommand(["HGETALL", `${prefix}counts`]));
      assert.equal(Number(counts["running:default"] ?? 0), 0);
      assert.equal(Number(counts["queued:dead"]), 1);
      assert.equal(await c.sendCommand(["HGET", `${prefix}keys`, "dl-key"]), "dl", "still live");
      assert.equal(await c.sendCommand(["EXISTS", `${prefix}result:dl`]), 0, "no result");
    });
    const record = await q.get("dl");
    assert.equal(record?.deadLetter, undefined);
    assert.equal(record?.progress, undefined);
    assert.deepEqual(record?.error, error);
    const again = await q.claim({ queues: ["dead"], limit: 1, lease: 30_000, worker: "w" });
    assert.equal(again.tasks[0]?.attempts, 1);
    assert.equal(again.tasks[0]?.queue, "dead");
  });
});

Deno.test("redis: a record without a dead-letter queue (as those written before) stalls to failed", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    backend.queue.attach({ results: true, events: true });
    const q = backend.queue;
    await q.enqueue([newTask("old")]);
    await withClient(async (c) => {
      assert.equal(await c.sendCommand(["HEXISTS", `${prefix}task:old`, "dlq"]), 0);
    });
    const record = await q.get("old");
    assert.ok(record && !("deadLetter" in record), "no deadLetter property at all");
    const [t] = (await q.claim({ queues: ["default"], limit: 1, lease: 1, worker: "w" })).tasks;
    assert.ok(!("deadLetter" in t));
    await new Promise((r) => setTimeout(r, 20));
    const swept = await q.sweep({ now: Date.now() });
    assert.deepEqual(swept.events.map((e) => e.type), ["stalled", "failed"]);
    assert.equal((await q.get("old"))?.state, "failed");
  });
});

/** A task of `queue` with priority `priority`, aging after `ageAfter` ms (if given). */
function agingTask(
  id: string,
  queue: string,
  priority: number,
  ageAfter?: number,
  more: Partial<NewTask> = {},
): NewTask {
  const task = { ...newTask(id), queue, priority, maxAttempts: 3, ...more };
  if (ageAfter !== undefined) task.ageAfter = ageAfter;
  return task;
}

Deno.test("redis: every path into a ready set indexes an aging task in `aging` by runAt + ageAfter", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    backend.queue.attach({ results: true, events: true });
    const q = backend.queue;
    const hour = 3_600_000;
    const now = Date.now();
    const worker = { lease: 30_000, worker: "w" };
    await q.enqueue([
      agingTask("a", "default", 2, hour, { runAt: now }),
      agingTask("d", "default", 2, hour, { runAt: now + 30 }),
      agingTask("w", "default", 2, hour, { dependsOn: ["a"] }),
      agingTask("top", "x", 9, 10, { runAt: now - 20 }),
      agingTask("plain", "x", 2, undefined, { runAt: now - 20 }),
    ]);
    await withClient(async (c) => {
      const score = async (id: string) => {
        const s = await c.sendCommand(["ZSCORE", `${prefix}aging`, id]);
        return s === null ? null : Number(s);
      };
      const runAt = async (id: string) =>
        Number(await c.sendCommand(["HGET", `${prefix}task:${id}`, "runAt"]));
      // Enqueue: only a queued task with an ageAfter and a priority under 9.
      assert.equal(await score("a"), now + hour);
      for (const id of ["d", "w", "top", "plain"]) assert.equal(await score(id), null, id);
      assert.equal(await c.sendCommand(["HGET", `${prefix}task:a`, "age"]), String(hour));
      assert.equal(await c.sendCommand(["HEXISTS", `${prefix}task:plain`, "age"]), 0);
      assert.equal((await q.get("a"))?.ageAfter, hour);
      assert.ok(!("ageAfter" in (await q.get("plain"))!), "no ageAfter property at all");

      // The claim's promotion of a due task; the claim returns ageAfter.
      await new Promise((r) => setTimeout(r, 40));
      const [a1] = (await q.claim({ queues: ["default"], limit: 1, ...worker })).tasks;
      assert.equal(a1.id, "a");
      assert.equal(a1.ageAfter, hour);
      assert.equal((await q.get("d"))?.state, "queued");
      assert.equal(await score("d"), now + 30 + hour);
      assert.equal(await score("a"), now + hour, "a claimed task leaves its member (stale)");

      // A retry due now (the fail script's place), from its new runAt.
      const error = { name: "Error", message: "boom" };
      const retryAt = Date.now() - 1_000;
      await q.fail("a", a1.token, { error, retryAt });
      assert.equal(await score("a"), retryAt + hour);

      // A stall's requeue, at the sweep's time.
      const [a2] = (await q.claim({ queues: ["default"], limit: 1, lease: 1, worker: "w" }))
        .tasks;
      assert.equal(a2.id, "a");
      await new Promise((r) => setTimeout(r, 20));
      const swept = await q.sweep({ now: Date.now() });
      assert.deepEqual(swept.events.map((e) => e.type), ["stalled"]);
      assert.equal(await score("a"), (await runAt("a")) + hour);
      assert.ok((await runAt("a")) > retryAt);

      // The release of a dependent (at its own runAt).
      const [a3] = (await q.claim({ queues: ["default"], limit: 1, ...worker })).tasks;
      await q.complete("a", a3.token, resultOf(a3));
      assert.equal((await q.get("w"))?.state, "queued");
      assert.equal(await score("w"), (await runAt("w")) + hour);

      // A dead-letter move: the task keeps its ageAfter in its new queue.
      await q.enqueue([agingTask("e", "y", 3, hour, { deadLetter: "dead" })]);
      await c.sendCommand(["ZREM", `${prefix}aging`, "e"]);
      const [e1] = (await q.claim({ queues: ["y"], limit: 1, ...worker })).tasks;
      await q.fail("e", e1.token, { error, deadLetter: "dead" });
      assert.equal((await q.get("e"))?.queue, "dead");
      assert.equal((await q.get("e"))?.ageAfter, hour);
      assert.equal(await score("e"), (await runAt("e")) + hour);

      // A manual retry.
      await q.enqueue([agingTask("f", "z", 2, hour)]);
      await q.cancel("f", "no");
      await c.sendCommand(["ZREM", `${prefix}aging`, "f"]);
      await q.retry("f");
      assert.equal(await score("f"), (await runAt("f")) + hour);
    });
  });
});

Deno.test("redis: the sweep raises an aged task in its ready set and drops stale members", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    backend.queue.attach({ results: true, events: true });
    const q = backend.queue;
    const now = Date.now();
    await q.enqueue([
      agingTask("old", "s", 1, 10, { runAt: now - 20 }),
      agingTask("taken", "t", 1, 10, { runAt: now - 20 }),
      agingTask("young", "s", 1, 3_600_000),
    ]);
    await q.claim({ queues: ["t"], limit: 1, lease: 30_000, worker: "w" });
    await withClient(async (c) => {
      // A member whose score is stale while its task is queued and not yet aged (no path
      // leaves one: put there by hand) is put back at the task's own time, not raised.
      await c.sendCommand(["ZADD", `${prefix}aging`, "0", "young"]);
      const swept = await q.sweep({ now: Date.now() });
      assert.deepEqual(
        swept.events.map((e) => [e.type, e.taskId, e.queue, e.attempt, e.data]),
        [["aged", "old", "s", undefined, { from: 1 }]],
      );
      const seq = Number(await c.sendCommand(["HGET", `${prefix}task:old`, "seq"]));
      assert.equal(await c.sendCommand(["HGET", `${prefix}task:old`, "pri"]), "9");
      assert.equal(Number(await c.sendCommand(["ZSCORE", `${prefix}{s}:ready`, "old"])), seq);
      assert.equal(await c.sendCommand(["ZSCORE", `${prefix}aging`, "old"]), null);
      assert.equal(await c.sendCommand(["ZSCORE", `${prefix}aging`, "taken"]), null, "dropped");
      const young = Number(await c.sendCommand(["HGET", `${prefix}task:young`, "runAt"]));
      assert.equal(
        Number(await c.sendCommand(["ZSCORE", `${prefix}aging`, "young"])),
        young + 3_600_000,
      );
      assert.equal((await q.get("taken"))?.priority, 1);
      assert.equal((await q.get("young"))?.priority, 1);
      const stored = await backend.events.query({ type: ["aged"] });
      assert.deepEqual(stored.map((e) => [e.taskId, e.data]), [["old", { from: 1 }]]);
      const counts = pairsOf(await c.sendCommand(["HGETALL", `${prefix}counts`]));
      assert.equal(Number(counts["queued:s"]), 2, "the counts do not change");
    });
    assert.deepEqual((await q.sweep({ now: Date.now() })).events, [], "once only");
  });
});

Deno.test("redis: a paused queue's due task is promoted but not reported due; pauses are a set", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    await using other = await RedisBackend.open({ url: redisUrl(), prefix });
    backend.queue.attach({ results: true, events: true });
    const q = backend.queue;
    const paused = await q.setQueuePaused("p", true);
    assert.deepEqual(paused?.events.map((e) => [e.type, e.taskId, e.queue, e.attempt]), [
      ["queue_paused", undefined, "p", undefined],
    ]);
    assert.equal(await q.setQueuePaused("p", true), undefined, "already paused");
    await q.setQueuePaused("a", true);
    assert.deepEqual(await other.queue.pausedQueues(), ["a", "p"]);
    const now = Date.now();
    await q.enqueue([
      { ...newTask("soon"), queue: "p", runAt: now + 20 },
      { ...newTask("later"), queue: "p", runAt: now + 60_000 },
    ]);
    await new Promise((r) => setTimeout(r, 40));
    const claimed = await q.claim({ queues: ["p"], limit: 5, lease: 30_000, worker: "w" });
    assert.deepEqual(claimed.tasks, [], "nothing is taken from a paused queue");
    assert.equal((await q.get("soon"))?.state, "queued", "its due task was promoted");
    // Through the script, not a hint the claim left: a worker is never told to wake at once.
    assert.equal(await other.queue.nextDue(["p"]), undefined);
    assert.equal(await q.nextDue(["p"]), undefined);

    const resumed = await q.setQueuePaused("p", false);
    assert.deepEqual(resumed?.events.map((e) => [e.type, e.queue]), [["queue_resumed", "p"]]);
    assert.equal(await q.setQueuePaused("p", false), undefined, "not paused");
    assert.deepEqual(await q.pausedQueues(), ["a"]);
    assert.equal(await other.queue.nextDue(["p"]), now + 60_000);
    const taken = await q.claim({ queues: ["p"], limit: 5, lease: 30_000, worker: "w" });
    assert.deepEqual(taken.tasks.map((t) => t.id), ["soon"]);
    const stored = await backend.events.query({ type: ["queue_paused", "queue_resumed"] });
    assert.deepEqual(stored.map((e) => [e.type, e.queue]), [
      ["queue_paused", "p"],
      ["queue_paused", "a"],
      ["queue_resumed", "p"],
    ]);
  });
});

Deno.test("redis: a resume in another process wakes an idle worker by pub/sub", async () => {
  await withPrefix(async (_prefix, url) => {
    await using runner = await OmniQ.open(url);
    await using admin = await OmniQ.open(url);
    assert.equal(await admin.pauseQueue("default"), true);
    const worker = runner.worker({ pollInterval: "20s" });
    await worker.start();
    try {
      const id = await admin.enqueue(double, [4]);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal((await admin.get(id))?.state, "queued");
      const start = Date.now();
      assert.equal(await admin.resumeQueue("default"), true);
      assert.equal(await admin.wait(id, { timeout: "5s" }), 8);
      const took = Date.now() - start;
      assert.ok(took < 1_000, `started within milliseconds, not at the next poll (${took} ms)`);
    } finally {
      await worker.stop();
    }
  });
});

Deno.test("redis: a throttled key entry outlives its task, is taken over after, and purged with it", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    backend.queue.attach({ results: true, events: true });
    const q = backend.queue;
    const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
    await withClient(async (c) => {
      const entry = (key: string) => c.sendCommand(["HGET", `${prefix}keys`, key]);
      const until = Date.now() + 80;
      await q.enqueue([{ ...newTask("a"), key: "k", keyUntil: until }]);
      assert.equal(await c.sendCommand(["HGET", `${prefix}task:a`, "kuntil"]), String(until));
      const [t] = (await q.claim({ queues: ["default"], limit: 1, lease: 30_000, worker: "w" }))
        .tasks;
      assert.equal(t.keyUntil, until, "the claim returns keyUntil");
      const { token: _t, leaseUntil: _l, ...claimed } = t;
      assert.deepEqual(claimed, await q.get("a"));
      await q.complete("a", t.token, resultOf(t));
      assert.equal(await entry("k"), "a", "kept past its end (keepsKey)");
      // Held: a duplicate, even one reusing the id, gets it.
      const dup = await q.enqueue([{ ...newTask("a"), key: "k" }, { ...newTask("x"), key: "k" }]);
      assert.deepEqual([dup.ids, dup.created], [["a", "a"], [false, false]]);
      await sleep(until - Date.now() + 20);
      // Past the window: no stand-in, so the id must be new; a new task takes the entry over.
      await assert.rejects(q.enqueue([{ ...newTask("a"), key: "k" }]), /exists/);
      const next = await q.enqueue([
        { ...newTask("b"), key: "k", keyUntil: Date.now() + 60_000 },
        { ...newTask("c"), key: "k" },
      ]);
      assert.deepEqual([next.ids, next.created], [["b", "b"], [true, false]]);
      assert.equal(await entry("k"), "b");
      // Purging "a" leaves the entry of "b", which took it over.
      const purgeAll = { now: Date.now(), purgeBefore: Date.now() + 1_000 };
      await q.sweep(purgeAll);
      assert.equal(await q.get("a"), undefined, "purged");
      assert.equal(await entry("k"), "b");
      // "b" ends within its window: it keeps the entry and stands in for duplicates …
      await q.cancel("b", "no");
      assert.equal(await entry("k"), "b");
      assert.deepEqual((await q.enqueue([{ ...newTask("d"), key: "k" }])).ids, ["b"]);
      // … and its purge drops it.
      await q.sweep({ now: Date.now(), purgeBefore: Date.now() + 1_000 });
      assert.equal(await q.get("b"), undefined);
      assert.equal(await c.sendCommand(["HEXISTS", `${prefix}keys`, "k"]), 0);

      // A task without keyUntil (as every record written before) drops its entry at its end.
      await q.enqueue([{ ...newTask("p"), key: "plain" }]);
      assert.equal(await c.sendCommand(["HEXISTS", `${prefix}task:p`, "kuntil"]), 0);
      assert.ok(!("keyUntil" in (await q.get("p"))!), "no keyUntil property at all");
      await q.cancel("p", "no");
      assert.equal(await c.sendCommand(["HEXISTS", `${prefix}keys`, "plain"]), 0);
      // An entry naming an ended task without a window, or a missing one, holds nothing.
      await c.sendCommand(["HSET", `${prefix}keys`, "stale", "p", "ghost", "nobody"]);
      const fresh = await q.enqueue([
        { ...newTask("s"), key: "stale" },
        { ...newTask("g"), key: "ghost" },
      ]);
      assert.deepEqual([fresh.ids, fresh.created], [["s", "g"], [true, true]]);
      assert.deepEqual([await entry("stale"), await entry("ghost")], ["s", "g"]);

      // A manual retry takes its key back only when no other task holds it.
      await q.enqueue([{ ...newTask("r1"), key: "r", keyUntil: Date.now() + 20 }]);
      await q.cancel("r1", "no");
      await sleep(40);
      await q.enqueue([{ ...newTask("r2"), key: "r" }]);
      assert.equal(await entry("r"), "r2");
      await q.retry("r1");
      assert.equal(await entry("r"), "r2", "r2 is live and holds it");
      await q.cancel("r2", "no");
      await q.cancel("r1", "no");
      await q.retry("r1");
      assert.equal(await entry("r"), "r1", "free again: taken back");
    });
  });
});

Deno.test("redis: a debounced enqueue moves its unstarted holder between its queue's sets", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    await using listener = await RedisBackend.open({ url: redisUrl(), prefix });
    backend.queue.attach({ results: true, events: true });
    const q = backend.queue;
    const later = Date.now() + 60_000;
    const debounced = (id: string, options: Partial<NewTask>): NewTask => ({
      ...newTask(id),
      queue: "deb",
      key: "k",
      debounce: true,
      ...options,
    });
    await q.enqueue([debounced("h", { runAt: later, createdAt: 1, ageAfter: 1_000 })]);
    await withClient(async (c) => {
      const score = (key: string, id = "h") => c.sendCommand(["ZSCORE", `${prefix}${key}`, id]);
      const counts = async () => pairsOf(await c.sendCommand(["HGETALL", `${prefix}counts`]));
      assert.equal(Number(await score("{deb}:due")), later);
      const past = Date.now() - 5;
      let wakes = 0;
      const sub = listener.queue.subscribe!(["deb"], () => wakes++);
      try {
        await sub.ready;
        // (The wake-up of the holder's own enqueue may still come in: let it, and start from
        // none.)
        await new Promise((r) => setTimeout(r, 50));
        wakes = 0;
        // Put off: it stays in the due set, at its new time, and wakes no worker.
        const off = await q.enqueue([debounced("p", { runAt: later + 10 })]);
        assert.deepEqual([off.ids, off.created], [["h"], [false]]);
        assert.equal(Number(await score("{deb}:due")), later + 10);
        // Due now: moved to the ready set (and `aging`), counted queued, its queue woken; a
        // task of the batch that depends on the new id depends on the holder.
        const now = await q.enqueue([
          debounced("n", { runAt: past, payload: new Uint8Array([8, 8]) }),
          { ...newTask("after", ["n"]), queue: "deb" },
        ]);
        assert.deepEqual([now.ids, now.created], [["h", "after"], [false, true]]);
        assert.deepEqual(now.effects.events.map((e) => [e.type, e.taskId, e.data]), [
          ["debounced", "h", { runAt: past }],
          ["enqueued", "after", { state: "waiting" }],
        ]);
        assert.equal(await score("{deb}:due"), null);
        assert.notEqual(await score("{deb}:ready"), null);
        assert.equal(Number(await score("aging")), past + 1_000);
        assert.equal(await c.sendCommand(["HGET", `${prefix}task:after`, "deps"]), '["h"]');
        assert.notEqual(await score("deps:h", "after"), null);
        const n = await counts();
        assert.deepEqual([n["scheduled:deb"], n["queued:deb"], n["waiting:deb"]], ["0", "1", "1"]);
        const start = Date.now();
        while (wakes === 0 && Date.now() - start < 5_000) {
          await new Promise((r) => setTimeout(r, 5));
        }
        await new Promise((r) => setTimeout(r, 50));
        assert.equal(wakes, 1, "woken when it became due, not when it was put off");
      } finally {
        sub();
      }
      const h = await q.get("h");
      assert.deepEqual(h?.payload, new Uint8Array([8, 8]), "the last enqueue's payload");
      assert.equal(h.createdAt, 1, "the rest of its document is its own");
      assert.equal(h.runAt, past);
      assert.equal(await q.get("n"), undefined);
      assert.equal(await q.get("p"), undefined);

      // A waiting holder only gets the fields; a document whose payload does not come first
      // (not this codec's) is rewritten whole.
      await q.enqueue([{ ...newTask("w", ["h"]), queue: "deb", key: "w" }]);
      await c.sendCommand([
        "HSET",
        `${prefix}task:w`,
        "d",
        '{"createdAt":2,"backoff":{"type":"fixed","delay":10,"max":10,"jitter":0},"payload":"AQ=="}',
      ]);
      const before = await counts();
      const merged = await q.enqueue([
        debounced("w2", { key: "w", runAt: later, payload: new Uint8Array([5]) }),
      ]);
      assert.deepEqual(merged.ids, ["w"]);
      const w = await q.get("w");
      assert.deepEqual([w?.state, w?.runAt, w?.createdAt], ["waiting", later, 2]);
      assert.deepEqual(w?.payload, new Uint8Array([5]));
      assert.equal(await score("{deb}:due", "w"), null);
      assert.equal(await score("{deb}:ready", "w"), null);
      assert.deepEqual(await counts(), before);
    });
  });
});

/** A task of `group` in `queue` (groupLimit 1 unless given). */
function groupedTask(
  id: string,
  queue: string,
  group: string,
  more: Partial<NewTask> = {},
): NewTask {
  return { ...newTask(id), queue, group, groupLimit: 1, maxAttempts: 3, ...more };
}

/** The keys of the group indexes under a prefix: per-group sets, group sets, `grouprun`. */
async function groupIndexes(prefix: string): Promise<string[]> {
  const keys = await withClient(async (c) => [
    ...await c.sendCommand(["KEYS", `${prefix}{*}:g:*`]) as string[],
    ...await c.sendCommand(["KEYS", `${prefix}{*}:groups`]) as string[],
    ...await c.sendCommand(["KEYS", `${prefix}grouprun`]) as string[],
  ]);
  return keys.map((k) => k.slice(prefix.length)).sort();
}

Deno.test("redis: grouped tasks wait in their group's set; every way out of `running` frees the slot", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    backend.queue.attach({ results: true, events: true });
    const q = backend.queue;
    const error = { name: "Error", message: "boom" };
    const claim = async (queue: string, limit = 5, lease = 30_000) =>
      (await q.claim({ queues: [queue], limit, lease, worker: "w" })).tasks;
    const stall = async (queue: string) => {
      const [t] = await claim(queue, 1, 1);
      await new Promise((r) => setTimeout(r, 20));
      return { t, swept: (await q.sweep({ now: Date.now() })).events.map((e) => e.type) };
    };
    await withClient(async (c) => {
      const members = (key: string) => c.sendCommand(["ZRANGE", `${prefix}${key}`, "0", "-1"]);
      const running = async (group: string) =>
        await c.sendCommand(["HGET", `${prefix}grouprun`, group]) ?? "0";

      // Stored: grouped tasks in their group's set, the group in its queue's set of groups,
      // never in the queue's ready set.
      await q.enqueue([
        groupedTask("c1", "gq", "c"),
        groupedTask("c2", "gq", "c", { maxAttempts: 1 }),
        groupedTask("d1", "gq", "d", { groupLimit: 2 }),
        { ...newTask("u"), queue: "gq" },
      ]);
      assert.deepEqual(await members("{gq}:ready"), ["u"]);
      assert.deepEqual(await members("{gq}:g:c"), ["c1", "c2"]);
      assert.deepEqual(await members("{gq}:g:d"), ["d1"]);
      assert.deepEqual(await members("{gq}:groups"), ["c", "d"]);
      assert.deepEqual(
        await c.sendCommand(["HMGET", `${prefix}task:d1`, "group", "glim"]),
        ["d", "2"],
      );
      assert.deepEqual([(await q.get("d1"))?.group, (await q.get("d1"))?.groupLimit], ["d", 2]);
      assert.ok(!("group" in (await q.get("u"))!), "no group property at all");

      // A paused queue takes nothing, grouped or not.
      await q.setQueuePaused("gq", true);
      assert.deepEqual(await claim("gq"), []);
      await q.setQueuePaused("gq", false);

      // Ungrouped first, then one head per group a round; c is at its limit after one.
      const first = await claim("gq");
      assert.deepEqual(first.map((t) => t.id), ["u", "c1", "d1"]);
      assert.deepEqual([first[1].group, first[1].groupLimit], ["c", 1]);
      assert.deepEqual([await running("c"), await running("d")], ["1", "1"]);
      assert.equal(await c.sendCommand(["EXISTS", `${prefix}{gq}:g:d`]), 0);
      assert.deepEqual(await members("{gq}:groups"), ["c"], "an emptied group leaves the set");
      assert.equal(await c.sendCommand(["GET", `${prefix}{gq}:gcursor`]), "d");
      assert.deepEqual(await claim("gq"), [], "c is at its limit");

      // Complete.
      await q.complete("d1", first[2].token, resultOf(first[2]));
      assert.equal(await running("d"), "0");
      // A retry: back in its group's set, ahead of c2.
      await q.fail("c1", first[1].token, { error, retryAt: Date.now() - 1_000 });
      assert.equal(await running("c"), "0");
      assert.deepEqual(await members("{gq}:g:c"), ["c1", "c2"]);
      // Cancel of a running task.
      const [c1] = await claim("gq");
      assert.equal(c1.id, "c1");
      assert.equal(await running("c"), "1");
      await q.cancel("c1", "no");
      assert.equal(await running("c"), "0");
      // A final failure.
      const [c2] = await claim("gq");
      assert.equal(c2.id, "c2");
      await q.fail("c2", c2.token, { error });
      assert.equal(await running("c"), "0");
      // A manual retry puts it back in its group's set.
      await q.retry("c2");
      assert.deepEqual(await members("{gq}:g:c"), ["c2"]);
      assert.deepEqual(await members("{gq}:groups"), ["c"]);
      // A cancel of a queued one takes it out, and its group with it.
      await q.cancel("c2", "no");
      assert.equal(await c.sendCommand(["EXISTS", `${prefix}{gq}:groups`]), 0);

      // The stall sweep: a requeue, then a dead-letter move (into the new queue's group
      // set), then a requeue and a final failure there.
      await q.enqueue([groupedTask("s1", "st", "s", { maxAttempts: 2, deadLetter: "dead" })]);
      const requeued = await stall("st");
      assert.deepEqual([requeued.t.id, requeued.swept], ["s1", ["stalled"]]);
      assert.equal(await running("s"), "0");
      assert.deepEqual(await members("{st}:g:s"), ["s1"]);
      const moved = await stall("st");
      assert.deepEqual(moved.swept, ["stalled", "dead_lettered"]);
      assert.equal(await running("s"), "0");
      assert.equal(await c.sendCommand(["EXISTS", `${prefix}{st}:groups`]), 0);
      assert.deepEqual(await members("{dead}:g:s"), ["s1"]);
      assert.deepEqual(await members("{dead}:groups"), ["s"]);
      // (Its attempts start again there, and its dead-letter queue is cleared.)
      assert.deepEqual((await stall("dead")).swept, ["stalled"]);
      assert.equal(await running("s"), "0");
      const failed = await stall("dead");
      assert.deepEqual([failed.t.id, failed.swept], ["s1", ["stalled", "failed"]]);
      assert.equal(await running("s"), "0");

      // A dead-letter move by fail.
      await q.enqueue([groupedTask("f1", "fq", "f", { deadLetter: "dead" })]);
      const [f1] = await claim("fq");
      await q.fail("f1", f1.token, { error, deadLetter: "dead" });
      assert.equal(await running("f"), "0");
      assert.deepEqual(await members("{dead}:g:f"), ["f1"]);
      const [f2] = await claim("dead");
      assert.deepEqual([f2.id, f2.group, await running("f")], ["f1", "f", "1"]);
      // A hand back (a retry due now).
      await q.fail("f1", f2.token, { error, retryAt: Date.now() });
      assert.equal(await running("f"), "0");
      const [f3] = await claim("dead");
      await q.complete("f1", f3.token, resultOf(f3));

      // A damaged record, failed by the claim: its slot is freed too.
      await q.enqueue([groupedTask("bad", "cq", "k")]);
      await c.sendCommand(["HSET", `${prefix}task:bad`, "d", "{not json"]);
      assert.deepEqual(await claim("cq"), []);
      assert.equal(await c.sendCommand(["HGET", `${prefix}task:bad`, "state"]), "failed");
      assert.equal(await running("k"), "0");
    });
    assert.deepEqual(await groupIndexes(prefix), [], "every group index is gone");
  });
});

Deno.test("redis: every path into a ready set puts a grouped task in its group's set", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    backend.queue.attach({ results: true, events: true });
    const q = backend.queue;
    const claim = async (queue: string, limit = 5) =>
      (await q.claim({ queues: [queue], limit, lease: 30_000, worker: "w" })).tasks;
    await withClient(async (c) => {
      const members = (key: string) => c.sendCommand(["ZRANGE", `${prefix}${key}`, "0", "-1"]);
      const score = async (key: string, id: string) =>
        Number(await c.sendCommand(["ZSCORE", `${prefix}${key}`, id]));
      const now = Date.now();
      await q.enqueue([
        groupedTask("dep", "pq", "a"),
        groupedTask("later", "pq", "b", { runAt: now + 30 }),
        groupedTask("after", "pq", "c", { dependsOn: ["dep"] }),
        groupedTask("old", "pq", "e", { priority: 1, ageAfter: 10, runAt: now - 20 }),
        groupedTask("gone", "pq", "x", { expiresAt: now + 30 }),
      ]);
      assert.deepEqual(await members("{pq}:groups"), ["a", "e", "x"]);
      assert.deepEqual(await members("{pq}:due"), ["later"]);

      // Aging re-scores the task in its group's set, not in the queue's ready set.
      await q.sweep({ now: Date.now() });
      const seq = Number(await c.sendCommand(["HGET", `${prefix}task:old`, "seq"]));
      assert.equal(await score("{pq}:g:e", "old"), seq);
      assert.deepEqual(await members("{pq}:ready"), []);

      // The claim promotes a due grouped task into its group's set; an expired head expires
      // and its group leaves the set.
      await new Promise((r) => setTimeout(r, 40));
      const taken = await claim("pq");
      assert.deepEqual(taken.map((t) => t.id).sort(), ["dep", "later", "old"]);
      assert.equal((await q.get("gone"))?.state, "expired");
      assert.equal(await c.sendCommand(["EXISTS", `${prefix}{pq}:groups`]), 0);

      // The release of a dependent.
      const dep = taken.find((t) => t.id === "dep")!;
      await q.complete("dep", dep.token, resultOf(dep));
      assert.deepEqual(await members("{pq}:g:c"), ["after"]);
      assert.deepEqual(await members("{pq}:groups"), ["c"]);

      // A debounced holder moves out of its group's set to the due set, and its group with it.
      await q.enqueue([groupedTask("h", "dq", "h", { key: "k" })]);
      assert.deepEqual(await members("{dq}:groups"), ["h"]);
      await q.enqueue([
        groupedTask("h2", "dq", "h", { key: "k", debounce: true, runAt: Date.now() + 60_000 }),
      ]);
      assert.equal(await c.sendCommand(["EXISTS", `${prefix}{dq}:groups`]), 0);
      assert.deepEqual(await members("{dq}:due"), ["h"]);
    });
  });
});

Deno.test("redis: a group's running count is the group's across queues", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    const q = backend.queue;
    const claim = async (queues: string[]) =>
      (await q.claim({ queues, limit: 5, lease: 30_000, worker: "w" })).tasks.map((t) => t.id);
    await q.enqueue([groupedTask("a", "qa", "shared"), groupedTask("b", "qb", "shared")]);
    assert.deepEqual(await claim(["qa"]), ["a"]);
    assert.deepEqual(await claim(["qb"]), [], "the group runs one already");
    await q.cancel("a", "no");
    assert.deepEqual(await claim(["qa", "qb"]), ["b"]);
  });
});

/** `[k1, v1, k2, v2 …]` from the server as an object. */
function pairsOf(flat: unknown): Record<string, string> {
  const list = flat as string[];
  const out: Record<string, string> = {};
  for (let i = 0; i + 1 < list.length; i += 2) out[list[i]] = list[i + 1];
  return out;
}

/** A rate-limited task without a group: its bucket `k:<key>`, `limit` starts per `per` ms. */
function ratedTask(
  id: string,
  key: string,
  limit: number,
  per: number,
  more: Partial<NewTask> = {},
): NewTask {
  return { ...newTask(id), maxAttempts: 3, rate: { key: `k:${key}`, limit, per }, ...more };
}

Deno.test("redis: a rate bucket's set counts the starts in the window, each task once, trimmed", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    backend.queue.attach({ results: true, events: true });
    const q = backend.queue;
    const claim = async (queue = "default", limit = 5) =>
      (await q.claim({ queues: [queue], limit, lease: 30_000, worker: "w" })).tasks;
    const error = { name: "Error", message: "boom" };
    await withClient(async (c) => {
      const bucket = `${prefix}rate:k:b`;
      const starts = async () =>
        pairsOf(await c.sendCommand(["ZRANGE", bucket, "0", "-1", "WITHSCORES"]));
      const members = (key: string) => c.sendCommand(["ZRANGE", `${prefix}${key}`, "0", "-1"]);
      const serverNow = async () => {
        const [s, us] = await c.sendCommand(["TIME"]) as string[];
        return Number(s) * 1000 + Math.floor(Number(us) / 1000);
      };
      // Age a start: as if the task had started `ms` before now.
      const age = async (id: string, ms: number) =>
        await c.sendCommand(["ZADD", bucket, String(await serverNow() - ms), id]);

      // Stored: the three fields, read back as `rate`; the task waits in its lane's set (its
      // bucket behind \u0001), the lane in its queue's set, never in the ready set. Its
      // bucket knows its window from the start.
      await q.enqueue([
        ratedTask("r1", "b", 2, 60_000),
        ratedTask("r2", "b", 2, 60_000),
        ratedTask("r3", "b", 2, 60_000),
        newTask("plain"),
      ]);
      assert.deepEqual(
        await c.sendCommand(["HMGET", `${prefix}task:r1`, "rkey", "rlim", "rper"]),
        ["k:b", "2", "60000"],
      );
      assert.deepEqual((await q.get("r1"))?.rate, { key: "k:b", limit: 2, per: 60_000 });
      assert.ok(!("rate" in (await q.get("plain"))!), "no rate property at all");
      assert.deepEqual(await members("{default}:ready"), ["plain"]);
      assert.deepEqual(await members("{default}:g:\u0001k:b"), ["r1", "r2", "r3"]);
      assert.deepEqual(await members("{default}:groups"), ["\u0001k:b"]);
      assert.deepEqual(await starts(), { "": "-60000" });
      const ttl = Number(await c.sendCommand(["PTTL", bucket]));
      assert.ok(ttl > 0 && ttl <= 60_000, `the bucket's key lives a window (${ttl} ms)`);

      // Two start (no running cap: neither has ended), the third waits in its lane.
      const first = await claim();
      assert.deepEqual(first.map((t) => t.id), ["plain", "r1", "r2"]);
      assert.deepEqual(first[1].rate, { key: "k:b", limit: 2, per: 60_000 });
      const counted = await starts();
      assert.deepEqual(Object.keys(counted).sort(), ["", "r1", "r2"]);
      assert.equal(counted.r1, String(first[1].startedAt));
      assert.equal(await c.sendCommand(["HGET", `${prefix}grouprun`, "\u0001k:b"]), null);
      assert.deepEqual(await claim(), [], "two starts in the window already");
      assert.deepEqual(await members("{default}:g:\u0001k:b"), ["r3"]);

      // A retry of r1 is a start again: its member moves to its latest start (still two).
      await q.fail("r1", first[1].token, { error, retryAt: Date.now() - 1_000 });
      await age("r2", 30_000);
      assert.deepEqual(await claim(), [], "r1 started within the window");
      await age("r1", 60_000);
      const [again] = await claim();
      assert.equal(again.id, "r1", "r1's start left the window: its retry starts");
      assert.equal((await starts()).r1, String(again.startedAt));
      assert.equal(Object.keys(await starts()).length, 3, "r1 is counted once");
      assert.deepEqual(await claim(), [], "r1 (now) and r2 (30 s ago) are in the window");

      // Once r2's start leaves the window, r3 starts, and the starts out of the window
      // (r2's) are trimmed as it does.
      await age("r2", 61_000);
      const [r3] = await claim();
      assert.equal(r3.id, "r3");
      assert.deepEqual(Object.keys(await starts()).sort(), ["", "r1", "r3"]);
      assert.equal(await c.sendCommand(["EXISTS", `${prefix}{default}:groups`]), 0);

      // A manual retry forgets the task's start (its startedAt goes); a purge forgets it too.
      await q.complete("r1", again.token, resultOf(again));
      await q.fail("r3", r3.token, { error });
      await q.retry("r3");
      assert.deepEqual(Object.keys(await starts()).sort(), ["", "r1"]);
      await q.cancel("r3", "no");
      await q.sweep({ now: Date.now(), purgeBefore: Date.now() + 1_000 });
      assert.deepEqual(await starts(), { "": "-60000" });

      // A bucket shared by windows keeps its longest: a 1-second task's start does not trim
      // the start an hour-long task counts.
      await q.enqueue([
        ratedTask("long", "m", 1, 3_600_000, { queue: "mq" }),
        ratedTask("short", "m", 5, 1_000, { queue: "mq" }),
      ]);
      assert.deepEqual(await claim("mq", 1).then((t) => t.map((x) => x.id)), ["long"]);
      await c.sendCommand(["ZADD", `${prefix}rate:k:m`, String(await serverNow() - 5_000), "long"]);
      assert.deepEqual(await claim("mq").then((t) => t.map((x) => x.id)), ["short"]);
      assert.deepEqual(
        pairsOf(await c.sendCommand(["ZRANGE", `${prefix}rate:k:m`, "0", "0", "WITHSCORES"])),
        { "": "-3600000" },
      );
      assert.deepEqual(
        (await c.sendCommand(["ZRANGE", `${prefix}rate:k:m`, "0", "-1"]) as string[]).sort(),
        ["", "long", "short"],
      );
    });
  });
});

Deno.test("redis: a grouped task's rate bucket is its group's; the group's cap still holds", async () => {
  await withPrefix(async (prefix) => {
    await using backend = await RedisBackend.open({ url: redisUrl(), prefix });
    const q = backend.queue;
    const claim = async (queues: string[]) =>
      (await q.claim({ queues, limit: 5, lease: 30_000, worker: "w" })).tasks.map((t) => t.id);
    const rate = { key: "g:g", limit: 2, per: 60_000 };
    await q.enqueue([
      groupedTask("a", "q", "g", { groupLimit: 1, rate }),
      groupedTask("b", "q", "g", { groupLimit: 1, rate }),
      groupedTask("c", "q", "g", { groupLimit: 1, rate }),
      ratedTask("x", "other", 1, 60_000, { queue: "q" }),
      ratedTask("y", "other", 1, 60_000, { queue: "q" }),
    ]);
    await withClient(async (c) => {
      assert.deepEqual(
        await c.sendCommand(["ZRANGE", `${prefix}{q}:groups`, "0", "-1"]),
        ["\u0001k:other", "g"],
        "a grouped task's lane is its group",
      );
    });
    // One of the group (its cap), one of the other bucket (its limit).
    assert.deepEqual((await claim(["q"])).sort(), ["a", "x"]);
    await q.cancel("a", "done");
    // The group's cap has room again, and its bucket one start.
    assert.deepEqual(await claim(["q"]), ["b"]);
    await q.cancel("b", "done");
    assert.deepEqual(await claim(["q"]), [], "the group's bucket has two starts in the minute");
  });
});
