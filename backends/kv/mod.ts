/**
 * The `kv:` engine: queue, results and events in Deno KV. `kv:./path.kv` opens a local KV
 * file, `kv:` alone the default KV (the project's database on Deno Deploy), `kv::memory:` a
 * private in-memory one, and {@linkcode openKv} takes a `Deno.Kv` you opened yourself.
 *
 * Deno KV is still an unstable API: run with `--unstable-kv` (or `"unstable": ["kv"]` in
 * `deno.json`). This module uses only the part of the API it names in {@linkcode KvLike}, so
 * importing OmniQ never needs the unstable types.
 *
 * ## How a step commits
 * Every state change (enqueue, claim, complete, a schedule's tick …) is one step of the
 * record engines' shared queue (`backends/records/queue.ts`): it reads the task records it needs,
 * then commits all its changes in one `kv.atomic()` that checks the versionstamp of every
 * record it read. When another process changed one of them first the commit fails and the
 * step runs again on fresh reads, so exactly one worker wins a claim and a tick fires once.
 * Steps in one process run one after another. A shared sequence record gives FIFO order and
 * event ids, so every step that adds tasks or events also checks it.
 *
 * ## Limits (Deno KV's, per atomic commit: 100 checks, 1,000 mutations, 800 KiB; 64 KiB a value)
 * - A task's encoded arguments may take {@linkcode KV_MAX_PAYLOAD} bytes; larger ones are
 *   refused at enqueue, naming the limit.
 * - A result value over 60,000 bytes is split over several values, up to
 *   {@linkcode KV_MAX_RESULT} bytes; a larger result fails the task, naming the limit.
 * - A step reads at most about 80 records: a claim takes fewer tasks than asked when it
 *   would read more, a sweep continues in further steps, and a large `enqueueMany` is
 *   stored in several commits (each all or none; the ids, keys and dependencies of the whole
 *   batch are checked before the first). A task may depend on at most about 60 others.
 *
 * ## Wake-ups
 * On a local KV file another process's writes are not seen by `watch` or `listenQueue`, so
 * idle workers poll on their `pollInterval`; work enqueued through the same `OmniQ` wakes
 * its workers at once.
 *
 * ## Keys (under the prefix, `["omniq"]` by default)
 * `["t", id]` task records; `["i", …path]` index entries (see `backends/records/space.ts`);
 * `["k", key]` the live task of a dedupe key; `["s", id]` schedules; `["r", id]` results
 * (with `expireIn` for a result TTL) and `["rv", id, n]` their parts; `["e", id]` events and
 * `["et", taskId, id]` an index of them by task; `["meta", "seq"]` the sequences.
 *
 * @example A queue in a KV file
 * ```ts ignore
 * import { OmniQ, defineTask } from "@omniq/omniq";
 * const double = defineTask("kv-doc-double", (n: number) => n * 2);
 * await using q = await OmniQ.open("kv:./omniq.kv");
 * const id = await q.enqueue(double, [21]);
 * await q.run({ until: "idle" });
 * console.assert((await q.wait(id)) === 42);
 * ```
 *
 * ## Files
 * `options.ts` (the target, the options, the limits), `connection.ts` (the part of the KV API
 * used, a file's handle shared in a process), `codec.ts` (records as KV values), `space.ts`
 * (group commits, reads), `tx.ts` (one step's changes and their checked commit) and
 * `stores.ts` (queue, results, events).
 *
 * @module
 */

import type { Backend } from "../../src/backend.ts";
import { ConfigError } from "../../src/errors.ts";
import { type KvKey, type KvLike, openDatabase } from "./connection.ts";
import { type KvOptions, kvPath } from "./options.ts";
import { KvSpace } from "./space.ts";
import { KvEvents, KvQueue, KvResults } from "./stores.ts";

export type { KvAtomic, KvEntryMaybe, KvKey, KvKeyPart, KvLike } from "./connection.ts";
export { KV_MAX_PAYLOAD, KV_MAX_RESULT, type KvOptions, kvPath } from "./options.ts";
export { KvEvents, KvQueue, KvResults } from "./stores.ts";

/** The `kv:` engine: queue, results and events in one Deno KV database. */
export class KvBackend implements Backend {
  /** The engine's name. */
  readonly name = "kv";
  /** The task queue. */
  readonly queue: KvQueue;
  /** The result store. */
  readonly results: KvResults;
  /** The event store. */
  readonly events: KvEvents;
  #store: KvSpace;

  /**
   * Open over a KV database; use {@linkcode openKv}.
   *
   * @param kv The database.
   * @param prefix The key prefix of every record.
   * @param owned Whether closing the backend closes the database.
   */
  constructor(kv: KvLike, prefix: KvKey, owned: boolean) {
    this.#store = new KvSpace(kv, prefix, owned);
    this.queue = new KvQueue(this.#store);
    this.results = new KvResults(this.#store);
    this.events = new KvEvents(this.#store);
  }

  /** Close: later calls throw; a database this engine opened is closed. */
  async close(): Promise<void> {
    if (this.#store.closed) return;
    await this.#store.step(() => Promise.resolve()).catch(() => {});
    this.#store.closed = true;
    if (this.#store.owned) this.#store.kv.close();
  }
}

/**
 * Open a `kv:` engine: on a KV file, the default KV, or a `Deno.Kv` you opened (which stays
 * open when the engine closes).
 *
 * @param target `kv:./path.kv`, `kv:` (the default database), `kv::memory:`, or a `Deno.Kv`.
 * @param options The key prefix.
 * @returns The backend.
 * @throws {ConfigError} When Deno KV is not enabled (`--unstable-kv`) or the path is bad.
 *
 * @example
 * ```ts ignore
 * import { openKv } from "@omniq/omniq/kv";
 * import { OmniQ } from "@omniq/omniq";
 * const kv = await Deno.openKv(":memory:");
 * await using q = await OmniQ.open({ backend: await openKv(kv) });
 * ```
 */
export async function openKv(
  target: string | KvLike = "kv:",
  options: KvOptions = {},
): Promise<KvBackend> {
  const prefix = options.prefix ?? ["omniq"];
  if (!Array.isArray(prefix)) throw new ConfigError("prefix: expected an array of key parts");
  if (typeof target !== "string") {
    if (!target || typeof target.atomic !== "function") {
      throw new ConfigError("kv: expected a kv: URL or an open Deno KV database");
    }
    return new KvBackend(target, prefix, false);
  }
  return new KvBackend(await openDatabase(kvPath(target)), prefix, true);
}
