// The SQLite engine against the storage contract, called directly (no orchestrator): claim
// order, dedupe, fencing, stalls, expiry, dependencies, inline effects, schedules and their
// tick compare-and-set, and lock retries between two connections on one file.

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { openSqlite, type SqliteBackend } from "../backends/sqlite/mod.ts";
import type { NewTask, StoredEvent, StoredResult, StoredSchedule } from "../src/backend.ts";
import { DuplicateTaskError, OmniQError } from "../src/errors.ts";
import { newTask } from "./fixtures/tasks.ts";

interface TempDir extends AsyncDisposable {
  path: string;
}

async function tempDir(): Promise<TempDir> {
  const path = await Deno.makeTempDir({ prefix: "omniq_sqlite_" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** A fresh engine on a temp file; disposing it closes it and removes the directory. */
async function fresh(): Promise<SqliteBackend> {
  const dir = await tempDir();
  const backend = await openSqlite(`${dir.path}/omniq.db`);
  return Object.assign(backend, {
    [Symbol.asyncDispose]: async () => {
      await backend.close();
      await dir[Symbol.asyncDispose]();
    },
  });
}

const WORKER = { lease: 30_000, worker: "test" };

function newSchedule(id: string, options: Partial<StoredSchedule> = {}): StoredSchedule {
  return {
    id,
    task: "tick",
    payload: new Uint8Array([7]),
    every: 60_000,
    misfire: "skip",
    misfireGrace: 1000,
    paused: false,
    nextRunAt: 1_000_000,
    createdAt: 500_000,
    queue: "default",
    priority: 0,
    maxAttempts: 1,
    backoff: { type: "fixed", delay: 1000, max: 1000, jitter: 0 },
    ...options,
  };
}

/** The task of a schedule's tick, as the orchestrator builds it. */
function tickTask(scheduleId: string, tick: number, options: Partial<NewTask> = {}): NewTask {
  return newTask(`${scheduleId}:${tick}`, { task: "tick", scheduleId, ...options });
}

Deno.test("claims by queue order, then priority, then FIFO", async () => {
  await using b = await fresh();
  await b.queue.enqueue([
    newTask("low-1", { queue: "low", priority: 9 }),
    newTask("high-1", { queue: "high" }),
    newTask("high-2", { queue: "high", priority: 5 }),
    newTask("high-3", { queue: "high" }),
    newTask("low-2", { queue: "low" }),
  ]);
  const first = await b.queue.claim({ queues: ["high", "low"], limit: 4, ...WORKER });
  assert.deepEqual(first.tasks.map((t) => t.id), ["high-2", "high-1", "high-3", "low-1"]);
  for (const t of first.tasks) {
    assert.equal(t.state, "running");
    assert.equal(t.attempts, 1);
    assert.equal(typeof t.token, "string");
    assert.ok(t.leaseUntil > Date.now());
  }
  const second = await b.queue.claim({ queues: ["high", "low"], limit: 4, ...WORKER });
  assert.deepEqual(second.tasks.map((t) => t.id), ["low-2"]);
  const stats = await b.queue.stats();
  assert.equal(stats.total.running, 5);
  assert.equal(stats.queues.high.running, 3);
  assert.equal(stats.queues.low.completed, 0);
});

Deno.test("a key matching a live task returns that task instead", async () => {
  await using b = await fresh();
  const one = await b.queue.enqueue([newTask("a", { key: "k" }), newTask("b", { key: "k" })]);
  assert.deepEqual(one.ids, ["a", "a"]);
  assert.deepEqual(one.created, [true, false]);
  const two = await b.queue.enqueue([newTask("c", { key: "k" })]);
  assert.deepEqual(two.ids, ["a"]);
  await b.queue.cancel("a", "stop");
  const three = await b.queue.enqueue([newTask("d", { key: "k" })]);
  assert.deepEqual(three, {
    ids: ["d"],
    created: [true],
    effects: { events: three.effects.events, results: [] },
  });
  assert.equal(await b.queue.get("b"), undefined);
});

Deno.test("a duplicate id throws and stores nothing of the batch", async () => {
  await using b = await fresh();
  await b.queue.enqueue([newTask("x")]);
  await assert.rejects(
    () => b.queue.enqueue([newTask("fresh"), newTask("x")]),
    (e: Error) => e instanceof DuplicateTaskError && e.message.includes('"x"'),
  );
  await assert.rejects(() => b.queue.enqueue([newTask("y"), newTask("y")]), DuplicateTaskError);
  await assert.rejects(
    () => b.queue.enqueue([newTask("z", { dependsOn: ["nope"] })]),
    (e: Error) => e instanceof OmniQError && e.message === 'dependsOn: no task with id "nope"',
  );
  assert.deepEqual((await b.queue.list({})).map((t) => t.id), ["x"]);
  assert.equal((await b.events.query({})).length, 1);
});

Deno.test("stored tasks round-trip their fields", async () => {
  await using b = await fresh();
  const task = newTask("full", {
    expiresAt: Date.now() + 60_000,
    timeout: 5000,
    resultTtl: 1000,
    key: "key",
    scheduleId: "s1",
    payload: new Uint8Array([9, 8, 7]),
  });
  await b.queue.enqueue([task]);
  assert.deepEqual(await b.queue.get("full"), { ...task, state: "queued", attempts: 0 });
});

Deno.test("a stale token changes nothing (fencing)", async () => {
  await using b = await fresh();
  await b.queue.enqueue([newTask("t")]);
  const [first] = (await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER })).tasks;
  const retrying = await b.queue.fail("t", first.token, {
    error: { name: "Error", message: "boom", stack: "at somewhere" },
    retryAt: Date.now(),
  });
  assert.equal(retrying?.events[0].type, "retrying");
  assert.deepEqual(retrying?.events[0].data, {
    error: { name: "Error", message: "boom" },
    retryAt: retrying?.events[0].data?.retryAt,
  });
  const [second] = (await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER })).tasks;
  assert.equal(second.attempts, 2);
  assert.deepEqual(second.error, { name: "Error", message: "boom", stack: "at somewhere" });
  const result: StoredResult = {
    taskId: "t",
    state: "completed",
    value: new Uint8Array([1]),
    completedAt: Date.now(),
  };
  assert.equal(await b.queue.complete("t", first.token, result), undefined);
  assert.equal(await b.queue.renew("t", first.token, 1000), false);
  assert.equal(await b.queue.progress("t", first.token, 0.5), undefined);
  assert.equal(await b.queue.fail("t", first.token, { error: second.error! }), undefined);
  assert.equal(await b.queue.renew("t", second.token, 1000), true);
  const progress = await b.queue.progress("t", second.token, 0.5);
  assert.deepEqual(progress?.events[0].data, { progress: 0.5 });
  const done = await b.queue.complete("t", second.token, result);
  assert.equal(done?.events[0].type, "completed");
  const stored = await b.queue.get("t");
  assert.equal(stored?.state, "completed");
  assert.equal(stored?.progress, 0.5);
  assert.equal(stored?.completedAt, result.completedAt);
  assert.deepEqual(await b.results.get("t"), result);
  assert.equal(await b.queue.complete("t", second.token, result), undefined);
});

