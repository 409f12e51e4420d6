/**
 * The SQLite engine's checkpoint thread: its own connection to the database file, which
 * copies the write-ahead log back into the file when the engine asks (`PRAGMA
 * wal_checkpoint(PASSIVE)`), so that the two `fsync` calls of a checkpoint block this
 * thread and not the event loop of the process that commits. See `checkpoint.ts`.
 *
 * It talks through the shared cells of `checkpoint.ts`, not messages: a busy engine runs
 * for seconds on promise callbacks alone, and a message would wait for that to end.
 *
 * @module
 */

import { workerData } from "node:worker_threads";
import { runtime, type SqliteDatabase } from "../../src/runtime/mod.ts";
import { Cell, State } from "./checkpoint.ts";
import { isLocked } from "./connection.ts";

const { path, cells } = workerData as { path: string; cells: Int32Array };

let db: SqliteDatabase | undefined;
try {
  db = await runtime.openSqlite(path);
  // A checkpoint that meets another (another process's thread) gives up at once: the
  // next request comes soon.
  db.exec("PRAGMA busy_timeout = 0");
  Atomics.store(cells, Cell.State, State.Ready);
} catch {
  Atomics.store(cells, Cell.State, State.Failed);
}

let seen = 0;
while (db) {
  Atomics.wait(cells, Cell.Asked, seen);
  if (Atomics.load(cells, Cell.Close) === 1) break;
  seen = Atomics.load(cells, Cell.Asked);
  try {
    db.prepare("PRAGMA wal_checkpoint(PASSIVE)").get();
  } catch (error) {
    if (!isLocked(error)) {
      Atomics.store(cells, Cell.State, State.Failed);
      break;
    }
  }
  Atomics.store(cells, Cell.Done, seen);
}
db?.close();
if (Atomics.load(cells, Cell.State) === State.Ready) Atomics.store(cells, Cell.State, State.Closed);
