// What the PostgreSQL engine does beyond the conformance suite: migrations under concurrent
// opens, LISTEN/NOTIFY wake-ups, recovery when the server terminates its connections, and
// clear errors for bad input (a wrong password, a closed port, a user without rights, SQL
// metacharacters in names). Each test works in its own schema, dropped at the end.

import assert from "node:assert/strict";
import postgres from "postgres";
import { ConfigError, defineTask, OmniQ, OmniQError } from "../mod.ts";
import { openPostgres, PostgresBackend } from "../backends/postgres/mod.ts";
import type { NewTask } from "../src/backend.ts";
import { dropSchema, freshSchema as fresh, postgresUrl, schemaUrl } from "./fixtures/postgres.ts";
import { checkControlFields, newTask as baseTask } from "./fixtures/tasks.ts";
import { within } from "../src/kit/async.ts";
import { Connection, createPool } from "../backends/postgres/connection.ts";
import { migrate, MIGRATIONS } from "../backends/postgres/migrations/mod.ts";
import { resolveOptions } from "../backends/postgres/options.ts";
import * as q from "../backends/postgres/queries.ts";

/** A task record for the engine itself, due now: one attempt. */
function newTask(id: string, extra: Partial<NewTask> = {}): NewTask {
  return baseTask(id, {
    task: "pg-echo",
    maxAttempts: 1,
    backoff: { type: "fixed", delay: 10, max: 10, jitter: 0 },
    ...extra,
  });
}

const echo = defineTask("pg-echo", (s: string) => s);
let ran = 0;
const slow = defineTask("pg-slow", async (n: number) => {
  ran++;
  await new Promise((r) => setTimeout(r, 5));
  return n;
});

const freshSchema = () => fresh("omniq_b");

/** An admin connection to the test server, closed on dispose. */
function admin(): postgres.Sql & AsyncDisposable {
  const sql = postgres(postgresUrl(), { max: 1, onnotice: () => {} });
  return Object.assign(sql, { [Symbol.asyncDispose]: () => sql.end({ timeout: 1 }) });
}

/** The URL with another user, password, port or database. */
function variant(change: (url: URL) => void): string {
  const url = new URL(postgresUrl());
  change(url);
  return url.href;
}

async function rejectsWithin<T>(ms: number, promise: Promise<T>): Promise<Error> {
  const t0 = performance.now();
  const error = await promise.then(
    () => assert.fail("expected the open to fail"),
    (e: Error) => e,
  );
  const took = performance.now() - t0;
  assert.ok(took < ms, `failed after ${took.toFixed(0)} ms, expected within ${ms} ms`);
  return error;
}