Deno.test("sweep requeues a stalled task, then fails it when out of attempts", async () => {
  await using b = await fresh();
  await b.queue.enqueue([newTask("s", { maxAttempts: 2 })]);
  await b.queue.claim({ queues: ["default"], limit: 1, lease: 1, worker: "w" });
  const later = Date.now() + 50;
  const first = await b.queue.sweep({ now: later });
  assert.deepEqual(first.events.map((e) => [e.type, e.data]), [["stalled", { attempt: 1 }]]);
  assert.equal((await b.queue.get("s"))?.state, "queued");
  const [again] = (await b.queue.claim({ queues: ["default"], limit: 1, lease: 1, worker: "w" }))
    .tasks;
  assert.equal(again.attempts, 2);
  const second = await b.queue.sweep({ now: Date.now() + 50 });
  assert.deepEqual(second.events.map((e) => e.type), ["stalled", "failed"]);
  const message = "the worker's lease expired on attempt 2";
  assert.deepEqual(second.events[1].data, { error: { name: "StalledError", message } });
  const stored = await b.queue.get("s");
  assert.equal(stored?.state, "failed");
  assert.deepEqual(stored?.error, { name: "StalledError", message });
  assert.equal((await b.results.get("s"))?.state, "failed");
  assert.equal(
    await b.queue.complete("s", again.token, {
      taskId: "s",
      state: "completed",
      completedAt: Date.now(),
    }),
    undefined,
  );
});

Deno.test("a task past its expiry is not claimed and is expired by sweep", async () => {
  await using b = await fresh();
  const now = Date.now();
  await b.queue.enqueue([
    newTask("old", { expiresAt: now - 1, resultTtl: 60_000 }),
    newTask("new", { expiresAt: now + 60_000 }),
  ]);
  const { tasks } = await b.queue.claim({ queues: ["default"], limit: 5, ...WORKER });
  assert.deepEqual(tasks.map((t) => t.id), ["new"]);
  const swept = await b.queue.sweep({ now: Date.now() });
  assert.deepEqual(swept.events.map((e) => [e.type, e.taskId]), [["expired", "old"]]);
  const stored = await b.queue.get("old");
  assert.equal(stored?.state, "expired");
  assert.deepEqual(stored?.error, {
    name: "TaskExpiredError",
    message: "expired before it started",
  });
  const result = await b.results.get("old");
  assert.equal(result?.state, "expired");
  assert.equal(result?.expiresAt, (stored?.completedAt ?? 0) + 60_000);
});

