// What the SQLite engine does beyond the store-level suite (`tests/store/`, run against it
// by tests/store_sqlite_test.ts): lock retries between connections on one file, several
// processes creating one file, the numbered migrations, and the refusal of records and
// schemas written by a newer OmniQ.

import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { openSqlite } from "../backends/sqlite/mod.ts";
import { migrate, type Migration, MIGRATIONS } from "../backends/sqlite/migrations/mod.ts";
import { DuplicateTaskError, OmniQError } from "../src/errors.ts";
import { checkControlFields, newTask } from "./fixtures/tasks.ts";
import { within } from "../src/kit/async.ts";
import * as q from "../backends/sqlite/queries.ts";

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

const WORKER = { lease: 30_000, worker: "test" };

function schemaVersion(path: string): string | undefined {
  const raw = new DatabaseSync(path);
  try {
    const row = raw.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get();
    return row ? String(row.value) : undefined;
  } finally {
    raw.close();
  }
}

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

Deno.test("an idle poll of a paused queue takes no write lock, and its due tasks are queued once", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/omniq.db`;
  await using b = await openSqlite({ path, busyTimeout: 5 });
  const now = Date.now();
  await b.queue.enqueue([
    newTask("held", { queue: "held" }),
    newTask("later", { queue: "held", runAt: now + 30 }),
  ]);
  assert.ok(await b.queue.setQueuePaused("held", true));
  const other = new DatabaseSync(path);
  try {
    // Another process holds the write lock: a claim that wanted it would wait.
    other.exec("BEGIN IMMEDIATE");
    const claim = b.queue.claim({ queues: ["held"], limit: 5, ...WORKER });
    assert.deepEqual(await within(claim, 1_000), {
      tasks: [],
      effects: { events: [], results: [] },
    });
    other.exec("ROLLBACK");
  } finally {
    other.close();
  }
  // Once `later` is due, one claim queues it (so `nextDue` stops naming it) and takes nothing.
  await new Promise((r) => setTimeout(r, 40));
  assert.equal(await b.queue.nextDue(["held"]), now + 30);
  const { tasks } = await b.queue.claim({ queues: ["held"], limit: 5, ...WORKER });
  assert.deepEqual(tasks, []);
  assert.equal((await b.queue.get("later"))?.state, "queued");
  assert.equal(await b.queue.nextDue(["held"]), undefined, "a worker does not spin");
  assert.ok(await b.queue.setQueuePaused("held", false));
  const resumed = await b.queue.claim({ queues: ["held"], limit: 5, ...WORKER });
  assert.deepEqual(resumed.tasks.map((t) => t.id), ["held", "later"]);
});

Deno.test("the aging sweep and the key lookup read their partial indexes, in order", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/omniq.db`;
  await (await openSqlite(path)).close();
  const raw = new DatabaseSync(path);
  try {
    const plan = (sql: string, ...args: (string | number)[]) =>
      raw.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args).map((r) => String(r.detail));
    const owner = plan(q.KEY_OWNER, "k", "k", Date.now());
    assert.ok(owner.some((d) => /SEARCH tasks USING INDEX tasks_live_key \(key=\?\)/.test(d)));
    assert.ok(
      owner.some((d) =>
        /SEARCH tasks USING INDEX tasks_throttled_key \(key=\? AND key_until>\?\)/.test(d)
      ),
      owner.join("\n"),
    );
    const aged = plan(q.AGED, Date.now(), 1, 500);
    assert.deepEqual(aged.filter((d) => /tasks|B-TREE/.test(d)).length, 1, aged.join("\n"));
    assert.match(aged[0], /SEARCH tasks USING INDEX tasks_aging/, "no scan, no sort");
  } finally {
    raw.close();
  }
});

