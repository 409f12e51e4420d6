/**
 * The `nats:` engine: queue, results and events on NATS JetStream. `nats://host:4222` (or a
 * {@linkcode NatsOptions} object: servers, token or user and password, a name prefix, the
 * stream and bucket names) stores task records and schedules in a JetStream KV bucket
 * (`OMNIQ_TASKS`), results in another (`OMNIQ_RESULTS`), and lifecycle events in a stream
 * (`OMNIQ_EVENTS`, subjects `<stream>.<task>.<type>`, so they are queryable by task and by
 * type). All three are created on open when missing, with file storage, so they survive a
 * server restart. URL options: `?prefix=p` puts every name under `p_` (one server, many
 * isolated stores), `&stream=`, `&bucket=`, `&results=` rename them, `&timeout=` (ms) bounds
 * the first connection; `nats://user:pass@host`, `nats://token@host` log in; several servers
 * are comma-separated (`nats://a:4222,b:4222`).
 *
 * The engine keeps task records in a KV bucket and runs the record engines' shared queue
 * logic over a local mirror of it, one step at a time across processes under a lock, each
 * step of several writes made whole by a journal. Why a record space and not a work-queue
 * stream, and how the lock, the mirror, fencing and the journal work:
 * [docs/engines/nats.md](../../docs/engines/nats.md).
 *
 * ## Limits
 * A task's encoded arguments may take {@linkcode NATS_MAX_PAYLOAD} bytes and a result value
 * {@linkcode NATS_MAX_RESULT} (records are JSON with base64 bytes, under NATS's default 1 MiB
 * message size). Each process holds every task record in memory, so keep `keepCompleted`
 * modest on busy queues. A lock whose holder stopped renewing it for
 * {@linkcode LOCK_STALE_MS} is broken.
 *
 * @example A queue on NATS
 * ```ts ignore
 * import { OmniQ, defineTask } from "@omniq/omniq";
 * const double = defineTask("nats-doc-double", (n: number) => n * 2);
 * await using q = await OmniQ.open("nats://127.0.0.1:4222");
 * const id = await q.enqueue(double, [21]);
 * await q.run({ until: "idle" });
 * console.assert((await q.wait(id)) === 42);
 * ```
 *
 * @module
 */

import type { Backend } from "../../src/backend.ts";
import { ConfigError } from "../../src/errors.ts";
import { connectStore } from "./connection.ts";
import { type NatsOptions, parseNatsUrl, resolve } from "./options.ts";
import { NatsQueue } from "./queue.ts";
import type { NatsStore } from "./store.ts";
import { NatsEvents, NatsResults } from "./stores.ts";

export { LOCK_STALE_MS, NATS_MAX_PAYLOAD, NATS_MAX_RESULT } from "./limits.ts";
export { type NatsOptions, parseNatsUrl } from "./options.ts";
export { NatsQueue } from "./queue.ts";
export { NatsEvents, NatsResults } from "./stores.ts";

/** The `nats:` engine: queue, results and events on one NATS JetStream server. */
export class NatsBackend implements Backend {
  /** The engine's name. */
  readonly name = "nats";
  /** The task queue. */
  readonly queue: NatsQueue;
  /** The result store. */
  readonly results: NatsResults;
  /** The event store. */
  readonly events: NatsEvents;
  #store: NatsStore;

  /** Open over a connected store; use {@linkcode openNats}. */
  constructor(store: NatsStore) {
    this.#store = store;
    this.queue = new NatsQueue(store);
    this.results = new NatsResults(store);
    this.events = new NatsEvents(store);
  }

  /** The names of the stream and buckets this backend uses. */
  get names(): { stream: string; bucket: string; resultsBucket: string } {
    const n = this.#store.names;
    return { stream: n.stream, bucket: n.bucket, resultsBucket: n.resultsBucket };
  }

  /**
   * Delete this store's stream and buckets, with everything in them, then close. For tests
   * and teardown; other handles on the store fail afterwards.
   */
  async destroy(): Promise<void> {
    const s = this.#store;
    s.check();
    await s.jsm.streams.delete(s.names.stream).catch(() => {});
    await s.jsm.streams.delete(`KV_${s.names.bucket}`).catch(() => {});
    await s.jsm.streams.delete(`KV_${s.names.resultsBucket}`).catch(() => {});
    await this.close();
  }

  /** Close the connection; later calls throw. */
  close(): Promise<void> {
    return this.#store.close();
  }
}

/**
 * Open a `nats:` engine, creating its stream and buckets when missing.
 *
 * @param target A `nats://` URL or {@linkcode NatsOptions}.
 * @returns The backend.
 * @throws {ConfigError} When the URL is bad, the server is unreachable, refuses the
 *   credentials or has no JetStream; the message names the server and the cause.
 *
 * @example
 * ```ts ignore
 * import { openNats } from "@omniq/omniq/nats";
 * import { OmniQ } from "@omniq/omniq";
 * await using q = await OmniQ.open({ backend: await openNats({ servers: "127.0.0.1:4222" }) });
 * ```
 */
export async function openNats(target: string | NatsOptions = {}): Promise<NatsBackend> {
  const options = typeof target === "string" ? parseNatsUrl(target) : target;
  if (!options || typeof options !== "object") {
    throw new ConfigError("nats: expected a nats:// URL or an options object");
  }
  return new NatsBackend(await connectStore(resolve(options)));
}