Deno.test("dependents wait, are released in turn, or cancelled in cascade", async () => {
  await using b = await fresh();
  const future = Date.now() + 60_000;
  await b.queue.enqueue([
    newTask("a"),
    newTask("b", { dependsOn: ["a"] }),
    newTask("c", { dependsOn: ["a", "b"], runAt: future }),
  ]);
  assert.equal((await b.queue.get("b"))?.state, "waiting");
  const [a] = (await b.queue.claim({ queues: ["default"], limit: 5, ...WORKER })).tasks;
  assert.equal(a.id, "a");
  const done = await b.queue.complete("a", a.token, {
    taskId: "a",
    state: "completed",
    completedAt: Date.now(),
  });
  assert.deepEqual(done?.events.map((e) => [e.type, e.taskId, e.data]), [
    ["completed", "a", undefined],
    ["enqueued", "b", { state: "queued", released: true }],
  ]);
  assert.equal((await b.queue.get("c"))?.state, "waiting");
  const [bTask] = (await b.queue.claim({ queues: ["default"], limit: 5, ...WORKER })).tasks;
  await b.queue.complete("b", bTask.token, {
    taskId: "b",
    state: "completed",
    completedAt: Date.now(),
  });
  assert.equal((await b.queue.get("c"))?.state, "scheduled");
  assert.equal(await b.queue.nextDue(["default"]), future);

  await b.queue.enqueue([
    newTask("x"),
    newTask("y", { dependsOn: ["x"] }),
    newTask("z", { dependsOn: ["y"] }),
    newTask("w", { dependsOn: ["x"], onDependencyFailure: "run" }),
  ]);
  const [x] = (await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER })).tasks;
  assert.equal(x.id, "x");
  const failed = await b.queue.fail("x", x.token, { error: { name: "Error", message: "no" } });
  assert.deepEqual(failed?.events.map((e) => [e.type, e.taskId, e.data]), [
    ["failed", "x", { error: { name: "Error", message: "no" } }],
    ["cancelled", "y", { reason: "dependency x failed", dependency: "x" }],
    ["cancelled", "z", { reason: "dependency y cancelled", dependency: "y" }],
    ["enqueued", "w", { state: "queued", released: true }],
  ]);
  assert.deepEqual((await b.queue.get("z"))?.error, {
    name: "TaskCancelledError",
    message: "dependency y cancelled",
  });
  assert.equal((await b.results.get("y"))?.state, "cancelled");

  const late = await b.queue.enqueue([
    newTask("v", { dependsOn: ["x"] }),
    newTask("u", { dependsOn: ["x"], onDependencyFailure: "run" }),
  ]);
  assert.deepEqual(late.effects.events.map((e) => [e.type, e.taskId, e.data]), [
    ["cancelled", "v", { reason: "dependency x failed", dependency: "x" }],
    ["enqueued", "u", { state: "queued" }],
  ]);
  assert.equal((await b.results.get("v"))?.state, "cancelled");
});

Deno.test("cancel and retry", async () => {
  await using b = await fresh();
  await b.queue.enqueue([newTask("r")]);
  const [r] = (await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER })).tasks;
  const cancelled = await b.queue.cancel("r", "changed my mind");
  assert.deepEqual(cancelled?.events.map((e) => [e.type, e.attempt, e.data]), [
    ["cancelled", 1, { reason: "changed my mind" }],
  ]);
  assert.equal(await b.queue.cancel("r", "again"), undefined);
  assert.equal(await b.queue.cancel("missing", "why"), undefined);
  assert.equal(await b.queue.renew("r", r.token, 1000), false);
  assert.equal((await b.results.get("r"))?.state, "cancelled");
  const retried = await b.queue.retry("r");
  assert.deepEqual(retried?.events.map((e) => [e.type, e.attempt, e.data]), [
    ["enqueued", undefined, { state: "queued", retry: true }],
  ]);
  const stored = await b.queue.get("r");
  assert.equal(stored?.state, "queued");
  assert.equal(stored?.attempts, 0);
  assert.equal(stored?.error, undefined);
  assert.equal(stored?.completedAt, undefined);
  assert.equal(await b.results.get("r"), undefined);
  assert.equal(await b.queue.retry("r"), undefined);
});

