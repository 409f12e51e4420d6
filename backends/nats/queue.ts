// The task queue of a `nats:` store: the record engines' queue (backends/records/queue.ts)
// over the mirrored bucket (whose result limit it applies: store.ts), with its wake-ups.

import type { Subscription } from "../../src/backend.ts";
import { RecordQueue } from "../records/queue.ts";
import { NATS_MAX_PAYLOAD } from "./limits.ts";
import type { NatsStore } from "./store.ts";

/** The task queue of a `nats:` store: the record engines' queue over the mirrored bucket. */
export class NatsQueue extends RecordQueue {
  #s: NatsStore;

  /** Open over a store; use {@linkcode openNats}. */
  constructor(store: NatsStore) {
    super(store, NATS_MAX_PAYLOAD);
    this.#s = store;
    store.onCorrupt = (path, reason) =>
      this.report({ type: "corrupt", at: Date.now(), data: { key: path, reason } });
  }

  /**
   * Wake an idle worker when any process makes a task due (seen through the bucket watch);
   * `ready` settles once the watch is confirmed live (or confirming it failed: workers poll).
   */
  subscribe(_queues: string[], onWake: () => void): Subscription {
    const wakers = (this.#wakers ??= new Set());
    wakers.add(onWake);
    this.#s.onDue = () => {
      for (const w of wakers) w();
    };
    const stop = () => void wakers.delete(onWake);
    return Object.assign(stop, { ready: this.#live() });
  }
  #wakers?: Set<() => void>;

  /**
   * The watch started at open, but its consumer is created by the server asynchronously:
   * the flush makes the server take the watch's subscription, and catching the mirror up to
   * the bucket's last revision shows the watch delivers. The watch starts at the bucket's
   * beginning (or where a restarted one left off), so a write made before the server
   * created its consumer still arrives. A failure (a closed store, a watch that does not
   * catch up) resolves too: workers poll, as they do while a watch restarts.
   */
  async #live(): Promise<void> {
    try {
      await this.#s.nc.flush();
      await this.#s.sync();
    } catch {
      // Workers poll at their interval.
    }
  }
}
