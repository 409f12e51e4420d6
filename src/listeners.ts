/**
 * The listeners of `OmniQ.on`: events this process causes reach them at once; events other
 * processes cause are read from the event store every poll interval while anyone listens
 * (and the ones already delivered locally are not delivered twice).
 *
 * @module
 */

import type { EventStore, StoredEvent } from "./backend.ts";
import { delay } from "./kit/async.ts";
import { toEventRecord } from "./records.ts";
import type { EventRecord, EventType } from "./types.ts";

type Listener = (event: EventRecord) => void;

/** How long the poller remembers an event it delivered, in case the step delivers it too. */
const POLLED_KEEP_MS = 60_000;

/** The listeners of one `OmniQ`, and the poller that feeds them other processes' events. */
export class Listeners {
  #events: EventStore;
  #pollInterval: number;
  #report: (error: unknown, what: string) => void;
  #listeners = new Map<EventType | "*", Set<Listener>>();
  #poller: { stop: AbortController; done: Promise<void> } | undefined;
  /** Events delivered locally that the poller will read again. */
  #localIds = new Set<string>();
  /**
   * Events the poller delivered, by when: a step's events are stored before the step hands
   * them to {@linkcode deliver}, so a poll in between reads them first, and `deliver` must
   * not deliver them again. Kept for a minute, far longer than any step.
   */
  #polledIds = new Map<string, number>();

  /**
   * @param events The store other processes' events are read from.
   * @param pollInterval How often it is read while anyone listens.
   * @param report Where a failing read or a throwing listener is reported.
   */
  constructor(
    events: EventStore,
    pollInterval: number,
    report: (error: unknown, what: string) => void,
  ) {
    this.#events = events;
    this.#pollInterval = pollInterval;
    this.#report = report;
  }

  /** Whether anyone listens. */
  get active(): boolean {
    return this.#listeners.size > 0;
  }

  /** Add a listener; returns the function that removes it. */
  add(type: EventType | "*", listener: Listener): () => void {
    let set = this.#listeners.get(type);
    if (!set) this.#listeners.set(type, set = new Set());
    set.add(listener);
    this.#startPoller();
    return () => {
      set!.delete(listener);
      if ([...this.#listeners.values()].every((s) => s.size === 0)) this.stop();
    };
  }

  /** Deliver events this process stored (the poller then skips them). */
  deliver(events: readonly StoredEvent[]): void {
    if (!this.active) return;
    for (const e of events) {
      if (this.#poller) {
        if (this.#polledIds.delete(e.id)) continue;
        this.#localIds.add(e.id);
      }
      this.#emit(toEventRecord(e));
    }
  }

  /** Stop polling (listeners stay; a new `add` starts it again). */
  stop(): void {
    this.#poller?.stop.abort();
    this.#poller = undefined;
    this.#localIds.clear();
    this.#polledIds.clear();
  }

  #startPoller(): void {
    if (this.#poller) return;
    const stop = new AbortController();
    const started = Date.now();
    const done = (async () => {
      let after: string | undefined;
      while (!stop.signal.aborted) {
        await delay(this.#pollInterval, { signal: stop.signal });
        if (stop.signal.aborted) break;
        try {
          const page = await this.#events.query(
            after === undefined ? { since: started, limit: 1000 } : { after, limit: 1000 },
          );
          const now = Date.now();
          for (const [id, at] of this.#polledIds) {
            if (now - at < POLLED_KEEP_MS) break;
            this.#polledIds.delete(id);
          }
          for (const e of page) {
            after = e.id;
            if (this.#localIds.delete(e.id)) continue;
            this.#polledIds.set(e.id, now);
            this.#emit(toEventRecord(e));
          }
        } catch (error) {
          this.#report(error, "event poll");
        }
      }
    })();
    this.#poller = { stop, done };
  }

  #emit(event: EventRecord): void {
    for (const key of [event.type, "*"] as const) {
      for (const listener of this.#listeners.get(key) ?? []) {
        try {
          listener(event);
        } catch (error) {
          this.#report(error, `an "${key}" listener`);
        }
      }
    }
  }
}