Deno.test("inline events carry ids that the event store returns", async () => {
  await using b = await fresh();
  const { effects } = await b.queue.enqueue([
    newTask("e1"),
    newTask("e2", { runAt: Date.now() + 60_000 }),
  ]);
  const claimed = await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER });
  const inline = [...effects.events, ...claimed.effects.events] as StoredEvent[];
  assert.ok(inline.every((e) => typeof e.id === "string"));
  assert.deepEqual(await b.events.query({}), inline);
  assert.deepEqual(inline.map((e) => e.type), ["enqueued", "scheduled", "started"]);
  assert.deepEqual(await b.events.query({ taskId: "e1", type: "started" }), [inline[2]]);
  assert.deepEqual(await b.events.query({ after: inline[0].id, limit: 1 }), [inline[1]]);
  assert.deepEqual(await b.events.query({ type: ["scheduled", "started"], queue: "default" }), [
    inline[1],
    inline[2],
  ]);
  assert.deepEqual(await b.events.query({ since: inline[2].at + 1 }), []);
  assert.deepEqual(await b.events.query({ until: inline[0].at }), []);
  await assert.rejects(() => b.events.query({ after: "abc" }), OmniQError);
});

Deno.test("detached stores get results and events back as effects", async () => {
  await using b = await fresh();
  b.queue.attach({ results: false, events: false });
  const { effects } = await b.queue.enqueue([newTask("d1"), newTask("d2", { resultTtl: 10 })]);
  assert.ok(effects.events.every((e) => !("id" in e)));
  const [d1] = (await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER })).tasks;
  const done = await b.queue.complete("d1", d1.token, {
    taskId: "d1",
    state: "completed",
    completedAt: Date.now(),
  });
  assert.deepEqual(done?.results, []);
  assert.deepEqual(done?.events.map((e) => e.type), ["completed"]);
  const cancelled = await b.queue.cancel("d2", "bye");
  assert.equal(cancelled?.results.length, 1);
  assert.equal(cancelled?.results[0].state, "cancelled");
  assert.equal(cancelled?.results[0].expiresAt, cancelled!.results[0].completedAt + 10);
  assert.deepEqual(await b.events.query({}), []);
  assert.equal(await b.results.get("d1"), undefined);
  assert.equal(await b.results.get("d2"), undefined);
});

Deno.test("list, stats, nextDue and scheduled promotion", async () => {
  await using b = await fresh();
  const soon = Date.now() + 40;
  await b.queue.enqueue([
    newTask("l1", { task: "a" }),
    newTask("l2", { task: "b", queue: "other" }),
    newTask("l3", { task: "a", runAt: soon }),
  ]);
  assert.deepEqual((await b.queue.list({ task: "a" })).map((t) => t.id), ["l1", "l3"]);
  assert.deepEqual((await b.queue.list({ state: ["scheduled"] })).map((t) => t.id), ["l3"]);
  assert.deepEqual((await b.queue.list({ limit: 1, offset: 1 })).map((t) => t.id), ["l2"]);
  assert.deepEqual(await b.queue.list({ state: [] }), []);
  assert.deepEqual((await b.queue.list({ queue: "other" })).map((t) => t.id), ["l2"]);
  const stats = await b.queue.stats();
  assert.deepEqual(stats.total, {
    waiting: 0,
    scheduled: 1,
    queued: 2,
    running: 0,
    completed: 0,
    failed: 0,
    cancelled: 0,
    expired: 0,
  });
  assert.deepEqual(Object.keys(stats.queues).sort(), ["default", "other"]);
  assert.equal(stats.queues.other.queued, 1);
  assert.equal(await b.queue.nextDue(["default", "other"]), soon);
  assert.equal(await b.queue.nextDue(["other"]), undefined);
  await new Promise((resolve) => setTimeout(resolve, 60));
  const { tasks } = await b.queue.claim({ queues: ["default"], limit: 5, ...WORKER });
  assert.deepEqual(tasks.map((t) => t.id), ["l1", "l3"]);
});

Deno.test("sweep purges final tasks ended before a time", async () => {
  await using b = await fresh();
  await b.queue.enqueue([newTask("p1"), newTask("p2")]);
  await b.queue.cancel("p1", "x");
  await b.queue.sweep({ now: Date.now(), purgeBefore: Date.now() + 1 });
  assert.deepEqual((await b.queue.list({})).map((t) => t.id), ["p2"]);
});

