/**
 * The PostgreSQL engine's result and event stores, in the same schema as its queue.
 *
 * @module
 */

import type {
  EventQuery,
  EventStore,
  NewEvent,
  ResultStore,
  StoredEvent,
  StoredResult,
} from "../../src/backend.ts";
import { eventWhere, numbered } from "../sql/filters.ts";
import { toEvent, toResult } from "../sql/rows.ts";
import { type Connection, type Param, run } from "./connection.ts";
import * as q from "./queries.ts";
import { codec, insertEvents, putResults } from "./table.ts";

/** The result store of a PostgreSQL engine. */
export class PostgresResults implements ResultStore {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  put(results: StoredResult[]): Promise<void> {
    const c = this.#c;
    return c.tx("put results", async (tx) => {
      if (results.length) await putResults(c, tx, results);
    });
  }

  get(taskId: string): Promise<StoredResult | undefined> {
    const c = this.#c;
    return c.read("get result", async (db) => {
      const rows = await run(db, q.getResult(c.s), [taskId, Date.now()]);
      return rows.length ? toResult(rows[0], codec) : undefined;
    });
  }

  delete(taskIds: string[]): Promise<void> {
    const c = this.#c;
    return c.tx("delete results", async (tx) => {
      await run(tx, q.deleteResults(c.s), [JSON.stringify(taskIds)]);
    });
  }

  sweep(now: number): Promise<number> {
    const c = this.#c;
    return c.read(
      "sweep results",
      async (db) => (await run(db, q.sweepResults(c.s), [now])).length,
    );
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}

/** The event store of a PostgreSQL engine. */
export class PostgresEvents implements EventStore {
  readonly #c: Connection;

  constructor(c: Connection) {
    this.#c = c;
  }

  append(events: NewEvent[]): Promise<StoredEvent[]> {
    const c = this.#c;
    if (events.length === 0) return Promise.resolve([]);
    return c.tx("append events", (tx) => insertEvents(c, tx, events));
  }

  query(query: EventQuery): Promise<StoredEvent[]> {
    const c = this.#c;
    const p = numbered();
    let where: string | undefined;
    try {
      where = eventWhere(query, p, "postgres");
    } catch (error) {
      return Promise.reject(error);
    }
    if (where === undefined) return c.read("query events", () => Promise.resolve([]));
    const limit = query.limit === undefined ? "" : `LIMIT ${p.one(query.limit)}`;
    const text = `SELECT * FROM ${c.s}.events ${where} ORDER BY id ${limit}`;
    const params = p.values as Param[];
    return c.read(
      "query events",
      async (db) => (await run(db, text, params)).map((r) => toEvent(r, codec)),
    );
  }

  sweep(before: number): Promise<number> {
    const c = this.#c;
    return c.read(
      "sweep events",
      async (db) => (await run(db, q.sweepEvents(c.s), [before])).length,
    );
  }

  close(): Promise<void> {
    return this.#c.close();
  }
}
