// Under Node, against the built npm package: the dashboard on node:http (its API, an action
// with the CSRF secret, the metrics, the event stream) and the SQLite engine's checkpoint
// thread on worker_threads, with whichever SQLite driver this Node has.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { OmniQ } from "omniq";
import { serveDashboard } from "omniq/dashboard";

const TASKS = new URL("./fixtures/tasks.mjs", import.meta.url).href;

test("dashboard: serves its API, acts with the CSRF secret, streams events, on node:http", async () => {
  const dir = await mkdtemp(join(tmpdir(), "omniq_node_dashboard_"));
  const q = await OmniQ.open({ backend: `sqlite:${dir}/queue.db`, tasks: [TASKS] });
  const d = await serveDashboard(q, { port: 0 });
  try {
    const id = await q.enqueue("node-add", [1, 2]);
    const overview = await (await fetch(new URL("/api/overview", d.url))).json();
    assert.equal(overview.stats.total.queued, 1);
    const page = await (await fetch(d.url)).text();
    const csrf = /name="omniq-csrf" content="([^"]+)"/.exec(page)[1];
    const refused = await fetch(new URL(`/api/tasks/${id}/cancel`, d.url), { method: "POST" });
    assert.equal(refused.status, 403);
    await refused.body?.cancel();
    const stream = await fetch(new URL("/api/stream", d.url));
    const reader = stream.body.pipeThrough(new TextDecoderStream()).getReader();
    const cancel = await fetch(new URL(`/api/tasks/${id}/cancel`, d.url), {
      method: "POST",
      headers: { "x-omniq-csrf": csrf },
    });
    assert.deepEqual(await cancel.json(), { ok: true });
    assert.equal((await q.get(id)).state, "cancelled");
    let seen = "";
    while (!seen.includes('"type":"cancelled"')) {
      const { value, done } = await reader.read();
      assert.ok(!done);
      seen += value;
    }
    await reader.cancel();
    const metrics = await (await fetch(new URL("/metrics", d.url))).text();
    assert.match(metrics, /^omniq_tasks\{queue="default",state="cancelled"\} 1$/m);
  } finally {
    await d.close();
    await q.close();
    await rm(dir, { recursive: true });
  }
});

test("sqlite: a busy connection's checkpoints run on a thread, which ends on close", async () => {
  const dir = await mkdtemp(join(tmpdir(), "omniq_node_checkpoint_"));
  // Not a public export: the module beside the package's own files.
  const { Checkpointer } = await import(
    new URL("./backends/sqlite/checkpoint.js", import.meta.resolve("omniq")).href
  );
  let db;
  try {
    const { DatabaseSync } = await import("node:sqlite");
    db = new DatabaseSync(join(dir, "c.db"));
  } catch {
    const { default: Database } = await import("better-sqlite3");
    db = new Database(join(dir, "c.db"));
  }
  db.exec("PRAGMA journal_mode = WAL; CREATE TABLE t (x BLOB)");
  const c = new Checkpointer(db, join(dir, "c.db"));
  try {
    const deadline = Date.now() + 20_000;
    while (!(c.active && c.done >= 2)) {
      assert.ok(Date.now() < deadline, `phase ${c.phase}, ${c.done} checkpoints`);
      db.exec("INSERT INTO t (x) VALUES (randomblob(3000))");
      c.committed();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(db.prepare("PRAGMA wal_autocheckpoint").get().wal_autocheckpoint, 0);
  } finally {
    await c.close();
    db.close();
    await rm(dir, { recursive: true });
  }
  assert.equal(c.active, false);
});