Deno.test("result and event stores", async () => {
  await using b = await fresh();
  const now = Date.now();
  const keep: StoredResult = {
    taskId: "k",
    state: "completed",
    value: new Uint8Array([4]),
    completedAt: now,
  };
  const gone: StoredResult = {
    taskId: "g",
    state: "failed",
    error: { name: "E", message: "m" },
    completedAt: now,
    expiresAt: now - 1,
  };
  await b.results.put([keep, gone]);
  assert.deepEqual(await b.results.get("k"), keep);
  assert.equal(await b.results.get("g"), undefined);
  await b.results.put([{ ...keep, value: new Uint8Array([5]) }]);
  assert.deepEqual((await b.results.get("k"))?.value, new Uint8Array([5]));
  assert.equal(await b.results.sweep(now), 1);
  await b.results.delete(["k"]);
  assert.equal(await b.results.get("k"), undefined);

  const stored = await b.events.append([
    { type: "schedule_fired", at: now - 10, data: { scheduleId: "s" } },
    { type: "enqueued", taskId: "t", queue: "q", at: now, attempt: 1 },
  ]);
  assert.equal(Number(stored[1].id), Number(stored[0].id) + 1);
  assert.deepEqual(await b.events.query({}), stored);
  assert.equal(await b.events.sweep(now), 1);
  assert.deepEqual(await b.events.query({}), [stored[1]]);
});

Deno.test("a locked database is retried without blocking the event loop", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/omniq.db`;
  await using b = await openSqlite({ path, busyTimeout: 5 });
  await b.queue.enqueue([newTask("busy")]);
  const other = new DatabaseSync(path);
  try {
    other.exec("BEGIN IMMEDIATE");
    let ticks = 0;
    const ticker = setInterval(() => ticks++, 5);
    const release = setTimeout(() => other.exec("COMMIT"), 150);
    const started = Date.now();
    try {
      const { tasks } = await b.queue.claim({ queues: ["default"], limit: 1, ...WORKER });
      assert.deepEqual(tasks.map((t) => t.id), ["busy"]);
    } finally {
      clearInterval(ticker);
      clearTimeout(release);
    }
    assert.ok(Date.now() - started >= 140, "the claim waited for the other transaction");
    assert.ok(ticks >= 10, `timers kept running while it waited (${ticks} ticks)`);
    assert.equal(other.isTransaction, false);
  } finally {
    other.close();
  }
});

Deno.test("several engines open one new file at once and share it", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/omniq.db`;
  const engines = await Promise.all(Array.from({ length: 4 }, () => openSqlite(path)));
  try {
    await Promise.all(engines.map((e, i) => e.queue.enqueue([newTask(`m${i}`)])));
    const claims = await Promise.all(
      engines.map((e) => e.queue.claim({ queues: ["default"], limit: 4, ...WORKER })),
    );
    const ids = claims.flatMap((c) => c.tasks.map((t) => t.id)).sort();
    assert.deepEqual(ids, ["m0", "m1", "m2", "m3"]);
  } finally {
    for (const e of engines) await e.close();
  }
});

