// The SQLite engine's checkpoint thread (backends/sqlite/checkpoint.ts): a busy connection
// hands its WAL checkpoints to a thread, falls back to SQLite's own when the thread cannot
// work, and never keeps a process alive.
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Checkpointer, START_AFTER_COMMITS } from "../backends/sqlite/checkpoint.ts";
import type { SqliteDatabase } from "../src/runtime/types.ts";
import { finishWithin, spawn } from "./fixtures/processes.ts";

/** Wait until `ready()` holds, committing one row every few ms meanwhile. */
async function commitUntil(
  db: DatabaseSync,
  c: Checkpointer,
  ready: () => boolean,
): Promise<number> {
  const deadline = Date.now() + 20_000;
  let rows = 0;
  while (!ready()) {
    assert.ok(Date.now() < deadline, "the condition did not hold within 20 s");
    db.exec("INSERT INTO t (x) VALUES (randomblob(3000))");
    c.committed();
    rows++;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return rows;
}

function walFile(dir: string): DatabaseSync {
  const db = new DatabaseSync(`${dir}/q.db`);
  db.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x BLOB)");
  return db;
}

const autocheckpoint = (db: DatabaseSync) =>
  db.prepare("PRAGMA wal_autocheckpoint").get()?.wal_autocheckpoint;

Deno.test("sqlite checkpoints: a busy connection hands them to a thread, which ends on close", async () => {
  const dir = await Deno.makeTempDir();
  const db = walFile(dir);
  const c = new Checkpointer(db as unknown as SqliteDatabase, `${dir}/q.db`);
  for (let i = 0; i < START_AFTER_COMMITS - 1; i++) c.committed();
  assert.ok(!c.active);
  assert.equal(autocheckpoint(db), 1000, "SQLite's own checkpoints until the thread is up");
  let rows = await commitUntil(db, c, () => c.active);
  assert.equal(autocheckpoint(db), 0, "the connection's own checkpoints are off");
  // Each commit writes a 3 KB row: the thread copies the log back into the file.
  const size = () => Deno.statSync(`${dir}/q.db`).size;
  const before = size();
  rows += await commitUntil(db, c, () => c.done >= 3 && size() > before);
  await c.close();
  assert.ok(!c.active);
  // The data is whole, and the main connection still works after the thread has gone.
  db.exec("INSERT INTO t (x) VALUES (1)");
  assert.equal(db.prepare("SELECT count(*) AS n FROM t").get()?.n, rows + 1);
  assert.equal(db.prepare("PRAGMA integrity_check").get()?.integrity_check, "ok");
  db.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("sqlite checkpoints: a thread that cannot open the file leaves SQLite's own on", async () => {
  const dir = await Deno.makeTempDir();
  const db = walFile(dir);
  const c = new Checkpointer(db as unknown as SqliteDatabase, `${dir}/no/such/dir/q.db`);
  for (let i = 0; i < START_AFTER_COMMITS; i++) c.committed();
  assert.equal(c.phase, "starting");
  // The thread starts, fails to open its file and says so; the connection gives it up.
  await commitUntil(db, c, () => c.phase === "off");
  assert.ok(!c.active);
  await c.close();
  assert.equal(autocheckpoint(db), 1000);
  db.close();
  await Deno.remove(dir, { recursive: true });
});

Deno.test("sqlite checkpoints: a process that never closes its engine still exits", async () => {
  const dir = await Deno.makeTempDir();
  try {
    // The checkpoint thread loads its module from the repository: without that read it
    // would fall back to SQLite's own checkpoints, and the fixture would wait forever.
    const repo = new URL("..", import.meta.url).pathname;
    const fixture = new URL("./fixtures/checkpoint_left_open.ts", import.meta.url);
    const child = spawn(fixture, dir, [dir], [`--allow-read=${dir},${repo}`]);
    const { out, code } = await finishWithin(child, 60_000, "a process left open");
    assert.equal(code, 0);
    assert.equal(out.trim(), "true 400", "its thread ran, and every task completed");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
