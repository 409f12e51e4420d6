/**
 * The `file:` engine: queue, results and events in one directory, shared safely by several
 * processes on one machine (or one shared file system with atomic rename and link).
 *
 * Layout (every write goes to a temporary name and is renamed or linked into place, so a
 * crash never leaves a half-written task, result or schedule):
 *
 * - `tasks/<id>.json`: one record per task (payload in base64), with `v` (the record version);
 * - `ready/<queue>/<9-priority><seq>-<id>`, `sched/<queue>/<runAt>-<id>`, `running/<id>`,
 *   `expires/<time>-<id>`, `final/<time>-<id>`, `keys/<key>`, `deps/<dep>/<id>`: indexes
 *   derived from the records (a reader re-checks the record, so a stale entry is harmless);
 * - `results/<id>.json`, `schedules/<id>.json`;
 * - `events/<writer>.jsonl`: JSON lines per writing process, merged by id for queries;
 * - `meta/seq.json` (the task and event sequences) and `lock` (see below).
 *
 * Every state change runs while holding the directory's lock, a file created only when
 * absent (`link`), whose holder is the one process allowed to change the store; a lock older
 * than {@linkcode LOCK_STALE_MS} is broken (its holder crashed). So a claim, a completion or
 * a tick fired (`fireTick`'s compare-and-set of the schedule) is one exactly-once step
 * across processes. A step that changes several files writes the list of changes to
 * `meta/journal.json` first and deletes it once they are made; a holder that dies part way
 * leaves it, and the next holder of the lock makes the rest of the changes (each can be made
 * twice safely), so a step is never left half done. All access goes through the
 * {@linkcode Storage} interface of `backends/file/storage.ts`, so other stores can implement it.
 *
 * A foreign, truncated or corrupt file is skipped and reported once per process with a
 * warning naming it; it never stops a worker or hides other tasks.
 *
 * The parts: `options.ts` (the target, the lock's timings), `storage.ts` (the
 * {@linkcode Storage} interface and the local directory), `space.ts` (the lock, the steps, the
 * reads), `tx.ts` (one step's changes and their commit), `journal.ts` (a commit's list of
 * changes, replayed after a crash) and `stores.ts` (queue, results, events).
 *
 * @example A queue in a directory
 * ```ts
 * import { OmniQ, defineTask } from "@omniq/omniq";
 * const double = defineTask("file-doc-double", (n: number) => n * 2);
 * const dir = await Deno.makeTempDir();
 * await using q = await OmniQ.open(`file:${dir}`);
 * const id = await q.enqueue(double, [21]);
 * await q.run({ until: "idle" });
 * console.assert((await q.wait(id)) === 42);
 * ```
 *
 * @module
 */

import { runtime } from "../../src/runtime/mod.ts";
import type { Backend } from "../../src/backend.ts";
import { FileSpace } from "./space.ts";
import { LocalStorage, type Storage } from "./storage.ts";
import { FileEvents, FileQueue, FileResults } from "./stores.ts";
import { type FileOptions, filePath } from "./options.ts";

/**
 * The queue logic that the file, Deno KV and NATS engines share: `FileQueue`, `KvQueue` and
 * `NatsQueue` extend it, so their documentation shows what they inherit from it.
 */
export { RecordQueue } from "../records/queue.ts";
export { LocalStorage, type Storage } from "./storage.ts";
export { type FileOptions, filePath, LOCK_STALE_MS } from "./options.ts";
export { FileEvents, FileQueue, FileResults } from "./stores.ts";

/** The `file:` engine: queue, results and events in one directory. */
export class FileBackend implements Backend {
  /** The engine's name. */
  readonly name = "file";
  /** The task queue. */
  readonly queue: FileQueue;
  /** The result store. */
  readonly results: FileResults;
  /** The event store. */
  readonly events: FileEvents;
  #store: FileSpace;

  /**
   * Open over a storage; use {@linkcode openFile} for a directory.
   *
   * @param storage Where the files live.
   */
  constructor(storage: Storage) {
    this.#store = new FileSpace(storage);
    this.queue = new FileQueue(this.#store);
    this.results = new FileResults(this.#store);
    this.events = new FileEvents(this.#store);
  }

  /** Close: later calls throw. */
  async close(): Promise<void> {
    if (this.#store.closed) return;
    // Wait for the step in progress.
    await this.#store.locked(() => Promise.resolve()).catch(() => {});
    this.#store.closed = true;
    await this.#store.storage.close();
  }
}

/**
 * Open a `file:` engine on a directory (created when missing).
 *
 * @param target `file:./dir`, `file:///abs/dir`, a `file:` URL, or a path.
 * @param options Another storage to use, if any.
 * @returns The backend.
 *
 * @example
 * ```ts
 * import { openFile } from "@omniq/omniq/file";
 * const dir = await Deno.makeTempDir();
 * const backend = await openFile(`file:${dir}`);
 * console.assert(backend.name === "file");
 * await backend.close();
 * ```
 */
export async function openFile(
  target: string | URL,
  options: FileOptions = {},
): Promise<FileBackend> {
  if (options.storage) return new FileBackend(options.storage);
  const dir = filePath(target);
  await runtime.fs.mkdir(dir);
  return new FileBackend(new LocalStorage(dir));
}