Deno.test("records and schemas of a newer OmniQ are refused", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/omniq.db`;
  const b = await openSqlite(path);
  await b.queue.enqueue([newTask("future"), newTask("now")]);
  const raw = new DatabaseSync(path);
  try {
    raw.exec("UPDATE tasks SET v = 99 WHERE id = 'future'");
    await assert.rejects(() => b.queue.get("future"), /newer OmniQ/);
    const { tasks } = await b.queue.claim({ queues: ["default"], limit: 5, ...WORKER });
    assert.deepEqual(tasks.map((t) => t.id), ["now"]);
    await b.close();
    raw.exec("UPDATE meta SET value = '99' WHERE key = 'schema_version'");
  } finally {
    raw.close();
  }
  await assert.rejects(
    () => openSqlite(path),
    (e: Error) => e instanceof OmniQError && /newer OmniQ/.test(e.message),
  );
});

Deno.test("close is idempotent and later calls fail", async () => {
  const b = await openSqlite(":memory:");
  await b.close();
  await b.close();
  await assert.rejects(() => b.queue.get("x"), (e: Error) => {
    return e instanceof OmniQError && /closed/.test(e.message);
  });
  await assert.rejects(() => b.events.query({}), OmniQError);
  await assert.rejects(() => b.results.get("x"), OmniQError);
  await assert.rejects(() => openSqlite(""), OmniQError);
});

Deno.test("workflow links round-trip through get, list and claim", async () => {
  await using b = await fresh();
  const links = { names: { a: "first", b: "second" }, pipe: "a" };
  await b.queue.enqueue([newTask("a"), newTask("b"), newTask("plain")]);
  const c = newTask("c", { dependsOn: ["a", "b"], links });
  await b.queue.enqueue([c]);
  assert.deepEqual((await b.queue.get("c"))?.links, links);
  assert.equal("links" in (await b.queue.get("plain"))!, false);
  const listed = await b.queue.list({});
  assert.deepEqual(listed.find((t) => t.id === "c")?.links, links);
  assert.equal(listed.filter((t) => "links" in t).length, 1);
  const only = newTask("only-pipe", { links: { pipe: "x" }, queue: "solo" });
  await b.queue.enqueue([only]);
  const { tasks } = await b.queue.claim({ queues: ["solo"], limit: 1, ...WORKER });
  assert.deepEqual(tasks[0].links, { pipe: "x" });
  assert.deepEqual(await b.queue.get("only-pipe"), {
    ...only,
    state: "running",
    attempts: 1,
    startedAt: tasks[0].startedAt,
  });
});

Deno.test("schedules round-trip, optional fields absent or present", async () => {
  await using b = await fresh();
  const bare = newSchedule("bare", { nextRunAt: undefined });
  delete bare.nextRunAt;
  const full = newSchedule("full", {
    cron: "*/5 * * * *",
    every: undefined,
    tz: "Europe/Paris",
    startAt: 1,
    endAt: 9_000_000,
    misfire: "once",
    paused: true,
    lastRunAt: 900_000,
    timeout: 5000,
    ttl: 60_000,
    resultTtl: 3600_000,
    priority: 7,
    maxAttempts: 4,
    backoff: { type: "exponential", delay: 10, max: 100, jitter: 0.5 },
  });
  delete full.every;
  await b.queue.putSchedule(full);
  await b.queue.putSchedule(bare);
  assert.deepEqual(await b.queue.getSchedule("bare"), bare);
  assert.deepEqual(await b.queue.getSchedule("full"), full);
  assert.equal(await b.queue.getSchedule("none"), undefined);
  const got = (await b.queue.getSchedule("bare"))!;
  for (const field of ["cron", "tz", "startAt", "endAt", "nextRunAt", "lastRunAt", "ttl"]) {
    assert.equal(field in got, false, field);
  }
  assert.deepEqual(await b.queue.listSchedules(), [bare, full]);
  // Replacing keeps one row, every field as given.
  const replaced = newSchedule("full", { every: 1000, nextRunAt: 42 });
  await b.queue.putSchedule(replaced);
  assert.deepEqual(await b.queue.listSchedules(), [bare, replaced]);
  assert.equal(await b.queue.deleteSchedule("full"), true);
  assert.equal(await b.queue.deleteSchedule("full"), false);
  assert.deepEqual(await b.queue.listSchedules(), [bare]);
});

Deno.test("fireTick is a compare-and-set of the schedule's next tick", async () => {
  await using b = await fresh();
  await b.queue.putSchedule(newSchedule("s", { nextRunAt: 1000 }));
  const task = tickTask("s", 1000);
  const effects = await b.queue.fireTick({ scheduleId: "s", tick: 1000, next: 2000, task });
  assert.ok(effects);
  assert.deepEqual(effects.events.map((e) => e.type), ["enqueued", "schedule_fired"]);
  const fired = effects.events[1] as StoredEvent;
  assert.equal(typeof fired.id, "string");
  assert.equal(fired.taskId, "s:1000");
  assert.equal(fired.queue, "default");
  assert.deepEqual(fired.data, { scheduleId: "s", tick: 1000 });
  assert.deepEqual(await b.events.query({ type: "schedule_fired" }), [fired]);
  const stored = await b.queue.get("s:1000");
  assert.deepEqual(stored, { ...task, state: "queued", attempts: 0 });
  assert.equal(stored?.scheduleId, "s");
  const schedule = await b.queue.getSchedule("s");
  assert.equal(schedule?.nextRunAt, 2000);
  assert.equal(schedule?.lastRunAt, 1000);

  // The same tick again: the compare-and-set fails, nothing changes.
  assert.equal(
    await b.queue.fireTick({ scheduleId: "s", tick: 1000, next: 2000, task }),
    undefined,
  );
  assert.equal(await b.queue.fireTick({ scheduleId: "nope", tick: 1000 }), undefined);
  assert.equal((await b.queue.list({})).length, 1);

  // A skipped (missed) tick advances the schedule only.
  const skipped = await b.queue.fireTick({ scheduleId: "s", tick: 2000, next: 3000 });
  assert.deepEqual(skipped, { events: [], results: [] });
  assert.equal((await b.queue.getSchedule("s"))?.nextRunAt, 3000);

  // A tick whose task exists advances the schedule without a second task or event.
  await b.queue.putSchedule(newSchedule("s", { nextRunAt: 1000 }));
  const again = await b.queue.fireTick({ scheduleId: "s", tick: 1000, next: 2000, task });
  assert.deepEqual(again, { events: [], results: [] });
  assert.equal((await b.events.query({ type: "schedule_fired" })).length, 1);

  // A future tick's task is scheduled; the last tick clears nextRunAt.
  const late = tickTask("s", 2000, { runAt: Date.now() + 60_000 });
  const last = await b.queue.fireTick({ scheduleId: "s", tick: 2000, task: late });
  assert.deepEqual(last?.events.map((e) => e.type), ["scheduled", "schedule_fired"]);
  assert.equal((await b.queue.get("s:2000"))?.state, "scheduled");
  assert.equal("nextRunAt" in (await b.queue.getSchedule("s"))!, false);
  assert.equal(await b.queue.fireTick({ scheduleId: "s", tick: 2000 }), undefined);

  // A paused schedule does not fire.
  await b.queue.putSchedule(newSchedule("p", { nextRunAt: 1000, paused: true }));
  const paused = await b.queue.fireTick({
    scheduleId: "p",
    tick: 1000,
    next: 2000,
    task: tickTask("p", 1000),
  });
  assert.equal(paused, undefined);
  assert.equal(await b.queue.get("p:1000"), undefined);
  assert.equal((await b.queue.getSchedule("p"))?.nextRunAt, 1000);
});

Deno.test("fireTick of a detached engine returns its events", async () => {
  await using b = await fresh();
  b.queue.attach({ results: false, events: false });
  await b.queue.putSchedule(newSchedule("d", { nextRunAt: 5 }));
  const effects = await b.queue.fireTick({ scheduleId: "d", tick: 5, task: tickTask("d", 5) });
  assert.deepEqual(effects?.events.map((e) => e.type), ["enqueued", "schedule_fired"]);
  assert.ok(effects?.events.every((e) => !("id" in e)));
  const paused = await b.queue.setSchedulePaused("d", true);
  assert.equal(paused?.events.length, 1);
  assert.equal("id" in paused!.events[0], false);
  assert.deepEqual(await b.events.query({}), []);
});

Deno.test("two engines racing one tick fire it exactly once", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/omniq.db`;
  const [one, two] = await Promise.all([
    openSqlite({ path, busyTimeout: 1 }),
    openSqlite({ path, busyTimeout: 1 }),
  ]);
  const holder = new DatabaseSync(path);
  try {
    await one.queue.putSchedule(newSchedule("race", { nextRunAt: 1000 }));
    // Hold the write lock so that every attempt finds the file busy and retries, the
    // retries of both engines interleaving once it is released.
    holder.exec("BEGIN IMMEDIATE");
    const release = setTimeout(() => holder.exec("COMMIT"), 40);
    const attempts = await Promise.all(
      Array.from({ length: 20 }, (_, i) =>
        (i % 2 ? two : one).queue.fireTick({
          scheduleId: "race",
          tick: 1000,
          next: 2000,
          task: tickTask("race", 1000),
        })),
    ).finally(() => clearTimeout(release));
    assert.equal(attempts.filter((e) => e !== undefined).length, 1);
    assert.deepEqual((await two.queue.list({})).map((t) => t.id), ["race:1000"]);
    assert.equal((await one.events.query({ type: "schedule_fired" })).length, 1);
    assert.equal((await two.queue.getSchedule("race"))?.nextRunAt, 2000);
  } finally {
    holder.close();
    await one.close();
    await two.close();
  }
});