Deno.test("the claims read their partial indexes: ungrouped picks pass no row with a lane, lanes are seeks, rate counts are ranges", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/omniq.db`;
  await (await openSqlite(path)).close();
  const raw = new DatabaseSync(path);
  try {
    const plan = (sql: string, ...args: (string | number)[]) =>
      raw.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args).map((r) => String(r.detail));
    const now = Date.now();
    // One probe each, in the index's order: no scan, no sort.
    const only = (sql: string, args: (string | number)[], expected: string) =>
      assert.deepEqual(plan(sql, ...args).filter((d) => /tasks|B-TREE/.test(d)), [expected]);
    only(q.PICK, ["default", now, 1, 5], "SEARCH tasks USING INDEX tasks_ready (queue=?)");
    only(
      q.NEXT_GROUP,
      ["default", "g"],
      "SEARCH tasks USING COVERING INDEX tasks_group_ready (queue=? AND lane>?)",
    );
    only(
      q.GROUP_HEAD,
      ["default", "g", now, 1],
      "SEARCH tasks USING INDEX tasks_group_ready (queue=? AND lane=?)",
    );
    only(
      q.GROUP_RUNNING_COUNT,
      ["g", 2],
      "SEARCH tasks USING COVERING INDEX tasks_group_running (grp=?)",
    );
    // A rate bucket's starts in a window: a range of its index, bounded.
    only(
      q.RATE_STARTED_COUNT,
      ["k:x", now - 1_000, 5],
      "SEARCH tasks USING COVERING INDEX tasks_rate_started (rate_key=? AND started_at>?)",
    );
    const ready = plan(q.READY_IN_QUEUE, "default", "default", "default", now);
    for (const index of ["tasks_ready", "tasks_group_ready", "tasks_due"]) {
      assert.ok(ready.some((d) => d.includes(`INDEX ${index} (queue=?`)), ready.join("\n"));
    }
    assert.ok(!ready.some((d) => /SCAN tasks|B-TREE/.test(d)), ready.join("\n"));
  } finally {
    raw.close();
  }
});

Deno.test("a paused queue takes no grouped task, and the group cursor outlives the engine", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/omniq.db`;
  const claim = { queues: ["default"], limit: 1, ...WORKER };
  {
    await using b = await openSqlite(path);
    await b.queue.enqueue(
      ["a1", "a2", "b1", "b2"].map((id) => newTask(id, { group: id[0], groupLimit: 2 })),
    );
    assert.ok(await b.queue.setQueuePaused("default", true));
    assert.deepEqual((await b.queue.claim(claim)).tasks, [], "paused");
    assert.ok(await b.queue.setQueuePaused("default", false));
    assert.deepEqual((await b.queue.claim(claim)).tasks.map((t) => t.id), ["a1"]);
  }
  await using b = await openSqlite(path);
  // The cursor is on "a": the next claim starts at "b", then round-robin.
  assert.deepEqual((await b.queue.claim(claim)).tasks.map((t) => t.id), ["b1"]);
  const rest = await b.queue.claim({ ...claim, limit: 5 });
  assert.deepEqual(rest.tasks.map((t) => [t.id, t.group, t.groupLimit]), [
    ["a2", "a", 2],
    ["b2", "b", 2],
  ]);
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

Deno.test("a new file is migrated to the last version, and reopening migrates nothing", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/omniq.db`;
  const db = new DatabaseSync(path);
  try {
    assert.equal(migrate(db, path), 0, "a new file has version 0");
    assert.equal(migrate(db, path), MIGRATIONS.length, "a second run finds it migrated");
  } finally {
    db.close();
  }
  assert.equal(schemaVersion(path), String(MIGRATIONS.length));
  const b = await openSqlite(path);
  await b.close();
  assert.equal(schemaVersion(path), String(MIGRATIONS.length));
});

Deno.test("a version 1 file keeps its tasks and takes the later migrations once", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/omniq.db`;
  const eventIndexes = (db: DatabaseSync) =>
    db.prepare(
      "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events' " +
        "AND name LIKE 'events_by_%' ORDER BY name",
    ).all().map((r) => r.name);
  {
    // A file as the first release left it: migration 1 alone, with a task of that schema.
    const raw = new DatabaseSync(path);
    assert.equal(migrate(raw, path, MIGRATIONS.slice(0, 1)), 0);
    const now = Date.now();
    raw.prepare(
      `INSERT INTO tasks (id, v, task, queue, priority, state, payload, created_at, run_at,
         max_attempts, backoff, on_dep_failure)
       VALUES ('kept', 1, 'noop', 'default', 0, 'queued', x'00', ?, ?, 1,
         '{"type":"fixed","delay":10,"max":10,"jitter":0}', 'cancel')`,
    ).run(now, now);
    assert.deepEqual(eventIndexes(raw), [
      "events_by_queue",
      "events_by_task",
      "events_by_time",
      "events_by_type",
    ]);
    raw.close();
  }
  assert.equal(schemaVersion(path), "1");
  {
    await using b = await openSqlite(path);
    assert.equal(schemaVersion(path), String(MIGRATIONS.length));
    // Migration 3: the old task reads without a dead-letter queue, aging or throttle
    // window; new ones keep theirs, and queues can be paused.
    assert.equal((await b.queue.get("kept"))?.state, "queued", "the task survived");
    await checkControlFields(b.queue, "kept", "new");
    assert.ok(await b.queue.setQueuePaused("default", true));
    assert.deepEqual(await b.queue.pausedQueues(), ["default"]);
    const { tasks } = await b.queue.claim({ queues: ["default"], limit: 5, ...WORKER });
    assert.deepEqual(tasks, [], "a paused queue gives nothing");
  }
  {
    const raw = new DatabaseSync(path);
    assert.deepEqual(eventIndexes(raw), ["events_by_task", "events_by_time"], "migration 2");
    raw.close();
  }

  const last = MIGRATIONS.length;
  const next: Migration = {
    version: last + 1,
    name: "test_extra",
    sql: "CREATE TABLE test_extra (id TEXT PRIMARY KEY); INSERT INTO test_extra VALUES ('x');",
  };
  const db = new DatabaseSync(path);
  try {
    assert.equal(migrate(db, path, [...MIGRATIONS, next]), last);
    assert.equal(migrate(db, path, [...MIGRATIONS, next]), last + 1, "applied once only");
    assert.deepEqual(db.prepare("SELECT id FROM test_extra").all().map((r) => r.id), ["x"]);
  } finally {
    db.close();
  }
  assert.equal(schemaVersion(path), String(last + 1));
  // This OmniQ knows up to `last`: the upgraded file is now a newer one, and is refused.
  await assert.rejects(
    () => openSqlite(path),
    new RegExp(`schema version ${last + 1}; this version reads up to ${last}`),
  );
  const raw = new DatabaseSync(path);
  raw.exec(`UPDATE meta SET value = '${last}' WHERE key = 'schema_version'`);
  raw.close();
  await using reopened = await openSqlite(path);
  assert.equal((await reopened.queue.get("kept"))?.state, "queued", "the task survived");
  assert.deepEqual(await reopened.queue.pausedQueues(), ["default"], "so did the pause");
});

Deno.test("a file of a newer or unreadable schema version is refused and left as it was", async () => {
  await using dir = await tempDir();
  const path = `${dir.path}/omniq.db`;
  const b = await openSqlite(path);
  await b.queue.enqueue([newTask("kept")]);
  await b.close();
  for (const version of ["99", "-1", "one"]) {
    const raw = new DatabaseSync(path);
    raw.exec(`UPDATE meta SET value = '${version}' WHERE key = 'schema_version'`);
    raw.close();
    await assert.rejects(
      () => openSqlite(path),
      (e: Error) =>
        e instanceof OmniQError && e.message.includes(path) &&
        (version === "99" ? /newer OmniQ/ : /expected a migration number/).test(e.message),
      version,
    );
    assert.equal(schemaVersion(path), version, "the refused file was not altered");
  }
  const raw = new DatabaseSync(path);
  raw.exec(`UPDATE meta SET value = '${MIGRATIONS.length}' WHERE key = 'schema_version'`);
  raw.close();
  await using reopened = await openSqlite(path);
  assert.equal((await reopened.queue.get("kept"))?.state, "queued", "the task survived");
});
