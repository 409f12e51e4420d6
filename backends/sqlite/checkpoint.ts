/**
 * Checkpoints off the event loop. In WAL mode SQLite copies the log back into the database
 * file every 1,000 pages, inside the commit that crosses the mark, and that checkpoint calls
 * `fsync` twice. `node:sqlite` is synchronous, so the process that commits stood still for
 * it: 10–30 ms every few hundred commits on this project's test machine, about 8 % of the
 * time of a busy worker, and the worst of its latency.
 *
 * A busy connection therefore hands checkpoints to a thread of its own
 * (`checkpoint_entry.ts`, a `node:worker_threads` thread on Deno and on Node), which opens
 * the same file and runs a passive checkpoint at most every {@linkcode CHECKPOINT_EVERY_MS}
 * after a commit; the connection turns its automatic checkpoints off once that thread is
 * ready. A passive checkpoint takes no lock that writers or readers wait for, so commits go
 * on while it runs. The thread starts only after {@linkcode START_AFTER_COMMITS} commits (a
 * short-lived handle never pays for it), does not keep the process alive, and ends with the
 * engine. When it cannot start or a checkpoint fails, the connection goes back to SQLite's
 * automatic checkpoints: slower, never unsafe.
 *
 * The two sides share a few integer cells ({@linkcode Cell}) rather than messages: a busy
 * engine can run for seconds on promise callbacks alone, and a message to this thread's
 * side would wait for that to end.
 *
 * @module
 */

import { Worker } from "node:worker_threads";
import { siblingModule } from "../../src/runtime/mod.ts";
import type { SqliteDatabase } from "../../src/runtime/types.ts";

/** Commits of one connection before it starts its checkpoint thread. */
export const START_AFTER_COMMITS = 200;

/** The least time between two checkpoints the thread is asked for. */
export const CHECKPOINT_EVERY_MS = 100;

/** SQLite's own automatic checkpoint size, in pages, restored when the thread fails. */
const SQLITE_AUTOCHECKPOINT = 1000;

/** How long `close` waits for the thread to close its connection before ending it. */
const CLOSE_WAIT_MS = 2000;

/** The shared cells, by index. */
export const Cell = {
  /** The thread's {@linkcode State}. */
  State: 0,
  /** Checkpoints asked for so far (the engine adds one and wakes the thread). */
  Asked: 1,
  /** The value of `Asked` the last finished checkpoint answered. */
  Done: 2,
  /** 1 when the engine closes: the thread closes its connection and ends. */
  Close: 3,
} as const;

/** The thread's state, in the {@linkcode Cell.State} cell. */
export const State = {
  /** Opening its connection. */
  Starting: 0,
  /** Checkpointing when asked. */
  Ready: 1,
  /** It could not open the file, or a checkpoint failed: it has ended. */
  Failed: 2,
  /** Closed on the engine's request. */
  Closed: 3,
} as const;

/** One connection's checkpoint thread, started when the connection gets busy. */
export class Checkpointer {
  readonly #db: SqliteDatabase;
  readonly #path: string;
  #phase: "idle" | "starting" | "ready" | "off" = "idle";
  #commits = 0;
  #lastAt = 0;
  #cells = new Int32Array(new SharedArrayBuffer(4 * Int32Array.BYTES_PER_ELEMENT));
  #worker: Worker | undefined;
  #exited: Promise<void> | undefined;

  /**
   * @param db The connection that commits.
   * @param path Its database file (a WAL-mode file, not `:memory:`).
   */
  constructor(db: SqliteDatabase, path: string) {
    this.#db = db;
    this.#path = path;
  }

  /** Whether the thread does this connection's checkpoints now (for tests). */
  get active(): boolean {
    return this.#phase === "ready" && Atomics.load(this.#cells, Cell.State) === State.Ready;
  }

  /**
   * Where this connection is (for tests): before its thread, waiting for it, handing
   * checkpoints to it, or back on SQLite's own for good.
   */
  get phase(): "idle" | "starting" | "ready" | "off" {
    return this.#phase;
  }

  /** Checkpoints the thread has finished (for tests). */
  get done(): number {
    return Atomics.load(this.#cells, Cell.Done);
  }

  /** Count a commit, and ask for a checkpoint when one is due. */
  committed(): void {
    switch (this.#phase) {
      case "ready": {
        const cells = this.#cells;
        if (Atomics.load(cells, Cell.State) !== State.Ready) return this.#fallBack();
        const asked = Atomics.load(cells, Cell.Asked);
        if (Atomics.load(cells, Cell.Done) !== asked) return; // one is running
        const now = Date.now();
        if (now - this.#lastAt < CHECKPOINT_EVERY_MS) return;
        this.#lastAt = now;
        Atomics.store(cells, Cell.Asked, asked + 1);
        Atomics.notify(cells, Cell.Asked);
        return;
      }
      case "starting": {
        const state = Atomics.load(this.#cells, Cell.State);
        if (state === State.Ready) {
          this.#db.exec("PRAGMA wal_autocheckpoint = 0");
          this.#phase = "ready";
        } else if (state !== State.Starting) this.#fallBack();
        return;
      }
      case "idle":
        if (++this.#commits >= START_AFTER_COMMITS) this.#start();
        return;
    }
  }

  #start(): void {
    this.#phase = "starting";
    try {
      const worker = new Worker(siblingModule("./checkpoint_entry", import.meta.url), {
        workerData: { path: this.#path, cells: this.#cells },
      });
      worker.unref();
      this.#worker = worker;
      this.#exited = new Promise((resolve) => worker.once("exit", () => resolve()));
      // A thread that fails to load says so here, not in the cells.
      worker.on("error", () => Atomics.store(this.#cells, Cell.State, State.Failed));
    } catch {
      this.#phase = "off";
    }
  }

  /** Back to SQLite's automatic checkpoints, for good. */
  #fallBack(): void {
    const was = this.#phase;
    this.#phase = "off";
    if (was === "ready") this.#db.exec(`PRAGMA wal_autocheckpoint = ${SQLITE_AUTOCHECKPOINT}`);
    this.#stop();
  }

  /** Tell the thread to close its connection and end. */
  #stop(): void {
    Atomics.store(this.#cells, Cell.Close, 1);
    Atomics.add(this.#cells, Cell.Asked, 1);
    Atomics.notify(this.#cells, Cell.Asked);
  }

  /** End the thread after it closes its connection (call before closing the main one). */
  async close(): Promise<void> {
    this.#phase = "off";
    const worker = this.#worker;
    if (!worker) return;
    this.#stop();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<void>((resolve) => timer = setTimeout(resolve, CLOSE_WAIT_MS));
    await Promise.race([this.#exited, late]);
    clearTimeout(timer);
    await worker.terminate();
  }
}
