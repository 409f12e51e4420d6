// The task queue of a `nats:` store: the record engines' queue (backends/records/queue.ts)
// over the mirrored bucket, with this engine's result limit and its wake-ups.

import type { Effects, StoredResult } from "../../src/backend.ts";
import { RecordQueue } from "../records/queue.ts";
import { NATS_MAX_PAYLOAD, NATS_MAX_RESULT } from "./limits.ts";
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

  /** Complete an attempt; a result over the engine's limit fails the task instead. */
  override complete(
    id: string,
    token: string,
    result: StoredResult,
  ): Promise<Effects | undefined> {
    if (result.value !== undefined && result.value.length > NATS_MAX_RESULT) {
      const error = {
        name: "ResultTooLargeError",
        message:
          `the result takes ${result.value.length} bytes; the nats engine stores at most ${NATS_MAX_RESULT}`,
      };
      return this.fail(id, token, {
        error,
        result: { taskId: id, state: "failed", error, completedAt: result.completedAt },
      });
    }
    return super.complete(id, token, result);
  }

  /** Wake an idle worker when any process makes a task due (seen through the bucket watch). */
  subscribe(_queues: string[], onWake: () => void): () => void {
    const wakers = (this.#wakers ??= new Set());
    wakers.add(onWake);
    this.#s.onDue = () => {
      for (const w of wakers) w();
    };
    return () => void wakers.delete(onWake);
  }
  #wakers?: Set<() => void>;
}
