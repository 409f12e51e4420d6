// The Redis engine's result store (one key per result, its ttl the key's expiry) and event
// store (a capped stream).

import {
  type EventQuery,
  type EventStore,
  matchesEvent,
  type NewEvent,
  type ResultStore,
  type StoredEvent,
  type StoredResult,
} from "../../src/backend.ts";
import { OmniQError } from "../../src/errors.ts";
import { isLiveResult } from "../../src/kit/policy.ts";
import { arr, eventJson, type Json, pairs, resultJson, toEvent, toResult } from "./codec.ts";
import { type Connection, message } from "./connection.ts";
import { describeTarget } from "./options.ts";
import { SWEEP_BATCH } from "./queue.ts";

/** Stream entries read per `XRANGE` of an event query. */
const EVENT_PAGE = 1_000;
/**
 * How far before `since` an event query starts reading the stream: entry ids come from the
 * server's clock, event times from the writer's, so a little slack covers their skew.
 */
const SINCE_SLACK = 60_000;

/** The result store of a Redis engine: one key per result, its ttl the key's expiry. */
export class RedisResults implements ResultStore {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  async put(results: StoredResult[]): Promise<void> {
    if (results.length === 0) return;
    const args: string[] = [];
    for (const r of results) {
      args.push(r.taskId, resultJson(r), r.expiresAt === undefined ? "" : String(r.expiresAt));
    }
    await this.#c.script("putResults", args);
  }

  async get(taskId: string): Promise<StoredResult | undefined> {
    const raw = await this.#c.command("results.get", ["GET", `${this.#c.prefix}result:${taskId}`]);
    if (raw === null || raw === undefined) return undefined;
    let r: StoredResult;
    try {
      r = toResult(JSON.parse(String(raw)));
    } catch (error) {
      if (error instanceof OmniQError) throw error;
      throw new OmniQError(
        `${describeTarget(this.#c.options)}: the result of task ${taskId} is damaged: ${
          message(error)
        }`,
      );
    }
    return isLiveResult(r, Date.now()) ? r : undefined;
  }

  async delete(taskIds: string[]): Promise<void> {
    if (taskIds.length === 0) return;
    await this.#c.script("deleteResults", taskIds);
  }

  async sweep(now: number): Promise<number> {
    let total = 0;
    for (let round = 0; round < 100; round++) {
      const n = Number(await this.#c.script("sweepResults", [String(now), String(SWEEP_BATCH)]));
      total += n;
      if (n < SWEEP_BATCH) break;
    }
    return total;
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}

/** The event store of a Redis engine: a capped stream. */
export class RedisEvents implements EventStore {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  async append(events: NewEvent[]): Promise<StoredEvent[]> {
    if (events.length === 0) return [];
    const ids = arr<string>(await this.#c.script("appendEvents", events.map(eventJson)));
    return events.map((e, i) => ({ ...e, id: ids[i] }));
  }

  async query(query: EventQuery): Promise<StoredEvent[]> {
    const limit = query.limit ?? Infinity;
    const key = `${this.#c.prefix}events`;
    let start = query.after !== undefined
      ? `(${query.after}`
      : query.since !== undefined
      ? String(Math.max(0, Math.floor(query.since) - SINCE_SLACK))
      : "-";
    const out: StoredEvent[] = [];
    for (;;) {
      const page = arr<[string, string[]]>(
        await this.#c.command("events.query", [
          "XRANGE",
          key,
          start,
          "+",
          "COUNT",
          String(EVENT_PAGE),
        ]),
      );
      for (const [id, fields] of page) {
        const f = pairs(fields);
        let raw: Json;
        try {
          raw = JSON.parse(f.e);
        } catch {
          continue; // an entry of another program: not an event of ours
        }
        const e = toEvent(raw, id) as StoredEvent;
        if (!matchesEvent(e, query)) continue;
        out.push(e);
        if (out.length >= limit) return out;
      }
      if (page.length < EVENT_PAGE) return out;
      start = `(${page[page.length - 1][0]}`;
    }
  }

  async sweep(before: number): Promise<number> {
    return Number(await this.#c.script("trimEvents", [String(before)]));
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}