Deno.test("pausing and resuming a schedule", async () => {
  await using b = await fresh();
  await b.queue.putSchedule(newSchedule("s", { nextRunAt: 1000 }));
  assert.equal(await b.queue.setSchedulePaused("nope", true), undefined);
  assert.equal(await b.queue.setSchedulePaused("s", false, 5), undefined);
  assert.equal((await b.queue.getSchedule("s"))?.nextRunAt, 1000);

  const before = Date.now();
  const paused = await b.queue.setSchedulePaused("s", true);
  assert.equal(paused?.events.length, 1);
  const event = paused!.events[0] as StoredEvent;
  assert.equal(event.type, "schedule_paused");
  assert.equal("taskId" in event, false);
  assert.deepEqual(event.data, { scheduleId: "s" });
  assert.ok(event.at >= before);
  assert.deepEqual(await b.events.query({}), [event]);
  const stored = await b.queue.getSchedule("s");
  assert.equal(stored?.paused, true);
  assert.equal(stored?.nextRunAt, 1000, "pausing keeps the next tick");
  assert.equal(await b.queue.setSchedulePaused("s", true), undefined);

  const resumed = await b.queue.setSchedulePaused("s", false, 7000);
  assert.deepEqual(resumed?.events.map((e) => [e.type, e.data]), [
    ["schedule_resumed", { scheduleId: "s" }],
  ]);
  assert.equal((await b.queue.getSchedule("s"))?.paused, false);
  assert.equal((await b.queue.getSchedule("s"))?.nextRunAt, 7000);

  // Resuming without a next tick leaves none.
  await b.queue.setSchedulePaused("s", true);
  await b.queue.setSchedulePaused("s", false);
  assert.equal("nextRunAt" in (await b.queue.getSchedule("s"))!, false);
  assert.equal((await b.events.query({})).length, 4);
});