Deno.test("postgres: concurrent opens of a new schema migrate it once", async () => {
  const schema = freshSchema();
  try {
    const backends = await Promise.all(
      Array.from({ length: 6 }, () => openPostgres(schemaUrl(schema))),
    );
    for (const b of backends) await b.close();
    await using sql = admin();
    const rows = await sql.unsafe(`SELECT version FROM "${schema}".migrations`);
    assert.deepEqual(rows.map((r) => r.version), [1, 2, 3, 4]);
    const tables = await sql`SELECT table_name FROM information_schema.tables
      WHERE table_schema = ${schema} ORDER BY table_name`;
    assert.deepEqual(tables.map((t) => t.table_name), [
      "deps",
      "events",
      "migrations",
      "queues",
      "results",
      "schedules",
      "tasks",
    ]);
    // Opened again: nothing to migrate.
    await (await openPostgres(schemaUrl(schema))).close();
    // A schema from a newer OmniQ is refused with a clear message.
    await sql.unsafe(`INSERT INTO "${schema}".migrations (version) VALUES (99)`);
    const error = await openPostgres(schemaUrl(schema)).then(() => undefined, (e) => e);
    assert.ok(error instanceof OmniQError, String(error));
    assert.match(error.message, /newer OmniQ \(version 99/);
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: a schema at version 1 takes the later migrations once and keeps its tasks; dependencies stored without the mark still release", async () => {
  const schema = freshSchema();
  const url = schemaUrl(schema);
  try {
    // A schema as the first release left it: migration 1 alone.
    const old = new Connection(createPool(resolveOptions({ url })), resolveOptions({ url }));
    assert.equal(await migrate(old, MIGRATIONS.slice(0, 1)), 0);
    await old.close();
    await using sql = admin();
    const s = `"${schema}"`;
    const now = Date.now();
    const insert = (id: string, state: string, token: string | null, deps: string[]) =>
      sql.unsafe(
        `INSERT INTO ${s}.tasks (id, v, task, queue, priority, state, payload, created_at,
           run_at, max_attempts, backoff, on_dep_failure, attempts, token, lease_until,
           depends_on)
         VALUES ($1, 1, 'pg-echo', 'mig', 0, $2, '\\x00', $3, $3, 1, '{}', 'cancel', $4, $5,
           $6, $7::text::jsonb)`,
        [id, state, now, token ? 1 : 0, token, token ? now + 60_000 : null, JSON.stringify(deps)],
      );
    await insert("a", "running", "tok-a", []);
    await insert("b", "waiting", null, ["a"]);
    await sql.unsafe(`INSERT INTO ${s}.deps (task_id, depends_on) VALUES ('b', 'a')`);
    await using backend = await openPostgres(url);
    const versions = await sql.unsafe(`SELECT version FROM ${s}.migrations ORDER BY version`);
    assert.deepEqual(versions.map((r) => r.version), [1, 2, 3, 4]);
    // Migration 3: the events indexes by type and queue are gone; by task and time stay.
    const indexes = await sql.unsafe(
      `SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = 'events'
         AND indexname LIKE 'events_by_%' ORDER BY indexname`,
      [schema],
    );
    assert.deepEqual(indexes.map((r) => r.indexname), ["events_by_task", "events_by_time"]);
    const marks = await sql.unsafe(`SELECT id, has_dependents FROM ${s}.tasks ORDER BY id`);
    assert.deepEqual(marks.map((r) => [r.id, r.has_dependents]), [["a", true], ["b", false]]);
    // A process still on version 1's code adds a deps row without the mark: the trigger sets it.
    await insert("c", "running", "tok-c", []);
    await insert("d", "waiting", null, ["c"]);
    await sql.unsafe(`INSERT INTO ${s}.deps (task_id, depends_on) VALUES ('d', 'c')`);
    for (const [id, token] of [["a", "tok-a"], ["c", "tok-c"]]) {
      const result = { taskId: id, state: "completed" as const, completedAt: Date.now() };
      assert.ok(await backend.queue.complete(id, token, result), `${id} completed`);
    }
    assert.equal((await backend.queue.get("b"))?.state, "queued");
    assert.equal((await backend.queue.get("d"))?.state, "queued");
    // Migration 4: the old tasks read without a dead-letter queue, aging or throttle
    // window; new ones keep theirs, and queues can be paused.
    await checkControlFields(backend.queue, "b", "e");
    assert.ok(await backend.queue.setQueuePaused("mig", true));
    assert.deepEqual(await backend.queue.pausedQueues(), ["mig"]);
    const { tasks } = await backend.queue.claim({
      queues: ["mig"],
      limit: 5,
      lease: 30_000,
      worker: "w",
    });
    assert.deepEqual(tasks, [], "a paused queue gives nothing");
    // Opened again: nothing left to migrate.
    await (await openPostgres(url)).close();
    assert.equal(
      (await sql.unsafe(`SELECT count(*)::int AS n FROM ${s}.migrations`))[0].n,
      MIGRATIONS.length,
    );
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: the aging sweep and the key lookup read their partial indexes", async () => {
  const schema = freshSchema();
  try {
    await using backend = await openPostgres(schemaUrl(schema));
    // Enough rows that the planner has a choice: most neither age nor hold a throttled key.
    const now = Date.now();
    const tasks = Array.from({ length: 2_000 }, (_, i) =>
      newTask(`t${i}`, {
        key: `k${i}`,
        ...(i % 100 === 0 ? { ageAfter: 1_000, keyUntil: now + 60_000 } : {}),
      }));
    await backend.queue.enqueue(tasks);
    await using sql = admin();
    const s = `"${schema}"`;
    await sql.unsafe(`ANALYZE ${s}.tasks`);
    const plan = async (text: string, params: (string | number | string[])[]) =>
      (await sql.unsafe(`EXPLAIN ${text}`, params)).map((r) => r["QUERY PLAN"]).join("\n");
    const owners = await plan(q.keyOwners(s), [["k1", "k100"], now]);
    assert.match(owners, /tasks_live_key/, owners);
    assert.match(owners, /tasks_throttled_key/, owners);
    assert.doesNotMatch(owners, /Seq Scan/, owners);
    const aged = await plan(q.raiseAged(s), [now + 5_000, 1, 500]);
    assert.match(aged, /Index Scan using tasks_aging/, aged);
    assert.doesNotMatch(aged, /Seq Scan/, aged);
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: the claims read their partial indexes: ungrouped picks pass no row with a lane, lanes are seeks, rate counts are ranges", async () => {
  const schema = freshSchema();
  try {
    await using backend = await openPostgres(schemaUrl(schema));
    // Enough rows that the planner has a choice: half in lanes (50 groups, then 10 rate
    // buckets without a group), a few of those running, half without a lane.
    const tasks = Array.from(
      { length: 2_000 },
      (_, i) =>
        newTask(
          `t${i}`,
          i % 2 === 0
            ? {}
            : i % 4 === 1
            ? { group: `g${i % 100}`, groupLimit: 2 }
            : { rate: { key: `k:r${i % 10}`, limit: 1_000, per: 60_000 } },
        ),
    );
    await backend.queue.enqueue(tasks);
    await backend.queue.claim({ queues: ["default"], limit: 1_010, lease: 60_000, worker: "w" });
    await using sql = admin();
    const s = `"${schema}"`;
    await sql.unsafe(`ANALYZE ${s}.tasks`);
    const plan = async (text: string, params: (string | number | boolean | null | string[])[]) =>
      (await sql.unsafe(`EXPLAIN ${text}`, params)).map((r) => r["QUERY PLAN"]).join("\n");
    const now = Date.now();
    const uses = (text: string, indexes: string[]) => {
      for (const index of indexes) {
        assert.match(text, new RegExp(`(using|Bitmap Index Scan on) ${index} `), text);
      }
      assert.doesNotMatch(text, /Seq Scan|Sort/, text);
    };
    const claim = ["default", now, 1, 5, 30_000, "w"];
    // Not logged: the started events are sorted on their way in, which is no read of tasks.
    uses(await plan(q.claimOne(s, false), claim), ["tasks_ready", "tasks_group_ready"]);
    uses(await plan(q.claim(s), claim), ["tasks_ready"]);
    uses(await plan(q.ready(s), [["default", "other"], now]), [
      "tasks_ready",
      "tasks_group_ready",
    ]);
    uses(await plan(q.groupsQueued(s), ["default"]), ["tasks_group_ready"]);
    for (const after of [null, "g10", "\u0001k:r3"]) {
      // A seek: the index is entered after the lane named, not filtered from its start.
      const seek = await plan(q.nextGroup(s), [1, "default", after, 2]);
      uses(seek, ["tasks_group_ready"]);
      assert.match(seek, /Index Cond: \(\(queue = 'default'::text\) AND \(lane > /, seek);
    }
    const group = await plan(q.claimGroupHead(s), ["default", "g11", now, 1, 30_000, "w", null]);
    uses(group, ["tasks_group_ready", "tasks_group_running"]);
    const head = await plan(q.claimGroupHead(s), [
      "default",
      "\u0001k:r3",
      now,
      1,
      30_000,
      "w",
      "k:r3",
    ]);
    uses(head, ["tasks_group_ready", "tasks_group_running", "tasks_rate_started"]);
    // A rate bucket's starts in the window: a range of its index (bucket, then start, the
    // window's start read once), and no more rows than the limit.
    assert.match(
      head,
      /Limit[^\n]*\n(.*\n)*.*Index Cond: \(\(rate_key = head\.rate_key\) AND \(started_at > /,
      head,
    );
    assert.doesNotMatch(head, /Filter: \(started_at/, head);
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: concurrent claims of two engines never start more of a group than its limit", async () => {
  const schema = freshSchema();
  try {
    await using one = await openPostgres(schemaUrl(schema));
    await using two = await openPostgres(schemaUrl(schema));
    // Four groups, each with tasks in two queues: a group's limit counts both.
    const groups = ["a", "b", "c", "d"];
    await one.queue.enqueue(
      groups.flatMap((group) =>
        Array.from(
          { length: 10 },
          (_, i) => newTask(`${group}${i}`, { group, groupLimit: 2, queue: i % 2 ? "q1" : "q2" }),
        )
      ),
    );
    const claim = (i: number) =>
      (i % 2 ? one : two).queue.claim({
        // One queue (the single statement, then the groups' transaction) or two (one
        // transaction), so claims start from different cursors and take groups in
        // different orders.
        queues: i % 3 ? ["q1"] : ["q2", "q1"],
        limit: 3,
        lease: 60_000,
        worker: `w${i}`,
      });
    const burst = await Promise.all(Array.from({ length: 40 }, (_, i) => claim(i)));
    const started = burst.flatMap((c) => c.tasks);
    // A group another claim held was skipped: what is left is taken now.
    for (let i = 0; i < 8; i++) started.push(...(await claim(i)).tasks);
    const byGroup = Object.fromEntries(groups.map((g) => [g, 0]));
    for (const t of started) byGroup[t.group!]++;
    assert.deepEqual(byGroup, { a: 2, b: 2, c: 2, d: 2 });
    const { total } = await one.queue.stats();
    assert.equal(total.running, 8);
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: concurrent claims of two engines never start more of a rate bucket than its limit", async () => {
  const schema = freshSchema();
  try {
    await using one = await openPostgres(schemaUrl(schema));
    await using two = await openPostgres(schemaUrl(schema));
    // One bucket shared by five lanes (four groups and the bucket's own lane) in two queues:
    // the lanes' locks alone would not hold it, the bucket's lock does.
    const rate = { key: "k:shared", limit: 3, per: 60_000 };
    await one.queue.enqueue(
      Array.from({ length: 40 }, (_, i) =>
        newTask(`r${i}`, {
          queue: i % 2 ? "q1" : "q2",
          rate,
          ...(i % 5 ? { group: `g${i % 4}`, groupLimit: 10 } : {}),
        })),
    );
    const claim = (i: number) =>
      (i % 2 ? one : two).queue.claim({
        queues: i % 3 ? ["q1"] : ["q2", "q1"],
        limit: 3,
        lease: 60_000,
        worker: `w${i}`,
      });
    const burst = await Promise.all(Array.from({ length: 40 }, (_, i) => claim(i)));
    const started = burst.flatMap((c) => c.tasks);
    for (let i = 0; i < 8; i++) started.push(...(await claim(i)).tasks);
    assert.equal(started.length, 3, started.map((t) => t.id).join());
    assert.equal((await one.queue.stats()).total.running, 3);
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: a config object (host, port, database, user, password, schema, pool)", async () => {
  const schema = freshSchema();
  const url = new URL(postgresUrl());
  try {
    await using backend = await PostgresBackend.open({
      host: url.hostname,
      port: Number(url.port),
      database: url.pathname.slice(1),
      user: decodeURIComponent(url.username),
      password: decodeURIComponent(url.password),
      schema,
      pool: 2,
    });
    assert.equal(backend.schema, schema);
    await using q = await OmniQ.open({ backend });
    const id = await q.enqueue(echo, ["hi"], { queue: "objects" });
    await q.run({ until: "idle", queues: ["objects"] });
    assert.equal(await q.wait(id), "hi");
    // Events are plain rows: readable with SQL, by task, type, queue and time.
    await using sql = admin();
    const rows = await sql.unsafe(
      `SELECT type, queue FROM "${schema}".events WHERE task_id = $1 ORDER BY id`,
      [id],
    );
    assert.deepEqual(rows.map((r) => r.type), ["enqueued", "started", "completed"]);
    assert.ok(rows.every((r) => r.queue === "objects"));
    const indexes = await sql`SELECT indexname FROM pg_indexes
      WHERE schemaname = ${schema} AND tablename = 'events'`;
    for (const name of ["events_by_task", "events_by_time"]) {
      assert.ok(indexes.some((i) => i.indexname === name), `index ${name}`);
    }
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: a subscription is ready once its LISTEN is in place; then an enqueue elsewhere wakes it", async () => {
  const schema = freshSchema();
  const url = schemaUrl(schema);
  try {
    await using listener = await openPostgres(url);
    await using producer = await openPostgres(url);
    let wakes = 0;
    let woken = () => {};
    const stop = listener.queue.subscribe!(["subs"], () => {
      wakes++;
      woken();
    });
    assert.ok(stop.ready instanceof Promise, "subscribe() gives a ready promise");
    await stop.ready;
    // The first LISTEN wakes every subscriber (what was sent before it went unseen).
    assert.equal(wakes, 1);
    const wake = new Promise<void>((resolve) => woken = resolve);
    await producer.queue.enqueue([
      newTask("sub-1", { queue: "other" }),
      newTask("sub-2", { queue: "subs" }),
    ]);
    assert.equal(await within(wake.then(() => "woken"), 5_000), "woken");
    assert.equal(wakes, 2, "a wake-up for the subscribed queue alone");
    // A second subscriber shares the listener, already in place.
    const again = listener.queue.subscribe!(["subs"], () => {});
    await again.ready;
    again();
    stop();
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: a pause elsewhere holds every claim; a resume and a dead-letter move wake the queue's workers", async () => {
  const schema = freshSchema();
  const url = schemaUrl(schema);
  try {
    await using worker = await openPostgres(url);
    await using admin = await openPostgres(url);
    const claim = (queues: string[]) =>
      worker.queue.claim({ queues, limit: 5, lease: 30_000, worker: "w" });
    let woken = () => {};
    const stop = worker.queue.subscribe!(["held", "dead"], () => woken());
    await stop.ready;
    // `later` falls due well after the setup (a slow one must not make it due early); the
    // dead-letter part, which needs no pause, runs before the wait for it.
    const now = Date.now();
    const dueAt = now + 2_000;
    await admin.queue.enqueue([
      newTask("held", { queue: "held" }),
      newTask("later", { queue: "held", runAt: dueAt }),
      newTask("free", { queue: "free" }),
    ]);
    const paused = await admin.queue.setQueuePaused("held", true);
    assert.deepEqual(paused?.events.map((e) => [e.type, e.queue, e.taskId]), [
      ["queue_paused", "held", undefined],
    ]);
    assert.deepEqual(await worker.queue.pausedQueues(), ["held"]);
    assert.deepEqual((await claim(["held"])).tasks, [], "one queue: one statement");
    assert.deepEqual((await claim(["held", "free"])).tasks.map((t) => t.id), ["free"]);
    assert.equal(await worker.queue.nextDue(["held"]), dueAt, "not due yet");

    await admin.queue.enqueue([newTask("doomed", { queue: "free", deadLetter: "dead" })]);
    const [doomed] = (await claim(["free"])).tasks;
    assert.equal(doomed.deadLetter, "dead");
    let wake = new Promise<void>((resolve) => woken = resolve);
    const error = { name: "Error", message: "no luck" };
    const moved = await worker.queue.fail("doomed", doomed.token, { error, deadLetter: "dead" });
    assert.deepEqual(moved?.events.map((e) => [e.type, e.queue, e.attempt, e.data]), [
      ["dead_lettered", "free", 1, { to: "dead", error }],
    ]);
    assert.equal(await within(wake.then(() => "woken"), 5_000), "woken", "by the move");
    const record = await worker.queue.get("doomed");
    assert.equal(record?.queue, "dead");
    assert.equal(record.state, "queued");
    assert.equal(record.attempts, 0);
    assert.equal(record.deadLetter, undefined);
    assert.deepEqual(record.error, error);
    assert.equal(
      await worker.queue.fail("doomed", doomed.token, { error, deadLetter: "dead" }),
      undefined,
      "the old token is stale",
    );

    // Once `later` is due, a claim queues it (so `nextDue` stops naming it), takes nothing.
    await new Promise((r) => setTimeout(r, Math.max(0, dueAt - Date.now()) + 10));
    assert.equal(await worker.queue.nextDue(["held"]), dueAt);
    assert.deepEqual((await claim(["held"])).tasks, []);
    assert.equal((await worker.queue.get("later"))?.state, "queued");
    assert.equal(await worker.queue.nextDue(["held"]), undefined, "a worker does not spin");

    wake = new Promise<void>((resolve) => woken = resolve);
    assert.ok(await admin.queue.setQueuePaused("held", false));
    assert.equal(await within(wake.then(() => "woken"), 5_000), "woken", "by the resume");
    assert.equal(await admin.queue.setQueuePaused("held", false), undefined);
    assert.deepEqual((await claim(["held"])).tasks.map((t) => t.id), ["held", "later"]);
    stop();
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: an idle worker starts a task enqueued by another process within ms", async () => {
  const schema = freshSchema();
  const url = schemaUrl(schema);
  try {
    // Two OmniQs, two pools: as far apart as two processes, as far as the server can tell.
    await using workerSide = await OmniQ.open({ backend: url, worker: { pollInterval: "10s" } });
    await using producer = await OmniQ.open(url);
    const w = workerSide.worker();
    await w.start(); // resolves once the LISTEN is in place and the first poll made
    const latencies: number[] = [];
    for (let i = 0; i < 5; i++) {
      const t0 = Date.now();
      const id = await producer.enqueue(echo, [`n${i}`]);
      assert.equal(await producer.wait(id, { timeout: "5s" }), `n${i}`);
      const started = (await producer.get(id))!.startedAt!;
      latencies.push(Number(started) - t0);
    }
    await w.stop();
    const worst = Math.max(...latencies);
    assert.ok(worst < 500, `started after ${latencies.join(", ")} ms with a 10 s poll`);
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: an idle worker polls no faster than its interval", async () => {
  const schema = freshSchema();
  const url = schemaUrl(schema);
  try {
    await using q = await OmniQ.open({ backend: url, worker: { pollInterval: "500ms" } });
    const w = q.worker({ concurrency: 8 });
    await w.start(); // past the first poll and the LISTEN
    await using sql = admin();
    const count = async () =>
      Number(
        (await sql`SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()`)[0]
          .xact_commit,
      );
    const before = await count();
    await new Promise((r) => setTimeout(r, 2_000));
    // Statistics are flushed lazily; give them a moment.
    await new Promise((r) => setTimeout(r, 1_100));
    const after = await count();
    await w.stop();
    // About four polls of a few statements each; a busy loop would be thousands.
    assert.ok(after - before < 80, `${after - before} transactions in 2 s of idling`);
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: terminated connections mid-run: the worker reconnects, no task is lost", async () => {
  const schema = freshSchema();
  const url = schemaUrl(schema);
  const TASKS = 300;
  try {
    await using q = await OmniQ.open({
      backend: url,
      worker: { pollInterval: "50ms", lease: "1s", sweepInterval: "200ms", concurrency: 10 },
    });
    const reports: string[] = [];
    q.onError((error) => reports.push((error as Error).message));
    const ids = await q.enqueueMany(
      Array.from({ length: TASKS }, (_, i) => ({ task: slow, args: [i] })),
    );
    ran = 0;
    const w = q.worker();
    await w.start();
    await using sql = admin();
    const kill = () =>
      sql`SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
        WHERE usename = current_user AND pid <> pg_backend_pid()
          AND datname = current_database()`;
    while (ran < TASKS / 3) await new Promise((r) => setTimeout(r, 5));
    const first = (await kill())[0].n;
    assert.ok(first > 0, "some connections were terminated");
    while (ran < (TASKS * 2) / 3) await new Promise((r) => setTimeout(r, 5));
    await kill();
    const deadline = Date.now() + 30_000;
    for (;;) {
      const stats = await q.stats().catch(() => undefined);
      if (stats?.total.completed === TASKS) break;
      assert.ok(Date.now() < deadline, `not all done: ${JSON.stringify(stats?.total)}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    await w.stop();
    for (const [i, id] of ids.entries()) assert.equal(await q.wait(id), i);
    const completed = new Map<string, number>();
    for await (const e of q.events({ type: "completed" })) {
      completed.set(e.taskId!, (completed.get(e.taskId!) ?? 0) + 1);
    }
    assert.equal(completed.size, TASKS);
    for (const [id, n] of completed) assert.equal(n, 1, `task ${id} completed ${n} times`);
    // The lost connections were reported (and never with the password).
    assert.ok(reports.length > 0, "the connection loss was reported");
    const password = decodeURIComponent(new URL(postgresUrl()).password);
    for (const r of reports) assert.ok(!r.includes(`:${password}@`), r);
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: a wrong password fails fast, naming the host, never the password", async () => {
  const url = variant((u) => (u.password = "not-the-password-xyz"));
  const error = await rejectsWithin(5_000, OmniQ.open(url));
  assert.ok(error instanceof ConfigError, String(error));
  assert.match(error.message, /127\.0\.0\.1/);
  assert.match(error.message, /authentication failed/);
  assert.ok(!error.message.includes("not-the-password-xyz"), error.message);
});

Deno.test("postgres: a closed port fails fast, naming the host and port", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  const url = variant((u) => (u.port = String(port)));
  const error = await rejectsWithin(5_000, OmniQ.open(url));
  assert.ok(error instanceof OmniQError, String(error));
  assert.match(error.message, new RegExp(`127\\.0\\.0\\.1:${port}`));
  assert.match(error.message, /refused/);
  const password = decodeURIComponent(new URL(postgresUrl()).password);
  assert.ok(!error.message.includes(`:${password}@`), error.message);
});

Deno.test("postgres: a missing database or a user without rights fails with ConfigError", async () => {
  const missing = variant((u) => (u.pathname = "/omniq_no_such_db"));
  const error = await rejectsWithin(5_000, OmniQ.open(missing));
  assert.ok(error instanceof ConfigError, String(error));
  assert.match(error.message, /does not exist/);

  const role = `omniq_norights_${crypto.randomUUID().replaceAll("-", "").slice(0, 8)}`;
  await using sql = admin();
  await sql.unsafe(`CREATE ROLE ${role} LOGIN PASSWORD 'pw'`);
  try {
    const url = variant((u) => {
      u.username = role;
      u.password = "pw";
      u.searchParams.set("schema", freshSchema());
    });
    const denied = await rejectsWithin(5_000, OmniQ.open(url));
    assert.ok(denied instanceof ConfigError, String(denied));
    assert.match(denied.message, /permission denied/);
    assert.match(denied.message, new RegExp(role));

    // With rights on the tables of a schema migrated already, the same user may open it.
    const schema = freshSchema();
    try {
      await (await openPostgres(schemaUrl(schema))).close();
      await sql.unsafe(
        `GRANT USAGE ON SCHEMA "${schema}" TO ${role};
         GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA "${schema}" TO ${role}`,
      );
      const url = variant((u) => {
        u.username = role;
        u.password = "pw";
        u.searchParams.set("schema", schema);
      });
      await (await openPostgres(url)).close();
    } finally {
      await dropSchema(schema);
    }
  } finally {
    await sql.unsafe(`DROP ROLE ${role}`);
  }
});

Deno.test("postgres: a schema name with SQL metacharacters is refused, naming it", async () => {
  for (const schema of [`x"; DROP TABLE y; --`, "a b", "1abc", "omniq.tasks", ""]) {
    const error = await openPostgres({ url: postgresUrl(), schema }).then(
      () => undefined,
      (e) => e,
    );
    assert.ok(error instanceof ConfigError, `${schema}: ${error}`);
    assert.ok(error.message.includes(JSON.stringify(schema)), error.message);
  }
  const viaUrl = variant((u) => u.searchParams.set("schema", "x'y"));
  await assert.rejects(OmniQ.open(viaUrl), (e: Error) => e instanceof ConfigError);
});

Deno.test("postgres: queue names, keys and ids with SQL metacharacters are data", async () => {
  const schema = freshSchema();
  try {
    await using q = await OmniQ.open(schemaUrl(schema));
    const queue = `q'; DROP TABLE tasks; --"\\`;
    const key = `k'); DELETE FROM results; --`;
    const id = await q.enqueue(echo, ["'quoted' \"too\""], { queue, key, id: `id'"; --` });
    assert.equal(id, `id'"; --`);
    assert.equal(await q.enqueue(echo, ["dup"], { queue, key }), id);
    await q.run({ until: "idle", queues: [queue] });
    assert.equal(await q.wait(id), `'quoted' "too"`);
    const stats = await q.stats();
    assert.equal(stats.queues[queue].completed, 1);
    assert.equal((await q.list({ queue })).length, 1);
    assert.equal((await Array.fromAsync(q.events({ queue }))).length, 3);
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: completions sent together are each fenced by their own token", async () => {
  const schema = freshSchema();
  try {
    await using backend = await openPostgres(schemaUrl(schema));
    const queue = backend.queue;
    queue.attach({ results: true, events: true });
    // One batch: a dependency, a dependent of it and a keyed task, in one insert.
    const enqueued = await queue.enqueue([
      newTask("a"),
      newTask("b", { dependsOn: ["a"] }),
      newTask("c", { key: "k" }),
      newTask("d"),
      newTask("e", { key: "k" }),
    ]);
    assert.deepEqual(enqueued.ids, ["a", "b", "c", "d", "c"]);
    assert.deepEqual(enqueued.created, [true, true, true, true, false]);
    assert.equal((await queue.get("b"))?.state, "waiting");
    const { tasks } = await queue.claim({
      queues: ["default"],
      limit: 10,
      lease: 30_000,
      worker: "w",
    });
    assert.deepEqual(tasks.map((t) => t.id), ["a", "c", "d"]);
    const result = (id: string) => ({
      taskId: id,
      state: "completed" as const,
      value: new Uint8Array([9]),
      completedAt: Date.now(),
    });
    // Sent at once: they share statements; the stale token changes nothing.
    const [a, c, stale, d] = await Promise.all([
      queue.complete("a", tasks[0].token, result("a")),
      queue.complete("c", tasks[1].token, result("c")),
      queue.complete("d", "not-the-token", result("d")),
      queue.complete("d", tasks[2].token, result("d")),
    ]);
    assert.ok(a && c && d);
    assert.equal(stale, undefined);
    for (const effects of [a, c, d]) assert.equal(effects!.events[0].type, "completed");
    // The dependency's completion released its dependent.
    assert.ok(a!.events.some((e) => e.type === "enqueued" && e.taskId === "b"));
    assert.equal((await queue.get("b"))?.state, "queued");
    for (const id of ["a", "c", "d"]) {
      assert.equal((await queue.get(id))?.state, "completed");
      assert.deepEqual((await backend.results.get(id))?.value, new Uint8Array([9]));
      const events = await backend.events.query({ taskId: id, type: "completed" });
      assert.equal(events.length, 1, `${id}: ${JSON.stringify(events)}`);
    }
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: the completions of one turn share one transaction", async () => {
  const schema = freshSchema();
  try {
    await using backend = await openPostgres(schemaUrl(schema));
    await using sql = admin();
    const queue = backend.queue;
    queue.attach({ results: true, events: true });
    const ids = ["a", "b", "c", "d", "e"];
    await queue.enqueue(ids.map((id) => newTask(id)));
    const { tasks } = await queue.claim({
      queues: ["default"],
      limit: 10,
      lease: 30_000,
      worker: "w",
    });
    assert.equal(tasks.length, ids.length);
    // As a worker's tasks of one claim end: all in one turn of the event loop. Split, the
    // worker's next claim would find one slot free, and every batch after it would shrink.
    const done = await Promise.all(tasks.map((t) =>
      queue.complete(t.id, t.token, {
        taskId: t.id,
        state: "completed",
        value: new Uint8Array([1]),
        completedAt: Date.now(),
      })
    ));
    assert.ok(done.every((effects) => effects?.events[0].type === "completed"));
    const rows = await sql.unsafe(
      `SELECT count(*)::int AS n, count(DISTINCT xmin::text)::int AS writes
       FROM "${schema}".tasks WHERE state = 'completed'`,
    );
    assert.deepEqual({ ...rows[0] }, { n: ids.length, writes: 1 });
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: a completion that waits on a dependent's enqueue releases that dependent", async () => {
  const schema = freshSchema();
  try {
    await using backend = await openPostgres(schemaUrl(schema));
    await using sql = admin();
    await using locker = admin();
    const queue = backend.queue;
    queue.attach({ results: true, events: true });
    await queue.enqueue([newTask("a")]);
    const [a] = (await queue.claim({ queues: ["default"], limit: 1, lease: 30_000, worker: "w" }))
      .tasks;
    // Hold the enqueue of a dependent of `a` after it has locked `a`, before it commits.
    const gate = await locker.reserve();
    await gate`BEGIN`;
    await gate.unsafe(`LOCK TABLE ${schema}.deps IN EXCLUSIVE MODE`);
    const waitingOn = async (text: string) => {
      for (let i = 0; i < 500; i++) {
        const rows = await sql`SELECT 1 FROM pg_stat_activity
          WHERE wait_event_type = 'Lock' AND query LIKE ${text}`;
        if (rows.length) return;
        await new Promise((r) => setTimeout(r, 10));
      }
      const seen =
        await sql`SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity`;
      assert.fail(`no statement like ${text} came to wait on a lock: ${JSON.stringify(seen)}`);
    };
    const enqueued = queue.enqueue([newTask("b", { dependsOn: ["a"] })]);
    await waitingOn(`%INSERT INTO "${schema}".deps%`);
    // The completion of `a` starts now, then waits on `a`'s row until the enqueue commits.
    const completed = queue.complete("a", a.token, {
      taskId: "a",
      state: "completed",
      value: new Uint8Array([1]),
      completedAt: Date.now(),
    });
    await waitingOn(`%UPDATE "${schema}".tasks%completed%`);
    await gate`COMMIT`;
    gate.release();
    assert.deepEqual((await enqueued).ids, ["b"]);
    const effects = await completed;
    assert.ok(effects, "the completion was written");
    assert.equal((await queue.get("a"))?.state, "completed");
    assert.equal((await queue.get("b"))?.state, "queued", "the new dependent was released");
    assert.ok(effects.events.some((e) => e.type === "enqueued" && e.taskId === "b"));
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: a schema of the first version is migrated, its dependencies kept", async () => {
  const schema = freshSchema();
  try {
    {
      await using backend = await openPostgres(schemaUrl(schema));
      await backend.queue.enqueue([
        newTask("a"),
        newTask("b", { dependsOn: ["a"] }),
        newTask("c", { queue: "later" }),
        newTask("d", { queue: "solo" }),
      ]);
    }
    {
      // Back to the first version's tables: as an older OmniQ left them.
      await using sql = admin();
      await sql.unsafe(`ALTER TABLE "${schema}".tasks DROP COLUMN has_dependents`);
      // Migration 4's columns, and with them its indexes (the ready index too: it names
      // `lane`; migration 4 builds it again).
      for (
        const column of [
          "dead_letter",
          "age_after",
          "key_until",
          "grp",
          "group_limit",
          "lane",
          "rate_key",
          "rate_limit",
          "rate_per",
        ]
      ) {
        await sql.unsafe(`ALTER TABLE "${schema}".tasks DROP COLUMN ${column}`);
      }
      await sql.unsafe(`DROP TABLE "${schema}".queues`);
      await sql.unsafe(`DROP FUNCTION "${schema}".mark_dependency() CASCADE`);
      await sql.unsafe(`DELETE FROM "${schema}".migrations WHERE version > 1`);
    }
    await using backend = await openPostgres(schemaUrl(schema));
    const queue = backend.queue;
    {
      // A process still on the first version's code, after the migration, makes `c` a
      // dependent of `d` the old way: a deps row, no mark on `d`.
      await using sql = admin();
      await sql.unsafe(`UPDATE "${schema}".tasks SET state = 'waiting' WHERE id = 'c'`);
      await sql.unsafe(`INSERT INTO "${schema}".deps (task_id, depends_on) VALUES ('c', 'd')`);
    }
    const [a] = (await queue.claim({ queues: ["default"], limit: 1, lease: 30_000, worker: "w" }))
      .tasks;
    assert.equal(a.id, "a");
    await queue.complete("a", a.token, {
      taskId: "a",
      state: "completed",
      value: new Uint8Array([1]),
      completedAt: Date.now(),
    });
    assert.equal((await queue.get("b"))?.state, "queued", "the dependent was released");
    const [d] = (await queue.claim({ queues: ["solo"], limit: 1, lease: 30_000, worker: "w" }))
      .tasks;
    await queue.complete("d", d.token, {
      taskId: "d",
      state: "completed",
      value: new Uint8Array([1]),
      completedAt: Date.now(),
    });
    assert.equal((await queue.get("c"))?.state, "queued", "the old-style dependent too");
  } finally {
    await dropSchema(schema);
  }
});

Deno.test("postgres: a sweep analyzes the tasks table once it grew past the planner's statistics", async () => {
  const schema = freshSchema();
  try {
    await using backend = await openPostgres(schemaUrl(schema));
    await using sql = admin();
    const lastAnalyze = async () =>
      (await sql`SELECT last_analyze FROM pg_stat_user_tables
        WHERE schemaname = ${schema} AND relname = 'tasks'`)[0]?.last_analyze;
    // A few rows: no reason to analyze.
    await backend.queue.enqueue([newTask("first")]);
    await backend.queue.sweep({ now: Date.now() });
    assert.equal(await lastAnalyze(), null, "not analyzed for one row");
    // A burst: 2,000 rows on a table the planner thinks empty.
    for (let i = 0; i < 2_000; i += 500) {
      await backend.queue.enqueue(
        Array.from({ length: 500 }, (_, j) => newTask(`burst-${i + j}`)),
      );
    }
    // The enqueueing connections report their row counts within about a second.
    let analyzed = null;
    for (let tries = 0; tries < 40 && analyzed === null; tries++) {
      await backend.queue.sweep({ now: Date.now() });
      analyzed = await lastAnalyze();
      if (analyzed === null) await new Promise((r) => setTimeout(r, 100));
    }
    assert.ok(analyzed instanceof Date, "the sweep analyzed the table");
    const [{ reltuples }] = await sql`SELECT reltuples FROM pg_class
      WHERE oid = ${`"${schema}".tasks`}::regclass`;
    assert.equal(reltuples, 2_001);
  } finally {
    await dropSchema(schema);
  }
});