Deno.test("dueSchedules and nextScheduleAt skip paused and finished schedules", async () => {
  await using b = await fresh();
  assert.equal(await b.queue.nextScheduleAt(), undefined);
  assert.deepEqual(await b.queue.dueSchedules(10_000, 10), []);
  const done = newSchedule("done", { nextRunAt: undefined });
  delete done.nextRunAt;
  await b.queue.putSchedule(done);
  assert.equal(await b.queue.nextScheduleAt(), undefined);
  await b.queue.putSchedule(newSchedule("c", { nextRunAt: 300 }));
  await b.queue.putSchedule(newSchedule("a", { nextRunAt: 100 }));
  await b.queue.putSchedule(newSchedule("b", { nextRunAt: 200 }));
  await b.queue.putSchedule(newSchedule("p", { nextRunAt: 50, paused: true }));
  await b.queue.putSchedule(newSchedule("later", { nextRunAt: 9000 }));
  assert.equal(await b.queue.nextScheduleAt(), 100);
  const ids = async (now: number, limit: number) =>
    (await b.queue.dueSchedules(now, limit)).map((s) => s.id);
  assert.deepEqual(await ids(300, 10), ["a", "b", "c"]);
  assert.deepEqual(await ids(200, 10), ["a", "b"]);
  assert.deepEqual(await ids(1000, 2), ["a", "b"]);
  assert.deepEqual(await ids(99, 10), []);
  assert.deepEqual((await b.queue.dueSchedules(100, 1))[0], newSchedule("a", { nextRunAt: 100 }));
  await b.queue.setSchedulePaused("a", true);
  assert.equal(await b.queue.nextScheduleAt(), 200);
  await b.queue.deleteSchedule("b");
  assert.deepEqual(await ids(10_000, 10), ["c", "later"]);
});

Deno.test("a reopened file keeps schedules, paused ones paused", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/omniq.db`;
  const first = await openSqlite(path);
  await first.queue.putSchedule(newSchedule("kept", { nextRunAt: 100 }));
  await first.queue.putSchedule(newSchedule("held", { nextRunAt: 100 }));
  await first.queue.setSchedulePaused("held", true);
  await first.close();
  await using again = await openSqlite(path);
  assert.equal((await again.queue.getSchedule("held"))?.paused, true);
  assert.equal((await again.queue.getSchedule("kept"))?.paused, false);
  assert.deepEqual((await again.queue.dueSchedules(1000, 10)).map((s) => s.id), ["kept"]);
  assert.equal(await again.queue.fireTick({ scheduleId: "held", tick: 100 }), undefined);
});

Deno.test("sqlite: writes of one turn share a transaction, and one's error rolls back only itself", async () => {
  const dir = await Deno.makeTempDir({ prefix: "omniq-group-" });
  const backend = await openSqlite(`${dir}/g.db`);
  try {
    await backend.queue.enqueue([newTask("taken")]);
    // Started in the same turn: one transaction, one savepoint each.
    const outcomes = await Promise.allSettled([
      backend.queue.enqueue([newTask("a1"), newTask("a2")]),
      backend.queue.enqueue([newTask("b1"), newTask("taken")]),
      backend.queue.enqueue([newTask("c1")]),
    ]);
    assert.equal(outcomes[0].status, "fulfilled");
    assert.equal(outcomes[1].status, "rejected");
    assert.ok((outcomes[1] as PromiseRejectedResult).reason instanceof DuplicateTaskError);
    assert.equal(outcomes[2].status, "fulfilled");
    for (const id of ["a1", "a2", "c1"]) assert.ok(await backend.queue.get(id), `${id} stored`);
    assert.equal(await backend.queue.get("b1"), undefined, "the failed batch stored nothing");
    assert.equal((await backend.queue.stats()).total.queued, 4);
  } finally {
    await backend.close();
    await Deno.remove(dir, { recursive: true });
  }
});
